import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
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
 * never are. `refused`, when given, is called for each refusal (the audit log) and the answer
 * waits for it, so the refusal is on record before the caller hears of it.
 *
 * @example admin.addHook('onRequest', adminAuthorisation(config.admin.key, logger));
 */
export function adminAuthorisation(
  key: string | undefined,
  logger: Logger,
  refused?: (request: FastifyRequest, reason: RefusalReason) => Promise<void>,
): onRequestHookHandler {
  const refuse = (
    request: FastifyRequest,
    reason: RefusalReason,
    error: GatewayError,
    done: (error: Error) => void,
  ) => {
    if (refused === undefined) {
      done(error);
      return;
    }
    refused(request, reason).then(
      () => done(error),
      () => done(error),
    );
  };
  if (key === undefined) {
    return (request, _reply, done) => {
      logger.info(
        { id: request.id, method: request.method, path: request.url.split('?')[0], remote: request.ip },
        'admin request refused: the admin API is disabled (no admin key is configured)',
      );
      refuse(request, 'admin disabled', new GatewayError('admin_disabled'), done);
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
    const reason = presented === undefined ? 'no bearer key' : 'wrong key';
    logger.warn(
      { id: request.id, method: request.method, path: request.url.split('?')[0], remote: request.ip, reason },
      'admin request refused',
    );
    refuse(request, reason, new GatewayError('unauthorized', undefined, { headers: challenge }), done);
  };
}

/** Why the authorisation stage refused a request. */
export type RefusalReason = 'admin disabled' | 'no bearer key' | 'wrong key';

/** The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
