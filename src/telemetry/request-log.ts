import type { Logger } from 'pino';
import type { Store } from '../store/database.js';
import type { RequestLogRow } from '../store/schema.js';
import { FlushTimer } from './flush-timer.js';

const maxRetained = 100_000;

export type RequestRecord = RequestLogRow;

export interface RequestLogOptions {
  readonly flushInterval: number;
  readonly batchSize: number;
}

/**
 * Collects request records and writes them to the store in batches, off the request path: a
 * request only appends to an array. A timer (or a full batch) triggers one multi-row insert.
 * On shutdown `close()` writes whatever is left. Records in memory when the process is killed
 * outright are lost — at most one flush interval's worth.
 */
export class RequestLog {
  #queue: RequestRecord[] = [];
  readonly #timer = new FlushTimer(() => void this.flush());
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly store: Store,
    private readonly options: RequestLogOptions,
    private readonly logger: Logger,
  ) {}

  append(record: RequestRecord): void {
    if (this.#closed) return;
    this.#queue.push(record);
    if (this.#queue.length === this.options.batchSize) this.#timer.schedule(0);
    else if (!this.#timer.pending) this.#timer.schedule(this.options.flushInterval);
  }

  /** Writes everything queued so far; resolves when it is in the store. */
  flush(): Promise<void> {
    this.#timer.cancel();
    const batch = this.#queue;
    if (batch.length === 0) return this.#writing;
    this.#queue = [];
    this.#writing = this.#writing.then(() => this.#write(batch));
    return this.#writing;
  }

  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  async #write(batch: RequestRecord[]): Promise<void> {
    try {
      await this.store.insertRequestLog(batch);
    } catch (error) {
      // Keep the records for the next flush (a locked or full disk may clear), but bounded, so
      // a store that stays broken cannot grow the queue without end.
      const room = this.#closed ? 0 : maxRetained - this.#queue.length;
      const retained = room > 0 ? batch.slice(-room) : [];
      this.#queue = retained.concat(this.#queue);
      this.logger.error(
        { err: error, records: batch.length, retained: retained.length },
        'request log write failed',
      );
      if (retained.length > 0) this.#timer.schedule(this.options.flushInterval);
    }
  }
}
