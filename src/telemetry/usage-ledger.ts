import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { PeriodStarts, SpendRow } from '../auth/budgets.js';
import type { Database, UsageDailyTable } from '../store/schema.js';
import { FlushTimer } from './flush-timer.js';

/** One served request's usage, as the request path reports it. */
export interface UsageRecord {
  /** When the request finished (its cost was incurred), milliseconds since the epoch. */
  readonly at: number;
  readonly keyId?: string | undefined;
  readonly teamId?: string | undefined;
  /** The model the client asked for. */
  readonly model: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Part of promptTokens. */
  readonly cachedTokens?: number | undefined;
  /** US dollars (telemetry/pricing.ts). */
  readonly cost: number;
}

export interface UsageLedgerOptions {
  /** Milliseconds between writes of what has accumulated. */
  readonly flushInterval: number;
  /** Distinct (day, key, team, model) rows pending that trigger a write at once. */
  readonly batchSize: number;
}

export const usageGroups = ['key', 'team', 'model', 'day'] as const;
export type UsageGroup = (typeof usageGroups)[number];
export const usageIntervals = ['day', 'total'] as const;
export type UsageInterval = (typeof usageIntervals)[number];

export interface UsageQuery {
  readonly groupBy: UsageGroup;
  /** First day, YYYY-MM-DD (UTC), inclusive; absent: from the first recorded. */
  readonly from?: string | undefined;
  /** Last day, YYYY-MM-DD (UTC), inclusive; absent: to the last recorded. */
  readonly to?: string | undefined;
  /** 'day': a row per group and day (a time series); 'total': a row per group. */
  readonly interval: UsageInterval;
  readonly key?: string | undefined;
  readonly team?: string | undefined;
  readonly model?: string | undefined;
}

export interface UsageTotals {
  readonly requests: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly cached_tokens: number;
  readonly total_tokens: number;
  /** US dollars. */
  readonly cost: number;
}

export interface UsageRow extends UsageTotals {
  /** The key's, team's or model's id, or the day; null for requests made without a key or team. */
  readonly group: string | null;
  /** Present when the interval is 'day'. */
  readonly day?: string;
}

export interface UsageReport {
  /** Interval 'day': by day, then group; 'total': dearest first. */
  readonly data: UsageRow[];
  /** Over every row of `data`. */
  readonly total: UsageTotals;
}

const groupColumns = {
  key: 'key_id',
  team: 'team_id',
  model: 'model',
  day: 'day',
} as const satisfies Record<UsageGroup, keyof UsageDailyTable>;

/** Rows per statement: nine parameters each, well under SQLite's and Postgres's limits. */
const rowsPerStatement = 500;
const dayMs = 86_400_000;

/**
 * Running totals of usage and cost per UTC day, key, team and model, kept in memory and written
 * to the store's `usage_daily` table as upserts in batches: on a timer, when enough distinct
 * rows are pending, and on `close()`. A request only adds to a row in a map. A failed write keeps
 * its rows for the next one, so nothing accepted is lost short of the process being killed
 * (at most one flush interval's worth), and `close()` rejects if the last write fails.
 *
 * @example
 * const ledger = new UsageLedger(store.db, { flushInterval: 1000, batchSize: 500 }, logger);
 * ledger.record({ at: Date.now(), keyId: key.id, teamId: key.teamId, model: 'gpt-4o', promptTokens: 12, completionTokens: 30, cost: 0.00033 });
 */
export class UsageLedger {
  readonly #db: Kysely<Database>;
  readonly #options: UsageLedgerOptions;
  readonly #logger: Logger;
  #pending = new Map<string, UsageDailyTable>();
  // A failed flush is logged by #writePending and keeps its rows for the next one.
  readonly #timer = new FlushTimer(() => void this.flush().catch(() => undefined));
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  /** The UTC day of the last record, so that most records need no date formatting. */
  #dayStart = 0;
  #day = '';

