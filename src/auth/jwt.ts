import { createRemoteJWKSet, errors, type JWSAlgorithm, type JWTPayload, jwtVerify } from 'jose';
import { type Role, roles } from './types.js';

/**
 * Bearer tokens from an OpenID Connect provider (Keycloak, Entra ID, Okta, Auth0, Dex …) for the
 * admin API: the signature is checked against the provider's published keys (its JWKS), then the
 * issuer, audience and validity window, then the role and team claims are mapped onto Switchyard's
 * roles. Token parsing, key selection and the JWKS cache are jose's (panva/jose); this module owns
 * only the policy: which algorithms, how much clock skew, where the role lives in the claims.
 */

/** Signature algorithms a verifier may accept: asymmetric only. */
export const allowedAlgorithms = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type OidcAlgorithm = (typeof allowedAlgorithms)[number];

/** The most clock skew a verifier tolerates: beyond it an expired token is simply expired. */
export const maxClockSkewMs = 5 * 60_000;

export interface OidcSettings {
  /** Must equal the token's `iss` exactly (OpenID Connect Core §3.1.3.7). */
  readonly issuer: string;
  /** The token's `aud` must contain one of these. */
  readonly audience: string | readonly string[];
  /** https:, or http: on a loopback host only: keys fetched in the clear could be swapped. */
  readonly jwksUrl: string;
  /** Tolerance on `exp` and `nbf`; default 60000, at most {@link maxClockSkewMs}. */
  readonly clockSkewMs?: number | undefined;
  /**
   * Where the role is: a claim name, or a dotted path into nested claims
   * (`realm_access.roles`). Its value is a role name or an array of them; the highest known role
   * wins and unknown names are ignored. Default `role`.
   */
  readonly roleClaim?: string | undefined;
  /** Where the team id is, as `roleClaim`; default `team`. */
  readonly teamClaim?: string | undefined;
  /** Default RS256, ES256, EdDSA. `none` and the HMAC algorithms are never accepted. */
  readonly algorithms?: readonly OidcAlgorithm[] | undefined;
}

/** The world a verifier runs in, and its JWKS cache's tuning; every field has a default. */
export interface OidcVerifierOptions {
  /** Milliseconds since the epoch; default Date.now. Decides `exp` and `nbf`. */
  readonly now?: (() => number) | undefined;
  /** Abort a JWKS fetch after this long; default 5000, 1 to 30000. */
  readonly jwksTimeoutMs?: number | undefined;
  /**
   * After a fetch, an unknown key id waits this long before it may trigger another: garbage key
   * ids must not turn into a flood of requests to the provider. Default 30000, 0 to 600000.
   */
  readonly jwksCooldownMs?: number | undefined;
  /** Refetch the keys once they are this old, so a revoked key stops working; default 600000. */
  readonly jwksCacheMaxAgeMs?: number | undefined;
}

/** Who a verified token speaks for. */
export interface VerifiedToken {
  /** The token's `sub`. */
  readonly subject: string;
  readonly role: Role;
  /** From the team claim: a string, or an array holding exactly one; otherwise undefined. */
  readonly team: string | undefined;
  /** Every claim of the token, frozen. */
  readonly claims: Readonly<JWTPayload>;
}

/** What the admin authorisation stage needs of a verifier; tests can stand in a fake. */
export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

export type TokenErrorReason =
  | 'malformed'
  | 'algorithm_not_allowed'
  | 'unknown_key'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'invalid_claim'
  | 'no_role'
  | 'unknown_role'
  | 'jwks_unavailable';

