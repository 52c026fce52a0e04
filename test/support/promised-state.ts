import {
  type Bucket,
  type Counter,
  MemoryState,
  type SharedState,
  type TakeResult,
} from '../../src/auth/shared-state.js';

/**
 * Stands in for a remote shared state (Redis): every operation answers through a promise, and is
 * still applied as one atomic step, as a Lua script would be. The conformance suite runs against
 * it beside MemoryState, and the stages that must refuse an asynchronous state are tested with it.
 */
export class PromisedState implements SharedState {
  readonly #inner = new MemoryState();
  take(buckets: readonly Bucket[], costs: readonly number[], now: number): Promise<TakeResult> {
    return Promise.resolve().then(() => this.#inner.take(buckets, costs, now));
  }
  adjust(buckets: readonly Bucket[], amounts: readonly number[], now: number): Promise<void> {
    return Promise.resolve().then(() => this.#inner.adjust(buckets, amounts, now));
  }
  add(counters: readonly Counter[], amount: number, now: number): Promise<void> {
    return Promise.resolve().then(() => this.#inner.add(counters, amount, now));
  }
  raise(counters: readonly Counter[], values: readonly number[], now: number): Promise<void> {
    return Promise.resolve().then(() => this.#inner.raise(counters, values, now));
  }
  read(keys: readonly string[], now: number): Promise<readonly number[]> {
    return Promise.resolve().then(() => this.#inner.read(keys, now));
  }
}