  constructor(db: Kysely<Database>, options: UsageLedgerOptions, logger: Logger) {
    this.#db = db;
    this.#options = options;
    this.#logger = logger;
  }

  /** Adds a request's usage to its day's totals; false (and nothing kept) once closed. */
  record(usage: UsageRecord): boolean {
    if (this.#closed) return false;
    const day = this.#dayOf(usage.at);
    const keyId = usage.keyId ?? '';
    const teamId = usage.teamId ?? '';
    const id = `${day}\u0000${keyId}\u0000${teamId}\u0000${usage.model}`;
    const row = this.#pending.get(id);
    if (row === undefined) {
      this.#pending.set(id, {
        day,
        key_id: keyId,
        team_id: teamId,
        model: usage.model,
        requests: 1,
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        cached_tokens: usage.cachedTokens ?? 0,
        cost: usage.cost,
      });
      if (this.#pending.size >= this.#options.batchSize) this.#timer.schedule(0);
      else if (!this.#timer.pending) this.#timer.schedule(this.#options.flushInterval);
    } else {
      row.requests += 1;
      row.prompt_tokens += usage.promptTokens;
      row.completion_tokens += usage.completionTokens;
      row.cached_tokens += usage.cachedTokens ?? 0;
      row.cost += usage.cost;
    }
    return true;
  }

  /**
   * Writes everything pending, after any write in progress; resolves once it is in the store and
   * rejects if the store refused it (the rows stay pending for the next write).
   */
  flush(): Promise<void> {
    this.#timer.cancel();
    const run = this.#writing.then(() => this.#writePending());
    this.#writing = run.catch(() => undefined);
    return run;
  }

  /** Accepts no more records and writes what is pending; rejects if that write fails. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /**
   * Usage grouped by key, team, model or day, over whole days, with what is pending written first.
   *
   * @example await ledger.query({ groupBy: 'team', from: '2025-06-01', to: '2025-06-30', interval: 'total' })
   */
  async query(query: UsageQuery): Promise<UsageReport> {
    await this.#flushForRead();
    const column = groupColumns[query.groupBy];
    const daily = query.interval === 'day';
    let select = this.#db
      .selectFrom('usage_daily')
      .select((eb) => [
        eb.ref(column).as('group'),
        eb.fn.sum<number>('requests').as('requests'),
        eb.fn.sum<number>('prompt_tokens').as('prompt_tokens'),
        eb.fn.sum<number>('completion_tokens').as('completion_tokens'),
        eb.fn.sum<number>('cached_tokens').as('cached_tokens'),
        eb.fn.sum<number>('cost').as('cost'),
      ])
      .groupBy(column);
    if (daily) select = select.select('day').groupBy('day');
    if (query.from !== undefined) select = select.where('day', '>=', query.from);
    if (query.to !== undefined) select = select.where('day', '<=', query.to);
    if (query.key !== undefined) select = select.where('key_id', '=', query.key);
    if (query.team !== undefined) select = select.where('team_id', '=', query.team);
    if (query.model !== undefined) select = select.where('model', '=', query.model);
    select = daily
      ? select.orderBy('day').orderBy(column)
      : select.orderBy(sql`sum(cost)`, 'desc').orderBy(column);
    const rows = await select.execute();

    const data = rows.map((row): UsageRow => {
      const prompt = Number(row.prompt_tokens);
      const completion = Number(row.completion_tokens);
      const totals: UsageRow = {
        group: row.group === '' ? null : String(row.group),
        requests: Number(row.requests),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: Number(row.cached_tokens),
        total_tokens: prompt + completion,
        cost: dollars(Number(row.cost)),
      };
      return daily ? { ...totals, day: String((row as unknown as { day: string }).day) } : totals;
    });
    return { data, total: sum(data) };
  }

