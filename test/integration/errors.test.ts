import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseSseEvent, SseSplitter } from '../../src/providers/sse.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startMockUpstream({ chunkDelayMs: 5 });
  // Each failure is answered as it came: no retries, and no breaker to cool the target down
  // (test/integration/reliability.test.ts covers those).
  gateway = await startTestGateway(`
server:
  body_limit: 2kb
models:
  - name: test-model
    retries: 0
    breaker: false
    targets:
      - url: ${upstream.url}
        api_key: sk-upstream-very-secret
        timeouts:
          first_byte: 300ms
          idle: 300ms
          total: 3s
  - name: short-total
    retries: 0
    breaker: false
    targets:
      - url: ${upstream.url}
        timeouts:
          total: 200ms
  - name: nowhere
    retries: 0
    breaker: false
    targets:
      - url: http://127.0.0.1:9/v1
`);
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});
afterEach(() => upstream.setBehaviour({ kind: 'ok' }));

async function send(method: string, path: string, body?: string, contentType = 'application/json') {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body,
  });
  const text = await response.text();
  return { response, status: response.status, body: JSON.parse(text) };
}

const messages = [{ role: 'user', content: 'hi' }];
const chat = (fields: Record<string, unknown>) =>
  JSON.stringify({ model: 'test-model', messages, ...fields });

