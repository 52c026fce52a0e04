import { createHash, timingSafeEqual } from 'node:crypto';
import type { onRequestHookHandler } from 'fastify';
import { GatewayError } from '../errors/index.js';
import type { Logger } from '../telemetry/logger.js';

/**
 * RFC 6750 §3: a 401 names the scheme it wants. Deliberately without `error="invalid_token"`, so
 * a missing key and a wrong one read the same.
 */
const challenge = { 'www-authenticate': 'Bearer realm="switchyard-admin"' };

/**
 * The admin API's authorisation stage, run on every /admin request before its route:
 *
 * - no key configured: 403 `admin_disabled` for every route, saying how to enable it, so the
 *   admin API is closed unless an operator opens it;
 * - a key configured: `Authorization: Bearer <key>` is required; a missing or wrong one gets the
 *   same 401 `unauthorized`, so a caller learns nothing about which part was wrong.
 *
 * Keys are compared as sha256 digests with `timingSafeEqual`: the digests have equal lengths
 * whatever was sent, so the comparison's time depends on neither the key nor its length. Refusals
 * are logged (request id, method, path, address, whether a key was sent); the key and the header
 * never are.
 *
 * @example admin.addHook('onRequest', adminAuthorisation(config.admin.key, logger));
 */
export function adminAuthorisation(key: string | undefined, logger: Logger): onRequestHookHandler {
  if (key === undefined) {
    return (request, _reply, done) => {
      logger.info(
        { id: request.id, method: request.method, path: request.url.split('?')[0], remote: request.ip },
        'admin request refused: the admin API is disabled (no admin key is configured)',
      );
      done(new GatewayError('admin_disabled'));
    };
  }
  const expected = digest(key);
  // Callback style, as the gateway's own hooks: an async hook would cost a promise per request.
  return (request, _reply, done) => {
    const presented = bearerToken(request.headers.authorization);
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) {
      done();
      return;
    }
    logger.warn(
      {
        id: request.id,
        method: request.method,
        path: request.url.split('?')[0],
        remote: request.ip,
        reason: presented === undefined ? 'no bearer key' : 'wrong key',
      },
      'admin request refused',
    );
    done(new GatewayError('unauthorized', undefined, { headers: challenge }));
  };
}

/** The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
