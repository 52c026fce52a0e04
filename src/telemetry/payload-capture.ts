import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Store } from '../store/database.js';
import type { Database, PayloadCaptureRow } from '../store/schema.js';
import { FlushTimer } from './flush-timer.js';
import { decrypt, encrypt, type KeyRing, payloadAad, type SealedPayload } from './payload-crypto.js';

const hour = 3_600_000;
// Rows deleted per statement when purging: each statement holds SQLite's write lock, and on the
// embedded store runs on the event loop, so a large purge goes in slices with requests between.
const purgeSlice = 500;

/**
 * What capture needs of the store: queries (reads, purges) and `insertPayloadCapture`, which
 * writes a batch on the store's writer thread as the request log does, so commits never block the
 * event loop. Rows are plain strings and numbers, so they cross to the thread as JSON.
 */
export type PayloadCaptureStore = Pick<Store, 'db' | 'insertPayloadCapture'>;

export interface PayloadCaptureOptions {
  /** New rows are encrypted with its current key. */
  readonly ring: KeyRing;
  /** Milliseconds a row is kept; `purge` deletes older ones. */
  readonly retention: number;
  /** Milliseconds between writes while rows wait; default 1000. */
  readonly flushInterval?: number;
  /** Rows that trigger a write at once; default 100. */
  readonly batchSize?: number;
  /**
   * Bytes of ciphertext that may wait in memory (default 64 MiB). Past it, exchanges are dropped,
   * counted and warned of: a store that cannot keep up must not take the gateway's memory.
   */
  readonly maxQueuedBytes?: number;
  /** The clock the purge timer reads; default Date.now. */
  readonly now?: () => number;
}

/** A captured exchange, decrypted. */
export interface CapturedExchange {
  readonly requestId: string;
  /** Milliseconds since the epoch. */
  readonly capturedAt: number;
  readonly keyId: string;
  /** The request body as received. */
  readonly request: Buffer;
  /** The response body as sent; for a stream, its text concatenated. */
  readonly response: Buffer;
}

/**
 * Prompt and response capture (issue 6), off unless configured. `capture` encrypts an exchange
 * (AES-256-GCM, see payload-crypto.ts) and queues it; a timer or a full batch writes the queue in
 * one transaction, off the request path, and `close()` writes what is left. `start()` runs a purge
 * every min(retention / 10, 1 h), so no row outlives its retention by more than a tenth of it.
 * Plaintext is never queued or stored: only ciphertext leaves `capture`.
 *
 * @example
 * const capture = new PayloadCapture(store, { ring: captureKeyRing(config.capture, process.env), retention: config.capture.retention }, logger);
 * capture.start();
 * capture.capture(requestId, requestBody, responseBody, Date.now());
 */
export class PayloadCapture {
  readonly #store: PayloadCaptureStore;
  readonly #ring: KeyRing;
  readonly #retention: number;
  readonly #flushInterval: number;
  readonly #batchSize: number;
  readonly #maxQueuedBytes: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  #queue: PayloadCaptureRow[] = [];
  #queuedBytes = 0;
  readonly #timer = new FlushTimer(() => void this.flush());
  #purgeTimer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #purging: Promise<number> | undefined;
  #dropped = 0;
  #warnedOfDrops = false;
  #closed = false;

  constructor(store: PayloadCaptureStore, options: PayloadCaptureOptions, logger: Logger) {
    this.#store = store;
    this.#ring = options.ring;
    this.#retention = options.retention;
    this.#flushInterval = options.flushInterval ?? 1000;
    this.#batchSize = options.batchSize ?? 100;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 64 * 1024 * 1024;
    this.#now = options.now ?? Date.now;
    this.#logger = logger;
  }

