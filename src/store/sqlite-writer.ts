import { Worker } from 'node:worker_threads';

// Rows per INSERT statement. Measured with libsql: one prepared statement of 50 rows costs about
// 6 µs a row, against 8 µs for single-row statements and 14 µs through Kysely, whose statement
// text (and so its prepare) changes with every batch size.
const rowsPerStatement = 50;

/**
 * Bulk inserts on a thread of their own. SQLite is synchronous: on the main thread a commit, and
 * above all a WAL checkpoint with its fsync, would stall every request in flight for
 * milliseconds. The thread has its own connection to the same file (WAL allows one writer beside
 * any number of readers), so the main thread keeps Kysely for migrations and queries.
 */
export class SqliteWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor(path: string) {
    this.#worker = new Worker(new URL('./sqlite-writer-worker.js', import.meta.url), {
      workerData: { path, rowsPerStatement },
    });
    this.#worker.on('message', (message: { id: number; error?: string }) => {
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error === undefined) pending?.resolve();
      else pending?.reject(new Error(`SQLite write failed: ${message.error}`));
    });
    this.#worker.on('error', (error) => this.#failAll(error));
    this.#worker.on('exit', (code) => {
      if (this.#pending.size > 0) this.#failAll(new Error(`SQLite writer thread exited (code ${code})`));
    });
  }

  /**
   * Inserts rows (objects holding at least `columns`) in one transaction. The rows cross to the
   * thread as one JSON string: structured clone of many small values measured about 5 µs a row
   * on the main thread, JSON.stringify well under one.
   */
  insert(table: string, columns: readonly string[], rows: readonly object[]): Promise<void> {
    return this.#send({ table, columns, rows: JSON.stringify(rows) });
  }

  async close(): Promise<void> {
    if (this.#failure === undefined) await this.#send({ close: true }).catch(() => undefined);
    await this.#worker.terminate();
  }

  #send(message: Record<string, unknown>): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...message });
    });
  }

  #failAll(error: Error): void {
    this.#failure = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
