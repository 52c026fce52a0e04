import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../store/database.js';
import type { PayloadCaptureRow } from '../store/schema.js';
import { PayloadCapture, purgeInterval, readPayloadCapture } from './payload-capture.js';
import { KeyRing, PayloadCryptoError } from './payload-crypto.js';

const marker = 'ZEBRA-MARMALADE-7731';
const key1 = randomBytes(32);
const key2 = randomBytes(32);
const ring1 = new KeyRing({ current: { id: 'k1', key: key1 } });
const minute = 60_000;
const t0 = Date.UTC(2030, 0, 1);

const requestBody = Buffer.from(
  JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `my card is ${marker}` }] }),
);
const responseBody = Buffer.from(
  `data: {"choices":[{"delta":{"content":"noted: ${marker}"}}]}\n\ndata: [DONE]\n\n`,
);

let directory: string;
let path: string;
let store: Store;

/** A logger whose lines the test can read. */
function recordingLogger() {
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const waiting: { msg: string; resolve: () => void }[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const entry = JSON.parse(line);
        lines.push(entry);
        for (const waiter of waiting.filter((candidate) => candidate.msg === entry.msg)) {
          waiting.splice(waiting.indexOf(waiter), 1);
          waiter.resolve();
        }
      },
    },
  );
  const next = (msg: string) => new Promise<void>((resolve) => waiting.push({ msg, resolve }));
  return { logger, lines, next };
}

const silent = pino({ level: 'silent' });

async function rows(): Promise<Record<string, unknown>[]> {
  const result = await sql<Record<string, unknown>>`select * from payload_capture order by seq`.execute(
    store.db,
  );
  return result.rows;
}

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-capture-'));
  path = join(directory, 'switchyard.db');
  store = await openStore(path);
});

afterEach(async () => {
  vi.useRealTimers();
  await store.close();
  await rm(directory, { recursive: true, force: true });
});

