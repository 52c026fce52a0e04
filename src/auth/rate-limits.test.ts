import { describe, expect, test } from 'vitest';
import { PromisedState } from '../../test/support/promised-state.js';
import {
  type Admission,
  type Admitted,
  formatResetDuration,
  type LimitScope,
  RateLimiter,
  type Refused,
} from './rate-limits.js';
import { type MaybePromise, MemoryState } from './shared-state.js';

/** The in-memory state answers at once; this unwraps its answer and fails if it did not. */
function now<T>(value: MaybePromise<T>): T {
  if (value instanceof Promise) throw new Error('expected a synchronous answer');
  return value;
}

function admitted(admission: Admission): Admitted {
  if (!admission.ok) throw new Error(`refused: ${admission.scope} ${admission.kind}`);
  return admission;
}

function refused(admission: Admission): Refused {
  if (admission.ok) throw new Error('admitted');
  return admission;
}

const key = (limit: LimitScope['limit']): LimitScope => ({ id: 'key:k1', limit });

describe('RateLimiter', () => {
  test('200 parallel requests against rpm=50 admit exactly 50', async () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ rpm: 50 })];
    const admissions = await Promise.all(
      Array.from({ length: 200 }, async () => limiter.admit({ scopes, estimatedTokens: 10, now: 1_000 })),
    );
    expect(admissions.filter((admission) => admission.ok)).toHaveLength(50);
  });

  test('200 parallel requests against rpm=50 admit exactly 50 through a state that answers later', async () => {
    const limiter = new RateLimiter(new PromisedState());
    const scopes = [{ id: 'global', limit: { rpm: 1_000 } }, key({ rpm: 50 })];
    const admissions = await Promise.all(
      Array.from({ length: 200 }, () => limiter.admit({ scopes, estimatedTokens: 10, now: 1_000 })),
    );
    expect(admissions.filter((admission) => admission.ok)).toHaveLength(50);
  });

  test('200 requests in a tight synchronous loop against rpm=50 admit exactly 50', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ rpm: 50 })];
    let admittedCount = 0;
    for (let i = 0; i < 200; i++) {
      if (now(limiter.admit({ scopes, estimatedTokens: 10, now: 1_000 })).ok) admittedCount++;
    }
    expect(admittedCount).toBe(50);
  });

  test('refills a request every 60/rpm seconds and says when the next one fits', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ rpm: 50 })]; // one request per 1.2 s
    for (let i = 0; i < 50; i++) admitted(now(limiter.admit({ scopes, estimatedTokens: 0, now: 0 })));
    const refusal = refused(now(limiter.admit({ scopes, estimatedTokens: 0, now: 0 })));
    expect(refusal).toMatchObject({ scope: 'key:k1', kind: 'requests', retryAfterMs: 1_200 });
    expect(refusal.headers['retry-after']).toBe('2');
    refused(now(limiter.admit({ scopes, estimatedTokens: 0, now: 1_199 })));
    admitted(now(limiter.admit({ scopes, estimatedTokens: 0, now: 1_200 })));
    refused(now(limiter.admit({ scopes, estimatedTokens: 0, now: 1_200 })));
    // A minute later the whole allowance is back.
    let later = 0;
    for (let i = 0; i < 60; i++)
      if (now(limiter.admit({ scopes, estimatedTokens: 0, now: 61_200 })).ok) later++;
    expect(later).toBe(50);
  });

  test('a request that used fewer tokens than reserved gives the rest back', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ tpm: 10_000 })];
    const first = admitted(now(limiter.admit({ scopes, estimatedTokens: 4_000, now: 0 })));
    expect(first.headers['x-ratelimit-remaining-tokens']).toBe('6000');
    expect(first.reservation.tokens).toBe(4_000);
    now(limiter.settle(first.reservation, 1_000, 0));
    const second = admitted(now(limiter.admit({ scopes, estimatedTokens: 0, now: 0 })));
    expect(second.headers['x-ratelimit-remaining-tokens']).toBe('9000');
  });

  test('a request that used more tokens than reserved leaves the bucket in debt, and the next waits', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ rpm: 100, tpm: 6_000 })]; // 100 tokens per second
    const first = admitted(now(limiter.admit({ scopes, estimatedTokens: 1_000, now: 0 })));
    now(limiter.settle(first.reservation, 7_000, 0)); // 1,000 below zero
    const refusal = refused(now(limiter.admit({ scopes, estimatedTokens: 500, now: 0 })));
    expect(refusal).toMatchObject({ scope: 'key:k1', kind: 'tokens', retryAfterMs: 15_000 });
    expect(refusal.headers).toMatchObject({
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '1m10s',
      'x-ratelimit-remaining-requests': '99',
      'retry-after': '15',
    });
    refused(now(limiter.admit({ scopes, estimatedTokens: 500, now: 14_999 })));
    const later = admitted(now(limiter.admit({ scopes, estimatedTokens: 500, now: 15_000 })));
    expect(later.headers['x-ratelimit-remaining-tokens']).toBe('0');
  });

  test('a stream reserves at the start and settles with its final usage at the end', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ tpm: 3_000 })]; // 50 tokens per second
    const stream = admitted(now(limiter.admit({ scopes, estimatedTokens: 2_000, now: 0 })));
    // While it streams, its reservation holds: another large request does not fit.
    expect(refused(now(limiter.admit({ scopes, estimatedTokens: 1_500, now: 2_000 }))).kind).toBe('tokens');
    const small = admitted(now(limiter.admit({ scopes, estimatedTokens: 500, now: 2_000 })));
    expect(small.headers['x-ratelimit-remaining-tokens']).toBe('600'); // 1,000 + 100 refilled − 500
    now(limiter.settle(small.reservation, 500, 2_000));
    // The stream ends after 10 s, its final usage chunk saying 300 tokens.
    now(limiter.settle(stream.reservation, 300, 10_000));
    const after = admitted(now(limiter.admit({ scopes, estimatedTokens: 0, now: 10_000 })));
    expect(after.headers['x-ratelimit-remaining-tokens']).toBe('2700'); // 600 + 400 refilled + 1,700 back
  });

  test('settles once: a second settle changes nothing', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ tpm: 1_000 })];
    const first = admitted(now(limiter.admit({ scopes, estimatedTokens: 600, now: 0 })));
    now(limiter.settle(first.reservation, 0, 0));
    now(limiter.settle(first.reservation, 0, 0));
    now(limiter.settle(first.reservation, 5_000, 0));
    const next = admitted(now(limiter.admit({ scopes, estimatedTokens: 100, now: 0 })));
    expect(next.headers['x-ratelimit-remaining-tokens']).toBe('900');
  });

  test('a failed request settled with 0 gives every reserved token back', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ tpm: 1_000 })];
    const failed = admitted(now(limiter.admit({ scopes, estimatedTokens: 1_000, now: 0 })));
    now(limiter.settle(failed.reservation, 0, 0));
    admitted(now(limiter.admit({ scopes, estimatedTokens: 1_000, now: 0 })));
  });

  test('a refusal by one scope takes nothing from the others', () => {
    const limiter = new RateLimiter(new MemoryState());
    const team: LimitScope = { id: 'team:t1', limit: { rpm: 1, tpm: 100_000 } };
    const keyScope = key({ rpm: 10, tpm: 10_000 });
    admitted(now(limiter.admit({ scopes: [team], estimatedTokens: 0, now: 0 })));
    const refusal = refused(now(limiter.admit({ scopes: [keyScope, team], estimatedTokens: 2_000, now: 0 })));
    expect(refusal).toMatchObject({ scope: 'team:t1', kind: 'requests', retryAfterMs: 60_000 });
    // The key's buckets are untouched: all 10 requests and 10,000 tokens remain.
    const alone = admitted(now(limiter.admit({ scopes: [keyScope], estimatedTokens: 0, now: 0 })));
    expect(alone.headers).toMatchObject({
      'x-ratelimit-remaining-requests': '9',
      'x-ratelimit-remaining-tokens': '10000',
    });
  });

  test('a refusal names the scope the request must wait longest for', () => {
    const limiter = new RateLimiter(new MemoryState());
    const model: LimitScope = { id: 'model:gpt-4o', limit: { tpm: 600 } }; // 10 per second
    const team: LimitScope = { id: 'team:t1', limit: { tpm: 60_000 } }; // 1,000 per second
    admitted(now(limiter.admit({ scopes: [team, model], estimatedTokens: 600, now: 0 })));
    const refusal = refused(now(limiter.admit({ scopes: [team, model], estimatedTokens: 60_000, now: 0 })));
    expect(refusal).toMatchObject({ scope: 'model:gpt-4o', kind: 'tokens', retryAfterMs: 60_000 });
    expect(refusal.headers['x-ratelimit-limit-tokens']).toBe('600');
  });

  test('headers describe the most constraining scope of each kind', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes: LimitScope[] = [
      { id: 'global', limit: { rpm: 10_000, tpm: 2_000_000 } },
      { id: 'model:gpt-4o', limit: { tpm: 30_000 } },
      { id: 'team:t1', limit: { rpm: 60 } },
      key({ rpm: 500, tpm: 100_000 }),
    ];
    const admission = admitted(now(limiter.admit({ scopes, estimatedTokens: 1_000, now: 0 })));
    expect(admission.headers).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '30000',
      'x-ratelimit-remaining-tokens': '29000',
      'x-ratelimit-reset-tokens': '2s',
    });
  });

  test('scopes without a limit cost nothing, and no limit at all admits with no headers', async () => {
    const limiter = new RateLimiter(new MemoryState());
    const none = admitted(now(limiter.admit({ scopes: [key({})], estimatedTokens: 1_000, now: 0 })));
    expect(none.headers).toEqual({});
    expect(now(limiter.settle(none.reservation, 50, 0))).toBeUndefined();
    const requestsOnly = admitted(
      now(limiter.admit({ scopes: [key({ rpm: 5 })], estimatedTokens: 1, now: 0 })),
    );
    expect(Object.keys(requestsOnly.headers)).toEqual([
      'x-ratelimit-limit-requests',
      'x-ratelimit-remaining-requests',
      'x-ratelimit-reset-requests',
    ]);
    const remote = new RateLimiter(new PromisedState());
    const settled = remote.settle(
      admitted(await remote.admit({ scopes: [], estimatedTokens: 1, now: 0 })).reservation,
      1,
      0,
    );
    expect(settled).toBeUndefined();
  });

  test('a changed limit applies to the next request', () => {
    const limiter = new RateLimiter(new MemoryState());
    admitted(now(limiter.admit({ scopes: [key({ rpm: 1 })], estimatedTokens: 0, now: 0 })));
    refused(now(limiter.admit({ scopes: [key({ rpm: 1 })], estimatedTokens: 0, now: 0 })));
    const raised = admitted(now(limiter.admit({ scopes: [key({ rpm: 3 })], estimatedTokens: 0, now: 0 })));
    expect(raised.headers['x-ratelimit-remaining-requests']).toBe('1');
  });

  test('a request estimated above the whole tpm limit is admitted once the bucket is full', () => {
    const limiter = new RateLimiter(new MemoryState());
    const scopes = [key({ tpm: 1_000 })];
    const big = admitted(now(limiter.admit({ scopes, estimatedTokens: 5_000, now: 0 })));
    expect(big.headers['x-ratelimit-remaining-tokens']).toBe('0');
    now(limiter.settle(big.reservation, 800, 0));
    const next = admitted(now(limiter.admit({ scopes, estimatedTokens: 100, now: 0 })));
    expect(next.headers['x-ratelimit-remaining-tokens']).toBe('100');
  });

  test('the limiter answers through promises when its state does', async () => {
    const limiter = new RateLimiter(new PromisedState());
    const scopes = [key({ rpm: 1, tpm: 1_000 })];
    const pending = limiter.admit({ scopes, estimatedTokens: 400, now: 0 });
    expect(pending).toBeInstanceOf(Promise);
    const first = admitted(await pending);
    await limiter.settle(first.reservation, 100, 0);
    const refusal = refused(await limiter.admit({ scopes, estimatedTokens: 400, now: 0 }));
    expect(refusal.kind).toBe('requests');
    expect(refusal.headers['x-ratelimit-remaining-tokens']).toBe('900');
  });

  test('a limit that is not a positive number is refused by name', () => {
    const limiter = new RateLimiter(new MemoryState());
    expect(() => limiter.admit({ scopes: [key({ rpm: 0 })], estimatedTokens: 0, now: 0 })).toThrow(
      'rate limit requests per minute of scope "key:k1" must be a positive number',
    );
  });
});

describe('formatResetDuration', () => {
  test.each([
    [0, '0s'],
    [-5, '0s'],
    [0.2, '1ms'],
    [120, '120ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [8_640, '8.64s'],
    [17_965, '17.965s'],
    [2_040, '2.04s'],
    [2_005, '2.005s'],
    [2_050, '2.05s'],
    [60_000, '1m0s'],
    [360_000, '6m0s'],
    [1_166_400, '19m26.4s'],
    [3_600_000, '1h0m0s'],
    [3_723_500, '1h2m3.5s'],
  ])('%d ms is "%s", as OpenAI writes it', (milliseconds, expected) => {
    expect(formatResetDuration(milliseconds)).toBe(expected);
  });
});
