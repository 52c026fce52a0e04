import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { looksLikeJwt, TokenError, type TokenVerifier, type VerifiedToken } from '../auth/jwt.js';
import type { Role, User } from '../auth/types.js';
import { GatewayError } from '../errors/index.js';
import type { Logger } from '../telemetry/logger.js';
import { routeAccess, type Scope } from './rbac.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling the admin API, once the authorisation stage let the request through. */
    adminPrincipal: AdminPrincipal | undefined;
  }
}

/**
 * RFC 6750 §3: a 401 names the scheme it wants. Deliberately without `error="invalid_token"`, so
 * a missing key and a wrong one read the same.
 */
const challenge = { 'www-authenticate': 'Bearer realm="switchyard-admin"' };

/** An admin caller: the admin key (role admin) or a single-sign-on token's subject. */
export interface AdminPrincipal {
  /** For the audit log: "admin" for the admin key, "oidc:<subject>" for a token. */
  readonly actor: string;
  readonly role: Role;
  /** The caller's team (name or id as the token or user record gives it); developers are bound to it. */
  readonly team: string | undefined;
  /** What the role may reach on this route: everything, or its own team's only. */
  readonly scope: Scope;
}

export interface AdminAuthOptions {
  /** The admin key; neither it nor `verifier`: every route answers 403 `admin_disabled`. */
  readonly key: string | undefined;
  /** Checks single-sign-on bearer tokens (auth.oidc); undefined: only the admin key is accepted. */
  readonly verifier?: TokenVerifier | undefined;
  /**
   * A user by name (a token's subject, or its e-mail when `email_verified` is true): where one
   * exists, its role and team are the caller's, whatever the token claims, so an operator manages
   * access in one place.
   */
  readonly user?: ((name: string) => Promise<User | undefined>) | undefined;
  readonly logger: Logger;
  /**
   * Called for each refusal (the audit log); the answer waits for it, so the refusal is on record
   * before the caller hears of it.
   */
  readonly refused?:
    | ((request: FastifyRequest, reason: RefusalReason, detail?: string, actor?: string) => Promise<void>)
    | undefined;
}

/**
 * The admin API's authorisation stage, run on every /admin request before its route:
 *
 * - neither an admin key nor OIDC configured: 403 `admin_disabled` for every route, saying how to
 *   enable it, so the admin API is closed unless an operator opens it;
 * - otherwise `Authorization: Bearer <credential>` is required: the admin key (role admin), or a
 *   JWT from the configured issuer, its role and team from the user record of its subject or from
 *   its claims. A missing or wrong credential gets the same 401 `unauthorized`, so a caller learns
 *   nothing about which part was wrong;
 * - then the role must allow the route (rbac.ts): 403 `forbidden` if not. A registered route the
 *   table does not name is refused to everyone (fail closed).
 *
 * The admin key is compared as a sha256 digest with `timingSafeEqual`: the digests have equal
 * lengths whatever was sent, so the comparison's time depends on neither the key nor its length.
 * Refusals are logged (request id, method, path, address, reason); credentials never are.
 *
 * @example admin.addHook('onRequest', adminAuthorisation({ key: config.admin.key, logger }));
 */