describe('PayloadCapture at rest', () => {
  it('stores no plaintext in any column, nor anywhere in the database files', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention: 30 * minute }, silent);
    capture.capture('request-1', requestBody, responseBody, t0);
    await capture.close();

    const [row] = await rows();
    expect(Object.keys(row!).sort()).toEqual(
      [
        'captured_at',
        'key_id',
        'request_ct',
        'request_id',
        'request_iv',
        'request_tag',
        'response_ct',
        'response_iv',
        'response_tag',
        'seq',
      ].sort(),
    );
    expect(row).toMatchObject({ request_id: 'request-1', captured_at: t0, key_id: 'k1' });
    for (const [column, value] of Object.entries(row!)) {
      const text = String(value);
      expect(text, column).not.toContain(marker);
      expect(Buffer.from(text, 'base64').includes(marker), column).toBe(false);
    }

    await store.close();
    const files = (await readdir(directory)).filter((name) => name.startsWith('switchyard.db'));
    expect(files).toContain('switchyard.db');
    for (const file of files) {
      expect((await readFile(join(directory, file))).includes(marker), file).toBe(false);
    }
    store = await openStore(path);
  });

  it('decrypts with the key, and fails without it or with the wrong one', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention: 30 * minute }, silent);
    capture.capture('request-1', requestBody, responseBody, t0);
    await capture.flush();

    const exchange = await capture.read('request-1');
    expect(exchange).toMatchObject({ requestId: 'request-1', capturedAt: t0, keyId: 'k1' });
    expect(exchange!.request.toString()).toBe(requestBody.toString());
    expect(exchange!.response.toString()).toBe(responseBody.toString());

    const wrongKey = new KeyRing({ current: { id: 'k1', key: key2 } });
    await expect(readPayloadCapture(store.db, 'request-1', wrongKey)).rejects.toMatchObject({
      code: 'capture_decrypt_failed',
    });
    const otherId = new KeyRing({ current: { id: 'k2', key: key1 } });
    await expect(readPayloadCapture(store.db, 'request-1', otherId)).rejects.toMatchObject({
      code: 'capture_key_unknown',
    });
    expect(await capture.read('request-unknown')).toBeUndefined();
    await capture.close();
  });

  it('refuses a row whose request id was changed, and a row whose halves were swapped', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention: 30 * minute }, silent);
    capture.capture('request-1', requestBody, responseBody, t0);
    capture.capture('request-2', requestBody, responseBody, t0);
    await capture.close();

    await sql`update payload_capture set request_id = 'request-9' where request_id = 'request-1'`.execute(
      store.db,
    );
    await expect(readPayloadCapture(store.db, 'request-9', ring1)).rejects.toThrow(PayloadCryptoError);

    await sql`update payload_capture set request_ct = response_ct, request_iv = response_iv,
      request_tag = response_tag where request_id = 'request-2'`.execute(store.db);
    await expect(readPayloadCapture(store.db, 'request-2', ring1)).rejects.toMatchObject({
      code: 'capture_decrypt_failed',
    });
  });

  it('writes new rows under the new key after rotation and still reads the old ones', async () => {
    const before = new PayloadCapture(store, { ring: ring1, retention: 30 * minute }, silent);
    before.capture('old', Buffer.from('old request'), Buffer.from('old response'), t0);
    await before.close();

    const rotated = new KeyRing({ current: { id: 'k2', key: key2 }, previous: [{ id: 'k1', key: key1 }] });
    const after = new PayloadCapture(store, { ring: rotated, retention: 30 * minute }, silent);
    after.capture('new', Buffer.from('new request'), Buffer.from('new response'), t0 + 1);
    await after.close();

    expect((await rows()).map((row) => [row.request_id, row.key_id])).toEqual([
      ['old', 'k1'],
      ['new', 'k2'],
    ]);
    expect((await after.read('old'))!.request.toString()).toBe('old request');
    expect((await after.read('new'))!.response.toString()).toBe('new response');
    await expect(readPayloadCapture(store.db, 'new', ring1)).rejects.toMatchObject({
      code: 'capture_key_unknown',
    });
  });

  it('reads the newest capture when a client reused a request id', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention: 30 * minute }, silent);
    capture.capture('same', Buffer.from('first'), Buffer.from('a'), t0);
    capture.capture('same', Buffer.from('second'), Buffer.from('b'), t0 + 1);
    await capture.close();
    expect((await readPayloadCapture(store.db, 'same', ring1))!.request.toString()).toBe('second');
  });
});

describe('PayloadCapture writes', () => {
  it('writes nothing until a flush or close, and close() writes everything queued', async () => {
    const capture = new PayloadCapture(
      store,
      { ring: ring1, retention: 30 * minute, flushInterval: 60_000, batchSize: 1000 },
      silent,
    );
    for (let index = 0; index < 120; index++) {
      capture.capture(`r${index}`, requestBody, responseBody, t0 + index);
    }
    expect(await rows()).toHaveLength(0);
    await capture.close();
    const written = await rows();
    expect(written.map((row) => row.request_id)).toEqual(
      Array.from({ length: 120 }, (_, index) => `r${index}`),
    );
    capture.capture('after-close', requestBody, responseBody, t0);
    await capture.flush();
    expect(await rows()).toHaveLength(120);
  });

  it('writes on its own once a batch is full', async () => {
    const capture = new PayloadCapture(
      store,
      { ring: ring1, retention: 30 * minute, flushInterval: 60_000, batchSize: 5 },
      silent,
    );
    for (let index = 0; index < 5; index++) capture.capture(`r${index}`, requestBody, responseBody, t0);
    await expect.poll(async () => (await rows()).length).toBe(5);
    await capture.close();
  });

  it('drops and counts exchanges past the queue bound, warning once rather than per request', async () => {
    const { logger, lines } = recordingLogger();
    const payload = Buffer.alloc(3000, 'x');
    // Each exchange queues two 4000-character base64 ciphertexts: two fit in 20 000 bytes.
    const capture = new PayloadCapture(
      store,
      { ring: ring1, retention: 30 * minute, flushInterval: 60_000, maxQueuedBytes: 20_000 },
      logger,
    );
    for (let index = 0; index < 5; index++) capture.capture(`r${index}`, payload, payload, t0);
    expect(capture.dropped).toBe(3);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('the capture queue is full');
    await capture.close();
    expect((await rows()).map((row) => row.request_id)).toEqual(['r0', 'r1']);
  });

  it('keeps rows whose write failed and writes them with the next flush', async () => {
    let failNext = true;
    const flaky = {
      db: store.db,
      async insertPayloadCapture(batch: readonly PayloadCaptureRow[]) {
        if (failNext) {
          failNext = false;
          throw new Error('database is locked');
        }
        await store.db.insertInto('payload_capture').values(batch).execute();
      },
    };
    const capture = new PayloadCapture(
      flaky,
      { ring: ring1, retention: 30 * minute, flushInterval: 60_000 },
      silent,
    );
    capture.capture('first', requestBody, responseBody, t0);
    await capture.flush();
    expect(await rows()).toHaveLength(0);
    capture.capture('second', requestBody, responseBody, t0);
    await capture.close();
    expect((await rows()).map((row) => row.request_id)).toEqual(['first', 'second']);
    expect(capture.dropped).toBe(0);
  });
});

