import { SlidingCounts } from './sliding-counts.js';

export interface RetryBudgetSettings {
  /** Retries allowed as a share of first attempts in the window. */
  readonly ratio: number;
  /** Retries per second always allowed, so a quiet gateway can still retry. */
  readonly minPerSecond: number;
  /** Length of the sliding window, ms. */
  readonly window: number;
}

export const retryBudgetDefaults = Object.freeze({
  ratio: 0.1,
  minPerSecond: 10,
  window: 10_000,
}) satisfies RetryBudgetSettings;

/**
 * Caps retries at a share of traffic across the whole gateway, as Envoy's and Finagle's retry
 * budgets do: when an upstream goes down, per-request retry limits alone multiply the load on it
 * (three attempts each triples it), while a budget keeps the extra load to `ratio`. Counting is
 * O(1) and allocates nothing.
 *
 * @example
 * const budget = new RetryBudget({ ratio: 0.2 });
 * budget.onRequest();
 * // … the attempt failed with a retryable error:
 * if (budget.tryRetry()) retry(); else fail();
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  /** Requests (first) and retries (second) over the window. */
  readonly #counts: SlidingCounts;

  constructor(settings: Partial<RetryBudgetSettings> = {}, now: () => number = () => performance.now()) {
    const { ratio, minPerSecond, window } = { ...retryBudgetDefaults, ...settings };
    this.#ratio = ratio;
    this.#floor = minPerSecond * (window / 1000);
    this.#counts = new SlidingCounts(window, now);
  }

  /** Counts a first attempt, which adds `ratio` of a retry to the budget. */
  onRequest(): void {
    this.#counts.add(false);
  }

  /** Whether the budget allows one more retry now; a true spends it. */
  tryRetry(): boolean {
    const counts = this.#counts;
    counts.roll();
    if (counts.second >= Math.max(this.#ratio * counts.first, this.#floor)) return false;
    counts.addSecond();
    return true;
  }
}