export function adminAuthorisation(options: AdminAuthOptions): onRequestHookHandler {
  const { key, verifier, logger, refused } = options;
  const refuse = (
    request: FastifyRequest,
    reason: RefusalReason,
    error: GatewayError,
    done: (error?: Error) => void,
    detail?: string,
    actor?: string,
  ) => {
    if (refused === undefined) {
      done(error);
      return;
    }
    refused(request, reason, detail, actor).then(
      () => done(error),
      () => done(error),
    );
  };
  if (key === undefined && verifier === undefined) {
    return (request, _reply, done) => {
      logger.info(
        { id: request.id, method: request.method, path: request.url.split('?')[0], remote: request.ip },
        'admin request refused: the admin API is disabled (no admin key is configured)',
      );
      refuse(request, 'admin disabled', new GatewayError('admin_disabled'), done);
    };
  }
  const expected = key === undefined ? undefined : digest(key);
  const unauthorised = (
    request: FastifyRequest,
    reason: RefusalReason,
    done: (error?: Error) => void,
    detail?: string,
  ) => {
    logger.warn(
      {
        id: request.id,
        method: request.method,
        path: request.url.split('?')[0],
        remote: request.ip,
        reason,
        detail,
      },
      'admin request refused',
    );
    refuse(
      request,
      reason,
      new GatewayError('unauthorized', undefined, { headers: challenge }),
      done,
      detail,
    );
  };
  const admit = (
    request: FastifyRequest,
    principal: Omit<AdminPrincipal, 'scope'>,
    done: (error?: Error) => void,
  ) => {
    const route = request.routeOptions.url;
    // No route matched: the not-found handler answers 404 (or 405) to an authenticated caller.
    if (route === undefined) {
      request.adminPrincipal = { ...principal, scope: 'all' };
      done();
      return;
    }
    const scope = routeAccess(principal.role, request.method, route);
    if (scope === 'none') {
      logger.warn(
        { id: request.id, method: request.method, path: route, actor: principal.actor, role: principal.role },
        'admin request refused: the role does not allow it',
      );
      refuse(
        request,
        'forbidden',
        new GatewayError(
          'forbidden',
          `The ${principal.role} role may not ${request.method} ${route}. Ask an admin for a role that allows it.`,
        ),
        done,
        `${principal.role} on ${request.method} ${route}`,
        principal.actor,
      );
      return;
    }
    request.adminPrincipal = { ...principal, scope };
    done();
  };
  /**
   * The user record a verified token speaks for: its subject's, else its e-mail's, but only an
   * e-mail the provider says it verified. OpenID Connect Core §5.7: `email` is no identifier, and
   * some providers let users set it to anything, which would hand them another person's record.
   */
  const userOf = async (token: VerifiedToken): Promise<User | undefined> => {
    if (options.user === undefined) return undefined;
    const { email, email_verified: verified } = token.claims;
    return (
      (await options.user(token.subject)) ??
      (typeof email === 'string' && verified === true ? await options.user(email) : undefined)
    );
  };
  // Callback style, as the gateway's own hooks: an async hook would cost a promise per request.
  return (request, _reply, done) => {
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined) {
      unauthorised(request, 'no bearer key', done);
      return;
    }
    if (expected !== undefined && timingSafeEqual(digest(presented), expected)) {
      admit(request, { actor: 'admin', role: 'admin', team: undefined }, done);
      return;
    }
    if (verifier === undefined || !looksLikeJwt(presented)) {
      unauthorised(request, 'wrong key', done);
      return;
    }
    verifier.verify(presented).then(
      (token) =>
        userOf(token).then(
          (user) =>
            admit(
              request,
              {
                actor: `oidc:${token.subject}`,
                role: user?.role ?? token.role,
                team: user === undefined ? token.team : user.teamId,
              },
              done,
            ),
          // The store failed, not the caller: answered, so the request neither hangs nor leaves
          // an unhandled rejection behind.
          (error: unknown) => {
            logger.error({ err: error, id: request.id }, 'admin caller lookup failed');
            done(new GatewayError('internal_error'));
          },
        ),
      (error: unknown) => {
        if (error instanceof TokenError) {
          unauthorised(request, 'bad token', done, `${error.reason}: ${error.message}`);
          return;
        }
        logger.error({ err: error, id: request.id }, 'admin token check failed');
        done(new GatewayError('internal_error'));
      },
    );
  };
}

/** Why the authorisation stage refused a request. */
export type RefusalReason = 'admin disabled' | 'no bearer key' | 'wrong key' | 'bad token' | 'forbidden';

/** The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
