import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SpendTracker } from '../../src/auth/budgets.js';
import { usageCommand } from '../../src/cli/usage.js';
import { registerAdminApi } from '../../src/control/admin-api.js';
import { ModelStore } from '../../src/runner/store/index.js';
import { openStore, type Store } from '../../src/store/database.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { cost, PriceTable } from '../../src/telemetry/pricing.js';
import { UsageLedger, type UsageRecord } from '../../src/telemetry/usage-ledger.js';
import { adminApiOptions } from '../support/admin.js';

const adminKey = 'test-admin-key-usage-4e7d21c9';
const prices = new PriceTable();
const at = (iso: string) => Date.parse(iso);

let directory: string;
let storePath: string;
let store: Store;
let ledger: UsageLedger;
/** The admin API with the usage ledger, listening on loopback for the CLI. */
let app: FastifyInstance;
let url: string;

/** A request's usage as the request path would record it: priced by the table. */
function served(
  iso: string,
  keyId: string | undefined,
  teamId: string | undefined,
  model: string,
  promptTokens: number,
  completionTokens: number,
  cachedTokens = 0,
): UsageRecord {
  const tokens = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    cached_tokens: cachedTokens,
  };
  return {
    at: at(iso),
    keyId,
    teamId,
    model,
    promptTokens,
    completionTokens,
    cachedTokens,
    cost: cost(tokens, prices.lookup(model)!),
  };
}

function adminApp(usage: UsageLedger | undefined): FastifyInstance {
  const instance = Fastify();
  registerAdminApi(
    instance,
    adminApiOptions({
      key: adminKey,
      modelStore: async () => new ModelStore({ root: join(directory, 'models') }),
      ...(usage === undefined ? {} : { usage }),
    }),
  );
  return instance;
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-usage-'));
  storePath = join(directory, 'switchyard.db');
  store = await openStore(storePath);
  ledger = new UsageLedger(store.db, { flushInterval: 60_000, batchSize: 1000 }, createLogger('silent'));
  // $2.50 and $10 per million: 1M prompt + 100k completion tokens of gpt-4o cost $3.50.
  ledger.record(served('2025-06-09T08:00:00Z', 'alice', 'red', 'gpt-4o', 1_000_000, 100_000));
  ledger.record(served('2025-06-10T08:00:00Z', 'alice', 'red', 'gpt-4o-mini', 1_000_000, 1_000_000, 500_000));
  ledger.record(served('2025-06-10T09:00:00Z', 'bob', 'red', 'claude-sonnet-4', 200_000, 20_000));
  ledger.record(served('2025-06-11T09:00:00Z', 'carol', 'blue', 'gpt-4o', 100_000, 10_000));
  ledger.record(served('2025-06-11T10:00:00Z', undefined, undefined, 'local/demo:small', 5_000, 500));
  app = adminApp(ledger);
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await ledger?.close();
  await store?.close();
  await rm(directory, { recursive: true, force: true });
});

async function get(path: string, key: string | null = adminKey, on: FastifyInstance = app) {
  const response = await on.inject({
    method: 'GET',
    url: path,
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
  });
  return { status: response.statusCode, body: response.json() as any };
}

const june = 'from=2025-06-01&to=2025-06-30';

