import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseSseEvent, SseSplitter } from '../../src/providers/sse.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startMockUpstream();
  gateway = await startTestGateway(`
models:
  - name: passthrough
    targets:
      - url: ${upstream.url}
        api_key: upstream-secret
        headers:
          X-Team: search
  - name: alias
    targets:
      - url: ${upstream.url}
        api_key: upstream-secret
        model: mock-model
  - name: family/*
    targets:
      - url: ${upstream.url}
`);
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});
afterEach(() => {
  upstream.setBehaviour({ kind: 'ok' });
  upstream.requests.length = 0;
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function readEvents(response: Response): Promise<string[]> {
  const splitter = new SseSplitter();
  const events: string[] = [];
  for await (const chunk of response.body!) events.push(...splitter.push(Buffer.from(chunk)));
  return events.map((event) => parseSseEvent(event).data);
}

const messages = [{ role: 'user', content: 'Say hello' }];

describe('POST /v1/chat/completions', () => {
  it('forwards the body byte for byte when the model name is unchanged', async () => {
    const raw =
      '{"model":"passthrough",  "messages":[{"role":"user","content":"Say \\"hi\\""}],"max_tokens":5}';
    const response = await post('/v1/chat/completions', raw);
    expect(response.status).toBe(200);
    const body = (await response.json()) as any;
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0].message.content).toBe('Hello from the mock upstream.');
    expect(upstream.requests[0]!.body).toBe(raw);
  });

  it('rewrites only the model name when the upstream calls the model differently', async () => {
    const raw =
      '{"messages":[{"role":"user","content":"x","model":"nested"}],"model":"alias","temperature":0.5}';
    const response = await post('/v1/chat/completions', raw);
    expect(response.status).toBe(200);
    expect(upstream.requests[0]!.body).toBe(
      '{"messages":[{"role":"user","content":"x","model":"nested"}],"model":"mock-model","temperature":0.5}',
    );
  });

  it('sends the upstream key, configured headers and the request id upstream', async () => {
    const response = await post(
      '/v1/chat/completions',
      { model: 'passthrough', messages },
      { 'x-request-id': 'req-123' },
    );
    expect(response.headers.get('x-request-id')).toBe('req-123');
    const seen = upstream.requests[0]!.headers;
    expect(seen.authorization).toBe('Bearer upstream-secret');
    expect(seen['x-team']).toBe('search');
    expect(seen['x-request-id']).toBe('req-123');
  });

  it('generates a request id when the client sends none, or an unusable one', async () => {
    const first = await post('/v1/chat/completions', { model: 'passthrough', messages });
    const second = await post(
      '/v1/chat/completions',
      { model: 'passthrough', messages },
      { 'x-request-id': 'bad id\twith spaces' },
    );
    for (const response of [first, second]) {
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(upstream.requests[1]!.headers['x-request-id']).toBe(second.headers.get('x-request-id'));
  });

  it('reports the time it added and the upstream time in Server-Timing', async () => {
    const response = await post('/v1/chat/completions', { model: 'passthrough', messages });
    expect(response.headers.get('server-timing')).toMatch(
      /^gateway;dur=\d+\.\d{3}, upstream;dur=\d+\.\d{3}$/,
    );
  });

  it('routes a wildcard family to the upstream with the name after the prefix', async () => {
    const response = await post('/v1/chat/completions', { model: 'family/llama-3-8b', messages });
    expect(response.status).toBe(200);
    expect(upstream.requests[0]!.json.model).toBe('llama-3-8b');
    expect(upstream.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('streams chunks as server-sent events and ends with [DONE]', async () => {
    const response = await post('/v1/chat/completions', { model: 'passthrough', messages, stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const data = await readEvents(response);
    expect(data.at(-1)).toBe('[DONE]');
    const text = data
      .slice(0, -1)
      .map((event) => JSON.parse(event).choices[0]?.delta?.content ?? '')
      .join('');
    expect(text).toBe('Hello from the mock upstream.');
  });

  it('passes the usage chunk on when the client asks for it with stream_options.include_usage', async () => {
    const response = await post('/v1/chat/completions', {
      model: 'passthrough',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    const data = await readEvents(response);
    const usageChunk = JSON.parse(data.at(-2)!);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('collects usage for accounting even when the client did not ask, without showing it the usage chunk', async () => {
    const response = await post(
      '/v1/chat/completions',
      { model: 'passthrough', messages, stream: true },
      { 'x-request-id': 'usage-hidden' },
    );
    const data = await readEvents(response);
    expect(upstream.requests[0]!.json.stream_options).toEqual({ include_usage: true });
    expect(data.slice(0, -1).every((event) => JSON.parse(event).choices.length > 0)).toBe(true);
    const line = gateway.logs.find((log) => log.id === 'usage-hidden');
    expect(line).toMatchObject({ status: 200, stream: 1, completion_tokens: 6 });
  });
});

describe('POST /v1/completions and /v1/embeddings', () => {
  it('proxies a legacy completion', async () => {
    const response = await post('/v1/completions', { model: 'passthrough', prompt: 'Once upon' });
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).object).toBe('text_completion');
    expect(upstream.requests[0]!.path).toBe('/v1/completions');
  });

  it('proxies embeddings and records their token usage', async () => {
    const response = await post(
      '/v1/embeddings',
      { model: 'passthrough', input: ['a b c', 'd e'] },
      { 'x-request-id': 'embed-1' },
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as any;
    expect(body.data).toHaveLength(2);
    expect(gateway.logs.find((log) => log.id === 'embed-1')).toMatchObject({
      endpoint: '/v1/embeddings',
      status: 200,
    });
    expect((gateway.logs.find((log) => log.id === 'embed-1')!.prompt_tokens as number) > 0).toBe(true);
  });
});

describe('GET /v1/models', () => {
  it('lists every configured model in OpenAI list form', async () => {
    const body = (await (await fetch(`${gateway.url}/v1/models`)).json()) as any;
    expect(body.object).toBe('list');
    expect(body.data.map((model: { id: string }) => model.id)).toEqual(['passthrough', 'alias', 'family/*']);
    expect(body.data[0]).toMatchObject({
      object: 'model',
      owned_by: expect.any(String),
      created: expect.any(Number),
    });
  });

  it('retrieves one model, including a name served by a wildcard', async () => {
    const exact = await fetch(`${gateway.url}/v1/models/alias`);
    expect((await exact.json()) as any).toMatchObject({ id: 'alias', object: 'model' });
    const family = await fetch(`${gateway.url}/v1/models/family/some-model`);
    expect((await family.json()) as any).toMatchObject({ id: 'family/some-model', object: 'model' });
    const missing = await fetch(`${gateway.url}/v1/models/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe('model_not_found');
  });
});

describe('health', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gateway.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await ready.json()) as any).toMatchObject({ status: 'ready', models: 3, upstream_pools: 1 });
  });
});