/**
 * A token refused, and why. The message is for the log and the audit log; callers answer every
 * refusal with one generic 401, so a caller learns nothing about which check failed.
 * `jwks_unavailable` is the provider's failure, not the caller's: worth an alert, not a retry.
 */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  readonly reason: TokenErrorReason;

  constructor(reason: TokenErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

const defaults = {
  clockSkewMs: 60_000,
  roleClaim: 'role',
  teamClaim: 'team',
  algorithms: ['RS256', 'ES256', 'EdDSA'] as const,
  jwksTimeoutMs: 5_000,
  jwksCooldownMs: 30_000,
  jwksCacheMaxAgeMs: 600_000,
};

/**
 * Verifies OIDC bearer tokens against one provider.
 *
 * @example
 * const verifier = new OidcVerifier({
 *   issuer: 'https://idp.example.com/realms/ops',
 *   audience: 'switchyard',
 *   jwksUrl: 'https://idp.example.com/realms/ops/protocol/openid-connect/certs',
 *   roleClaim: 'realm_access.roles',
 * });
 * const { subject, role, team } = await verifier.verify(token); // or throws TokenError
 */
export class OidcVerifier implements TokenVerifier {
  readonly #issuer: string;
  readonly #audience: string | string[];
  readonly #jwksUrl: string;
  readonly #clockToleranceSeconds: number;
  readonly #roleClaim: string;
  readonly #teamClaim: string;
  readonly #algorithms: JWSAlgorithm[];
  readonly #now: () => number;
  readonly #keys: ReturnType<typeof createRemoteJWKSet>;

  /** Throws a TypeError naming the setting when one is out of bounds. */
  constructor(settings: OidcSettings, options: OidcVerifierOptions = {}) {
    this.#issuer = nonEmpty(settings.issuer, 'issuer');
    const audiences = (
      typeof settings.audience === 'string' ? [settings.audience] : [...settings.audience]
    ).map((audience) => nonEmpty(audience, 'audience'));
    if (audiences.length === 0) throw new TypeError('oidc.audience must name at least one audience');
    this.#audience = audiences.length === 1 ? audiences[0]! : audiences;
    const url = jwksUrl(settings.jwksUrl);
    this.#jwksUrl = url.href;
    this.#clockToleranceSeconds =
      bounded(settings.clockSkewMs, defaults.clockSkewMs, 0, maxClockSkewMs, 'clockSkewMs') / 1000;
    this.#roleClaim = nonEmpty(settings.roleClaim ?? defaults.roleClaim, 'roleClaim');
    this.#teamClaim = nonEmpty(settings.teamClaim ?? defaults.teamClaim, 'teamClaim');
    const algorithms = settings.algorithms ?? defaults.algorithms;
    if (algorithms.length === 0) throw new TypeError('oidc.algorithms must name at least one algorithm');
    for (const algorithm of algorithms) {
      if (!(allowedAlgorithms as readonly string[]).includes(algorithm)) {
        throw new TypeError(
          `oidc.algorithms: ${JSON.stringify(algorithm)} is not accepted; use one of ${allowedAlgorithms.join(', ')}`,
        );
      }
    }
    this.#algorithms = [...algorithms];
    this.#now = options.now ?? Date.now;
    this.#keys = createRemoteJWKSet(url, {
      timeoutDuration: bounded(options.jwksTimeoutMs, defaults.jwksTimeoutMs, 1, 30_000, 'jwksTimeoutMs'),
      cooldownDuration: bounded(
        options.jwksCooldownMs,
        defaults.jwksCooldownMs,
        0,
        600_000,
        'jwksCooldownMs',
      ),
      cacheMaxAge: bounded(
        options.jwksCacheMaxAgeMs,
        defaults.jwksCacheMaxAgeMs,
        1_000,
        86_400_000,
        'jwksCacheMaxAgeMs',
      ),
    });
  }

  /** Resolves to who the token speaks for, or rejects with a {@link TokenError}. */
  async verify(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keys, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#clockToleranceSeconds,
        currentDate: new Date(this.#now()),
        // A token without an expiry would be a password that never changes; without a subject
        // there is no one to hold to account in the audit log.
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      throw this.#explain(error, token);
    }
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject === '') {
      throw new TokenError('invalid_claim', 'token refused: its "sub" claim is not a non-empty string');
    }
    return Object.freeze({
      subject,
      role: this.#role(payload),
      team: teamOf(claimAt(payload, this.#teamClaim)),
      claims: Object.freeze(payload),
    });
  }

  #role(payload: JWTPayload): Role {
    const value = claimAt(payload, this.#roleClaim);
    if (value === undefined) {
      throw new TokenError(
        'no_role',
        `token refused: it has no "${this.#roleClaim}" claim to take a role from`,
      );
    }
    const names = Array.isArray(value) ? value : [value];
    // `roles` runs from most to least privileged, so the first one held is the highest.
    const role = roles.find((candidate) => names.includes(candidate));
    if (role === undefined) {
      throw new TokenError(
        'unknown_role',
        `token refused: its "${this.#roleClaim}" claim (${quote(value)}) names none of the roles ${roles.join(', ')}`,
      );
    }
    return role;
  }

  /** Turns jose's error into ours, with a message that says which check failed. */
  #explain(error: unknown, token: string): TokenError {
    const cause = { cause: error };
    if (error instanceof errors.JWTExpired) {
      return new TokenError(
        'expired',
        `token refused: it expired at ${instant(error.payload.exp)} (now ${instant(this.#now() / 1000)}, ` +
          `tolerated skew ${this.#clockToleranceSeconds} s)`,
        cause,
      );
    }
    if (error instanceof errors.JWTClaimValidationFailed) {
      const { claim, payload } = error;
      if (error.reason === 'missing') {
        return new TokenError('missing_claim', `token refused: it has no "${claim}" claim`, cause);
      }
      if (error.reason !== 'check_failed') {
        return new TokenError(
          'invalid_claim',
          `token refused: its "${claim}" claim is invalid (${error.message})`,
          cause,
        );
      }
      switch (claim) {
        case 'nbf':
          return new TokenError(
            'not_yet_valid',
            `token refused: it is not valid before ${instant(payload.nbf)} (now ${instant(this.#now() / 1000)})`,
            cause,
          );
        case 'iss':
          return new TokenError(
            'wrong_issuer',
            `token refused: issuer ${quote(payload.iss)} is not the configured ${quote(this.#issuer)}`,
            cause,
          );
        case 'aud':
          return new TokenError(
            'wrong_audience',
            `token refused: audience ${quote(payload.aud)} does not include ${quote(this.#audience)}`,
            cause,
          );
        default:
          return new TokenError(
            'invalid_claim',
            `token refused: its "${claim}" claim failed its check`,
            cause,
          );
      }
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) {
      return new TokenError(
        'bad_signature',
        `token refused: its signature does not verify with key ${quote(header(token).kid)}`,
        cause,
      );
    }
    if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
      const { kid, alg } = header(token);
      const what = error instanceof errors.JWKSNoMatchingKey ? 'no key' : 'more than one key';
      return new TokenError(
        'unknown_key',
        `token refused: ${what} in ${this.#jwksUrl} matches key id ${quote(kid)} and algorithm ${quote(alg)}`,
        cause,
      );
    }
    if (error instanceof errors.JOSEAlgNotAllowed) {
      return new TokenError(
        'algorithm_not_allowed',
        `token refused: algorithm ${quote(header(token).alg)} is not one of ${this.#algorithms.join(', ')}`,
        cause,
      );
    }
    if (
      error instanceof errors.JWSInvalid ||
      error instanceof errors.JWTInvalid ||
      error instanceof errors.JOSENotSupported
    ) {
      return new TokenError(
        'malformed',
        `token refused: it is not a well-formed JWT (${error.message})`,
        cause,
      );
    }
    // Whatever else failed failed while fetching the keys: a timeout, a refused connection, a
    // status other than 200, a body that is not a JWKS.
    const detail = error instanceof Error ? error.message : String(error);
    return new TokenError(
      'jwks_unavailable',
      `token not verified: the keys at ${this.#jwksUrl} could not be fetched (${detail})`,
      cause,
    );
  }
}

