/**
 * The state that must be one across every gateway replica: token buckets for rate limits and
 * counters for budget spend now, breaker state and queue signals as they move here. In memory for
 * a single process (this file), on Redis for scale-out (DESIGN.md, "Interfaces with two
 * implementations"), where a limit kept per replica would become limit × replicas.
 *
 * Every operation names all the buckets or counters it touches and is applied as one atomic step,
 * so that a Redis implementation is one Lua script per call (EVALSHA: the keys as KEYS,
 * capacities, intervals, costs, amounts and the time as ARGV) and two replicas can never both
 * spend the last token.
 */

/**
 * A value now (the in-memory state) or later (Redis). Operations return `MaybePromise` rather than
 * always a promise so that the embedded gateway pays no microtask hop per request and a tight
 * synchronous loop sees each result at once; a caller that does not care awaits either. Callers
 * that branch test `instanceof Promise`, as the rate limiter does.
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * One token bucket: it holds up to `capacity` tokens and refills at `capacity / interval` per
 * millisecond, so a rate limit of N per minute is `{ capacity: N, interval: 60_000 }`.
 *
 * A token bucket rather than a sliding-window counter: its state is two numbers (level and the
 * time it was last read), so one Redis hash per bucket and O(1) per check; it is exact under
 * concurrency (N simultaneous requests against N per minute admit exactly N, where a sliding
 * window's interpolation between windows lets a burst through at the edge); and a level is a
 * balance that can be charged or refunded after the fact, even into debt, which a tpm limit needs
 * because a request's real token count is known only once it ends. A full bucket is the same as
 * an absent one, which makes eviction lossless.
 */
export interface Bucket {
  /** Names the bucket across replicas, e.g. "rate:key:k1:tokens"; one bucket per key. */
  readonly key: string;
  /** Tokens a full bucket holds: the largest burst. A positive number. */
  readonly capacity: number;
  /** Milliseconds to refill from empty to full. A positive number. */
  readonly interval: number;
}

/**
 * One counter: a number that grows by `add` and `raise` (nothing lowers it) until `expiresAt`; from then
 * on reads as 0 as if it had never been (an absent counter is 0, which makes expiry lossless).
 * Budgets keep spend in one counter per key or team and calendar period, named for the period
 * and expiring once it is over, so nothing ever resets a counter and no replica needs to agree
 * with another about when a period rolled over.
 */
export interface Counter {
  /** Names the counter across replicas, e.g. "spend:key:k1:day:2025-06-11". */
  readonly key: string;
  /** When the counter goes, in milliseconds on the state's clock (PEXPIREAT on Redis). */
  readonly expiresAt: number;
}

export interface TakeResult {
  /** Whether every bucket gave its cost; when false none gave anything. */
  readonly taken: boolean;
  /**
   * Each bucket's level after the operation, in the order asked: after taking when `taken`, as
   * it stands otherwise. Remaining tokens, the time to full and the time to hold a cost all
   * follow from a level and its bucket (see `bucketWait`, `bucketResetMs`).
   */
  readonly levels: readonly number[];
}

/**
 * Where the buckets and counters live. Times are milliseconds on one clock shared by every caller
 * of a state (Date.now() across replicas; a Redis implementation may use the server's TIME
 * instead, which removes replica clock skew). Keys in one call should be distinct; a repeated key
 * is taken from (or added to) twice in order. A key names a bucket or a counter, never both: on
 * Redis they share one keyspace.
 *
 * @example
 * const state: SharedState = new MemoryState();
 * const perMinute: Bucket = { key: 'rate:key:k1:requests', capacity: 50, interval: 60_000 };
 * const tokens: Bucket = { key: 'rate:key:k1:tokens', capacity: 10_000, interval: 60_000 };
 * const result = await state.take([perMinute, tokens], [1, 1_500], Date.now());
 * if (result.taken) {
 *   // … the request ran and used 900 tokens: give back the 600 reserved beyond that.
 *   await state.adjust([tokens], [600], Date.now());
 * }
 *
 * // Spend: one counter per period, gone once the period is over (and a margin).
 * const today: Counter = { key: 'spend:key:k1:day:2025-06-11', expiresAt: Date.parse('2025-06-12T01:00Z') };
 * const month: Counter = { key: 'spend:key:k1:month:2025-06', expiresAt: Date.parse('2025-07-01T01:00Z') };
 * await state.add([today, month], 0.0042, Date.now());
 * const [spentToday, spentThisMonth] = await state.read([today.key, month.key], Date.now());
 */
export interface SharedState {
  /**
   * Takes `costs[i]` from `buckets[i]` for every i, or nothing from any. A bucket gives when it
   * holds at least its cost, or, for a cost larger than its capacity, when it is full: such a
   * cost could otherwise never be taken, so it is allowed once and leaves the bucket in debt.
   * A bucket never seen before is full.
   */
  take(buckets: readonly Bucket[], costs: readonly number[], now: number): MaybePromise<TakeResult>;

