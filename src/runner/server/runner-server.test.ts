import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EngineChatResult, type EngineModelStats, LlamaEngine } from '../engine/index.js';
import { createDemoModel } from '../gguf/index.js';
import { buildRunnerServer, type RunnerEngine, type RunnerModel } from './runner-server.js';

// One tiny demo model, loaded once. At temperature 0 it answers "Count" with well over 2,000
// tokens and never an end-of-generation token, which gives the tests a long, predictable stream.
const longPrompt = 'Count';

let directory: string;
let engine: LlamaEngine;
let app: ReturnType<typeof buildRunnerServer>;
let baseUrl: string;
let client: OpenAI;
let modelPath: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-runner-server-'));
  modelPath = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 1, path: modelPath });
  const models = new Map<string, RunnerModel>([
    ['demo', { path: modelPath, contextSize: 2048, parallel: 2, maxQueue: 4, description: 'gibberish' }],
    // A second name for the same file, one slot and one queue place, to fill up on purpose.
    ['narrow', { path: modelPath, contextSize: 2048, parallel: 1, maxQueue: 1 }],
  ]);
  engine = new LlamaEngine({ threads: 1 });
  app = buildRunnerServer({ engine, models });
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await app?.close();
  await engine?.close();
  await rm(directory, { recursive: true, force: true });
});

/** Raw SSE `data:` payloads of a streamed response, in order. */
async function streamEvents(body: Record<string, unknown>): Promise<{ response: Response; data: string[] }> {
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const text = await response.text();
  const data = text
    .split('\n\n')
    .filter((event) => event.length > 0)
    .map((event) => {
      expect(event.startsWith('data: ')).toBe(true);
      return event.slice('data: '.length);
    });
  return { response, data };
}

