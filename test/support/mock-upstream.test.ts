import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type MockUpstream, rateLimited, startMockUpstream } from './mock-upstream.js';

let upstream: MockUpstream;
// A private dispatcher, so a connection the mock destroys never leaks into another test's request.
let dispatcher: Agent;

beforeAll(async () => {
  upstream = await startMockUpstream();
  dispatcher = new Agent({ pipelining: 0 });
});

afterEach(() => {
  upstream.reset();
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

/** The statuses of `n` chat requests sent one after another; a destroyed connection reads as 0. */
async function statuses(n: number): Promise<number[]> {
  const seen: number[] = [];
  for (let index = 0; index < n; index++) {
    const response = await post('/v1/chat/completions', chatBody).catch(() => undefined);
    seen.push(response?.statusCode ?? 0);
    await response?.body.dump();
  }
  return seen;
}

function get(path: string) {
  return request(`${upstream.origin}${path}`, { dispatcher });
}

/** A request that the mock will hang on, and a way to tell when the mock has recorded it. */
async function hangOne(target: MockUpstream) {
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  target.setBehaviour(() => {
    arrived();
    return { kind: 'hang' };
  });
  const controller = new AbortController();
  const pending = request(`${target.url}/chat/completions`, {
    method: 'POST',
    body: JSON.stringify(chatBody),
    dispatcher,
    signal: controller.signal,
  }).catch((caught: unknown) => caught);
  await arrival;
  return { controller, pending };
}

describe('schedules and seeded faults', () => {
  test('a schedule answers the next requests in turn, then falls back to the behaviour before it', async () => {
    upstream.setBehaviour({ kind: 'error', status: 502 });
    upstream.setSchedule([{ kind: 'error', status: 503 }, { kind: 'reset' }, { kind: 'ok' }]);
    expect(await statuses(5)).toEqual([503, 0, 200, 502, 502]);
  });

  test('a schedule with a `then` switches to it once the schedule is used up', async () => {
    upstream.setBehaviour({ kind: 'error', status: 502 });
    upstream.setSchedule([{ kind: 'error', status: 500 }], { kind: 'ok' });
    expect(await statuses(3)).toEqual([500, 200, 200]);
  });

  test('probes of /health and /metrics do not use up a schedule', async () => {
    upstream.setSchedule([{ kind: 'error', status: 503 }]);
    await (await get('/health')).body.dump();
    await (await get('/metrics')).body.dump();
    expect(await statuses(2)).toEqual([503, 200]);
  });

  test('setting a behaviour drops what is left of a schedule', async () => {
    upstream.setSchedule([
      { kind: 'error', status: 503 },
      { kind: 'error', status: 503 },
    ]);
    expect(await statuses(1)).toEqual([503]);
    upstream.setBehaviour({ kind: 'ok' });
    expect(await statuses(1)).toEqual([200]);
  });

  test('an error rate fails a share of requests, the same ones again for the same seed', async () => {
    upstream.setFaults({ errorRate: 0.3, errorStatus: 503, seed: 42 });
    const first = await statuses(40);
    upstream.setFaults({ errorRate: 0.3, errorStatus: 503, seed: 42 });
    expect(await statuses(40)).toEqual(first);
    const failed = first.filter((status) => status === 503).length;
    expect(failed).toBeGreaterThan(4);
    expect(failed).toBeLessThan(24);
    expect(first.every((status) => status === 200 || status === 503)).toBe(true);

    upstream.setFaults({ errorRate: 0.3, errorStatus: 503, seed: 7 });
    expect(await statuses(40)).not.toEqual(first);
  });

  test('probes do not draw from the fault sequence', async () => {
    upstream.setFaults({ errorRate: 0.5, seed: 3 });
    const plain = await statuses(12);
    upstream.setFaults({ errorRate: 0.5, seed: 3 });
    const interleaved: number[] = [];
    for (let index = 0; index < 12; index++) {
      await (await get(index % 2 ? '/metrics' : '/health')).body.dump();
      interleaved.push(...(await statuses(1)));
    }
    expect(interleaved).toEqual(plain);
    expect(plain).toContain(500);
  });

  test('error rates of 0 and 1 fail nothing and everything; clearFaults stops the faults', async () => {
    upstream.setFaults({ errorRate: 0, seed: 1 });
    expect(await statuses(5)).toEqual([200, 200, 200, 200, 200]);
    upstream.setFaults({ errorRate: 1, seed: 1 });
    expect(await statuses(3)).toEqual([500, 500, 500]);
    upstream.clearFaults();
    expect(await statuses(2)).toEqual([200, 200]);
  });

  test('faults with status 429 answer as an OpenAI rate limit', async () => {
    upstream.setFaults({ errorRate: 1, errorStatus: 429, seed: 1 });
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(429);
    expect(response.headers['retry-after']).toBe('1');
    expect(await response.body.json()).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
  });

  test('added latency holds back the first byte by at least its floor', async () => {
    upstream.setFaults({ errorRate: 0, seed: 9, latency: { p50: 100, jitter: 20 } });
    const started = performance.now();
    const response = await post('/v1/chat/completions', chatBody);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(response.statusCode).toBe(200);
    await response.body.dump();
  });
});

describe('rate limits, hangs and resets', () => {
  test("rateLimited() answers 429 with OpenAI's envelope, retry-after and x-ratelimit headers", async () => {
    upstream.setBehaviour(rateLimited({ retryAfter: 20, model: 'gpt-4o' }));
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.statusCode).toBe(429);
    expect(response.headers).toMatchObject({
      'content-type': 'application/json',
      'retry-after': '20',
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '20s',
      'x-ratelimit-limit-tokens': '150000',
      'x-ratelimit-remaining-tokens': '150000',
      'x-ratelimit-reset-tokens': '0s',
    });
    expect(await response.body.json()).toEqual({
      error: {
        message:
          'Rate limit reached for gpt-4o in organization org-mock on requests per min (RPM): Limit 60, Used 60, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    });
  });

  test('a token rate limit exhausts the token headers instead', async () => {
    upstream.setBehaviour(rateLimited({ limit: 'tokens', retryAfter: 90, tokensPerMinute: 1000 }));
    const response = await post('/v1/chat/completions', chatBody);
    expect(response.headers).toMatchObject({
      'retry-after': '90',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '1m30s',
      'x-ratelimit-remaining-requests': '59',
    });
    expect(await response.body.json()).toMatchObject({
      error: { type: 'tokens', code: 'rate_limit_exceeded' },
    });
  });

  test('the OpenAI SDK reads a rateLimited() answer as its RateLimitError', async () => {
    upstream.setBehaviour(rateLimited({ retryAfter: 3 }));
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: upstream.url, maxRetries: 0 });
    const error = await client.chat.completions
      .create({ model: 'mock-model', messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('rate_limit_exceeded');
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('3');
  });

  test('a hanging request is counted as running until its client gives up', async () => {
    const own = await startMockUpstream();
    try {
      const { controller, pending } = await hangOne(own);
      const metrics = await (await request(`${own.origin}/metrics`, { dispatcher })).body.text();
      expect(metrics).toContain('vllm:num_requests_running{engine="0",model_name="mock-model"} 1.0');
      const signalled = own.abortedSignal();
      controller.abort();
      await signalled;
      expect(await pending).toBeInstanceOf(Error);
      const after = await (await request(`${own.origin}/metrics`, { dispatcher })).body.text();
      expect(after).toContain('vllm:num_requests_running{engine="0",model_name="mock-model"} 0.0');
    } finally {
      await own.close();
    }
  });

  test('a reset with rst aborts the connection with a TCP RST, read as ECONNRESET', async () => {
    upstream.setBehaviour({ kind: 'reset', rst: true });
    const error = await post('/v1/chat/completions', chatBody).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    const codes: unknown[] = [];
    for (let current: any = error; current; current = current.cause) codes.push(current.code);
    expect(codes).toContain('ECONNRESET');
  });
});

describe('vLLM probes', () => {
  test("GET /metrics is vLLM's Prometheus page with the scheduler gauges", async () => {
    const response = await get('/metrics');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.body.text()).toBe(
      [
        '# HELP vllm:num_requests_running Number of requests in model execution batches.',
        '# TYPE vllm:num_requests_running gauge',
        'vllm:num_requests_running{engine="0",model_name="mock-model"} 0.0',
        '# HELP vllm:num_requests_waiting Number of requests waiting to be processed.',
        '# TYPE vllm:num_requests_waiting gauge',
        'vllm:num_requests_waiting{engine="0",model_name="mock-model"} 0.0',
        '# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.',
        '# TYPE vllm:kv_cache_usage_perc gauge',
        'vllm:kv_cache_usage_perc{engine="0",model_name="mock-model"} 0.0',
        '',
      ].join('\n'),
    );
  });

  test('setLoad sets the queue, the running count and the cache use; figures left out reset', async () => {
    upstream.setLoad({ waiting: 12, running: 4, cacheUsage: 0.875 });
    const loaded = await (await get('/metrics')).body.text();
    expect(loaded).toContain('vllm:num_requests_waiting{engine="0",model_name="mock-model"} 12.0\n');
    expect(loaded).toContain('vllm:num_requests_running{engine="0",model_name="mock-model"} 4.0\n');
    expect(loaded).toContain('vllm:kv_cache_usage_perc{engine="0",model_name="mock-model"} 0.875\n');

    upstream.setLoad({ waiting: 3 });
    const partial = await (await get('/metrics')).body.text();
    expect(partial).toContain('vllm:num_requests_waiting{engine="0",model_name="mock-model"} 3.0\n');
    expect(partial).toContain('vllm:num_requests_running{engine="0",model_name="mock-model"} 0.0\n');
    expect(partial).toContain('vllm:kv_cache_usage_perc{engine="0",model_name="mock-model"} 0.0\n');
  });

  test('the model_name label is the first model the mock serves', async () => {
    const own = await startMockUpstream({ models: ['meta-llama/Llama-3.1-8B-Instruct', 'other'] });
    try {
      const page = await (await request(`${own.origin}/metrics`, { dispatcher })).body.text();
      expect(page).toContain('{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}');
    } finally {
      await own.close();
    }
  });

  test('GET /health answers ok until marked unhealthy, while requests still succeed', async () => {
    const healthy = await get('/health');
    expect(healthy.statusCode).toBe(200);
    expect(await healthy.body.json()).toEqual({ status: 'ok' });

    upstream.setHealthy(false);
    const sick = await get('/health');
    expect(sick.statusCode).toBe(503);
    expect(await sick.body.json()).toEqual({ status: 'unhealthy' });
    expect(await statuses(1)).toEqual([200]);

    upstream.setHealthy(true);
    expect((await get('/health')).statusCode).toBe(200);
  });

  test('unhealthy with failRequests answers 503 to every path until healthy again', async () => {
    upstream.setHealthy(false, { failRequests: true });
    const before = upstream.requests.length;
    const chat = await post('/v1/chat/completions', chatBody);
    expect(chat.statusCode).toBe(503);
    expect(await chat.body.json()).toMatchObject({ error: { type: 'server_error' } });
    expect(upstream.requests).toHaveLength(before + 1);
    for (const path of ['/health', '/metrics', '/v1/models']) {
      const response = await get(path);
      expect(response.statusCode).toBe(503);
      await response.body.dump();
    }

    upstream.setHealthy(true);
    expect(await statuses(1)).toEqual([200]);
  });

  test('count() tells requests per path, probes included and queries ignored', async () => {
    const total = upstream.count();
    const chats = upstream.count('/v1/chat/completions');
    const metrics = upstream.count('/metrics');
    const before = upstream.requests.length;
    await (await post('/v1/chat/completions?a=1', chatBody)).body.dump();
    await (await post('/v1/chat/completions', chatBody)).body.dump();
    await (await get('/metrics')).body.dump();
    await (await get('/health')).body.dump();
    expect(upstream.count('/v1/chat/completions')).toBe(chats + 2);
    expect(upstream.count('/metrics?x=y')).toBe(metrics + 1);
    expect(upstream.count()).toBe(total + 4);
    expect(upstream.count('/never')).toBe(0);
    // Probes are counted but not recorded.
    expect(upstream.requests).toHaveLength(before + 2);
  });
});

describe('going down and coming back', () => {
  test('pause() refuses connections on the port and resume() serves on it again', async () => {
    const own = await startMockUpstream();
    try {
      await own.pause();
      const refused = await request(`${own.origin}/health`, { dispatcher }).catch(
        (caught: unknown) => caught,
      );
      expect((refused as { code?: string }).code).toBe('ECONNREFUSED');

      await own.resume();
      const back = await request(`${own.url}/chat/completions`, {
        method: 'POST',
        body: JSON.stringify(chatBody),
        dispatcher,
      });
      expect(back.statusCode).toBe(200);
      await back.body.dump();
    } finally {
      await own.close();
    }
  });

  test('pause() drops open exchanges without counting them as client aborts', async () => {
    const own = await startMockUpstream();
    try {
      const { pending } = await hangOne(own);
      await own.pause();
      expect(await pending).toBeInstanceOf(Error);
      expect(own.aborted).toBe(0);
    } finally {
      await own.close();
    }
  });

  test('close() after pause() still returns', async () => {
    const own = await startMockUpstream();
    await own.pause();
    await own.close();
  });
});
