import {
  type Bucket,
  bucketResetMs,
  bucketWait,
  type MaybePromise,
  type SharedState,
  type TakeResult,
} from './shared-state.js';
import type { RateLimit } from './types.js';

/** Something limits apply to: the whole gateway, a model, a team, a key. */
export interface LimitScope {
  /** Unique among scopes and stable across replicas: "global", "model:gpt-4o", "team:t1", "key:k1". */
  readonly id: string;
  readonly limit: RateLimit;
}

export type LimitKind = 'requests' | 'tokens';

export interface AdmitRequest {
  /** Every scope the request falls under; a scope whose limit sets neither rpm nor tpm costs nothing. */
  readonly scopes: readonly LimitScope[];
  /** Tokens to reserve from every tpm bucket until the request settles (see token-estimate.ts). */
  readonly estimatedTokens: number;
  /** Milliseconds, on the clock the shared state is kept by. */
  readonly now: number;
}

/** Response headers, lowercase names as OpenAI sends them. */
export type RateLimitHeaders = Record<string, string>;

/** A bucket of one scope's limit, with what its headers say precomputed. */
export interface LimitBucket extends Bucket {
  readonly scope: string;
  readonly kind: LimitKind;
  /** The limit as the `x-ratelimit-limit-*` header writes it. */
  readonly limitHeader: string;
}

/** Tokens held from the tpm buckets of an admitted request; give it back to `settle` once. */
export interface Reservation {
  readonly tokens: number;
  /** The tpm buckets reserved from; empty when no scope limits tokens. */
  readonly buckets: readonly LimitBucket[];
  /** Set by the first settle, so that a second changes nothing. */
  settled: boolean;
}

export interface Admitted {
  readonly ok: true;
  readonly reservation: Reservation;
  readonly headers: RateLimitHeaders;
}

export interface Refused {
  readonly ok: false;
  /** The scope whose limit the request must wait longest for. */
  readonly scope: string;
  readonly kind: LimitKind;
  /** Milliseconds until the request would be admitted, other traffic aside; at least 1. */
  readonly retryAfterMs: number;
  /** The rate-limit headers and `retry-after` in whole seconds, rounded up. */
  readonly headers: RateLimitHeaders;
}

export type Admission = Admitted | Refused;

/** Both limits count per minute (RateLimit: rpm, tpm). */
const minute = 60_000;

/** Compiled scopes kept at most; past it the cache starts again, so removed keys do not pile up. */
const compiledScopesKept = 10_000;

interface CompiledScope {
  readonly rpm: number | undefined;
  readonly tpm: number | undefined;
  readonly requests: LimitBucket | undefined;
  readonly tokens: LimitBucket | undefined;
}

const noBuckets: readonly LimitBucket[] = Object.freeze([]);

const unlimited: Admitted = Object.freeze({
  ok: true,
  reservation: Object.freeze({ tokens: 0, buckets: noBuckets, settled: true }) as Reservation,
  headers: Object.freeze({}) as RateLimitHeaders,
});

/**
 * Requests-per-minute and tokens-per-minute limits over several scopes at once, kept in a
 * `SharedState` so that a limit holds across every replica. Each scope has a token bucket per
 * limit holding a minute's allowance and refilling continuously. A request takes 1 from every
 * rpm bucket and its estimated tokens from every tpm bucket, from all or from none, so a refused
 * request costs no scope anything. Once the request ends, whatever the outcome, `settle` charges
 * or refunds the difference between the estimate and the tokens really used; usage above the
 * estimate can leave a tpm bucket in debt, and later requests wait until it has refilled.
 *
 * With the in-memory state every call completes synchronously; with a remote one they return
 * promises (see `MaybePromise`).
 *
 * @example
 * const limiter = new RateLimiter(new MemoryState());
 * const admission = await limiter.admit({
 *   scopes: [{ id: 'global', limit: { rpm: 10_000 } }, { id: 'key:k1', limit: { rpm: 50, tpm: 40_000 } }],
 *   estimatedTokens: estimateTokens(body, 'chat/completions'),
 *   now: Date.now(),
 * });
 * if (!admission.ok) throw rateLimited(admission.retryAfterMs, admission.headers);
 * try { … } finally { await limiter.settle(admission.reservation, usage?.total_tokens ?? 0, Date.now()); }
 */