describe('the runner serving a demo model over HTTP', () => {
  it('passes frequency_penalty and presence_penalty to the model, and checks their range', async () => {
    const answer = async (penalties: Record<string, number>) =>
      (
        await client.chat.completions.create({
          model: 'demo',
          messages: [{ role: 'user', content: 'Count' }],
          max_tokens: 200,
          temperature: 0,
          ...penalties,
        })
      ).choices[0]!.message.content;
    const plain = await answer({});
    expect(await answer({ frequency_penalty: 1.5 })).not.toBe(plain);
    expect(await answer({ presence_penalty: 1.5 })).not.toBe(plain);
    await expect(answer({ frequency_penalty: 3 })).rejects.toMatchObject({
      status: 400,
      error: { param: 'frequency_penalty' },
    });
  });

  it('answers a chat completion with exact usage counted in the model’s own tokens', async () => {
    const completion = await client.chat.completions.create({
      model: 'demo',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: longPrompt },
      ],
      max_tokens: 12,
      temperature: 0,
    });
    expect(completion).toMatchObject({ object: 'chat.completion', model: 'demo' });
    expect(completion.id).toMatch(/^chatcmpl-/);
    const [choice] = completion.choices;
    expect(choice).toMatchObject({ index: 0, finish_reason: 'length', message: { role: 'assistant' } });
    expect(choice!.message.content!.length).toBeGreaterThan(0);

    // The prompt as ChatML renders it, counted by llama.cpp's tokenizer on its own.
    const llama = await getLlama({
      build: 'never',
      gpu: false,
      maxThreads: 1,
      logLevel: LlamaLogLevel.error,
    });
    const model = await llama.loadModel({ modelPath });
    try {
      const prompt = `<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n${longPrompt}<|im_end|>\n<|im_start|>assistant\n`;
      expect(completion.usage).toEqual({
        prompt_tokens: model.tokenize(prompt, true).length,
        completion_tokens: 12,
        total_tokens: model.tokenize(prompt, true).length + 12,
      });
    } finally {
      await model.dispose();
    }
  });

  it('stops at max_tokens with finish_reason "length" and counts exactly that many tokens', async () => {
    const completion = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: longPrompt }],
      max_tokens: 5,
      temperature: 0,
    });
    expect(completion.choices[0]!.finish_reason).toBe('length');
    expect(completion.usage!.completion_tokens).toBe(5);
  });

  it('streams OpenAI chunks, then a usage chunk when asked, then [DONE], with the same text as a plain answer', async () => {
    const body = {
      model: 'demo',
      messages: [{ role: 'user' as const, content: longPrompt }],
      max_tokens: 20,
      temperature: 0,
    };
    const plain = await client.chat.completions.create(body);
    const { response, data } = await streamEvents({ ...body, stream_options: { include_usage: true } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((event) => JSON.parse(event));
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ object: 'chat.completion.chunk', model: 'demo', id: chunks[0].id });
    }
    expect(chunks[0].choices[0]).toEqual({
      index: 0,
      delta: { role: 'assistant', content: '' },
      logprobs: null,
      finish_reason: null,
    });
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual(plain.usage);
    const finishChunk = chunks.at(-2);
    expect(finishChunk.choices[0]).toMatchObject({ delta: {}, finish_reason: 'length' });
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
    const text = chunks
      .slice(1, -2)
      .map((chunk) => chunk.choices[0].delta.content)
      .join('');
    expect(text).toBe(plain.choices[0]!.message.content);
  });

  it('streams through the official client, without a usage chunk unless asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: longPrompt }],
      max_tokens: 6,
      temperature: 0,
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.every((chunk) => chunk.usage === undefined)).toBe(true);
  });

  it('ends the answer before a stop sequence, which it leaves out', async () => {
    const body = {
      model: 'demo',
      messages: [{ role: 'user' as const, content: longPrompt }],
      temperature: 0,
    };
    const full = (await client.chat.completions.create({ ...body, max_tokens: 40 })).choices[0]!.message
      .content!;
    const at = full.indexOf(' ', 20);
    const stop = full.slice(at, full.indexOf(' ', at + 1));
    expect(stop.length).toBeGreaterThan(1);
    const stopped = await client.chat.completions.create({
      ...body,
      max_tokens: 40,
      stop: [stop, 'never-seen'],
    });
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
    expect(stopped.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(stop)));
  });

  it('constrains the output to a JSON schema', async () => {
    const schema = {
      type: 'object',
      properties: { ok: { type: 'boolean' }, size: { enum: ['small', 'large'] } },
      required: ['ok', 'size'],
      additionalProperties: false,
    };
    for (const seed of [1, 2]) {
      const completion = await client.chat.completions.create({
        model: 'demo',
        messages: [{ role: 'user', content: 'Describe it as JSON.' }],
        response_format: { type: 'json_schema', json_schema: { name: 'thing', schema } },
        temperature: 0.8,
        seed,
        max_tokens: 100,
      });
      expect(completion.choices[0]!.finish_reason).toBe('stop');
      const value = JSON.parse(completion.choices[0]!.message.content!);
      expect(Object.keys(value).sort()).toEqual(['ok', 'size']);
      expect(typeof value.ok).toBe('boolean');
      expect(['small', 'large']).toContain(value.size);
    }
  });

  it('answers JSON mode with a JSON value', async () => {
    const completion = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Hello there' }],
      response_format: { type: 'json_object' },
      // With random weights most JSON strings never close; this seed happens to end early.
      temperature: 0.8,
      seed: 1,
      max_tokens: 200,
    });
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(() => JSON.parse(completion.choices[0]!.message.content!)).not.toThrow();
  });

  it('runs two requests at once on a model with two sequences', async () => {
    const request = () =>
      client.chat.completions.create({
        model: 'demo',
        messages: [{ role: 'user', content: longPrompt }],
        max_tokens: 50,
        temperature: 0,
      });
    const [first, second] = await Promise.all([request(), request()]);
    // Random weights may reach end-of-text before max_tokens; either way, greedy decoding gives
    // both sequences the same answer.
    expect(first.choices[0]!.message.content).not.toBe('');
    expect(second.choices[0]!.finish_reason).toBe(first.choices[0]!.finish_reason);
    expect(second.choices[0]!.message.content).toBe(first.choices[0]!.message.content);
  });

  it('refuses with 503 and Retry-After when the slot and the queue are full, and serves again after', async () => {
    const long = new AbortController();
    const queued = new AbortController();
    const body = { model: 'narrow', messages: [{ role: 'user', content: longPrompt }], temperature: 0 };
    const running = fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true, max_tokens: 2000 }),
      signal: long.signal,
    });
    const response = await running;
    expect(response.status).toBe(200);
    const waiting = fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, max_tokens: 3 }),
      signal: queued.signal,
    }).catch(() => undefined);
    await waitFor(() => engine.stats().find((model) => model.name === 'narrow')?.waiting === 1);

    const refused = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, max_tokens: 3 }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({
      error: {
        message: expect.stringMatching(/^Model narrow is busy/),
        type: 'server_error',
        param: null,
        code: 'model_overloaded',
      },
    });

    queued.abort();
    await waiting;
    long.abort();
    await waitFor(() => engine.stats().find((model) => model.name === 'narrow')?.running === 0);
    expect(engine.stats().find((model) => model.name === 'narrow')?.waiting).toBe(0);
  });

  it('frees the sequence at once when a streaming client disconnects', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      {
        model: 'narrow',
        messages: [{ role: 'user', content: longPrompt }],
        temperature: 0,
        max_tokens: 2000,
        stream: true,
      },
      { signal: controller.signal },
    );
    let received = 0;
    for await (const _chunk of stream) {
      if (++received === 3) {
        controller.abort();
        break;
      }
    }
    // Left running, the first request would hold the only sequence for about two more seconds.
    const started = performance.now();
    const next = await client.chat.completions.create({
      model: 'narrow',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 4,
      temperature: 0,
    });
    expect(next.choices[0]!.message.content).toBeDefined();
    expect(performance.now() - started).toBeLessThan(700);
  });

  it('frees the sequence when a client waiting for a plain answer disconnects', async () => {
    const controller = new AbortController();
    const pending = fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'narrow',
        messages: [{ role: 'user', content: longPrompt }],
        temperature: 0,
        max_tokens: 2000,
      }),
      signal: controller.signal,
    }).catch((caught: unknown) => caught);
    await waitFor(() => engine.stats().find((model) => model.name === 'narrow')?.running === 1);
    controller.abort();
    await pending;
    await waitFor(() => engine.stats().find((model) => model.name === 'narrow')?.running === 0, 500);
  });

  it.each([
    [{ n: 2 }, 'n', 'invalid_field'],
    [{ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }, 'messages[0].role', 'invalid_field'],
    [{ messages: undefined }, 'messages', 'missing_field'],
    [
      { response_format: { type: 'json_schema', json_schema: { name: 'x' } } },
      'response_format.json_schema.schema',
      'invalid_field',
    ],
    [{ temperature: 3 }, 'temperature', 'invalid_field'],
  ])('refuses %j with a 400 naming the field', async (change, param, code) => {
    const response = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'x' }], ...change }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error).toMatchObject({
      type: 'invalid_request_error',
      param,
      code,
    });
  });

  it('lists its models, says it is healthy, and names an unknown model in a 404', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toEqual(['demo', 'narrow']);
    expect(await (await fetch(`${baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    const error = await client.chat.completions
      .create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
    const bad = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe('invalid_json');
  });

  it('exposes running and waiting requests, token totals, latency histograms and load time at /metrics', async () => {
    const response = await fetch(`${baseUrl}/metrics`);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    const value = (series: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      expect(line, series).toBeDefined();
      return Number(line!.slice(series.length + 1));
    };
    expect(value('switchyard_runner_num_requests_running{model_name="demo"}')).toBe(0);
    expect(value('switchyard_runner_num_requests_waiting{model_name="demo"}')).toBe(0);
    expect(value('switchyard_runner_parallel_sequences{model_name="demo"}')).toBe(2);
    expect(value('switchyard_runner_model_loaded{model_name="demo"}')).toBe(1);
    expect(value('switchyard_runner_model_load_seconds{model_name="demo"}')).toBeGreaterThan(0);
    expect(value('switchyard_runner_model_memory_bytes{model_name="demo",kind="ram"}')).toBeGreaterThan(
      1_000_000,
    );
    expect(value('switchyard_runner_model_memory_estimate_bytes{model_name="demo"}')).toBeGreaterThan(
      1_000_000,
    );
    // On the CPU every layer is in RAM.
    expect(value('switchyard_runner_model_vram_estimate_bytes{model_name="demo"}')).toBe(0);
    expect(value('switchyard_runner_memory_budget_bytes')).toBe(engine.maxMemoryBytes);
    expect(value('switchyard_runner_prompt_tokens_total{model_name="demo"}')).toBeGreaterThan(0);
    expect(value('switchyard_runner_generation_tokens_total{model_name="demo"}')).toBeGreaterThan(100);
    // Every generated token was in some decode step; two slots, so at most two sequences a step.
    const steps = value('switchyard_runner_decode_steps_total{model_name="demo"}');
    const stepSequences = value('switchyard_runner_decode_step_sequences_total{model_name="demo"}');
    expect(stepSequences).toBeGreaterThanOrEqual(
      value('switchyard_runner_generation_tokens_total{model_name="demo"}'),
    );
    expect(stepSequences / steps).toBeGreaterThanOrEqual(1);
    expect(stepSequences / steps).toBeLessThanOrEqual(2);
    expect(
      value('switchyard_runner_request_success_total{model_name="demo",finished_reason="length"}'),
    ).toBeGreaterThan(3);
    expect(value('switchyard_runner_request_failure_total{model_name="narrow",reason="overloaded"}')).toBe(1);
    expect(
      value('switchyard_runner_request_failure_total{model_name="narrow",reason="aborted"}'),
    ).toBeGreaterThanOrEqual(2);
    const requests = value('switchyard_runner_time_to_first_token_seconds_count{model_name="demo"}');
    expect(requests).toBeGreaterThan(5);
    expect(value('switchyard_runner_time_to_first_token_seconds_bucket{model_name="demo",le="+Inf"}')).toBe(
      requests,
    );
    expect(value('switchyard_runner_time_per_output_token_seconds_count{model_name="demo"}')).toBeGreaterThan(
      5,
    );
    expect(text).toContain('# TYPE switchyard_runner_time_to_first_token_seconds histogram');
  });
});

describe('the runner’s embeddings over HTTP', () => {
  const embed = (payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/v1/embeddings', payload: { model: 'demo', ...payload } });
  /** OpenAI's base64 encoding: each vector's float32 values, little-endian. */
  const decode = (text: string) => {
    const bytes = Buffer.from(text, 'base64');
    return Array.from({ length: bytes.length / 4 }, (_, index) => bytes.readFloatLE(index * 4));
  };

  it('answers in OpenAI’s shape with usage in the model’s tokens, base64 decoding to the same numbers as float', async () => {
    const input = ['the people of the world', 'a quiet river'];
    const float = await embed({ input, user: 'someone' });
    expect(float.statusCode).toBe(200);
    const body = float.json();
    const direct = await engine.embed({
      model: 'demo',
      settings: { path: modelPath, contextSize: 2048 },
      inputs: input,
    });
    expect(body).toEqual({
      object: 'list',
      data: direct.embeddings.map((vector, index) => ({
        object: 'embedding',
        index,
        embedding: Array.from(vector),
      })),
      model: 'demo',
      usage: { prompt_tokens: direct.promptTokens, total_tokens: direct.promptTokens },
    });
    expect(body.data[0].embedding).toHaveLength(128);
    const base64 = (await embed({ input, encoding_format: 'base64' })).json();
    expect(base64.data.map((item: { embedding: string }) => decode(item.embedding))).toEqual(
      body.data.map((item: { embedding: number[] }) => item.embedding),
    );
    expect(base64.usage).toEqual(body.usage);
  });

  it('takes one text, one array of token ids, or an array of token-id arrays, and dimensions equal to the model’s size', async () => {
    const text = (await embed({ input: 'a quiet river' })).json();
    expect(text.data).toHaveLength(1);
    const ids = (await embed({ input: [5, 6, 7], dimensions: 128 })).json();
    expect(ids.data).toHaveLength(1);
    // Three ids and the start token the model adds.
    expect(ids.usage.prompt_tokens).toBe(4);
    const arrays = (await embed({ input: [[5, 6, 7], [8]] })).json();
    expect(arrays.data.map((item: { index: number }) => item.index)).toEqual([0, 1]);
    expect(arrays.data[0].embedding).toEqual(ids.data[0].embedding);
    expect(arrays.usage.prompt_tokens).toBe(4 + 2);
  });

  it.each([
    [{ input: undefined }, 'input', 'missing_field'],
    [{ input: '' }, 'input', 'invalid_field'],
    [{ input: [] }, 'input', 'invalid_field'],
    [{ input: 7 }, 'input', 'invalid_field'],
    [{ input: ['a', ''] }, 'input[1]', 'invalid_field'],
    [{ input: ['a', 5] }, 'input[1]', 'invalid_field'],
    [{ input: [1, -2] }, 'input[1]', 'invalid_field'],
    [{ input: [1.5] }, 'input[0]', 'invalid_field'],
    [{ input: [[1], []] }, 'input[1]', 'invalid_field'],
    [{ input: [[1], [2, 'x']] }, 'input[1][1]', 'invalid_field'],
    [{ input: [{ text: 'a' }] }, 'input[0]', 'invalid_field'],
    [{ input: [[99_999_999]] }, 'input', 'invalid_field'],
    [{ encoding_format: 'hex' }, 'encoding_format', 'invalid_field'],
    [{ dimensions: 0 }, 'dimensions', 'invalid_field'],
    [{ dimensions: 64 }, 'dimensions', 'invalid_field'],
    [{ user: 5 }, 'user', 'invalid_field'],
    [{ keep_alive: 'soon' }, 'keep_alive', 'invalid_field'],
  ])('refuses %j with a 400 naming the field', async (change, param, code) => {
    const response = await embed({ input: 'a', ...change });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param, code });
  });

  it('refuses more inputs than OpenAI takes, and an input longer than the context, saying how long', async () => {
    const many = (await embed({ input: Array.from({ length: 2049 }, () => 'a') })).json();
    expect(many.error).toMatchObject({
      param: 'input',
      message: 'input must hold at most 2048 inputs, not 2049: split them over several requests.',
    });
    const long = (await embed({ input: ['short', 'the people '.repeat(1100)] })).json();
    expect(long.error).toMatchObject({
      param: 'input',
      message: expect.stringMatching(
        /^input\[1\] is \d{4} tokens long, more than the 2047 this model embeds at once \(its context is 2048 tokens\)/,
      ),
    });
  });

  it('names an unknown model in a 404, lists the endpoint when none matches, and counts embeddings at /metrics', async () => {
    const unknown = await embed({ model: 'nope', input: 'a' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ code: 'model_not_found', param: 'model' });
    const missing = await app.inject({ method: 'POST', url: '/v1/embedding' });
    expect(missing.json().error.message).toContain('POST /v1/embeddings');
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(
      /\nswitchyard_runner_embedding_request_success_total\{model_name="demo"\} [1-9]\d*\n/,
    );
    expect(text).toMatch(/\nswitchyard_runner_embedding_prompt_tokens_total\{model_name="demo"\} [1-9]\d*\n/);
    // The too-long and out-of-vocabulary inputs above reached the engine; the parser's 400s did not.
    expect(text).toContain(
      '\nswitchyard_runner_embedding_request_failure_total{model_name="demo",reason="error"} 3\n',
    );
  });

  it('unloads the model after a request with keep_alive 0', async () => {
    const response = await embed({ model: 'narrow', input: 'a', keep_alive: 0 });
    expect(response.statusCode).toBe(200);
    expect(engine.stats().find((model) => model.name === 'narrow')).toMatchObject({ loaded: false });
  });
});

describe('the runner’s POST /v1/chat/count_tokens', () => {
  const count = (payload: unknown) =>
    app.inject({ method: 'POST', url: '/v1/chat/count_tokens', payload: payload as object });
  const conversation = {
    model: 'demo',
    messages: [
      { role: 'system', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is ' },
          { type: 'text', text: 'two and two?' },
        ],
      },
      { role: 'assistant', content: 'Four.' },
      { role: 'user', content: longPrompt },
    ],
  };

  it('counts a conversation’s prompt tokens exactly as a chat completion of it reports them', async () => {
    const counted = await count(conversation);
    expect(counted.statusCode).toBe(200);
    expect(counted.headers['content-type']).toMatch(/^application\/json/);
    const chat = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { ...conversation, max_tokens: 1 },
    });
    expect(chat.statusCode).toBe(200);
    expect(counted.json()).toEqual({ prompt_tokens: chat.json().usage.prompt_tokens });
    const shorter = await count({ ...conversation, messages: conversation.messages.slice(-1) });
    expect(shorter.json().prompt_tokens).toBeLessThan(counted.json().prompt_tokens);
  });

  it('counts the same with the fields that shape only the answer, and with tools, which a local prompt leaves out', async () => {
    const plain = (await count(conversation)).json();
    const counted = await count({
      ...conversation,
      max_tokens: 5,
      temperature: 0,
      stream: true,
      tools: [
        { type: 'function', function: { name: 'add', parameters: { type: 'object', properties: {} } } },
      ],
    });
    expect(counted.statusCode).toBe(200);
    expect(counted.json()).toEqual(plain);
  });

  it('loads a model that is not loaded, and keeps it for the keep_alive asked, as a chat does', async () => {
    const narrow = () => engine.stats().find((model) => model.name === 'narrow');
    expect((await count({ ...conversation, model: 'narrow', keep_alive: 0 })).statusCode).toBe(200);
    expect(narrow()).toMatchObject({ loaded: false });
    expect((await count({ ...conversation, model: 'narrow', keep_alive: '1m' })).statusCode).toBe(200);
    expect(narrow()).toMatchObject({ loaded: true, keepAliveMs: 60_000, running: 0 });
  });

  it('counts while every sequence of the model is busy and its queue is full', async () => {
    // Held through the engine itself: the model has one sequence and one queue place.
    const settings = { path: modelPath, contextSize: 2048, parallel: 1, maxQueue: 1 };
    const messages = [{ role: 'user' as const, content: longPrompt }];
    const holder = new AbortController();
    const queued = new AbortController();
    let started!: () => void;
    const holding = new Promise<void>((resolve) => {
      started = resolve;
    });
    const running = engine.chat({
      model: 'narrow',
      settings,
      messages,
      maxTokens: 2000,
      signal: holder.signal,
      onStart: started,
    });
    const waiting = engine.chat({ model: 'narrow', settings, messages, maxTokens: 1, signal: queued.signal });
    try {
      await holding;
      expect(engine.stats().find((model) => model.name === 'narrow')).toMatchObject({
        running: 1,
        waiting: 1,
      });
      const counted = await count({ model: 'narrow', messages });
      expect(counted.statusCode).toBe(200);
      expect(counted.json().prompt_tokens).toBeGreaterThan(0);
    } finally {
      queued.abort(new Error('done'));
      holder.abort(new Error('done'));
      await expect(waiting).rejects.toThrow('done');
      await expect(running).rejects.toThrow('done');
    }
  });

  it.each([
    ['messages', { messages: undefined }, 'missing_field'],
    ['model', { model: undefined }, 'missing_field'],
    ['messages[0].role', { messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }, 'invalid_field'],
    [
      'messages[0].content[0]',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      'invalid_field',
    ],
    ['tools', { tools: 'add' }, 'invalid_field'],
    ['keep_alive', { keep_alive: 'soon' }, 'invalid_field'],
  ])(
    'refuses a count whose %s is missing or wrong with a 400 naming it, in OpenAI’s envelope',
    async (param, change, code) => {
      const response = await count({ ...conversation, ...change });
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param, code });
    },
  );

  it('refuses a body that is not a JSON object', async () => {
    const response = await count([conversation]);
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ code: 'invalid_body', param: null });
  });

  it('names an unknown model in a 404, and is listed among the endpoints when a path is unknown', async () => {
    const unknown = await count({ ...conversation, model: 'nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ code: 'model_not_found', param: 'model' });
    const missing = await app.inject({ method: 'POST', url: '/v1/tokenize', payload: conversation });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.message).toContain('POST /v1/chat/count_tokens');
  });
});

describe('the runner’s model lifecycle over HTTP', () => {
  let lifecycleEngine: LlamaEngine;
  let lifecycleApp: ReturnType<typeof buildRunnerServer>;
  let url: string;
  /** Every result the engine returned, in order: a decorator, the engine itself is real. */
  const results: { model: string; temperature: number | undefined; result: EngineChatResult }[] = [];
  let loadedBeforeListening: EngineModelStats | undefined;

  /** The real engine, with `chat` wrapped. */
  const withChat = (chat: RunnerEngine['chat']): RunnerEngine => ({
    load: (name, settings) => lifecycleEngine.load(name, settings),
    isLoaded: (name) => lifecycleEngine.isLoaded(name),
    stats: () => lifecycleEngine.stats(),
    embed: (request) => lifecycleEngine.embed(request),
    countPromptTokens: (request) => lifecycleEngine.countPromptTokens(request),
    maxMemoryBytes: lifecycleEngine.maxMemoryBytes,
    chat,
  });

  beforeAll(async () => {
    const otherPath = join(directory, 'other.gguf');
    await createDemoModel({ size: 'tiny', seed: 2, path: otherPath });
    lifecycleEngine = new LlamaEngine({ threads: 1, maxLoadedModels: 2 });
    const recording = withChat(async (request) => {
      const result = await lifecycleEngine.chat(request);
      results.push({ model: request.model, temperature: request.temperature, result });
      return result;
    });
    lifecycleApp = buildRunnerServer({
      engine: recording,
      models: new Map<string, RunnerModel>([
        ['warm', { path: modelPath, contextSize: 512, keepAliveMs: Number.POSITIVE_INFINITY }],
        ['brief', { path: modelPath, contextSize: 512, keepAliveMs: 200 }],
        ['other', { path: otherPath, contextSize: 512 }],
      ]),
      preload: ['warm'],
    });
    await lifecycleApp.ready();
    loadedBeforeListening = lifecycleEngine.stats().find((model) => model.name === 'warm');
    url = await lifecycleApp.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await lifecycleApp?.close();
    await lifecycleEngine?.close();
  });

  const metric = async (series: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
    expect(line, series).toBeDefined();
    const value = line!.slice(series.length + 1);
    return value === '+Inf' ? Number.POSITIVE_INFINITY : Number(value);
  };
  const chat = (body: Record<string, unknown>, signal?: AbortSignal) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: longPrompt }], max_tokens: 1, ...body }),
      signal,
    });

  it('loads a preloaded model before it listens, and is healthy only once a request has warmed it', async () => {
    expect(loadedBeforeListening).toMatchObject({ loaded: true, unloads: 0 });
    // Listening, it sends itself two streamed requests, greedy and sampled, and /healthz says so
    // until they are done.
    await vi.waitFor(async () => expect((await fetch(`${url}/healthz`)).status).toBe(200), {
      timeout: 10_000,
    });
    expect(results.map(({ model, temperature }) => [model, temperature])).toEqual([
      ['warm', 0],
      ['warm', undefined],
    ]);
    // The warm-up is not a client's request: the counters start after it.
    expect(await metric('switchyard_runner_prompt_tokens_total{model_name="warm"}')).toBe(0);
    const response = await chat({ model: 'warm' });
    expect(response.status).toBe(200);
    expect(results.map(({ model }) => model)).toEqual(['warm', 'warm', 'warm']);
    // The same load as before listening, not a new one inside the request's timings.
    expect(lifecycleEngine.stats().find((model) => model.name === 'warm')).toMatchObject({
      loaded: true,
      unloads: 0,
      loadSeconds: loadedBeforeListening!.loadSeconds,
    });
  });

  it('answers 503 on /healthz while it warms up', async () => {
    let finishWarmUp!: () => void;
    const held = new Promise<void>((resolve) => (finishWarmUp = resolve));
    const slow = withChat(async (request) => {
      await held;
      return lifecycleEngine.chat(request);
    });
    const app = buildRunnerServer({
      engine: slow,
      models: new Map<string, RunnerModel>([
        ['warm', { path: modelPath, contextSize: 512, keepAliveMs: Number.POSITIVE_INFINITY }],
      ]),
      preload: ['warm'],
    });
    try {
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      const warming = await fetch(`${address}/healthz`);
      expect(warming.status).toBe(503);
      expect(await warming.json()).toEqual({ status: 'warming' });
      finishWarmUp();
      await vi.waitFor(async () => expect((await fetch(`${address}/healthz`)).status).toBe(200));
    } finally {
      finishWarmUp();
      await app.close();
    }
  });

  it('refuses to preload a model it does not serve', () => {
    expect(() =>
      buildRunnerServer({ engine: lifecycleEngine, models: new Map(), preload: ['ghost'] }),
    ).toThrow(/Cannot preload ghost: not served by this runner/);
  });

  it('unloads an idle model after its keep-alive, shows it at /metrics, and loads it again on request', async () => {
    expect((await chat({ model: 'brief' })).status).toBe(200);
    expect(await metric('switchyard_runner_model_loaded{model_name="brief"}')).toBe(1);
    expect(await metric('switchyard_runner_model_keep_alive_seconds{model_name="brief"}')).toBe(0.2);
    await vi.waitFor(
      async () => expect(await metric('switchyard_runner_model_loaded{model_name="brief"}')).toBe(0),
      { timeout: 2_000, interval: 50 },
    );
    expect(await metric('switchyard_runner_model_unloads_total{model_name="brief"}')).toBe(1);
    expect((await chat({ model: 'brief' })).status).toBe(200);
    expect(await metric('switchyard_runner_model_loaded{model_name="brief"}')).toBe(1);
    expect(await metric('switchyard_runner_model_keep_alive_seconds{model_name="warm"}')).toBe(
      Number.POSITIVE_INFINITY,
    );
  });

  it('unloads a model right after a request with keep_alive 0, and keeps it with keep_alive -1', async () => {
    expect((await chat({ model: 'brief', keep_alive: 0 })).status).toBe(200);
    expect(await metric('switchyard_runner_model_loaded{model_name="brief"}')).toBe(0);
    expect((await chat({ model: 'brief', keep_alive: '-1' })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await metric('switchyard_runner_model_loaded{model_name="brief"}')).toBe(1);
    // The next request without keep_alive brings back the model's own 200 ms.
    expect((await chat({ model: 'brief', keep_alive: '10s' })).status).toBe(200);
    expect(await metric('switchyard_runner_model_keep_alive_seconds{model_name="brief"}')).toBe(10);
  });

  it('names keep_alive in a 400 when it cannot read it', async () => {
    const response = await chat({ model: 'brief', keep_alive: 'soon' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error).toMatchObject({
      code: 'invalid_field',
      param: 'keep_alive',
    });
  });

  it('answers 503 naming the budget when a model would exceed max_loaded_models with every loaded one busy', async () => {
    const holders = new AbortController();
    // Streams answer with headers once they hold a sequence: both models are then in use.
    const warm = await chat(
      { model: 'warm', stream: true, max_tokens: 2000, temperature: 0 },
      holders.signal,
    );
    const brief = await chat(
      { model: 'brief', stream: true, max_tokens: 2000, temperature: 0 },
      holders.signal,
    );
    expect([warm.status, brief.status]).toEqual([200, 200]);
    const refused = await chat({ model: 'other' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as any).error).toMatchObject({
      code: 'model_overloaded',
      message: expect.stringMatching(/at most 2 loaded \(max_loaded_models\), and warm, brief are serving/),
    });
    holders.abort();
    await vi.waitFor(() => expect(lifecycleEngine.stats().every((model) => model.running === 0)).toBe(true), {
      timeout: 2_000,
    });
    // Idle again, the least recently used model makes room.
    expect((await chat({ model: 'other' })).status).toBe(200);
    expect(await metric('switchyard_runner_model_loaded{model_name="other"}')).toBe(1);
    // Which of the two aborted holders was used least recently is a race, and a short keep-alive
    // may unload the other too; the budget requires only that at most two stay loaded.
    const stillLoaded =
      (await metric('switchyard_runner_model_loaded{model_name="warm"}')) +
      (await metric('switchyard_runner_model_loaded{model_name="brief"}'));
    expect(stillLoaded).toBeLessThanOrEqual(1);
  });
});

describe('the runner’s memory budget over HTTP', () => {
  it('answers 503 model_too_large without Retry-After for a model bigger than the whole budget, and counts it', async () => {
    // The tiny demo model needs several MB at 2048 tokens of context: it can never fit in 1 MB.
    const budgetEngine = new LlamaEngine({ threads: 1, maxMemoryBytes: 1_000_000 });
    const budgetApp = buildRunnerServer({
      engine: budgetEngine,
      models: new Map<string, RunnerModel>([['big', { path: modelPath, contextSize: 2048 }]]),
    });
    try {
      const refused = await budgetApp.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        payload: { model: 'big', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 },
      });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBeUndefined();
      expect(refused.json().error).toMatchObject({
        code: 'model_too_large',
        type: 'server_error',
        message: expect.stringMatching(
          /^Model big needs about [\d.]+ MiB of memory \(weights .+ \+ context .+ for 2048 tokens × 1 parallel sequence\), more than the runner's whole memory budget of 976.6 KiB \(runner\.max_memory\).+Lower runner\.context_size or runner\.parallel, or raise runner\.max_memory\.$/,
        ),
      });
      const metrics = (await budgetApp.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toContain('\nswitchyard_runner_memory_budget_bytes 1000000\n');
      expect(metrics).toContain(
        'switchyard_runner_request_failure_total{model_name="big",reason="too_large"} 1\n',
      );
      expect(metrics).toMatch(/switchyard_runner_model_memory_estimate_bytes\{model_name="big"\} \d{7,}\n/);
    } finally {
      await budgetApp.close();
      await budgetEngine.close();
    }
  });
});

describe('the runner’s GET /api/ps', () => {
  it('lists each loaded model with its memory, processor, slots in use, idle time and unload time', async () => {
    // Both clocks fixed, so idle time and expiry are exact: the engine's monotonic one and the
    // server's wall clock that turns "unloads in" into a time.
    let clock = 5_000;
    const wall = Date.parse('2025-06-01T09:30:00.000Z');
    const psEngine = new LlamaEngine({ threads: 1, now: () => clock });
    const psApp = buildRunnerServer({
      engine: psEngine,
      now: () => wall,
      models: new Map<string, RunnerModel>([
        ['demo:small', { path: modelPath, contextSize: 512, parallel: 2, keepAliveMs: 300_000 }],
        ['unused:1', { path: modelPath, contextSize: 512 }],
      ]),
    });
    const ps = async () => {
      const response = await psApp.inject({ method: 'GET', url: '/api/ps' });
      expect(response.statusCode).toBe(200);
      return response.json() as { models: Record<string, unknown>[] };
    };
    try {
      expect(await ps()).toEqual({ models: [] });
      const chat = await psApp.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        payload: { model: 'demo:small', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 },
      });
      expect(chat.statusCode).toBe(200);
      clock += 12_000;
      expect(await ps()).toEqual({
        models: [
          {
            name: 'demo:small',
            model: 'demo:small',
            size: expect.any(Number),
            size_vram: 0,
            processor: '100% CPU',
            gpu: null,
            context_length: 512,
            parallel: 2,
            slots_in_use: 0,
            requests_waiting: 0,
            idle_seconds: 12,
            keep_alive_seconds: 300,
            expires_at: '2025-06-01T09:34:48.000Z',
            load_seconds: expect.any(Number),
          },
        ],
      });
      expect((await ps()).models[0]!.size).toBeGreaterThan(1_000_000);

      // While a request holds a slot, the model is busy: no idle time and no unload coming.
      const holder = new AbortController();
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const holding = psEngine.chat({
        model: 'demo:small',
        settings: { path: modelPath, contextSize: 512, parallel: 2, keepAliveMs: 300_000 },
        messages: [{ role: 'user', content: longPrompt }],
        temperature: 0,
        signal: holder.signal,
        onStart: started,
      });
      await running;
      expect((await ps()).models[0]).toMatchObject({
        slots_in_use: 1,
        idle_seconds: null,
        expires_at: null,
      });
      holder.abort(new Error('done'));
      await expect(holding).rejects.toThrow('done');
    } finally {
      await psApp.close();
      await psEngine.close();
    }
  });

  it('is listed among the endpoints when a path is unknown', async () => {
    const response = await app.inject({ method: 'GET', url: '/api/tags' });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.message).toContain('GET /api/ps');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