/**
 * Whether a bearer token has a JWT's shape: three base64url segments (the last may be empty, as
 * in an unsecured JWT, so that one is refused as a JWT rather than as a wrong admin key). Cheap,
 * and decides nothing about validity: it only picks which check a token goes to.
 *
 * @example looksLikeJwt('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln') // true
 */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

/**
 * The claim named `path`, or, when no claim has that exact name, the value at its dotted path.
 * The exact name comes first because namespaced claims hold dots (Auth0's
 * `https://example.com/roles`).
 */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function teamOf(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? teamOf(value[0]) : undefined;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The protected header's `kid` and `alg`, for messages only: read, never trusted. */
function header(token: string): { kid: unknown; alg: unknown } {
  try {
    const segment = token.slice(0, token.indexOf('.'));
    const parsed: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) {
      const { kid, alg } = parsed as Record<string, unknown>;
      return { kid, alg };
    }
  } catch {
    // A header that does not parse has neither.
  }
  return { kid: undefined, alg: undefined };
}

/** A value from a token, JSON-quoted and cut short: it may be the caller's, and it goes to logs. */
function quote(value: unknown): string {
  if (value === undefined) return '(none)';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function instant(seconds: unknown): string {
  return typeof seconds === 'number' && Number.isFinite(seconds)
    ? new Date(seconds * 1000).toISOString()
    : quote(seconds);
}

function nonEmpty(value: string, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(`oidc.${field} must be a non-empty string`);
  }
  return value;
}

function bounded(
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
  field: string,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(
      `oidc.${field} must be an integer from ${min} to ${max} (milliseconds), not ${value}`,
    );
  }
  return value;
}

function jwksUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(nonEmpty(text, 'jwksUrl'));
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith('oidc.')) throw error;
    throw new TypeError(`oidc.jwksUrl is not a URL: ${JSON.stringify(text)}`);
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new TypeError(
      `oidc.jwksUrl must be https: (http: only on a loopback host), not ${JSON.stringify(url.href)}`,
    );
  }
  return url;
}