export class RateLimiter {
  readonly #state: SharedState;
  readonly #keyPrefix: string;
  readonly #compiled = new Map<string, CompiledScope>();

  /** `keyPrefix` namespaces the buckets' keys, so that several gateways can share one Redis. */
  constructor(state: SharedState, options: { keyPrefix?: string } = {}) {
    this.#state = state;
    this.#keyPrefix = options.keyPrefix ?? 'rate:';
  }

  /** Admits a request under every scope's limits, or refuses it having taken nothing. */
  admit(request: AdmitRequest): MaybePromise<Admission> {
    const tokens = request.estimatedTokens > 0 ? request.estimatedTokens : 0;
    const buckets: LimitBucket[] = [];
    const costs: number[] = [];
    let tokenBuckets: LimitBucket[] | undefined;
    for (const scope of request.scopes) {
      const compiled = this.#compile(scope);
      if (compiled.requests !== undefined) {
        buckets.push(compiled.requests);
        costs.push(1);
      }
      if (compiled.tokens !== undefined) {
        buckets.push(compiled.tokens);
        costs.push(tokens);
        if (tokenBuckets === undefined) tokenBuckets = [compiled.tokens];
        else tokenBuckets.push(compiled.tokens);
      }
    }
    if (buckets.length === 0) return unlimited;
    const result = this.#state.take(buckets, costs, request.now);
    return result instanceof Promise
      ? result.then((taken) => decide(taken, buckets, costs, tokenBuckets, tokens))
      : decide(result, buckets, costs, tokenBuckets, tokens);
  }

  /**
   * Corrects the tpm buckets from the estimate to `actualTokens` (prompt and completion): refunds
   * what was not used, charges what was used beyond it. Call it once per admitted request, when it
   * ends, whatever the outcome: a failed request settles with what the upstream reported or 0.
   * A stream settles when its final usage arrives. A non-finite count keeps the estimate.
   */
  settle(reservation: Reservation, actualTokens: number, now: number): MaybePromise<void> {
    const { buckets } = reservation;
    if (buckets.length === 0 || reservation.settled) return;
    reservation.settled = true;
    if (!Number.isFinite(actualTokens)) return;
    const difference = reservation.tokens - (actualTokens > 0 ? actualTokens : 0);
    if (difference === 0) return;
    const amounts = new Array<number>(buckets.length).fill(difference);
    return this.#state.adjust(buckets, amounts, now);
  }

  #compile(scope: LimitScope): CompiledScope {
    const { rpm, tpm } = scope.limit;
    const known = this.#compiled.get(scope.id);
    if (known !== undefined && known.rpm === rpm && known.tpm === tpm) return known;
    if (this.#compiled.size >= compiledScopesKept) this.#compiled.clear();
    const compiled: CompiledScope = {
      rpm,
      tpm,
      requests: rpm === undefined ? undefined : this.#bucket(scope.id, 'requests', rpm),
      tokens: tpm === undefined ? undefined : this.#bucket(scope.id, 'tokens', tpm),
    };
    this.#compiled.set(scope.id, compiled);
    return compiled;
  }

  #bucket(scope: string, kind: LimitKind, perMinute: number): LimitBucket {
    // Config validation rejects these; a bucket that never refills would refuse for ever.
    if (!(perMinute > 0 && Number.isFinite(perMinute))) {
      throw new RangeError(`rate limit ${kind} per minute of scope "${scope}" must be a positive number`);
    }
    return Object.freeze({
      key: `${this.#keyPrefix}${scope}:${kind}`,
      capacity: perMinute,
      interval: minute,
      scope,
      kind,
      limitHeader: String(perMinute),
    });
  }
}

