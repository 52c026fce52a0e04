import { describe, expect, test } from 'vitest';
import { renderOpenAIError } from '../errors/index.js';
import type { ProxyRequestBody } from '../spec/openai.js';
import { extractUsage, upstreamBody, upstreamFailure } from './openai-compatible.js';

/** The raw bytes a client sent and the body the gateway parsed from them. */
function request(json: string): { raw: Buffer; body: ProxyRequestBody } {
  return { raw: Buffer.from(json), body: JSON.parse(json) as ProxyRequestBody };
}

describe('upstreamBody', () => {
  const chat =
    '{"messages":[{"role":"user","content":"Hi \\"there\\" é"}],\n  "model": "gpt-4o", "temperature":0.5}';

  test('returns the very same buffer when the model is unchanged and no usage is requested', () => {
    const { raw, body } = request(chat);
    expect(upstreamBody(raw, body, 'gpt-4o', false)).toBe(raw);
  });

  test('splices a different model in and leaves every other byte as it was', () => {
    const { raw, body } = request(chat);
    const result = upstreamBody(raw, body, 'gpt-4o-2024-08-06', false);
    expect(result.toString()).toBe(chat.replace('"gpt-4o"', '"gpt-4o-2024-08-06"'));
  });

  test('escapes a model name that needs it', () => {
    const { raw, body } = request(chat);
    const result = upstreamBody(raw, body, 'odd "name"', false);
    expect(JSON.parse(result.toString()).model).toBe('odd "name"');
  });

  test('adds stream_options.include_usage at the front and keeps the rest byte for byte', () => {
    const json = '  {"model":"m","stream":true,"messages":[]}';
    const { raw, body } = request(json);
    const result = upstreamBody(raw, body, 'm', true).toString();
    expect(result).toBe(
      '  {"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}',
    );
    expect(JSON.parse(result)).toEqual({ ...body, stream_options: { include_usage: true } });
  });

  test('splices the model and adds the usage request together', () => {
    const { raw, body } = request('{"model":"alias","stream":true}');
    const result = upstreamBody(raw, body, 'real', true).toString();
    expect(result).toBe('{"stream_options":{"include_usage":true},"model":"real","stream":true}');
  });

  test("merges the usage request into the client's own stream_options", () => {
    const { raw, body } = request(
      '{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false},"n":2}',
    );
    const result = JSON.parse(upstreamBody(raw, body, 'm', true).toString());
    expect(result).toEqual({
      model: 'm',
      stream: true,
      stream_options: { include_usage: true, include_obfuscation: false },
      n: 2,
    });
  });

  test('replaces stream_options: null rather than letting it shadow the usage request', () => {
    const { raw, body } = request('{"model":"m","stream":true,"stream_options":null}');
    const result = JSON.parse(upstreamBody(raw, body, 'm', true).toString());
    expect(result.stream_options).toEqual({ include_usage: true });
  });

  test('a body with "model" twice is re-serialised, so the upstream reads the model the gateway chose', () => {
    const { raw, body } = request('{"model":"gpt-4","messages":[],"model":"cheap"}');
    expect(body.model).toBe('cheap');
    const result = upstreamBody(raw, body, 'gpt-4o-mini', false).toString();
    expect(JSON.parse(result)).toEqual({ model: 'gpt-4o-mini', messages: [] });
    expect(result.match(/"model"/g)).toHaveLength(1);
  });

  test('a body whose model key is written with escapes is re-serialised with the new model', () => {
    const { raw, body } = request('{"mod\\u0065l":"alias","stream":true}');
    const result = JSON.parse(upstreamBody(raw, body, 'real', true).toString());
    expect(result).toEqual({ model: 'real', stream: true, stream_options: { include_usage: true } });
  });
});

describe('extractUsage', () => {
  const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };

  test('reads usage from a chat completion, nested details included', () => {
    const json = JSON.stringify({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: {
        ...usage,
        prompt_tokens_details: { cached_tokens: 3, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 2 },
      },
      system_fingerprint: 'fp',
    });
    expect(extractUsage(json)).toEqual(usage);
    expect(extractUsage(Buffer.from(json))).toEqual(usage);
  });

  test("reads usage from a stream's usage chunk, as its JSON or as the whole event", () => {
    const chunk = JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [], usage });
    expect(extractUsage(chunk)).toEqual(usage);
    expect(extractUsage(`data: ${chunk}\n\n`)).toEqual(usage);
  });

  test('returns undefined when usage is null or absent', () => {
    expect(
      extractUsage('{"object":"chat.completion.chunk","choices":[{"delta":{"content":"x"}}],"usage":null}'),
    ).toBeUndefined();
    expect(extractUsage('{"object":"chat.completion","choices":[]}')).toBeUndefined();
    expect(extractUsage('data: [DONE]\n\n')).toBeUndefined();
  });

  test('is not fooled by usage-looking text inside the generated content', () => {
    const fake = 'my "usage": {"prompt_tokens": 999999, "completion_tokens": 1}';
    const withReal = JSON.stringify({ choices: [{ delta: { content: fake } }], usage });
    expect(extractUsage(withReal)).toEqual(usage);
    const withNull = JSON.stringify({ choices: [{ delta: { content: fake } }], usage: null });
    expect(extractUsage(withNull)).toBeUndefined();
  });

  test('fills in what an embeddings usage leaves out', () => {
    const json = `{"object":"list","data":[{"embedding":[${Array(2000).fill('0.0123').join(',')}]}],"model":"e","usage":{"prompt_tokens":8,"total_tokens":8}}`;
    expect(extractUsage(json)).toEqual({ prompt_tokens: 8, completion_tokens: 0, total_tokens: 8 });
    expect(extractUsage('{"usage":{"prompt_tokens":4,"completion_tokens":6}}')).toEqual({
      prompt_tokens: 4,
      completion_tokens: 6,
      total_tokens: 10,
    });
  });

  test('returns undefined for a usage object without prompt_tokens or that is cut off', () => {
    expect(extractUsage('{"usage":{"input_tokens":4}}')).toBeUndefined();
    expect(extractUsage('{"usage":{"prompt_tokens":4,')).toBeUndefined();
  });
});

