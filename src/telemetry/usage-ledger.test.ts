import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../store/database.js';
import { UsageLedger, type UsageLedgerOptions, type UsageRecord } from './usage-ledger.js';

const silent = pino({ level: 'silent' });
const at = (iso: string) => Date.parse(iso);
/** Writes only when a test asks. */
const manual: UsageLedgerOptions = { flushInterval: 3_600_000, batchSize: 10_000 };

let store: Store;
const ledgers: UsageLedger[] = [];

function ledger(options: UsageLedgerOptions = manual): UsageLedger {
  const created = new UsageLedger(store.db, options, silent);
  ledgers.push(created);
  return created;
}

function usage(change: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at: at('2025-06-11T10:00:00Z'),
    keyId: 'alice',
    teamId: 'red',
    model: 'gpt-4o',
    promptTokens: 100,
    completionTokens: 50,
    cachedTokens: 20,
    cost: 0.001,
    ...change,
  };
}

function storedRows() {
  return store.db
    .selectFrom('usage_daily')
    .selectAll()
    .orderBy('day')
    .orderBy('key_id')
    .orderBy('team_id')
    .orderBy('model')
    .execute();
}

beforeEach(async () => {
  store = await openStore(':memory:');
});

afterEach(async () => {
  for (const each of ledgers.splice(0)) await each.close().catch(() => undefined);
  await store.close();
});

describe('UsageLedger writes', () => {
  it('adds up requests per UTC day, key, team and model, and writes nothing until a flush', async () => {
    const usageLedger = ledger();
    usageLedger.record(usage());
    usageLedger.record(usage({ promptTokens: 10, completionTokens: 5, cachedTokens: 0, cost: 0.002 }));
    usageLedger.record(usage({ model: 'claude-sonnet-4' }));
    usageLedger.record(usage({ keyId: undefined, teamId: undefined }));
    usageLedger.record(usage({ at: at('2025-06-11T23:59:59.999Z') }));
    usageLedger.record(usage({ at: at('2025-06-12T00:00:00Z') }));
    expect(await storedRows()).toEqual([]);
    await usageLedger.flush();
    expect(await storedRows()).toEqual([
      {
        day: '2025-06-11',
        key_id: '',
        team_id: '',
        model: 'gpt-4o',
        requests: 1,
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 20,
        cost: 0.001,
      },
      expect.objectContaining({ day: '2025-06-11', key_id: 'alice', model: 'claude-sonnet-4', requests: 1 }),
      {
        day: '2025-06-11',
        key_id: 'alice',
        team_id: 'red',
        model: 'gpt-4o',
        requests: 3,
        prompt_tokens: 210,
        completion_tokens: 105,
        cached_tokens: 40,
        cost: 0.004,
      },
      expect.objectContaining({ day: '2025-06-12', key_id: 'alice', model: 'gpt-4o', requests: 1 }),
    ]);
  });

  it('adds a later batch to the stored totals', async () => {
    const usageLedger = ledger();
    usageLedger.record(usage());
    await usageLedger.flush();
    usageLedger.record(usage());
    usageLedger.record(usage());
    await usageLedger.flush();
    expect(await storedRows()).toEqual([
      expect.objectContaining({ requests: 3, prompt_tokens: 300, completion_tokens: 150, cached_tokens: 60 }),
    ]);
    expect((await storedRows())[0]!.cost).toBeCloseTo(0.003, 12);
  });

  it('writes on its own once enough distinct rows are pending', async () => {
    const usageLedger = ledger({ flushInterval: 3_600_000, batchSize: 2 });
    usageLedger.record(usage({ model: 'a' }));
    usageLedger.record(usage({ model: 'a' }));
    usageLedger.record(usage({ model: 'b' }));
    await expect
      .poll(async () => (await storedRows()).map((row) => [row.model, row.requests]))
      .toEqual([
        ['a', 2],
        ['b', 1],
      ]);
  });

  it('writes on its own after the flush interval', async () => {
    const usageLedger = ledger({ flushInterval: 10, batchSize: 10_000 });
    usageLedger.record(usage());
    await expect.poll(async () => (await storedRows()).length).toBe(1);
  });

  it('persists everything accepted on close, and accepts nothing after', async () => {
    const usageLedger = ledger();
    for (let index = 0; index < 1200; index++) usageLedger.record(usage({ model: `m${index % 600}` }));
    await usageLedger.close();
    const rows = await storedRows();
    expect(rows).toHaveLength(600);
    expect(rows.every((row) => row.requests === 2)).toBe(true);
    expect(usageLedger.record(usage())).toBe(false);
    await usageLedger.flush();
    expect(await storedRows()).toHaveLength(600);
  });

  it('keeps the totals of a failed write and writes them, with what came since, next time', async () => {
    const usageLedger = ledger();
    usageLedger.record(usage());
    await sql`alter table usage_daily rename to usage_daily_away`.execute(store.db);
    await expect(usageLedger.flush()).rejects.toThrow(/usage_daily/);
    usageLedger.record(usage());
    await sql`alter table usage_daily_away rename to usage_daily`.execute(store.db);
    await usageLedger.flush();
    expect(await storedRows()).toEqual([expect.objectContaining({ requests: 2, prompt_tokens: 200 })]);
  });

  it('rejects close when the last write fails, keeping the totals for another flush', async () => {
    const usageLedger = ledger();
    usageLedger.record(usage());
    await sql`alter table usage_daily rename to usage_daily_away`.execute(store.db);
    await expect(usageLedger.close()).rejects.toThrow();
    await sql`alter table usage_daily_away rename to usage_daily`.execute(store.db);
    await usageLedger.flush();
    expect(await storedRows()).toEqual([expect.objectContaining({ requests: 1 })]);
  });
});

