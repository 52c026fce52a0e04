/**
 * The timer of a batched writer (the request log, the usage ledger, payload capture): at most one
 * flush pending, moved earlier when a batch fills, and unref'd so that it never keeps the process
 * alive; `close()` flushes what is left.
 *
 * @example
 * const timer = new FlushTimer(() => void this.flush());
 * if (full) timer.schedule(0); else if (!timer.pending) timer.schedule(interval);
 */
export class FlushTimer {
  readonly #flush: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(flush: () => void) {
    this.#flush = flush;
  }

  /** Whether a flush is scheduled. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /** Runs the flush in `delay` ms, replacing one already scheduled. */
  schedule(delay: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, delay);
    this.#timer.unref();
  }

  /** Drops the scheduled flush, for a flush that runs now. */
  cancel(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