describe('GET /admin/usage', () => {
  it('totals requests, tokens and cost per key, dearest first, with a grand total', async () => {
    const { status, body } = await get(`/admin/usage?group_by=key&${june}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      object: 'list',
      group_by: 'key',
      interval: 'total',
      from: '2025-06-01',
      to: '2025-06-30',
    });
    // alice: gpt-4o $3.50, plus gpt-4o-mini 500k × $0.15 + 500k cached × $0.075 + 1M × $0.60 = $0.7125.
    expect(body.data).toEqual([
      {
        group: 'alice',
        requests: 2,
        prompt_tokens: 2_000_000,
        completion_tokens: 1_100_000,
        cached_tokens: 500_000,
        total_tokens: 3_100_000,
        cost: 4.2125,
      },
      expect.objectContaining({ group: 'bob', requests: 1, cost: 0.9 }),
      expect.objectContaining({ group: 'carol', requests: 1, cost: 0.35 }),
      expect.objectContaining({ group: null, requests: 1, prompt_tokens: 5_000, cost: 0 }),
    ]);
    expect(body.total).toEqual({
      requests: 5,
      prompt_tokens: 2_305_000,
      completion_tokens: 1_130_500,
      cached_tokens: 500_000,
      total_tokens: 3_435_500,
      cost: 5.4625,
    });
  });

  it('gives a daily series per team', async () => {
    const { body } = await get(`/admin/usage?group_by=team&interval=day&${june}`);
    expect(body.data.map((row: any) => [row.day, row.group, row.requests, row.cost])).toEqual([
      ['2025-06-09', 'red', 1, 3.5],
      ['2025-06-10', 'red', 2, 1.6125],
      ['2025-06-11', null, 1, 0],
      ['2025-06-11', 'blue', 1, 0.35],
    ]);
  });

  it('narrows to a team, a key or a model, and to the days asked', async () => {
    const red = await get(`/admin/usage?group_by=model&team=red&${june}`);
    expect(red.body.data.map((row: any) => row.group)).toEqual(['gpt-4o', 'claude-sonnet-4', 'gpt-4o-mini']);
    const alice = await get(`/admin/usage?group_by=model&key=alice&model=gpt-4o&${june}`);
    expect(alice.body.data).toEqual([expect.objectContaining({ group: 'gpt-4o', requests: 1, cost: 3.5 })]);
    const oneDay = await get('/admin/usage?group_by=key&from=2025-06-10&to=2025-06-10');
    expect(oneDay.body.data.map((row: any) => [row.group, row.requests])).toEqual([
      ['bob', 1],
      ['alice', 1],
    ]);
  });

  it('includes usage recorded a moment ago, not yet written by the ledger’s timer', async () => {
    const today = new Date().toISOString().slice(0, 10);
    ledger.record(served(new Date().toISOString(), 'dave', 'green', 'o4-mini', 1_000, 1_000));
    const { body } = await get('/admin/usage?group_by=key&key=dave');
    // Without dates: from the 1st of this month to today, the period of a monthly budget.
    expect(body).toMatchObject({
      group_by: 'key',
      interval: 'total',
      from: `${today.slice(0, 8)}01`,
      to: today,
    });
    expect(body.data).toEqual([expect.objectContaining({ group: 'dave', requests: 1, cost: 0.0055 })]);
  });

  it('refuses a bad parameter with 400 naming it', async () => {
    const cases: [string, string, RegExp][] = [
      ['group_by=user', 'group_by', /group_by must be one of key, team, model, day, got "user"/],
      ['interval=week', 'interval', /interval must be one of day, total/],
      ['from=2025-02-30', 'from', /from must be a date as YYYY-MM-DD/],
      ['to=June', 'to', /to must be a date as YYYY-MM-DD/],
      ['from=2025-06-30&to=2025-06-01', 'from', /from \(2025-06-30\) must not be after to \(2025-06-01\)/],
      ['since=2025-06-01', 'since', /since is not a parameter of \/admin\/usage/],
      ['team=', 'team', /team must not be empty/],
      ['group_by=key&group_by=team', 'group_by', /group_by must be given once/],
    ];
    for (const [query, param, message] of cases) {
      const { status, body } = await get(`/admin/usage?${query}`);
      expect({ query, status, param: body.error.param, code: body.error.code }).toEqual({
        query,
        status: 400,
        param,
        code: 'invalid_field',
      });
      expect(body.error.message).toMatch(message);
    }
  });

  it('needs the admin key', async () => {
    expect((await get('/admin/usage', null)).status).toBe(401);
    expect((await get('/admin/usage', 'test-admin-key-wrong-usage-000')).status).toBe(401);
  });

  it('does not exist without a usage ledger', async () => {
    const bare = adminApp(undefined);
    expect((await get('/admin/usage', adminKey, bare)).status).toBe(404);
    await bare.close();
  });
});

describe('budgets after a restart', () => {
  it('rebuild the current periods’ spend from what the ledger stored', async () => {
    const path = join(directory, 'restart.db');
    const first = await openStore(path);
    const before = new UsageLedger(
      first.db,
      { flushInterval: 60_000, batchSize: 1000 },
      createLogger('silent'),
    );
    before.record(served('2025-06-02T10:00:00Z', 'alice', 'red', 'gpt-4o', 1_000_000, 0)); // last week
    before.record(served('2025-06-10T10:00:00Z', 'alice', 'red', 'gpt-4o', 1_000_000, 0)); // this week
    before.record(served('2025-06-11T10:00:00Z', 'bob', 'red', 'gpt-4o', 1_000_000, 0)); // today
    await before.close();
    await first.close();

    const second = await openStore(path);
    const after = new UsageLedger(
      second.db,
      { flushInterval: 60_000, batchSize: 1000 },
      createLogger('silent'),
    );
    const spend = new SpendTracker({ now: () => at('2025-06-11T12:00:00Z') });
    spend.load(await after.spendSince(spend.periodStarts()));
    expect(spend.spent('key', 'alice', 'day')).toBe(0);
    expect(spend.spent('key', 'alice', 'week')).toBe(2.5);
    expect(spend.spent('key', 'alice', 'month')).toBe(5);
    expect(spend.spent('team', 'red', 'week')).toBe(5);
    expect(spend.spent('team', 'red', 'day')).toBe(2.5);
    expect(
      spend.check({ id: 'bob', budget: undefined }, { id: 'red', budget: { amount: 7.5, period: 'month' } }),
    ).toMatchObject({ state: 'exceeded', scope: 'team', spent: 7.5 });
    await after.close();
    await second.close();
  });
});

describe('switchyard usage', () => {
  let out: string[];
  let err: string[];

  function capture() {
    out = [];
    err = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      err.push(String(chunk));
      return true;
    });
  }

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('prints a table per team over HTTP, with a total', async () => {
    capture();
    const code = await usageCommand(
      ['--by', 'team', '--from', '2025-06-01', '--to', '2025-06-30', '--url', url],
      {
        SWITCHYARD_ADMIN_KEY: adminKey,
      },
    );
    expect({ code, err }).toEqual({ code: 0, err: [] });
    expect(out.join('')).toBe(
      [
        'TEAM    REQUESTS  PROMPT   COMPLETION  CACHED  COST',
        'red     3         2200000  1120000     500000  $5.1125',
        'blue    1         100000   10000       0       $0.3500',
        '(none)  1         5000     500         0       $0.0000',
        'TOTAL   5         2305000  1130500     500000  $5.4625',
        '',
      ].join('\n'),
    );
  });

  it('prints a row per day and key with --daily, taking the gateway from SWITCHYARD_URL', async () => {
    capture();
    const code = await usageCommand(
      [
        '--by',
        'key',
        '--daily',
        '--team',
        'red',
        '--from',
        '2025-06-09',
        '--to',
        '2025-06-10',
        '--admin-key',
        adminKey,
      ],
      { SWITCHYARD_URL: url },
    );
    expect(code).toBe(0);
    expect(out.join('')).toBe(
      [
        'DAY         KEY    REQUESTS  PROMPT   COMPLETION  CACHED  COST',
        '2025-06-09  alice  1         1000000  100000      0       $3.5000',
        '2025-06-10  alice  1         1000000  1000000     500000  $0.7125',
        '2025-06-10  bob    1         200000   20000       0       $0.9000',
        'TOTAL              3         2200000  1120000     500000  $5.1125',
        '',
      ].join('\n'),
    );
  });

  it('prints the API’s JSON with --json', async () => {
    capture();
    const code = await usageCommand(['--json', '--from', '2025-06-11', '--to', '2025-06-11', '--url', url], {
      SWITCHYARD_ADMIN_KEY: adminKey,
    });
    expect(code).toBe(0);
    const body = JSON.parse(out.join(''));
    expect(body).toMatchObject({ object: 'list', group_by: 'model', total: { requests: 2 } });
  });

  it('says when there is no usage in the range', async () => {
    capture();
    const code = await usageCommand(['--from', '2024-01-01', '--to', '2024-01-31', '--url', url], {
      SWITCHYARD_ADMIN_KEY: adminKey,
    });
    expect({ code, out: out.join('') }).toEqual({
      code: 0,
      out: 'No usage from 2024-01-01 to 2024-01-31.\n',
    });
  });

  it('exits 2 on a bad command line, the gateway’s 400s included', async () => {
    capture();
    expect(await usageCommand(['--by', 'user', '--url', url], { SWITCHYARD_ADMIN_KEY: adminKey })).toBe(2);
    expect(err.join('')).toMatch(/--by must be one of key, team, model, day, not "user"/);
    expect(
      await usageCommand(['--from', '2025-13-01', '--url', url], { SWITCHYARD_ADMIN_KEY: adminKey }),
    ).toBe(2);
    expect(err.join('')).toMatch(/answered GET \/admin\/usage with 400: from must be a date as YYYY-MM-DD/);
    expect(await usageCommand(['--url', url], {})).toBe(2);
    expect(err.join('')).toMatch(/pass --admin-key or set SWITCHYARD_ADMIN_KEY/);
  });

  it('exits 1 when the key is refused or no gateway answers', async () => {
    capture();
    expect(await usageCommand(['--url', url, '--admin-key', 'test-admin-key-wrong-usage-000'], {})).toBe(1);
    expect(err.join('')).toMatch(/answered GET \/admin\/usage with 401/);
    const closed = Fastify();
    const gone = await closed.listen({ host: '127.0.0.1', port: 0 });
    await closed.close();
    expect(await usageCommand(['--url', gone], { SWITCHYARD_ADMIN_KEY: adminKey })).toBe(1);
    expect(err.join('')).toMatch(/no gateway answers at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });
});