describe('PayloadCapture retention', () => {
  const retention = 10 * minute;

  async function seed(capture: PayloadCapture, ages: Record<string, number>, now: number) {
    for (const [id, age] of Object.entries(ages)) capture.capture(id, requestBody, responseBody, now - age);
    await capture.flush();
  }

  it('purges exactly the rows older than the retention', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention }, silent);
    await seed(
      capture,
      { ancient: 30 * minute, old: retention + 1, boundary: retention, recent: retention - 1, fresh: 0 },
      t0,
    );
    expect(await capture.purge(t0)).toBe(2);
    expect((await rows()).map((row) => row.request_id)).toEqual(['boundary', 'recent', 'fresh']);
    expect(await capture.purge(t0)).toBe(0);
    await capture.close();
  });

  it('purges in slices when many rows are due', async () => {
    const capture = new PayloadCapture(store, { ring: ring1, retention, batchSize: 2000 }, silent);
    for (let index = 0; index < 1201; index++)
      capture.capture(`r${index}`, Buffer.from('q'), Buffer.from('a'), t0 - retention - 1);
    capture.capture('kept', Buffer.from('q'), Buffer.from('a'), t0);
    await capture.flush();
    expect(await capture.purge(t0)).toBe(1201);
    expect((await rows()).map((row) => row.request_id)).toEqual(['kept']);
    await capture.close();
  });

  it('purges on start and then every tenth of the retention by the injected clock, until closed', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let now = t0;
    const { logger, lines, next } = recordingLogger();
    const capture = new PayloadCapture(store, { ring: ring1, retention, now: () => now }, logger);
    await seed(capture, { ancient: 20 * minute, old: 11 * minute, middle: 9 * minute, fresh: 0 }, t0);

    const purged = 'payload capture purged rows past retention';
    const first = next(purged);
    capture.start();
    await first;
    expect((await rows()).map((row) => row.request_id)).toEqual(['middle', 'fresh']);

    expect(purgeInterval(retention)).toBe(minute);
    now = t0 + 2 * minute;
    const second = next(purged);
    vi.advanceTimersByTime(minute);
    await second;
    expect((await rows()).map((row) => row.request_id)).toEqual(['fresh']);
    expect(lines.filter((line) => line.msg === purged).map((line) => line.deleted)).toEqual([2, 1]);

    await capture.close();
    now = t0 + 60 * minute;
    vi.advanceTimersByTime(10 * minute);
    expect(await rows()).toHaveLength(1);
  });

  it('purges at most hourly, and never more often than each second', () => {
    expect(purgeInterval(30 * 24 * 60 * minute)).toBe(60 * minute);
    expect(purgeInterval(0)).toBe(1000);
  });
});
