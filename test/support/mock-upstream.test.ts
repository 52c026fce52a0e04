import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type MockUpstream, startMockUpstream } from './mock-upstream.js';

let upstream: MockUpstream;
// A private dispatcher, so a connection the mock destroys never leaks into another test's request.
let dispatcher: Agent;

beforeAll(async () => {
  upstream = await startMockUpstream();
  dispatcher = new Agent({ pipelining: 0 });
});

afterEach(() => {
  upstream.setBehaviour({ kind: 'ok' });
});

afterAll(async () => {
  await dispatcher.destroy();
  await upstream.close();
});

function post(path: string, body: unknown, signal?: AbortSignal) {
  return request(`${upstream.origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    dispatcher,
    signal,
  });
}

const chatBody = { model: 'mock-model', messages: [{ role: 'user', content: 'Say hello to me' }] };

/** Splits an SSE body into its events' data, checking that every event is one "data: " line. */
function sseData(text: string): string[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      expect(event).toMatch(/^data: [^\n]*$/);
      return event.slice('data: '.length);
    });
}

describe('normal answers', () => {
  test('a chat completion comes back as an OpenAI chat.completion object with usage', async () => {
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    const completion = (await response.body.json()) as Record<string, unknown>;
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'mock-model',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello from the mock upstream.', refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: {
        prompt_tokens: 4,
        completion_tokens: 6,
        total_tokens: 10,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 },
      },
      system_fingerprint: 'fp_mock',
    });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(Number.isInteger(completion.created)).toBe(true);
  });

  test('every request is recorded with its method, path, headers and raw body', async () => {
    const before = upstream.requests.length;
    const raw = JSON.stringify({ ...chatBody, model: 'recorded-model' });
    await (await post('/v1/chat/completions?trace=1', raw)).body.dump();
    const recorded = upstream.requests[before]!;
    expect(recorded).toMatchObject({ method: 'POST', path: '/v1/chat/completions?trace=1', body: raw });
    expect(recorded.headers.authorization).toBe('Bearer sk-test');
    expect(recorded.json.model).toBe('recorded-model');
  });

  test('a streaming chat completion is framed as OpenAI SSE and ends with [DONE]', async () => {
    const response = await post('/v1/chat/completions', { ...chatBody, stream: true });
    expect(response.headers['content-type']).toBe('text/event-stream');
    expect(response.headers['cache-control']).toBe('no-cache');
    const data = sseData(await response.body.text());
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((item) => JSON.parse(item));
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && !('usage' in chunk))).toBe(
      true,
    );
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join('')).toBe(
      'Hello from the mock upstream.',
    );
    expect(chunks.at(-1).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(chunks.slice(0, -1).every((chunk) => chunk.choices[0].finish_reason === null)).toBe(true);
  });

  test('with include_usage every chunk carries usage null and one last chunk carries the usage', async () => {
    const response = await post('/v1/chat/completions', {
      ...chatBody,
      stream: true,
      stream_options: { include_usage: true },
    });
    const data = sseData(await response.body.text());
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((item) => JSON.parse(item));
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    // role chunk + 6 content chunks + finish chunk + usage chunk
    expect(chunks).toHaveLength(9);
  });

  test('legacy completions answer a text_completion, as JSON and as a stream', async () => {
    const json = (await (await post('/v1/completions', { model: 'm', prompt: 'one two' })).body.json()) as {
      object: string;
      choices: { text: string; finish_reason: string }[];
      usage: unknown;
    };
    expect(json.object).toBe('text_completion');
    expect(json.choices[0]).toMatchObject({ text: 'Hello from the mock upstream.', finish_reason: 'stop' });
    expect(json.usage).toEqual({ prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });

    const stream = await post('/v1/completions', {
      model: 'm',
      prompt: 'one two',
      stream: true,
      stream_options: { include_usage: true },
    });
    const data = sseData(await stream.body.text());
    const chunks = data.slice(0, -1).map((item) => JSON.parse(item));
    expect(chunks.map((chunk) => chunk.choices[0]?.text ?? '').join('')).toBe(
      'Hello from the mock upstream.',
    );
    expect(chunks.at(-1).usage).toEqual({ prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
  });

  test('embeddings return one deterministic vector of 8 floats per input', async () => {
    const single = (await (await post('/v1/embeddings', { model: 'e', input: 'a b c' })).body.json()) as {
      object: string;
      data: { object: string; index: number; embedding: number[] }[];
      model: string;
      usage: unknown;
    };
    expect(single).toMatchObject({
      object: 'list',
      model: 'e',
      usage: { prompt_tokens: 3, total_tokens: 3 },
    });
    expect(single.data).toHaveLength(1);
    expect(single.data[0]!.embedding).toHaveLength(8);

    const many = (await (
      await post('/v1/embeddings', { model: 'e', input: ['x', 'a b c'] })
    ).body.json()) as {
      data: { index: number; embedding: number[] }[];
    };
    expect(many.data.map((item) => item.index)).toEqual([0, 1]);
    expect(many.data[1]!.embedding).toEqual(single.data[0]!.embedding);
  });

  test('GET /v1/models lists the models the mock knows', async () => {
    const response = await request(`${upstream.url}/models`, { dispatcher });
    expect(await response.body.json()).toMatchObject({
      object: 'list',
      data: [{ id: 'mock-model', object: 'model' }],
    });
  });

  test('an unknown path is a 404 with an OpenAI error envelope', async () => {
    const response = await post('/v1/nothing-here', {});
    expect(response.statusCode).toBe(404);
    expect(await response.body.json()).toEqual({
      error: {
        message: 'Invalid URL (POST /v1/nothing-here)',
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });
  });

  test('the official OpenAI SDK reads the mock, streamed and not', async () => {
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: upstream.url, maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'mock-model',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('Hello from the mock upstream.');

    const stream = await client.chat.completions.create({
      model: 'mock-model',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let totalTokens: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) totalTokens = chunk.usage.total_tokens;
    }
    expect(text).toBe('Hello from the mock upstream.');
    expect(totalTokens).toBe(7);
  });
});

describe('programmed failures', () => {
  test('an error with an object body is sent as JSON with the given status and headers', async () => {
    const envelope = {
      error: { message: 'Slow down', type: 'rate_limit_error', param: null, code: 'rate_limit' },
    };
    upstream.setBehaviour({ kind: 'error', status: 429, body: envelope, headers: { 'retry-after': '7' } });
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(429);
    expect(response.headers['content-type']).toBe('application/json');
    expect(response.headers['retry-after']).toBe('7');
    expect(await response.body.json()).toEqual(envelope);
  });

  test('an error with a string body is sent as plain text', async () => {
    upstream.setBehaviour({ kind: 'error', status: 503, body: 'upstream overloaded' });
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    expect(await response.body.text()).toBe('upstream overloaded');
  });

  test('a behaviour function sees the recorded request and answers per request', async () => {
    upstream.setBehaviour((recorded) =>
      recorded.json.model === 'broken' ? { kind: 'error', status: 500 } : { kind: 'ok' },
    );
    const broken = await post('/v1/chat/completions', { ...chatBody, model: 'broken' });
    expect(broken.statusCode).toBe(500);
    expect(await broken.body.json()).toMatchObject({ error: { type: 'server_error' } });
    const fine = await post('/v1/chat/completions', chatBody);
    expect(fine.statusCode).toBe(200);
    await fine.body.dump();
  });

  test('a delay holds back the response headers, then answers normally', async () => {
    upstream.setBehaviour({ kind: 'delay', ms: 80 });
    const started = performance.now();
    const response = await post('/v1/chat/completions', chatBody);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(response.statusCode).toBe(200);
    await response.body.dump();
  });

  test('a reset destroys the connection before any response bytes, after recording the request', async () => {
    upstream.setBehaviour({ kind: 'reset' });
    const before = upstream.requests.length;
    const abortedBefore = upstream.aborted;
    const error = await post('/v1/chat/completions', chatBody).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: string }).code).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
    expect(upstream.requests).toHaveLength(before + 1);
    expect(upstream.aborted).toBe(abortedBefore);
  });

  test('a cut stream delivers its first chunks and then fails the body', async () => {
    upstream.setBehaviour({ kind: 'cut', afterChunks: 2 });
    const abortedBefore = upstream.aborted;
    const response = await post('/v1/chat/completions', { ...chatBody, stream: true });
    expect(response.statusCode).toBe(200);
    let received = '';
    const error = await (async () => {
      for await (const part of response.body) received += String(part);
    })().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    const data = sseData(received);
    expect(data).toHaveLength(2);
    expect(JSON.parse(data[1]!).choices[0].delta.content).toBe('Hello');
    expect(upstream.aborted).toBe(abortedBefore);
  });

  test('a cut JSON answer sends half its body and then fails', async () => {
    upstream.setBehaviour({ kind: 'cut', afterChunks: 1 });
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(200);
    await expect(response.body.text()).rejects.toThrow();
  });
});

describe('abort tracking', () => {
  test('a client that aborts a stalled stream is counted and signalled', async () => {
    upstream.setBehaviour({ kind: 'stall', afterChunks: 2 });
    const before = upstream.aborted;
    const controller = new AbortController();
    const response = await post('/v1/chat/completions', { ...chatBody, stream: true }, controller.signal);
    const iterator = response.body[Symbol.asyncIterator]();
    let received = '';
    while (!received.includes('Hello')) received += String((await iterator.next()).value);
    const signalled = upstream.abortedSignal();
    controller.abort();
    await signalled;
    expect(upstream.aborted).toBe(before + 1);
  });

  test('a client that gives up on a hanging request is counted and signalled', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    upstream.setBehaviour(() => {
      arrived();
      return { kind: 'hang' };
    });
    const before = upstream.aborted;
    const controller = new AbortController();
    const pending = post('/v1/chat/completions', chatBody, controller.signal).catch(
      (caught: unknown) => caught,
    );
    await arrival;
    const signalled = upstream.abortedSignal();
    controller.abort();
    await signalled;
    expect(await pending).toBeInstanceOf(Error);
    expect(upstream.aborted).toBe(before + 1);
  });

  test('a finished response is never counted as aborted', async () => {
    const before = upstream.aborted;
    await (await post('/v1/chat/completions', { ...chatBody, stream: true })).body.text();
    await (await post('/v1/chat/completions', chatBody)).body.text();
    expect(upstream.aborted).toBe(before);
  });

  test('close() returns promptly while a request hangs and another stalls', async () => {
    const own = await startMockUpstream({ chunkDelayMs: 1 });
    own.setBehaviour((recorded) =>
      recorded.json.stream ? { kind: 'stall', afterChunks: 1 } : { kind: 'hang' },
    );
    const hanging = request(`${own.url}/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody),
      dispatcher,
    }).catch((caught: unknown) => caught);
    const stalled = await request(`${own.url}/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ ...chatBody, stream: true }),
      dispatcher,
    });
    const started = performance.now();
    await own.close();
    expect(performance.now() - started).toBeLessThan(500);
    expect(await hanging).toBeInstanceOf(Error);
    await expect(stalled.body.text()).rejects.toThrow();
  });
});
