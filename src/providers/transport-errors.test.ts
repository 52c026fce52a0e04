import { createServer } from 'node:net';
import { errors, Pool } from 'undici';
import { describe, expect, test } from 'vitest';
import { type ErrorCode, GatewayError } from '../errors/index.js';
import { transportError } from './transport-errors.js';

function withCode(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

describe('transportError', () => {
  test.each<[string, Error, ErrorCode]>([
    ['a connect timeout', new errors.ConnectTimeoutError(), 'upstream_connect_timeout'],
    ['a headers timeout', new errors.HeadersTimeoutError(), 'upstream_first_byte_timeout'],
    ['a body timeout', new errors.BodyTimeoutError(), 'upstream_idle_timeout'],
    ['a closed socket', new errors.SocketError('other side closed'), 'upstream_connection_reset'],
    ['a closed client', new errors.ClientClosedError(), 'upstream_connection_reset'],
    ['an oversized response', new errors.ResponseExceededMaxSizeError(), 'upstream_bad_response'],
    ['ECONNREFUSED', withCode('ECONNREFUSED'), 'upstream_unreachable'],
    ['ENOTFOUND', withCode('ENOTFOUND'), 'upstream_unreachable'],
    ['EAI_AGAIN', withCode('EAI_AGAIN'), 'upstream_unreachable'],
    ['EHOSTUNREACH', withCode('EHOSTUNREACH'), 'upstream_unreachable'],
    ['ENETUNREACH', withCode('ENETUNREACH'), 'upstream_unreachable'],
    ['ECONNRESET', withCode('ECONNRESET'), 'upstream_connection_reset'],
    ['EPIPE', withCode('EPIPE'), 'upstream_connection_reset'],
  ])('%s maps to %s', (_name, error, code) => {
    const mapped = transportError(error, 'local-vllm');
    expect(mapped).toBeInstanceOf(GatewayError);
    expect(mapped.code).toBe(code);
    expect(mapped.message).toContain('"local-vllm"');
    expect(mapped.cause).toBe(error);
  });

  test('timeouts and connection failures are retryable; each names the setting or check to make', () => {
    expect(transportError(new errors.HeadersTimeoutError(), 't').message).toContain('timeouts.first_byte');
    expect(transportError(new errors.BodyTimeoutError(), 't').message).toContain('timeouts.idle');
    expect(transportError(new errors.ConnectTimeoutError(), 't').message).toContain('timeouts.connect');
    const unreachable = transportError(withCode('ECONNREFUSED'), 't');
    expect(unreachable.message).toContain('(ECONNREFUSED)');
    for (const error of [
      new errors.HeadersTimeoutError(),
      withCode('ECONNREFUSED'),
      withCode('ECONNRESET'),
    ]) {
      expect(transportError(error, 't').retryable).toBe(true);
    }
  });

  test('finds the code on a wrapped cause, as fetch reports socket errors', () => {
    const wrapped = new TypeError('fetch failed', {
      cause: withCode('ECONNREFUSED', 'connect ECONNREFUSED'),
    });
    expect(transportError(wrapped, 't').code).toBe('upstream_unreachable');
  });

  test("looks past undici's generic UND_ERR code to the cause beneath", () => {
    const generic = Object.assign(new errors.UndiciError('wrapped'), { cause: withCode('ECONNRESET') });
    expect(generic.code).toBe('UND_ERR');
    expect(transportError(generic, 't').code).toBe('upstream_connection_reset');
  });

  test('a cycle of causes ends the search instead of looping', () => {
    const first = new Error('first') as Error & { cause?: unknown };
    const second = new Error('second', { cause: first });
    first.cause = second;
    const mapped = transportError(first, 't');
    expect(mapped.code).toBe('upstream_bad_response');
    expect(mapped.message).toContain('first');
  });

  test('anything unrecognised is a bad response that quotes what went wrong', () => {
    expect(transportError(new Error('parser exploded'), 'up').message).toBe(
      'Upstream "up" failed: parser exploded',
    );
    expect(transportError('a thrown string', 'up')).toMatchObject({
      code: 'upstream_bad_response',
      message: 'Upstream "up" failed: a thrown string',
    });
    expect(transportError(undefined, 'up').code).toBe('upstream_bad_response');
  });

  test('a GatewayError, such as an abort reason, passes through as the same object', () => {
    const reason = new GatewayError('request_timeout');
    expect(transportError(reason, 'up')).toBe(reason);
  });

  test("maps a real refused connection from undici's pool", async () => {
    // Take a free port, then free it again: nothing listens there now.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const pool = new Pool(`http://127.0.0.1:${port}`);
    try {
      const error = await pool.request({ method: 'GET', path: '/' }).catch((caught: unknown) => caught);
      const mapped = transportError(error, 'gone');
      expect(mapped.code).toBe('upstream_unreachable');
      expect(mapped.status).toBe(502);
    } finally {
      await pool.destroy();
    }
  });
});