function decide(
  result: TakeResult,
  buckets: readonly LimitBucket[],
  costs: readonly number[],
  tokenBuckets: readonly LimitBucket[] | undefined,
  tokens: number,
): Admission {
  const { levels } = result;
  if (result.taken) {
    const headers = tightestHeaders(buckets, levels, -1);
    const reservation: Reservation = { tokens, buckets: tokenBuckets ?? noBuckets, settled: false };
    return { ok: true, reservation, headers };
  }
  let refused = 0;
  let longest = -1;
  for (let i = 0; i < buckets.length; i++) {
    const wait = bucketWait(buckets[i]!, levels[i]!, costs[i]!);
    if (wait > longest) {
      longest = wait;
      refused = i;
    }
  }
  // At least 1 ms: a remote state can refuse on a clock a little behind ours.
  const retryAfterMs = longest >= 1 ? Math.ceil(longest) : 1;
  const headers = tightestHeaders(buckets, levels, refused);
  headers['retry-after'] = String(Math.ceil(retryAfterMs / 1000));
  const bucket = buckets[refused]!;
  return { ok: false, scope: bucket.scope, kind: bucket.kind, retryAfterMs, headers };
}

/**
 * Each kind's headers from its most constraining bucket: the refused one for its kind, otherwise
 * the one with the fewest tokens left, which is the limit a client meets first. Built as object
 * literals, one shape per combination, which V8 creates faster than a header at a time.
 */
function tightestHeaders(
  buckets: readonly LimitBucket[],
  levels: readonly number[],
  refused: number,
): RateLimitHeaders {
  let requests = -1;
  let tokens = -1;
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i]!.kind === 'requests') {
      if (requests === -1 || levels[i]! < levels[requests]!) requests = i;
    } else if (tokens === -1 || levels[i]! < levels[tokens]!) {
      tokens = i;
    }
  }
  if (refused !== -1) {
    if (buckets[refused]!.kind === 'requests') requests = refused;
    else tokens = refused;
  }
  if (tokens === -1) {
    const bucket = buckets[requests]!;
    const level = levels[requests]!;
    return {
      'x-ratelimit-limit-requests': bucket.limitHeader,
      'x-ratelimit-remaining-requests': remaining(level),
      'x-ratelimit-reset-requests': formatResetDuration(bucketResetMs(bucket, level)),
    };
  }
  const tokenBucket = buckets[tokens]!;
  const tokenLevel = levels[tokens]!;
  if (requests === -1) {
    return {
      'x-ratelimit-limit-tokens': tokenBucket.limitHeader,
      'x-ratelimit-remaining-tokens': remaining(tokenLevel),
      'x-ratelimit-reset-tokens': formatResetDuration(bucketResetMs(tokenBucket, tokenLevel)),
    };
  }
  const bucket = buckets[requests]!;
  const level = levels[requests]!;
  return {
    'x-ratelimit-limit-requests': bucket.limitHeader,
    'x-ratelimit-remaining-requests': remaining(level),
    'x-ratelimit-reset-requests': formatResetDuration(bucketResetMs(bucket, level)),
    'x-ratelimit-limit-tokens': tokenBucket.limitHeader,
    'x-ratelimit-remaining-tokens': remaining(tokenLevel),
    'x-ratelimit-reset-tokens': formatResetDuration(bucketResetMs(tokenBucket, tokenLevel)),
  };
}

function remaining(level: number): string {
  return level >= 1 ? String(Math.floor(level)) : '0';
}

/**
 * A duration as OpenAI's `x-ratelimit-reset-*` headers write it, which is Go's
 * time.Duration format at millisecond precision: "0s", "120ms", "1s", "1.5s", "6m0s", "1h2m3.5s".
 * https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
 */
export function formatResetDuration(milliseconds: number): string {
  const total = Math.ceil(milliseconds);
  if (!(total > 0)) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const wholeSeconds = Math.floor(millis / 1000);
  const fraction = millis % 1000;
  const seconds = fraction === 0 ? `${wholeSeconds}s` : `${wholeSeconds}.${millisecondDigits(fraction)}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** 1..999 ms as the digits after a decimal point, trailing zeros dropped: 500 → "5", 40 → "04". */
function millisecondDigits(milliseconds: number): string {
  if (milliseconds % 100 === 0) return String(milliseconds / 100);
  if (milliseconds % 10 === 0) return (milliseconds < 100 ? '0' : '') + String(milliseconds / 10);
  return (milliseconds < 10 ? '00' : milliseconds < 100 ? '0' : '') + String(milliseconds);
}
