import { describe, expect, test } from 'vitest';
import { errorCatalogue, GatewayError, isGatewayError } from './catalogue.js';
import { asGatewayError, openAIErrorBody, renderOpenAIError, renderOpenAIStreamError } from './render.js';

const codes = Object.keys(errorCatalogue) as (keyof typeof errorCatalogue)[];
const openAITypes = [
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'rate_limit_error',
  'insufficient_quota',
  'server_error',
  'timeout_error',
];

describe('the error catalogue', () => {
  // Adding or removing a code must be a deliberate change: update this count, the docs and
  // any client-facing list of codes together.
  test('holds exactly 46 codes', () => {
    expect(codes).toHaveLength(46);
  });

  test.each(codes)(
    '%s has a 4xx/5xx status, an OpenAI type, a retryable flag and a full sentence',
    (code) => {
      const spec = errorCatalogue[code];
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
      expect(openAITypes).toContain(spec.type);
      expect(typeof spec.retryable).toBe('boolean');
      expect(spec.message).toMatch(/^[A-Z].*\.$/s);
    },
  );

  test('codes are snake_case, as OpenAI writes its own', () => {
    for (const code of codes) expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  });

  test('client mistakes are never retryable, and a 5xx from a passing fault always is, except bad credentials, a model too large for the runner and a full model store', () => {
    for (const code of codes) {
      const spec = errorCatalogue[code];
      if (spec.status < 500 && spec.status !== 429) expect(spec.retryable, code).toBe(false);
    }
    const notRetryable5xx = codes.filter(
      (code) => errorCatalogue[code].status >= 500 && !errorCatalogue[code].retryable,
    );
    // A local model bigger than the runner's whole memory budget fails the same way until the config changes.
    // A full model store stays full until an operator frees space.
    expect(notRetryable5xx).toEqual(['upstream_auth_failed', 'model_too_large', 'insufficient_storage']);
  });

  test('rate limits are 429 and timeouts 504', () => {
    for (const code of codes) {
      const spec = errorCatalogue[code];
      if (spec.type === 'rate_limit_error') expect(spec.status, code).toBe(429);
      if (spec.type === 'timeout_error') expect(spec.status, code).toBe(504);
    }
  });
});

describe('GatewayError', () => {
  test('takes status, type, retryable flag and message from the catalogue', () => {
    const error = new GatewayError('model_not_found');
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      name: 'GatewayError',
      code: 'model_not_found',
      status: 404,
      type: 'not_found_error',
      retryable: false,
      param: null,
      message: errorCatalogue.model_not_found.message,
    });
  });

  test('a given message, param, status, headers and cause override the defaults', () => {
    const cause = new Error('root');
    const error = new GatewayError('upstream_rejected', 'Bad temperature.', {
      param: 'temperature',
      status: 422,
      headers: { 'retry-after': '1' },
      cause,
    });
    expect(error).toMatchObject({
      message: 'Bad temperature.',
      param: 'temperature',
      status: 422,
      headers: { 'retry-after': '1' },
      type: 'invalid_request_error',
    });
    expect(error.cause).toBe(cause);
  });

  test('has no cause property when none is given', () => {
    expect('cause' in new GatewayError('internal_error')).toBe(false);
  });

  test('isGatewayError tells catalogue errors from other throws', () => {
    expect(isGatewayError(new GatewayError('invalid_json'))).toBe(true);
    expect(isGatewayError(new Error('x'))).toBe(false);
    expect(isGatewayError({ code: 'invalid_json' })).toBe(false);
  });

  test('asGatewayError keeps a GatewayError and wraps anything else as internal_error, cause kept', () => {
    const own = new GatewayError('shutting_down');
    expect(asGatewayError(own)).toBe(own);
    const thrown = new RangeError('boom');
    const wrapped = asGatewayError(thrown);
    expect(wrapped.code).toBe('internal_error');
    expect(wrapped.status).toBe(500);
    expect(wrapped.cause).toBe(thrown);
    // The client sees the catalogue message, never the internal one.
    expect(wrapped.message).not.toContain('boom');
  });
});

describe('rendering the OpenAI error envelope', () => {
  test('has exactly message, type, param and code', () => {
    const error = new GatewayError('missing_field', 'messages is required.', { param: 'messages' });
    expect(JSON.parse(renderOpenAIError(error))).toEqual({
      error: {
        message: 'messages is required.',
        type: 'invalid_request_error',
        param: 'messages',
        code: 'missing_field',
      },
    });
  });

  test('param is null when the error is about no field', () => {
    expect(openAIErrorBody(new GatewayError('upstream_error')).error.param).toBeNull();
  });

  test("an upstream's own type and code are rendered in place of ours", () => {
    const error = new GatewayError('upstream_rejected', 'Nope.', {
      upstream: { type: 'invalid_request_error', code: 'context_length_exceeded' },
    });
    expect(openAIErrorBody(error).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'context_length_exceeded',
    });
    const partial = new GatewayError('upstream_rate_limited', undefined, { upstream: { type: 'tokens' } });
    expect(openAIErrorBody(partial).error).toMatchObject({ type: 'tokens', code: 'upstream_rate_limited' });
  });

  test('the stream form is one SSE data event holding the same envelope', () => {
    const error = new GatewayError('upstream_stream_failed');
    const event = renderOpenAIStreamError(error);
    expect(event).toBe(`data: ${renderOpenAIError(error)}\n\n`);
    expect(event.slice(0, -2).split('\n')).toHaveLength(1);
  });
});
