import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openStore, type Store } from '../store/database.js';
import type { RequestLogRow } from '../store/schema.js';
import { RequestLog } from './request-log.js';

const silent = pino({ level: 'silent' });

function row(id: string): RequestLogRow {
  return {
    id,
    started_at: 1_700_000_000_000,
    endpoint: '/v1/chat/completions',
    model: 'm',
    target: 't',
    upstream_model: 'm',
    status: 200,
    stream: 0,
    prompt_tokens: 3,
    completion_tokens: 4,
    total_tokens: 7,
    duration_ms: 1.5,
    upstream_ms: 1.2,
    first_byte_ms: 1,
    error_code: null,
    deployment: 't',
    version: null,
    attempts: 1,
    shadow: 0,
  };
}

async function countRows(store: Store): Promise<number> {
  const result = await store.db
    .selectFrom('request_log')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(result.n);
}

describe('RequestLog', () => {
  it('writes nothing until a flush, then every queued row in order', async () => {
    const store = await openStore(':memory:');
    const log = new RequestLog(store, { flushInterval: 60_000, batchSize: 1000 }, silent);
    for (let index = 0; index < 120; index++) log.append(row(`r${index}`));
    expect(await countRows(store)).toBe(0);
    await log.flush();
    const ids = await store.db.selectFrom('request_log').select('id').orderBy('seq').execute();
    expect(ids.map((entry) => entry.id)).toEqual(Array.from({ length: 120 }, (_, index) => `r${index}`));
    await log.close();
    await store.close();
  });

  it('flushes on its own once a batch is full', async () => {
    const store = await openStore(':memory:');
    const log = new RequestLog(store, { flushInterval: 60_000, batchSize: 10 }, silent);
    for (let index = 0; index < 10; index++) log.append(row(`r${index}`));
    await expect.poll(() => countRows(store)).toBe(10);
    await log.close();
    await store.close();
  });

  it('keeps rows whose write failed and writes them with the next flush', async () => {
    const real = await openStore(':memory:');
    let failNext = true;
    const flaky: Store = {
      db: real.db,
      async insertRequestLog(rows) {
        if (failNext) {
          failNext = false;
          throw new Error('database is locked');
        }
        return real.insertRequestLog(rows);
      },
      insertPayloadCapture: (rows) => real.insertPayloadCapture(rows),
      close: () => real.close(),
    };
    const log = new RequestLog(flaky, { flushInterval: 60_000, batchSize: 1000 }, silent);
    log.append(row('first'));
    await log.flush();
    expect(await countRows(real)).toBe(0);
    log.append(row('second'));
    await log.flush();
    const ids = await real.db.selectFrom('request_log').select('id').orderBy('seq').execute();
    expect(ids.map((entry) => entry.id)).toEqual(['first', 'second']);
    await log.close();
    await real.close();
  });
});