  /**
   * Each key's spend within each team since the given days: what `SpendTracker.load` rebuilds
   * the current budget periods from.
   *
   * @example spend.load(await ledger.spendSince(spend.periodStarts()));
   */
  async spendSince(starts: PeriodStarts): Promise<SpendRow[]> {
    await this.#flushForRead();
    const earliest = [starts.day, starts.week, starts.month].sort()[0]!;
    const rows = await this.#db
      .selectFrom('usage_daily')
      .select([
        'key_id',
        'team_id',
        sql<number>`sum(case when day >= ${starts.day} then cost else 0 end)`.as('day_cost'),
        sql<number>`sum(case when day >= ${starts.week} then cost else 0 end)`.as('week_cost'),
        sql<number>`sum(case when day >= ${starts.month} then cost else 0 end)`.as('month_cost'),
      ])
      .where('day', '>=', earliest)
      .groupBy(['key_id', 'team_id'])
      .execute();
    return rows.map((row) => ({
      keyId: row.key_id,
      teamId: row.team_id,
      day: Number(row.day_cost),
      week: Number(row.week_cost),
      month: Number(row.month_cost),
    }));
  }

  /** Reads go on with what is stored when the write fails: the failure is already logged. */
  async #flushForRead(): Promise<void> {
    await this.flush().catch(() => undefined);
  }

  #dayOf(at: number): string {
    if (at < this.#dayStart || at >= this.#dayStart + dayMs) {
      this.#dayStart = at - (((at % dayMs) + dayMs) % dayMs);
      this.#day = new Date(this.#dayStart).toISOString().slice(0, 10);
    }
    return this.#day;
  }

  async #writePending(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    try {
      await this.#db.transaction().execute(async (transaction) => {
        for (let start = 0; start < batch.length; start += rowsPerStatement) {
          await transaction
            .insertInto('usage_daily')
            .values(batch.slice(start, start + rowsPerStatement))
            .onConflict((conflict) =>
              conflict.columns(['day', 'key_id', 'team_id', 'model']).doUpdateSet((eb) => ({
                requests: eb('usage_daily.requests', '+', eb.ref('excluded.requests')),
                prompt_tokens: eb('usage_daily.prompt_tokens', '+', eb.ref('excluded.prompt_tokens')),
                completion_tokens: eb(
                  'usage_daily.completion_tokens',
                  '+',
                  eb.ref('excluded.completion_tokens'),
                ),
                cached_tokens: eb('usage_daily.cached_tokens', '+', eb.ref('excluded.cached_tokens')),
                cost: eb('usage_daily.cost', '+', eb.ref('excluded.cost')),
              })),
            )
            .execute();
        }
      });
    } catch (error) {
      // Back into the pending totals, merged with what arrived meanwhile, for the next write.
      for (const row of batch) this.#restore(row);
      this.#logger.error({ err: error, rows: batch.length }, 'usage ledger write failed; will retry');
      if (!this.#closed) this.#timer.schedule(this.#options.flushInterval);
      throw error;
    }
  }

  #restore(row: UsageDailyTable): void {
    const id = `${row.day}\u0000${row.key_id}\u0000${row.team_id}\u0000${row.model}`;
    const pending = this.#pending.get(id);
    if (pending === undefined) {
      this.#pending.set(id, row);
      return;
    }
    pending.requests += row.requests;
    pending.prompt_tokens += row.prompt_tokens;
    pending.completion_tokens += row.completion_tokens;
    pending.cached_tokens += row.cached_tokens;
    pending.cost += row.cost;
  }
}

/** Sums of many small fractions carry float noise (0.30000000000000004); a nano-dollar is enough. */
function dollars(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

function sum(rows: readonly UsageTotals[]): UsageTotals {
  let requests = 0;
  let prompt = 0;
  let completion = 0;
  let cached = 0;
  let cost = 0;
  for (const row of rows) {
    requests += row.requests;
    prompt += row.prompt_tokens;
    completion += row.completion_tokens;
    cached += row.cached_tokens;
    cost += row.cost;
  }
  return {
    requests,
    prompt_tokens: prompt,
    completion_tokens: completion,
    cached_tokens: cached,
    total_tokens: prompt + completion,
    cost: dollars(cost),
  };
}
