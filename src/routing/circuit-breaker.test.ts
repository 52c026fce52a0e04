import { describe, expect, test } from 'vitest';
import { CircuitBreaker, type CircuitBreakerSettings, type CircuitState } from './circuit-breaker.js';

function setup(settings: Partial<CircuitBreakerSettings> = {}) {
  const clock = { time: 1_000 };
  const transitions: string[] = [];
  const breaker = new CircuitBreaker(
    {
      onStateChange: (from: CircuitState, to: CircuitState) => transitions.push(`${from} → ${to}`),
      ...settings,
    },
    () => clock.time,
  );
  return { breaker, clock, transitions };
}

function outcomes(breaker: CircuitBreaker, successes: number, failures: number): void {
  for (let i = 0; i < successes; i++) breaker.onSuccess();
  for (let i = 0; i < failures; i++) breaker.onFailure();
}

describe('CircuitBreaker', () => {
  test('a fresh breaker is closed and lets every request through', () => {
    const { breaker } = setup();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.retryAfter()).toBe(0);
  });

  test('opens once the failure rate reaches the threshold over at least minRequests', () => {
    const { breaker, transitions } = setup({ failureRate: 0.5, minRequests: 10, consecutiveFailures: 100 });
    outcomes(breaker, 5, 4);
    breaker.onSuccess();
    breaker.onFailure(); // 5 of 11 failed: below half
    expect(breaker.state).toBe('closed');
    breaker.onFailure(); // 6 of 12
    expect(breaker.state).toBe('open');
    expect(breaker.tryAcquire()).toBe(false);
    expect(transitions).toEqual(['closed → open']);
  });

  test('does not open on the failure rate below minRequests', () => {
    const { breaker } = setup({ minRequests: 10, consecutiveFailures: 100 });
    breaker.onSuccess();
    outcomes(breaker, 0, 8); // 8 of 9 failed, but only 9 requests
    expect(breaker.state).toBe('closed');
    breaker.onFailure();
    expect(breaker.state).toBe('open');
  });

  test('opens after consecutiveFailures in a row even below minRequests', () => {
    const { breaker } = setup({ minRequests: 100, consecutiveFailures: 3 });
    outcomes(breaker, 0, 2);
    breaker.onSuccess(); // breaks the run
    outcomes(breaker, 0, 2);
    expect(breaker.state).toBe('closed');
    breaker.onFailure();
    expect(breaker.state).toBe('open');
  });

  test('turns half-open once the cooldown has passed, and says how long until then', () => {
    const { breaker, clock, transitions } = setup({ consecutiveFailures: 1, cooldown: 30_000 });
    breaker.onFailure();
    expect(breaker.retryAfter()).toBe(30_000);
    clock.time += 29_999;
    expect(breaker.state).toBe('open');
    expect(breaker.retryAfter()).toBe(1);
    clock.time += 1;
    expect(breaker.state).toBe('half-open');
    expect(breaker.retryAfter()).toBe(0);
    expect(transitions).toEqual(['closed → open', 'open → half-open']);
  });

  test('a successful probe closes it', () => {
    const { breaker, clock, transitions } = setup({ consecutiveFailures: 1, cooldown: 1_000 });
    breaker.onFailure();
    clock.time += 1_000;
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onSuccess();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(true);
    expect(transitions).toEqual(['closed → open', 'open → half-open', 'half-open → closed']);
  });

  test('closing forgets the failures that opened it', () => {
    const { breaker, clock } = setup({ minRequests: 4, consecutiveFailures: 100, cooldown: 1_000 });
    outcomes(breaker, 0, 4);
    expect(breaker.state).toBe('open');
    clock.time += 1_000;
    breaker.tryAcquire();
    breaker.onSuccess();
    outcomes(breaker, 2, 1);
    expect(breaker.state).toBe('closed');
  });

  test('needs `probes` successes to close, and lets at most that many probes in flight', () => {
    const { breaker, clock } = setup({ consecutiveFailures: 1, cooldown: 1_000, probes: 2 });
    breaker.onFailure();
    clock.time += 1_000;
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.retryAfter()).toBeGreaterThan(0);
    breaker.onSuccess();
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onSuccess();
    expect(breaker.state).toBe('closed');
  });

  test('a failed probe re-opens it with the cooldown doubled, up to maxCooldown', () => {
    const { breaker, clock } = setup({ consecutiveFailures: 1, cooldown: 1_000, maxCooldown: 3_000 });
    breaker.onFailure();
    expect(breaker.retryAfter()).toBe(1_000);
    for (const expected of [2_000, 3_000, 3_000]) {
      clock.time += breaker.retryAfter();
      expect(breaker.tryAcquire()).toBe(true);
      breaker.onFailure();
      expect(breaker.state).toBe('open');
      expect(breaker.retryAfter()).toBe(expected);
    }
  });

  test('the cooldown starts over after the circuit closes', () => {
    const { breaker, clock } = setup({ consecutiveFailures: 1, cooldown: 1_000 });
    breaker.onFailure();
    clock.time += 1_000;
    breaker.tryAcquire();
    breaker.onFailure();
    expect(breaker.retryAfter()).toBe(2_000);
    clock.time += 2_000;
    breaker.tryAcquire();
    breaker.onSuccess();
    breaker.onFailure();
    expect(breaker.retryAfter()).toBe(1_000);
  });

  test('release frees a probe slot without counting an outcome', () => {
    const { breaker, clock } = setup({ consecutiveFailures: 1, cooldown: 1_000 });
    breaker.onFailure();
    clock.time += 1_000;
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false);
    breaker.release();
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
  });

  test('the window slides: failures older than the window are forgotten', () => {
    const { breaker, clock } = setup({ window: 10_000, minRequests: 10, consecutiveFailures: 100 });
    outcomes(breaker, 0, 9);
    clock.time += 11_000;
    outcomes(breaker, 5, 4);
    breaker.onSuccess(); // 4 of 10 in the window; all 13 failures would have opened it
    expect(breaker.state).toBe('closed');
  });

  test('the window slides bucket by bucket, keeping the recent part', () => {
    const { breaker, clock } = setup({ window: 10_000, minRequests: 4, consecutiveFailures: 100 });
    clock.time = 0;
    outcomes(breaker, 0, 1); // in the bucket [0, 1000)
    clock.time = 5_000;
    outcomes(breaker, 1, 0);
    clock.time = 10_500; // the first bucket has slid out; the success at 5 s remains
    outcomes(breaker, 0, 1);
    expect(breaker.state).toBe('closed');
    breaker.onFailure(); // 2 of 3 in the window: still below minRequests
    expect(breaker.state).toBe('closed');
    breaker.onSuccess();
    breaker.onFailure(); // 3 of 5
    expect(breaker.state).toBe('open');
  });

  test('outcomes of requests begun before it opened do not change an open circuit', () => {
    const { breaker } = setup({ consecutiveFailures: 1, cooldown: 1_000 });
    breaker.onFailure();
    breaker.onSuccess();
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    expect(breaker.retryAfter()).toBe(1_000);
  });

  test('reset closes it and forgets everything', () => {
    const { breaker } = setup({ consecutiveFailures: 2 });
    outcomes(breaker, 0, 2);
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.state).toBe('closed');
    breaker.onFailure();
    expect(breaker.state).toBe('closed');
  });
});