  /** Exchanges dropped because the queue was full, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Encrypts one exchange and queues it for the next write. Never throws for a full queue. */
  capture(requestId: string, request: Buffer, response: Buffer, now: number): void {
    if (this.#closed) return;
    const row = sealRow(requestId, request, response, now, this.#ring);
    const bytes = rowBytes(row);
    if (this.#queuedBytes + bytes > this.#maxQueuedBytes) {
      this.#drop(1, 'the capture queue is full: the store is not keeping up');
      return;
    }
    this.#queue.push(row);
    this.#queuedBytes += bytes;
    if (this.#queue.length >= this.#batchSize) this.#timer.schedule(0);
    else if (!this.#timer.pending) this.#timer.schedule(this.#flushInterval);
  }

  /** Writes everything queued so far; resolves when it is in the store. */
  flush(): Promise<void> {
    this.#timer.cancel();
    const batch = this.#queue;
    if (batch.length === 0) return this.#writing;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#writing = this.#writing.then(() => this.#write(batch));
    return this.#writing;
  }

  /** Starts the purge timer; the first purge runs at once. */
  start(): void {
    if (this.#purgeTimer !== undefined || this.#closed) return;
    void this.#purgeOnTimer();
    this.#purgeTimer = setInterval(() => void this.#purgeOnTimer(), purgeInterval(this.#retention));
    this.#purgeTimer.unref();
  }

  /** Deletes the rows captured before `now - retention`; resolves with how many. */
  purge(now: number): Promise<number> {
    return purgePayloadCaptures(this.#store.db, now - this.#retention);
  }

  /** The newest capture of a request, decrypted; see readPayloadCapture. */
  read(requestId: string, ring: KeyRing = this.#ring): Promise<CapturedExchange | undefined> {
    return readPayloadCapture(this.#store.db, requestId, ring);
  }

  /** Stops the purge timer and writes what is queued; later captures are ignored. */
  async close(): Promise<void> {
    if (this.#purgeTimer !== undefined) clearInterval(this.#purgeTimer);
    this.#purgeTimer = undefined;
    await this.#purging;
    // Closed first: a capture arriving now is ignored, and a failed final write is not retained
    // for a timer that would fire after the store is gone.
    this.#closed = true;
    await this.flush();
  }

  async #purgeOnTimer(): Promise<void> {
    // A slow purge is not stacked on by the next tick.
    if (this.#purging !== undefined) return;
    this.#purging = this.purge(this.#now());
    try {
      const deleted = await this.#purging;
      if (deleted > 0) this.#logger.info({ deleted }, 'payload capture purged rows past retention');
    } catch (error) {
      this.#logger.error({ err: error }, 'payload capture purge failed; the next one will retry');
    } finally {
      this.#purging = undefined;
    }
  }

  async #write(batch: PayloadCaptureRow[]): Promise<void> {
    try {
      await this.#store.insertPayloadCapture(batch);
      this.#warnedOfDrops = false;
    } catch (error) {
      // Keep the rows for the next flush (a locked or full disk may clear), within the same
      // bound as the queue, newest first; the older rows that do not fit are dropped and counted.
      const room = this.#closed ? 0 : this.#maxQueuedBytes - this.#queuedBytes;
      let first = batch.length;
      let bytes = 0;
      while (first > 0 && bytes + rowBytes(batch[first - 1]!) <= room) bytes += rowBytes(batch[--first]!);
      const retained = batch.slice(first);
      this.#queue = retained.concat(this.#queue);
      this.#queuedBytes += bytes;
      this.#logger.error(
        { err: error, rows: batch.length, retained: retained.length },
        'payload capture write failed',
      );
      if (first > 0) this.#drop(first, 'a capture write failed and the queue has no room to keep its rows');
      if (retained.length > 0 && !this.#timer.pending) this.#timer.schedule(this.#flushInterval);
    }
  }

  #drop(rows: number, reason: string): void {
    this.#dropped += rows;
    // One warning per run of drops, not one per request: the log must not become the next flood.
    if (this.#warnedOfDrops) return;
    this.#warnedOfDrops = true;
    this.#logger.warn(
      { dropped: this.#dropped, max_queued_bytes: this.#maxQueuedBytes },
      `payload capture dropping exchanges: ${reason}`,
    );
  }
}

/** How often `start()` purges: a tenth of the retention, at most an hour, at least a second. */
export function purgeInterval(retention: number): number {
  return Math.max(1000, Math.min(retention / 10, hour));
}

/**
 * The newest capture of `requestId` (a client may reuse an id), decrypted with `ring`; undefined
 * when there is none. Throws PayloadCryptoError when the ring lacks the row's key or the row fails
 * authentication.
 */
export async function readPayloadCapture(
  db: Kysely<Database>,
  requestId: string,
  ring: KeyRing,
): Promise<CapturedExchange | undefined> {
  const row = await db
    .selectFrom('payload_capture')
    .selectAll()
    .where('request_id', '=', requestId)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const half = (iv: string, tag: string, ciphertext: string): SealedPayload => ({
    keyId: row.key_id,
    iv: Buffer.from(iv, 'base64'),
    tag: Buffer.from(tag, 'base64'),
    ciphertext: Buffer.from(ciphertext, 'base64'),
  });
  return {
    requestId: row.request_id,
    capturedAt: Number(row.captured_at),
    keyId: row.key_id,
    request: decrypt(
      half(row.request_iv, row.request_tag, row.request_ct),
      ring,
      payloadAad(requestId, 'request'),
    ),
    response: decrypt(
      half(row.response_iv, row.response_tag, row.response_ct),
      ring,
      payloadAad(requestId, 'response'),
    ),
  };
}

/**
 * Deletes the captures made before `before` (milliseconds since the epoch), a slice at a time,
 * letting other work run between slices; resolves with how many. Needs no key.
 */
export async function purgePayloadCaptures(db: Kysely<Database>, before: number): Promise<number> {
  let deleted = 0;
  for (;;) {
    const result = await db
      .deleteFrom('payload_capture')
      .where('seq', 'in', (eb) =>
        eb
          .selectFrom('payload_capture')
          .select('seq')
          .where('captured_at', '<', before)
          .orderBy('seq')
          .limit(purgeSlice),
      )
      .executeTakeFirst();
    const count = Number(result.numDeletedRows);
    deleted += count;
    if (count < purgeSlice) return deleted;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Encrypts both halves of an exchange into the row that stores them. */
export function sealRow(
  requestId: string,
  request: Buffer,
  response: Buffer,
  capturedAt: number,
  ring: KeyRing,
): PayloadCaptureRow {
  const sealedRequest = encrypt(request, ring, payloadAad(requestId, 'request'));
  const sealedResponse = encrypt(response, ring, payloadAad(requestId, 'response'));
  return {
    request_id: requestId,
    captured_at: capturedAt,
    key_id: sealedRequest.keyId,
    request_iv: sealedRequest.iv.toString('base64'),
    request_tag: sealedRequest.tag.toString('base64'),
    request_ct: sealedRequest.ciphertext.toString('base64'),
    response_iv: sealedResponse.iv.toString('base64'),
    response_tag: sealedResponse.tag.toString('base64'),
    response_ct: sealedResponse.ciphertext.toString('base64'),
  };
}

function rowBytes(row: PayloadCaptureRow): number {
  return row.request_ct.length + row.response_ct.length;
}
