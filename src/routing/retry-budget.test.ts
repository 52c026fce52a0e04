import { describe, expect, test } from 'vitest';
import { RetryBudget } from './retry-budget.js';

function retriesGranted(budget: RetryBudget, wanted: number): number {
  let granted = 0;
  for (let i = 0; i < wanted; i++) if (budget.tryRetry()) granted++;
  return granted;
}

describe('RetryBudget', () => {
  test('when every request wants a retry, about ratio of them get one', () => {
    const clock = { time: 0 };
    const budget = new RetryBudget({ ratio: 0.1, minPerSecond: 1, window: 10_000 }, () => clock.time);
    let granted = 0;
    for (let i = 0; i < 1_000; i++) {
      clock.time = i; // all within one second of the window
      budget.onRequest();
      if (budget.tryRetry()) granted++;
    }
    // The floor (1/s × 10 s) lets the first few through; after that, one retry per ten requests.
    expect(granted).toBeGreaterThanOrEqual(100);
    expect(granted).toBeLessThanOrEqual(100 + 10);
  });

  test('a burst of retries after the requests is capped at the ratio', () => {
    const budget = new RetryBudget({ ratio: 0.1, minPerSecond: 10, window: 10_000 }, () => 0);
    for (let i = 0; i < 10_000; i++) budget.onRequest();
    expect(retriesGranted(budget, 10_000)).toBe(1_000);
  });

  test('a quiet gateway still gets the floor of minPerSecond × window', () => {
    const budget = new RetryBudget({ ratio: 0.1, minPerSecond: 10, window: 10_000 }, () => 0);
    budget.onRequest();
    expect(retriesGranted(budget, 1_000)).toBe(100);
  });

  test('the defaults allow 10% with a floor of 10 per second over 10 seconds', () => {
    const budget = new RetryBudget({}, () => 0);
    for (let i = 0; i < 5_000; i++) budget.onRequest();
    expect(retriesGranted(budget, 1_000)).toBe(500);
  });

  test('the window slides: retries spent long ago are forgotten, and so are old requests', () => {
    const clock = { time: 0 };
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0.1, window: 10_000 }, () => clock.time);
    for (let i = 0; i < 100; i++) budget.onRequest();
    expect(retriesGranted(budget, 100)).toBe(50);

    clock.time = 5_000; // half a window on: the spent retries still count
    for (let i = 0; i < 10; i++) budget.onRequest();
    expect(retriesGranted(budget, 10)).toBe(5);

    clock.time = 10_500; // the first bucket has slid out with its 100 requests and 50 retries
    expect(retriesGranted(budget, 10)).toBe(0); // 5 spent of 0.5 × 10
    for (let i = 0; i < 20; i++) budget.onRequest();
    expect(retriesGranted(budget, 100)).toBe(10);

    clock.time = 100_000; // long idle: only the floor of 0.1/s × 10 s is left
    expect(retriesGranted(budget, 10)).toBe(1);
  });
});