  /**
   * Adds `amounts[i]` to `buckets[i]` unconditionally: a positive amount refunds (never above
   * capacity), a negative one charges and may leave the level below zero, so that later takes
   * wait until the debt has refilled.
   */
  adjust(buckets: readonly Bucket[], amounts: readonly number[], now: number): MaybePromise<void>;

  /**
   * Adds `amount` to every counter and sets each one's expiry to its `expiresAt`; a counter absent
   * or expired by `now` starts from 0. On Redis: INCRBYFLOAT and PEXPIREAT per key, in one script.
   */
  add(counters: readonly Counter[], amount: number, now: number): MaybePromise<void>;

  /**
   * Raises each counter to at least `values[i]` and sets its expiry; one already higher keeps its
   * value. Idempotent, so that restoring counters from a slower record (the usage ledger) twice,
   * or on a replica starting beside running ones, neither counts anything twice nor loses what
   * was counted since the record was written. On Redis: GET, compare and SET … PXAT, in one script.
   */
  raise(counters: readonly Counter[], values: readonly number[], now: number): MaybePromise<void>;

  /** Each counter's value, in the order asked; 0 for one never added to or expired by `now` (MGET). */
  read(keys: readonly string[], now: number): MaybePromise<readonly number[]>;
}

/**
 * A millionth of a token: levels refilled a millisecond at a time gather floating-point error
 * (0.9999999999999998 where 1 is due), and a request must not wait a millisecond more for it.
 * Well above the rounding error of any real limit (under 1e-7 up to a billion per minute).
 */
export const levelTolerance = 1e-6;

/** Milliseconds until a bucket at `level` can give `cost` (0 when it can now), per `take`'s rule. */
export function bucketWait(bucket: Bucket, level: number, cost: number): number {
  const need = cost < bucket.capacity ? cost : bucket.capacity;
  return level + levelTolerance >= need ? 0 : ((need - level) * bucket.interval) / bucket.capacity;
}

/** Milliseconds until a bucket at `level` is full again, with nothing more taken. */
export function bucketResetMs(bucket: Bucket, level: number): number {
  return level >= bucket.capacity ? 0 : ((bucket.capacity - level) * bucket.interval) / bucket.capacity;
}

interface CounterEntry {
  readonly key: string;
  value: number;
  expiresAt: number;
}

interface Entry {
  readonly key: string;
  level: number;
  /** When `level` was last brought up to date. */
  at: number;
  capacity: number;
  interval: number;
}

/**
 * The in-memory `SharedState`, for one process: synchronous and allocation-light, since every
 * request crosses it. Buckets that have refilled and counters that have expired are evicted a few
 * at a time as calls come (a full bucket and an expired counter are the same as none), so a key
 * seen once does not stay in memory for ever and no timer is needed; `sweep` does a whole pass at
 * once.
 */
export class MemoryState implements SharedState {
  readonly #entries = new Map<string, Entry>();
  readonly #counters = new Map<string, CounterEntry>();
  /** Where incremental eviction has got to; a Map iterator sees later inserts and deletions. */
  #cursor: MapIterator<Entry> | undefined;
  #counterCursor: MapIterator<CounterEntry> | undefined;

  /** Buckets and counters held now, full and expired ones not yet evicted included. */
  get size(): number {
    return this.#entries.size + this.#counters.size;
  }

  take(buckets: readonly Bucket[], costs: readonly number[], now: number): TakeResult {
    const count = buckets.length;
    const levels = new Array<number>(count);
    let created = 0;
    for (let i = 0; i < count; i++) {
      const bucket = buckets[i]!;
      const cost = costs[i]!;
      let entry = this.#entries.get(bucket.key);
      if (entry === undefined) {
        entry = newEntry(bucket, now);
        this.#entries.set(bucket.key, entry);
        created++;
      }
      refill(entry, bucket, now);
      if (entry.level + levelTolerance < (cost < entry.capacity ? cost : entry.capacity)) {
        for (let j = i - 1; j >= 0; j--) this.#entries.get(buckets[j]!.key)!.level += costs[j]!;
        for (let j = 0; j < count; j++) levels[j] = this.#levelOf(buckets[j]!, now);
        this.#sweepSome(now, created + 1);
        return { taken: false, levels };
      }
      entry.level -= cost;
      levels[i] = entry.level;
    }
    this.#sweepSome(now, created + 1);
    return { taken: true, levels };
  }

