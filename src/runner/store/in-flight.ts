import { ModelStoreError } from './errors.js';

interface SharedTask<Value, Progress> {
  readonly controller: AbortController;
  readonly listeners: Set<(progress: Progress) => void>;
  readonly promise: Promise<Value>;
  waiters: number;
}

/**
 * Runs at most one task per key; callers that arrive while it runs join it and receive the same
 * value. Each caller keeps its own AbortSignal: a caller that aborts stops waiting, and the task
 * itself is aborted only when its last caller has left. Progress reaches every caller still waiting.
 */
export class SharedTasks<Value, Progress> {
  readonly #tasks = new Map<string, SharedTask<Value, Progress>>();

  run(
    key: string,
    start: (signal: AbortSignal, report: (progress: Progress) => void) => Promise<Value>,
    caller: {
      signal?: AbortSignal | undefined;
      onProgress?: ((progress: Progress) => void) | undefined;
    } = {},
  ): Promise<Value> {
    const { signal, onProgress } = caller;
    if (signal?.aborted) {
      return Promise.reject(new ModelStoreError('aborted', 'The pull was cancelled before it started.'));
    }
    let task = this.#tasks.get(key);
    if (task === undefined) task = this.#start(key, start);
    const joined = task;
    joined.waiters += 1;
    if (onProgress) joined.listeners.add(onProgress);

    return new Promise<Value>((resolve, reject) => {
      const leave = () => {
        joined.waiters -= 1;
        if (onProgress) joined.listeners.delete(onProgress);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        if (joined.waiters > 1) {
          leave();
          reject(abortedWhileWaiting());
          return;
        }
        // The last caller aborts the work and waits for it to wind down, so that when its promise
        // settles the partial file is closed and a new attempt can resume from it.
        if (this.#tasks.get(key) === joined) this.#tasks.delete(key);
        joined.controller.abort(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      joined.promise.then(
        (value) => {
          leave();
          resolve(value);
        },
        (error: unknown) => {
          leave();
          reject(error);
        },
      );
    });
  }

  /** Keys of the tasks running now. */
  get keys(): string[] {
    return [...this.#tasks.keys()];
  }

  #start(
    key: string,
    start: (signal: AbortSignal, report: (progress: Progress) => void) => Promise<Value>,
  ): SharedTask<Value, Progress> {
    const controller = new AbortController();
    const listeners = new Set<(progress: Progress) => void>();
    const report = (progress: Progress) => {
      for (const listener of listeners) listener(progress);
    };
    const promise = Promise.resolve()
      .then(() => start(controller.signal, report))
      .finally(() => {
        if (this.#tasks.get(key) === task) this.#tasks.delete(key);
      });
    // Callers attach their own handlers; this one only keeps a task whose callers all left from
    // becoming an unhandled rejection.
    promise.catch(() => {});
    const task: SharedTask<Value, Progress> = { controller, listeners, promise, waiters: 0 };
    this.#tasks.set(key, task);
    return task;
  }
}

function abortedWhileWaiting(): ModelStoreError {
  return new ModelStoreError(
    'aborted',
    'The pull was cancelled. Another pull of the same model may still be downloading it; run the pull again to join or resume it.',
  );
}

/**
 * Runs functions one at a time per key, in arrival order, within this process. Keys are usually
 * absolute paths.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<Value>(key: string, body: () => Promise<Value>): Promise<Value> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await body();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