describe('bad input is refused with a 4xx naming the problem', () => {
  const cases: {
    name: string;
    method?: string;
    path?: string;
    body?: string;
    type?: string;
    status: number;
    code: string;
    param?: string;
    message: RegExp;
  }[] = [
    {
      name: 'malformed JSON',
      body: '{"model": "test-model",',
      status: 400,
      code: 'invalid_json',
      message: /not valid JSON/,
    },
    { name: 'an empty body', body: '', status: 400, code: 'invalid_json', message: /JSON/ },
    { name: 'a JSON array', body: '[1,2]', status: 400, code: 'invalid_body', message: /JSON object/ },
    {
      name: 'no model',
      body: JSON.stringify({ messages }),
      status: 400,
      code: 'missing_field',
      param: 'model',
      message: /"model" is required/,
    },
    {
      name: 'a numeric model',
      body: chat({ model: 42 }),
      status: 400,
      code: 'invalid_field',
      param: 'model',
      message: /"model" must be a non-empty string/,
    },
    {
      name: 'no messages',
      body: JSON.stringify({ model: 'test-model' }),
      status: 400,
      code: 'missing_field',
      param: 'messages',
      message: /"messages" is required/,
    },
    {
      name: 'messages not an array',
      body: chat({ messages: 'hi' }),
      status: 400,
      code: 'invalid_field',
      param: 'messages',
      message: /non-empty array/,
    },
    {
      name: 'a message with a bad role',
      body: chat({
        messages: [
          { role: 'user', content: 'a' },
          { role: 'robot', content: 'b' },
        ],
      }),
      status: 400,
      code: 'invalid_field',
      param: 'messages[1].role',
      message: /"messages\[1\].role" must be one of/,
    },
    {
      name: 'a message with numeric content',
      body: chat({ messages: [{ role: 'user', content: 7 }] }),
      status: 400,
      code: 'invalid_field',
      param: 'messages[0].content',
      message: /string or an array/,
    },
    {
      name: 'temperature out of range',
      body: chat({ temperature: 3 }),
      status: 400,
      code: 'invalid_field',
      param: 'temperature',
      message: /from 0 to 2/,
    },
    {
      name: 'stream not a boolean',
      body: chat({ stream: 'yes' }),
      status: 400,
      code: 'invalid_field',
      param: 'stream',
      message: /true or false/,
    },
    {
      name: 'max_tokens a fraction',
      body: chat({ max_tokens: 1.5 }),
      status: 400,
      code: 'invalid_field',
      param: 'max_tokens',
      message: /integer/,
    },
    {
      name: 'completions without a prompt',
      path: '/v1/completions',
      body: JSON.stringify({ model: 'test-model' }),
      status: 400,
      code: 'missing_field',
      param: 'prompt',
      message: /"prompt" is required/,
    },
    {
      name: 'embeddings with an empty input',
      path: '/v1/embeddings',
      body: JSON.stringify({ model: 'test-model', input: '' }),
      status: 400,
      code: 'invalid_field',
      param: 'input',
      message: /must not be empty/,
    },
    {
      name: 'an unknown model',
      body: chat({ model: 'gpt-9' }),
      status: 404,
      code: 'model_not_found',
      param: 'model',
      message: /"gpt-9" does not exist\. Available models: test-model, short-total, nowhere/,
    },
    {
      name: 'a body over the limit',
      body: chat({ padding: 'x'.repeat(4096) }),
      status: 413,
      code: 'payload_too_large',
      message: /body_limit/,
    },
    {
      name: 'a form content type',
      body: 'model=x',
      type: 'application/x-www-form-urlencoded',
      status: 415,
      code: 'unsupported_media_type',
      message: /application\/json/,
    },
    {
      name: 'the wrong method',
      method: 'GET',
      status: 405,
      code: 'method_not_allowed',
      message: /GET is not allowed on \/v1\/chat\/completions; use POST/,
    },
    {
      name: 'an unknown route',
      method: 'GET',
      path: '/v1/nothing-here',
      status: 404,
      code: 'route_not_found',
      message: /No endpoint GET \/v1\/nothing-here/,
    },
  ];

  for (const testCase of cases) {
    it(`answers ${testCase.status} ${testCase.code} for ${testCase.name}`, async () => {
      const { response, status, body } = await send(
        testCase.method ?? 'POST',
        testCase.path ?? '/v1/chat/completions',
        testCase.method === 'GET' ? undefined : testCase.body,
        testCase.type,
      );
      expect(status).toBe(testCase.status);
      expect(body.error.code).toBe(testCase.code);
      expect(body.error.type).toEqual(expect.any(String));
      expect(body.error.param).toBe(testCase.param ?? null);
      expect(body.error.message).toMatch(testCase.message);
      expect(response.headers.get('x-request-id')).toBeTruthy();
      expect(response.headers.get('server-timing')).toMatch(/gateway;dur=/);
    });
  }

  it('tells SDKs not to retry a request refused as invalid', async () => {
    const { response } = await send('POST', '/v1/chat/completions', chat({ temperature: 9 }));
    expect(response.status).toBe(400);
    expect(response.headers.get('x-should-retry')).toBe('false');
  });

  it('names the allowed methods in Allow on a 405', async () => {
    const { response } = await send('DELETE', '/v1/models');
    expect(response.headers.get('allow')).toBe('GET');
  });

  it('never contacts the upstream for a request it refused', async () => {
    const before = upstream.requests.length;
    await send('POST', '/v1/chat/completions', chat({ temperature: -1 }));
    expect(upstream.requests.length).toBe(before);
  });
});