  adjust(buckets: readonly Bucket[], amounts: readonly number[], now: number): void {
    let created = 0;
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i]!;
      const amount = amounts[i]!;
      let entry = this.#entries.get(bucket.key);
      if (entry === undefined) {
        // A refund to a full bucket changes nothing; only a charge needs an entry.
        if (amount >= 0) continue;
        entry = newEntry(bucket, now);
        this.#entries.set(bucket.key, entry);
        created++;
      }
      refill(entry, bucket, now);
      const level = entry.level + amount;
      entry.level = level > entry.capacity ? entry.capacity : level;
    }
    this.#sweepSome(now, created + 1);
  }

  add(counters: readonly Counter[], amount: number, now: number): void {
    let created = 0;
    for (let i = 0; i < counters.length; i++) {
      const counter = counters[i]!;
      const entry = this.#counters.get(counter.key);
      if (entry === undefined) {
        this.#counters.set(counter.key, { key: counter.key, value: amount, expiresAt: counter.expiresAt });
        created++;
      } else {
        entry.value = entry.expiresAt <= now ? amount : entry.value + amount;
        entry.expiresAt = counter.expiresAt;
      }
    }
    this.#sweepCounters(now, created + 1);
  }

  raise(counters: readonly Counter[], values: readonly number[], now: number): void {
    let created = 0;
    for (let i = 0; i < counters.length; i++) {
      const counter = counters[i]!;
      const value = values[i]!;
      const entry = this.#counters.get(counter.key);
      if (entry === undefined) {
        // Raising an absent counter to 0 or less changes nothing it reads.
        if (!(value > 0)) continue;
        this.#counters.set(counter.key, { key: counter.key, value, expiresAt: counter.expiresAt });
        created++;
      } else {
        const current = entry.expiresAt <= now ? 0 : entry.value;
        entry.value = value > current ? value : current;
        entry.expiresAt = counter.expiresAt;
      }
    }
    this.#sweepCounters(now, created + 1);
  }

  read(keys: readonly string[], now: number): readonly number[] {
    const count = keys.length;
    const values = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const entry = this.#counters.get(keys[i]!);
      values[i] = entry === undefined || entry.expiresAt <= now ? 0 : entry.value;
    }
    this.#sweepCounters(now, 1);
    return values;
  }

  /** Evicts every bucket that has refilled and every counter expired by `now`; returns how many went. */
  sweep(now: number): number {
    let evicted = 0;
    for (const entry of this.#entries.values()) {
      if (isFull(entry, now)) {
        this.#entries.delete(entry.key);
        evicted++;
      }
    }
    for (const entry of this.#counters.values()) {
      if (isExpired(entry, now)) {
        this.#counters.delete(entry.key);
        evicted++;
      }
    }
    return evicted;
  }

  #levelOf(bucket: Bucket, now: number): number {
    const entry = this.#entries.get(bucket.key);
    if (entry === undefined) return bucket.capacity;
    refill(entry, bucket, now);
    return entry.level;
  }

  /**
   * Looks at `steps` buckets past the cursor and evicts the full ones. One step per call plus
   * one per bucket the call created keeps the map within a small multiple of the buckets used in
   * the last interval, however many distinct keys come and go.
   */
  #sweepSome(now: number, steps: number): void {
    this.#cursor = sweepSome(this.#entries, this.#cursor, steps, isFull, now);
  }

  /** As `#sweepSome`, for counters: within a small multiple of those not yet expired. */
  #sweepCounters(now: number, steps: number): void {
    this.#counterCursor = sweepSome(this.#counters, this.#counterCursor, steps, isExpired, now);
  }
}

/**
 * Looks at `steps` entries past `cursor`, evicting those `evictable` at `now`, and answers where
 * it got to. The predicate takes `now` rather than closing over it, so a call allocates nothing.
 */
function sweepSome<E extends { readonly key: string }>(
  entries: Map<string, E>,
  cursor: MapIterator<E> | undefined,
  steps: number,
  evictable: (entry: E, now: number) => boolean,
  now: number,
): MapIterator<E> | undefined {
  while (steps-- > 0 && entries.size > 0) {
    let next = cursor?.next();
    if (next === undefined || next.done === true) {
      // Start the next pass at once, so that a pass's end costs no step.
      cursor = entries.values();
      next = cursor.next();
      if (next.done === true) break;
    }
    if (evictable(next.value, now)) entries.delete(next.value.key);
  }
  return cursor;
}

function isExpired(entry: CounterEntry, now: number): boolean {
  return entry.expiresAt <= now;
}

function newEntry(bucket: Bucket, now: number): Entry {
  const { key, capacity, interval } = bucket;
  return { key, level: capacity, at: now, capacity, interval };
}

/**
 * Brings an entry up to `now` under the bucket's current capacity and interval. A changed
 * capacity (a limit edited) keeps what was used: 10 used of 100 is 40 left of 50, or 190 of 200,
 * so a full bucket stays full, as eviction assumes.
 */
function refill(entry: Entry, bucket: Bucket, now: number): void {
  if (entry.capacity !== bucket.capacity || entry.interval !== bucket.interval) {
    entry.level += bucket.capacity - entry.capacity;
    entry.capacity = bucket.capacity;
    entry.interval = bucket.interval;
  }
  // A clock that stepped back refills nothing rather than draining the bucket.
  if (now <= entry.at) return;
  entry.level = refilled(entry, now);
  entry.at = now;
}

/**
 * The level at `now`. Multiplying before dividing keeps whole refills exact in floating point
 * (15,060 ms at 1,000 per minute is 251 tokens, not 250.99999999999997).
 */
function refilled(entry: Entry, now: number): number {
  if (now <= entry.at) return entry.level;
  const level = entry.level + ((now - entry.at) * entry.capacity) / entry.interval;
  return level > entry.capacity ? entry.capacity : level;
}

function isFull(entry: Entry, now: number): boolean {
  return refilled(entry, now) + levelTolerance >= entry.capacity;
}
