import { describe, expect, test } from 'vitest';
import { anthropicFailure, anthropicStreamFailure } from './anthropic-errors.js';

function envelope(type: string, message: string): string {
  return JSON.stringify({
    type: 'error',
    error: { type, message },
    request_id: 'req_011CSHoEeqs5C35K2UUqR7Fy',
  });
}

describe('Anthropic error answers', () => {
  test('a 429 passes Retry-After on and keeps the anthropic-ratelimit headers to itself', () => {
    const error = anthropicFailure(
      429,
      {
        'retry-after': '30',
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-tokens-remaining': '0',
      },
      envelope('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'),
      'anthropic',
    );
    expect(error.code).toBe('upstream_rate_limited');
    expect(error.status).toBe(429);
    expect(error.headers).toEqual({ 'retry-after': '30' });
    expect(error.message).toContain('per-minute rate limit');
  });

  test('529 overloaded is a retryable 503, with Retry-After when Anthropic gave one', () => {
    const error = anthropicFailure(
      529,
      { 'retry-after': '5' },
      envelope('overloaded_error', 'Overloaded'),
      'anthropic',
    );
    expect(error).toMatchObject({ code: 'upstream_overloaded', status: 503, retryable: true });
    expect(error.headers).toEqual({ 'retry-after': '5' });
    expect(
      anthropicFailure(529, {}, envelope('overloaded_error', 'Overloaded'), 'anthropic').headers,
    ).toEqual({});
  });

  test.each([401, 403])('a %i never shows Anthropic message, which may quote the key', (status) => {
    const error = anthropicFailure(
      status,
      {},
      envelope('authentication_error', 'invalid x-api-key sk-ant-123'),
      'a',
    );
    expect(error.code).toBe('upstream_auth_failed');
    expect(error.status).toBe(502);
    expect(error.message).not.toContain('sk-ant-123');
    expect(error.message).not.toContain('x-api-key');
  });

  test('other 4xx answers keep their status, Anthropic message and error type', () => {
    const error = anthropicFailure(
      413,
      {},
      envelope('request_too_large', 'Request exceeds the maximum allowed number of bytes.'),
      'a',
    );
    expect(error).toMatchObject({ code: 'upstream_rejected', status: 413 });
    expect(error.message).toBe('Request exceeds the maximum allowed number of bytes.');
    expect(error.upstream).toEqual({ type: 'request_too_large' });
  });

  test('the request id goes to the log cause, not the message', () => {
    const error = anthropicFailure(500, {}, envelope('api_error', 'Internal server error'), 'anthropic');
    expect(error).toMatchObject({ code: 'upstream_error', status: 502 });
    expect(String(error.cause)).toContain('req_011CSHoEeqs5C35K2UUqR7Fy');
    expect(error.message).not.toContain('req_');
  });

  test('a body that is not Anthropic envelope is quoted as it came', () => {
    const error = anthropicFailure(502, { 'request-id': 'req_2' }, '<html>Bad gateway</html>', 'anthropic');
    expect(error.code).toBe('upstream_error');
    expect(error.message).toContain('<html>Bad gateway</html>');
    expect(String(error.cause)).toContain('req_2');
  });
});

describe('Anthropic stream error events', () => {
  test('overloaded_error keeps its own retryable code', () => {
    const error = anthropicStreamFailure({ type: 'overloaded_error', message: 'Overloaded' }, 'anthropic');
    expect(error).toMatchObject({ code: 'upstream_overloaded', status: 503 });
  });

  test('any other error type fails the stream, naming the type and message', () => {
    const error = anthropicStreamFailure(
      { type: 'api_error', message: 'Internal server error' },
      'anthropic',
    );
    expect(error.code).toBe('upstream_stream_failed');
    expect(error.message).toContain('api_error');
    expect(error.message).toContain('Internal server error');
  });
});
