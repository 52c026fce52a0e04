import { describe, expect, test } from 'vitest';
import { type ErrorCode, errorCatalogue, GatewayError } from '../../errors/index.js';
import { parseSseEvent } from '../../providers/sse.js';
import { anthropicErrorType, renderAnthropicError, renderAnthropicStreamError } from './anthropic-errors.js';

const codes = Object.keys(errorCatalogue) as ErrorCode[];

describe('renderAnthropicError', () => {
  test("writes Anthropic's envelope with the request id beside it", () => {
    const error = new GatewayError('invalid_field', 'max_tokens: must be an integer of at least 1.', {
      param: 'max_tokens',
    });
    const { status, body } = renderAnthropicError(error, 'req_123');
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens: must be an integer of at least 1.' },
      request_id: 'req_123',
    });
    expect(JSON.parse(renderAnthropicError(error).body)).not.toHaveProperty('request_id');
  });

  test.each([
    ['invalid_field', 400, 'invalid_request_error'],
    ['unsupported_param', 400, 'invalid_request_error'],
    ['method_not_allowed', 405, 'invalid_request_error'],
    ['pull_in_progress', 409, 'invalid_request_error'],
    ['unauthorized', 401, 'authentication_error'],
    ['admin_disabled', 403, 'permission_error'],
    ['model_not_found', 404, 'not_found_error'],
    ['payload_too_large', 413, 'request_too_large'],
    ['upstream_rate_limited', 429, 'rate_limit_error'],
    ['internal_error', 500, 'api_error'],
    ['upstream_auth_failed', 502, 'api_error'],
    ['upstream_error', 502, 'api_error'],
    ['upstream_overloaded', 529, 'overloaded_error'],
    ['model_overloaded', 529, 'overloaded_error'],
    ['runner_unavailable', 529, 'overloaded_error'],
    ['shutting_down', 529, 'overloaded_error'],
    ['model_too_large', 503, 'api_error'],
    ['request_timeout', 504, 'timeout_error'],
    ['upstream_first_byte_timeout', 504, 'timeout_error'],
  ] as const)('%s answers %i %s', (code, status, type) => {
    const rendered = renderAnthropicError(new GatewayError(code));
    expect(rendered.status).toBe(status);
    expect(JSON.parse(rendered.body).error.type).toBe(type);
  });

  test('an upstream rejection keeps its own status and gets the type Anthropic gives that status', () => {
    const error = new GatewayError('upstream_rejected', 'No such model.', { status: 404 });
    expect(renderAnthropicError(error)).toMatchObject({ status: 404 });
    expect(anthropicErrorType(error)).toBe('not_found_error');
  });

  test.each(codes)('%s maps to a status and type an Anthropic client knows', (code) => {
    const error = new GatewayError(code);
    const { status, body } = renderAnthropicError(error);
    const type = JSON.parse(body).error.type;
    expect(type).toBe(anthropicErrorType(error));
    // Client mistakes stay 4xx and failures 5xx, so SDKs retry exactly what they should.
    expect(status >= 500).toBe(error.status >= 500);
    if (status < 500) expect(type).not.toMatch(/^(api|overloaded)_error$/);
    if (status >= 500) expect(['api_error', 'overloaded_error', 'timeout_error']).toContain(type);
  });
});

describe('renderAnthropicStreamError', () => {
  test('is an SSE event named error carrying the same envelope, without a request id', () => {
    const event = parseSseEvent(renderAnthropicStreamError(new GatewayError('upstream_overloaded')));
    expect(event.event).toBe('error');
    expect(JSON.parse(event.data)).toEqual({
      type: 'error',
      error: { type: 'overloaded_error', message: errorCatalogue.upstream_overloaded.message },
    });
  });
});