describe('upstream failures map into the catalogue', () => {
  it('passes an upstream 400 on in the OpenAI envelope, keeping its code and param', async () => {
    upstream.setBehaviour({
      kind: 'error',
      status: 400,
      body: {
        error: {
          message: 'This model maximum context length is 8192 tokens.',
          type: 'invalid_request_error',
          param: 'messages',
          code: 'context_length_exceeded',
        },
      },
    });
    const { status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(400);
    expect(body.error).toEqual({
      message: 'This model maximum context length is 8192 tokens.',
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    });
  });

  it('wraps an upstream 4xx with a plain-text body in the envelope', async () => {
    upstream.setBehaviour({ kind: 'error', status: 422, body: 'unprocessable: bad logit_bias' });
    const { status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(422);
    expect(body.error.message).toBe('unprocessable: bad logit_bias');
  });

  it('passes an upstream 429 on with its Retry-After', async () => {
    upstream.setBehaviour({
      kind: 'error',
      status: 429,
      headers: { 'retry-after': '7' },
      body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
    });
    const { response, status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('7');
    expect(body.error.code).toBe('rate_limit_exceeded');
  });

  it('hides an upstream 401, which may quote the upstream key, behind a 502', async () => {
    upstream.setBehaviour({
      kind: 'error',
      status: 401,
      body: {
        error: {
          message: 'Incorrect API key provided: sk-upstream-very-secret',
          type: 'invalid_request_error',
          code: 'invalid_api_key',
        },
      },
    });
    const { response, status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(502);
    expect(body.error.code).toBe('upstream_auth_failed');
    expect(JSON.stringify(body)).not.toContain('sk-upstream');
    // Retrying with the same credential cannot help: SDKs that honour x-should-retry stop here.
    expect(response.headers.get('x-should-retry')).toBe('false');
  });

  it('answers 502 when the upstream fails with a 5xx', async () => {
    upstream.setBehaviour({ kind: 'error', status: 503, body: { error: { message: 'overloaded' } } });
    const { response, status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(502);
    expect(body.error.code).toBe('upstream_error');
    expect(body.error.message).toContain('503');
    expect(response.headers.get('x-should-retry')).toBe('true');
  });

  it('answers 502 when the upstream refuses the connection', async () => {
    const { status, body } = await send('POST', '/v1/chat/completions', chat({ model: 'nowhere' }));
    expect(status).toBe(502);
    expect(body.error.code).toBe('upstream_unreachable');
  });

  it('answers 502 when the upstream resets the connection', async () => {
    upstream.setBehaviour({ kind: 'reset' });
    const { status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(502);
    expect(body.error.code).toBe('upstream_connection_reset');
  });

  it('answers 504 when the first byte takes longer than timeouts.first_byte', async () => {
    upstream.setBehaviour({ kind: 'delay', ms: 2000 });
    const { status, body } = await send('POST', '/v1/chat/completions', chat({}));
    expect(status).toBe(504);
    expect(body.error.code).toBe('upstream_first_byte_timeout');
  });

  it('answers 504 when the whole exchange outlasts timeouts.total', async () => {
    upstream.setBehaviour({ kind: 'hang' });
    const { status, body } = await send('POST', '/v1/chat/completions', chat({ model: 'short-total' }));
    expect(status).toBe(504);
    expect(body.error.code).toBe('request_timeout');
  });
});

describe('a stream that breaks after it started ends with an error event, never silently', () => {
  async function streamData(fields: Record<string, unknown> = {}) {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chat({ stream: true, ...fields }),
    });
    const splitter = new SseSplitter();
    const data: string[] = [];
    for await (const chunk of response.body!)
      data.push(...splitter.push(Buffer.from(chunk)).map((event) => parseSseEvent(event).data));
    return { response, data };
  }

  it('reports a connection cut mid-stream', async () => {
    upstream.setBehaviour({ kind: 'cut', afterChunks: 2 });
    const { response, data } = await streamData();
    expect(response.status).toBe(200);
    expect(data.length).toBeGreaterThanOrEqual(2);
    const last = JSON.parse(data.at(-1)!);
    expect(last.error.code).toMatch(/^upstream_(connection_reset|stream_failed)$/);
  });

  it('reports a stall longer than timeouts.idle', async () => {
    upstream.setBehaviour({ kind: 'stall', afterChunks: 2 });
    const { data } = await streamData();
    expect(JSON.parse(data.at(-1)!).error.code).toBe('upstream_idle_timeout');
  });

  it('answers with a real error status when the stream fails before its first event', async () => {
    upstream.setBehaviour({ kind: 'stall', afterChunks: 0 });
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chat({ stream: true }),
    });
    expect(response.status).toBe(504);
    expect(((await response.json()) as any).error.code).toMatch(/^upstream_(idle|first_byte)_timeout$/);
  });
});