describe('upstreamFailure', () => {
  const openAIEnvelope = (message: string, type: string, code: string | null, param: string | null = null) =>
    JSON.stringify({ error: { message, type, param, code } });

  test.each([401, 403])(
    '%i becomes a 502 upstream_auth_failed that never repeats what the upstream said',
    (status) => {
      const body = openAIEnvelope(
        'Incorrect API key provided: sk-secret-key.',
        'invalid_request_error',
        'invalid_api_key',
      );
      const error = upstreamFailure(status, {}, body, 'openai');
      expect(error.code).toBe('upstream_auth_failed');
      expect(error.status).toBe(502);
      expect(error.retryable).toBe(false);
      expect(error.message).not.toContain('sk-secret-key');
      const rendered = renderOpenAIError(error);
      expect(rendered).not.toContain('sk-secret-key');
      expect(JSON.parse(rendered).error).toMatchObject({
        type: 'server_error',
        code: 'upstream_auth_failed',
      });
    },
  );

  test('429 stays a 429 and passes Retry-After on', () => {
    const body = openAIEnvelope('Rate limit reached for requests', 'requests', 'rate_limit_exceeded');
    const error = upstreamFailure(
      429,
      { 'retry-after': '20', 'retry-after-ms': '20000', 'x-other': 'no' },
      body,
      'openai',
    );
    expect(error.code).toBe('upstream_rate_limited');
    expect(error.status).toBe(429);
    expect(error.retryable).toBe(true);
    expect(error.headers).toEqual({ 'retry-after': '20', 'retry-after-ms': '20000' });
    expect(error.message).toContain('Rate limit reached for requests');
  });

  test('429 without Retry-After passes no headers', () => {
    expect(upstreamFailure(429, {}, 'slow down', 'groq').headers).toEqual({});
  });

  test("400 keeps the upstream's status and its message, type, code and param", () => {
    const body = openAIEnvelope(
      "Invalid value for 'temperature': must be at most 2.",
      'invalid_request_error',
      'invalid_value',
      'temperature',
    );
    const error = upstreamFailure(400, {}, body, 'openai');
    expect(error.status).toBe(400);
    expect(error.retryable).toBe(false);
    expect(JSON.parse(renderOpenAIError(error))).toEqual({
      error: {
        message: "Invalid value for 'temperature': must be at most 2.",
        type: 'invalid_request_error',
        param: 'temperature',
        code: 'invalid_value',
      },
    });
  });

  test('a 404 with a plain-text body uses the text as the message', () => {
    const error = upstreamFailure(404, {}, '404 page not found\n', 'ollama');
    expect(error.status).toBe(404);
    expect(error.message).toBe('404 page not found');
    expect(JSON.parse(renderOpenAIError(error)).error).toEqual({
      message: '404 page not found',
      type: 'invalid_request_error',
      param: null,
      code: 'upstream_rejected',
    });
  });

  test('a 4xx error given as {"error": "text"} or {"message": "text"} is read too', () => {
    expect(upstreamFailure(422, {}, '{"error":"Input validation error"}', 'tgi').message).toBe(
      'Input validation error',
    );
    expect(upstreamFailure(400, {}, '{"message":"bad prompt","object":"error"}', 'vllm').message).toBe(
      'bad prompt',
    );
  });

  test('an empty 4xx body still gets a message', () => {
    expect(upstreamFailure(409, {}, '', 'x').message).toBe('HTTP 409');
  });

  test.each([500, 503])('%i becomes a retryable 502 upstream_error that names the target', (status) => {
    const error = upstreamFailure(
      status,
      {},
      openAIEnvelope('The server had an error', 'server_error', null),
      'vllm-a',
    );
    expect(error.code).toBe('upstream_error');
    expect(error.status).toBe(502);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('"vllm-a"');
    expect(error.message).toContain(String(status));
    expect(error.message).toContain('The server had an error');
  });

  test('a very long plain-text body is cut short in the message', () => {
    const error = upstreamFailure(500, {}, 'x'.repeat(10_000), 'big');
    expect(error.message.length).toBeLessThan(600);
  });
});
