/** Thrown when every slot is busy and the wait queue is full: the caller should retry later. */
export class ModelOverloadedError extends Error {
  override readonly name = 'ModelOverloadedError';
  readonly code = 'model_overloaded';
  constructor(
    readonly model: string,
    readonly running: number,
    readonly waiting: number,
    /** A hint for Retry-After, in whole seconds. */
    readonly retryAfterSeconds: number,
  ) {
    super(
      `Model ${model} is busy: ${running} running and ${waiting} waiting, as many as it queues. Retry after ${retryAfterSeconds} s.`,
    );
  }
}

interface Waiter {
  readonly grant: (release: () => void) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * At most `slots` holders at once, at most `maxQueue` waiting in arrival order; beyond that
 * `acquire` rejects at once with `ModelOverloadedError`, so a flood turns into quick 503s rather
 * than unbounded latency. An aborted waiter leaves the queue at once, and a release hands its slot
 * straight to the next waiter.
 */
export class SlotQueue {
  readonly #model: string;
  readonly #slots: number;
  readonly #maxQueue: number;
  readonly #waiters: Waiter[] = [];
  #running = 0;

  constructor(options: { model: string; slots: number; maxQueue: number }) {
    if (!Number.isInteger(options.slots) || options.slots < 1) {
      throw new RangeError(`slots must be a positive integer, not ${options.slots}`);
    }
    if (!Number.isInteger(options.maxQueue) || options.maxQueue < 0) {
      throw new RangeError(`maxQueue must be a non-negative integer, not ${options.maxQueue}`);
    }
    this.#model = options.model;
    this.#slots = options.slots;
    this.#maxQueue = options.maxQueue;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves with a release function, to be called exactly once (later calls do nothing). */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#slots) {
      this.#running++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiters.length >= this.#maxQueue) {
      const retryAfter = Math.max(1, Math.ceil(this.#waiters.length / this.#slots));
      return Promise.reject(
        new ModelOverloadedError(this.#model, this.#running, this.#waiters.length, retryAfter),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index !== -1) this.#waiters.splice(index, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next === undefined) {
        this.#running--;
        return;
      }
      // The slot passes straight to the next waiter: `running` stays the same.
      next.signal?.removeEventListener('abort', next.onAbort);
      next.grant(this.#releaser());
    };
  }
}
