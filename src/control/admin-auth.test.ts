import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, test } from 'vitest';
import { fromFrameworkError, renderOpenAIError } from '../errors/index.js';
import { createLogger } from '../telemetry/logger.js';
import { adminAuthorisation, bearerToken } from './admin-auth.js';

const key = 'admin-key-0123456789abcdef';

/** A server with the stage in front of one route, and the log lines it wrote. */
function serverWith(configured: string | undefined) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  const app = Fastify();
  app.addHook('onRequest', adminAuthorisation({ key: configured, logger: createLogger('info', sink) }));
  app.setErrorHandler((error, _request, reply) => {
    const failure = fromFrameworkError(error);
    void reply
      .code(failure.status)
      .headers(failure.headers ?? {})
      .send(renderOpenAIError(failure));
  });
  app.get('/admin/models', async () => ({ ok: true }));
  return { app, lines };
}

const get = (app: ReturnType<typeof Fastify>, authorization?: string) =>
  app.inject({ method: 'GET', url: '/admin/models', headers: authorization ? { authorization } : {} });

describe('the admin authorisation stage', () => {
  test('with no key configured, refuses everything with 403 saying how to enable it', async () => {
    const { app } = serverWith(undefined);
    for (const authorization of [undefined, `Bearer ${key}`, 'Bearer anything']) {
      const response = await get(app, authorization);
      expect(response.statusCode).toBe(403);
      expect(response.json().error).toMatchObject({ code: 'admin_disabled', type: 'permission_error' });
      expect(response.json().error.message).toContain('SWITCHYARD_ADMIN_KEY');
    }
  });

  test('lets the right key through', async () => {
    const { app } = serverWith(key);
    const response = await get(app, `Bearer ${key}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ok: true });
    // The scheme is case-insensitive (RFC 9110 §11.1).
    expect((await get(app, `bearer ${key}`)).statusCode).toBe(200);
  });

  test('answers a missing key and every wrong one with the same 401 and challenge', async () => {
    const { app } = serverWith(key);
    const refusals = await Promise.all(
      [
        undefined,
        'Bearer',
        'Bearer ',
        `Basic ${Buffer.from(`admin:${key}`).toString('base64')}`,
        `Bearer ${key.slice(0, -1)}`,
        `Bearer ${key}x`,
        `Bearer ${key.toUpperCase()}`,
        `Bearer ${key} extra`,
        key,
      ].map((authorization) => get(app, authorization)),
    );
    const first = refusals[0]!;
    expect(first.statusCode).toBe(401);
    expect(first.headers['www-authenticate']).toBe('Bearer realm="switchyard-admin"');
    expect(first.json().error).toMatchObject({ code: 'unauthorized', type: 'authentication_error' });
    for (const response of refusals) {
      expect(response.statusCode).toBe(401);
      expect(response.body).toBe(first.body);
      expect(response.headers['www-authenticate']).toBe(first.headers['www-authenticate']);
    }
  });

  test('logs each refusal with its reason, never the key or the header', async () => {
    const { app, lines } = serverWith(key);
    await get(app);
    await get(app, `Bearer ${key}-wrong`);
    await get(app, `Bearer ${key}`);
    const logged = lines.map((line) => JSON.parse(line));
    expect(logged.map((line) => line.reason)).toEqual(['no bearer key', 'wrong key']);
    expect(logged[0]).toMatchObject({ method: 'GET', path: '/admin/models', msg: 'admin request refused' });
    expect(lines.join('')).not.toContain(key);
  });
});

describe('bearerToken', () => {
  test('reads the token of a Bearer header and nothing else', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('BEARER  abc ')).toBe('abc');
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
  });
});