describe('UsageLedger.query', () => {
  let usageLedger: UsageLedger;

  beforeEach(() => {
    usageLedger = ledger();
    usageLedger.record(usage({ at: at('2025-06-10T09:00:00Z'), cost: 1 }));
    usageLedger.record(usage({ at: at('2025-06-11T09:00:00Z'), cost: 2 }));
    usageLedger.record(
      usage({ at: at('2025-06-11T09:00:00Z'), keyId: 'bob', model: 'claude-sonnet-4', cost: 4 }),
    );
    usageLedger.record(usage({ at: at('2025-06-12T09:00:00Z'), keyId: 'carol', teamId: 'blue', cost: 8 }));
    usageLedger.record(
      usage({ at: at('2025-06-12T09:00:00Z'), keyId: undefined, teamId: undefined, cost: 0 }),
    );
  });

  it('totals by key over a date range, both ends included, dearest first, unflushed usage included', async () => {
    const report = await usageLedger.query({
      groupBy: 'key',
      from: '2025-06-11',
      to: '2025-06-12',
      interval: 'total',
    });
    expect(report.data).toEqual([
      {
        group: 'carol',
        requests: 1,
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 20,
        total_tokens: 150,
        cost: 8,
      },
      expect.objectContaining({ group: 'bob', requests: 1, cost: 4 }),
      expect.objectContaining({ group: 'alice', requests: 1, cost: 2 }),
      expect.objectContaining({ group: null, requests: 1, cost: 0 }),
    ]);
    expect(report.total).toEqual({
      requests: 4,
      prompt_tokens: 400,
      completion_tokens: 200,
      cached_tokens: 80,
      total_tokens: 600,
      cost: 14,
    });
  });

  it('gives a time series per day and group', async () => {
    const report = await usageLedger.query({ groupBy: 'team', interval: 'day' });
    expect(report.data.map((row) => [row.day, row.group, row.requests, row.cost])).toEqual([
      ['2025-06-10', 'red', 1, 1],
      ['2025-06-11', 'red', 2, 6],
      ['2025-06-12', null, 1, 0],
      ['2025-06-12', 'blue', 1, 8],
    ]);
  });

  it('groups by model and by day', async () => {
    const byModel = await usageLedger.query({ groupBy: 'model', interval: 'total' });
    expect(byModel.data.map((row) => [row.group, row.requests, row.cost])).toEqual([
      ['gpt-4o', 4, 11],
      ['claude-sonnet-4', 1, 4],
    ]);
    const byDay = await usageLedger.query({ groupBy: 'day', interval: 'day' });
    expect(byDay.data.map((row) => [row.day, row.group, row.requests])).toEqual([
      ['2025-06-10', '2025-06-10', 1],
      ['2025-06-11', '2025-06-11', 2],
      ['2025-06-12', '2025-06-12', 2],
    ]);
  });

  it('filters by key, team and model', async () => {
    const report = await usageLedger.query({
      groupBy: 'model',
      interval: 'total',
      team: 'red',
      key: 'alice',
    });
    expect(report.data.map((row) => [row.group, row.requests, row.cost])).toEqual([['gpt-4o', 2, 3]]);
    const claude = await usageLedger.query({ groupBy: 'key', interval: 'total', model: 'claude-sonnet-4' });
    expect(claude.data.map((row) => row.group)).toEqual(['bob']);
    const none = await usageLedger.query({ groupBy: 'key', interval: 'total', team: 'green' });
    expect(none).toEqual({
      data: [],
      total: {
        requests: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cached_tokens: 0,
        total_tokens: 0,
        cost: 0,
      },
    });
  });

  it('reads back each key’s spend per team since the current periods began', async () => {
    const rows = await usageLedger.spendSince({ day: '2025-06-12', week: '2025-06-09', month: '2025-06-01' });
    const byPair = Object.fromEntries(rows.map((row) => [`${row.keyId}/${row.teamId}`, row]));
    expect(byPair).toEqual({
      'alice/red': { keyId: 'alice', teamId: 'red', day: 0, week: 3, month: 3 },
      'bob/red': { keyId: 'bob', teamId: 'red', day: 0, week: 4, month: 4 },
      'carol/blue': { keyId: 'carol', teamId: 'blue', day: 8, week: 8, month: 8 },
      '/': { keyId: '', teamId: '', day: 0, week: 0, month: 0 },
    });
  });

  it('reads spend from a week that began in the previous month', async () => {
    // The week of Wednesday 2 July 2025 began on Monday 30 June.
    usageLedger.record(usage({ at: at('2025-06-30T12:00:00Z'), cost: 16 }));
    usageLedger.record(usage({ at: at('2025-07-02T12:00:00Z'), cost: 32 }));
    const rows = await usageLedger.spendSince({ day: '2025-07-02', week: '2025-06-30', month: '2025-07-01' });
    expect(rows).toEqual([{ keyId: 'alice', teamId: 'red', day: 32, week: 48, month: 32 }]);
  });
});
