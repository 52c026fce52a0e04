/** Enough resolution that the window slides smoothly, few enough that rolling it is cheap. */
const bucketCount = 10;

/**
 * Two counters over a sliding time window, such as requests and failures: a ring of time buckets
 * whose oldest empty as time moves on. Counting is O(1) and allocates nothing, so it suits the
 * request path (breakers, the retry budget).
 */
export class SlidingCounts {
  readonly #now: () => number;
  readonly #bucketWidth: number;
  /** Slot `period % bucketCount` holds the counts of that period. */
  readonly #firstBuckets = new Uint32Array(bucketCount);
  readonly #secondBuckets = new Uint32Array(bucketCount);
  #latestPeriod = -1;
  /** The first counter over the window. */
  first = 0;
  /** The second counter over the window. */
  second = 0;

  /** `window`: ms; `now`: the clock, performance.now by default. */
  constructor(window: number, now: () => number) {
    this.#now = now;
    this.#bucketWidth = window / bucketCount;
  }

  /** Counts one in the first counter and, when `alsoSecond`, one in the second. */
  add(alsoSecond: boolean): void {
    this.roll();
    const slot = this.#latestPeriod % bucketCount;
    this.#firstBuckets[slot]!++;
    this.first++;
    if (alsoSecond) {
      this.#secondBuckets[slot]!++;
      this.second++;
    }
  }

  /** Counts one in the second counter only. */
  addSecond(): void {
    this.roll();
    this.#secondBuckets[this.#latestPeriod % bucketCount]!++;
    this.second++;
  }

  clear(): void {
    this.#firstBuckets.fill(0);
    this.#secondBuckets.fill(0);
    this.#latestPeriod = -1;
    this.first = 0;
    this.second = 0;
  }

  /** Empties the buckets that slid out of the window since the last call; read counts after it. */
  roll(): void {
    const period = Math.floor(this.#now() / this.#bucketWidth);
    if (period <= this.#latestPeriod) return;
    // The slots of the periods since the last call still hold counts from a lap ago.
    for (let stale = Math.max(this.#latestPeriod + 1, period - bucketCount + 1); stale <= period; stale++) {
      const slot = stale % bucketCount;
      this.first -= this.#firstBuckets[slot]!;
      this.second -= this.#secondBuckets[slot]!;
      this.#firstBuckets[slot] = 0;
      this.#secondBuckets[slot] = 0;
    }
    this.#latestPeriod = period;
  }
}
