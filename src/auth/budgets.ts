import { type Counter, type MaybePromise, MemoryState, type SharedState } from './shared-state.js';
import type { Budget, BudgetPeriod } from './types.js';

/** Whose budget a check is about. */
export type BudgetScope = 'key' | 'team';

/**
 * A budget check's outcome. `soft`: spend has reached the budget's soft amount (alert, serve);
 * `exceeded`: it has reached the amount (refuse). Only those carry the budget and spend, so the
 * common answer is one shared object.
 */
export type BudgetCheck =
  | { readonly state: 'ok' }
  | {
      readonly state: 'soft' | 'exceeded';
      readonly scope: BudgetScope;
      readonly budget: Budget;
      /** Dollars spent in the budget's current period. */
      readonly spent: number;
    };

/** What `check` answers whenever no budget is near: the same frozen object every time. */
export const budgetOk: BudgetCheck = Object.freeze({ state: 'ok' });

/** A key or a team, as far as its budget goes; ApiKey and Team are both. */
export interface Budgeted {
  readonly id: string;
  readonly budget: Budget | undefined;
}

/** The first day (YYYY-MM-DD, UTC) of each current period: what to read back from the store. */
export interface PeriodStarts {
  readonly day: string;
  readonly week: string;
  readonly month: string;
}

/**
 * Stored spend of one key within one team in each current period, in dollars; '' for no key or
 * no team. A key that moved between teams has a row for each.
 */
export interface SpendRow {
  readonly keyId: string;
  readonly teamId: string;
  readonly day: number;
  readonly week: number;
  readonly month: number;
}

const dayMs = 86_400_000;

/**
 * How long a period's counters outlive it. Replicas' clocks differ by a little, and a state on
 * Redis expires keys by its own: a replica still in the period that has just ended elsewhere must
 * find its counter, not an empty one it would spend into afresh. An hour covers any sane skew and
 * costs one hour of memory per counter.
 */
const expiryMargin = 3_600_000;

/** The UTC calendar periods that contain one instant, and the names and lifetimes of their counters. */
interface Periods {
  readonly dayStart: number;
  readonly dayEnd: number;
  readonly weekStart: number;
  readonly monthStart: number;
  /** Each period's counter-key suffix: ":day:2025-06-11", ":week:2025-06-09", ":month:2025-06". */
  readonly day: string;
  readonly week: string;
  readonly month: string;
  /** When each period's counters expire: its end plus `expiryMargin`. */
  readonly dayExpires: number;
  readonly weekExpires: number;
  readonly monthExpires: number;
}

function periodsAt(now: number): Periods {
  const dayStart = now - modulo(now, dayMs);
  const days = dayStart / dayMs;
  // 1970-01-01 was a Thursday, day 3 of an ISO week counted from Monday = 0.
  const weekStart = (days - modulo(days + 3, 7)) * dayMs;
  const date = new Date(dayStart);
  const monthStart = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  const monthEnd = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
  return {
    dayStart,
    dayEnd: dayStart + dayMs,
    weekStart,
    monthStart,
    day: `:day:${isoDay(dayStart)}`,
    week: `:week:${isoDay(weekStart)}`,
    month: `:month:${isoDay(monthStart).slice(0, 7)}`,
    dayExpires: dayStart + dayMs + expiryMargin,
    weekExpires: weekStart + 7 * dayMs + expiryMargin,
    monthExpires: monthEnd + expiryMargin,
  };
}

function modulo(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}

function isoDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** The UTC day, ISO week (from Monday) and month containing `now`, as their first days. */
export function periodStarts(now: number): PeriodStarts {
  const periods = periodsAt(now);
  return {
    day: isoDay(periods.dayStart),
    week: isoDay(periods.weekStart),
    month: isoDay(periods.monthStart),
  };
}

/** 0 ok, 1 soft, 2 exceeded. */
function severity(budget: Budget, spent: number): number {
  if (spent >= budget.amount) return 2;
  return budget.soft !== undefined && spent >= budget.soft ? 1 : 0;
}

const noKeys: readonly string[] = [];

/**
 * Dollars spent per key and per team in the current UTC day, ISO week (from Monday) and month,
 * against their budgets. Budgets nest: a key's requests count against its own budget and its
 * team's, and a key is refused once either is exhausted, so the keys of a team never spend past
 * the team's budget together.
 *
 * Spend lives in a `SharedState`, so that replicas sharing one (Redis) hold one budget between
 * them rather than a budget each: one counter per key or team and period, named
 * `spend:key:<id>:day:<YYYY-MM-DD>`, `…:week:<Monday>`, `…:month:<YYYY-MM>` (`team` for teams),
 * each expiring an hour after its period ends. A period's start is a new counter rather than a
 * reset, so replicas need not agree on when it happened. A check reads only the counters of the
 * periods that have a budget, in one call; a record adds to all six in one call. At start `load`
 * restores the current periods from the usage ledger. Periods only move forward: a cost recorded
 * with an instant before the current period (a request that began before midnight and ended
 * after) counts in the current one, when it was paid.
 *
 * Synchronous, since admission is (src/auth/access.ts): with a state that answers through
 * promises every method throws, and the constructor already does, until the scale-out issue
 * makes the admission stage asynchronous.
 *
 * @example
 * const spend = new SpendTracker({ state }); // the rate limits' state: one Redis for both
 * if (spend.check(key, team).state === 'exceeded') throw new GatewayError('budget_exceeded');
 * spend.record(key.id, team?.id, 0.0042);
 */
export class SpendTracker {
  readonly #now: () => number;
  readonly #state: SharedState;
  readonly #keyPrefix: string;
  readonly #teamPrefix: string;
  #periods: Periods;

  /**
   * `state` defaults to a state of its own; `keyPrefix` (default "spend:") namespaces the
   * counters' keys, so that several gateways can share one Redis.
   */
  constructor(
    options: {
      readonly now?: () => number;
      readonly state?: SharedState;
      readonly keyPrefix?: string;
    } = {},
  ) {
    this.#now = options.now ?? Date.now;
    this.#state = options.state ?? new MemoryState();
    const prefix = options.keyPrefix ?? 'spend:';
    this.#keyPrefix = `${prefix}key:`;
    this.#teamPrefix = `${prefix}team:`;
    const now = this.#now();
    this.#periods = periodsAt(now);
    // Refuse an asynchronous state at start rather than on the first budgeted request.
    answered(this.#state.read(noKeys, now));
  }

  /**
   * The most severe state of the key's and the team's budgets (the key's on a tie). Without a
   * budget it answers `budgetOk` having touched no state; without one near its limit it answers
   * `budgetOk` too.
   */
  check(key: Budgeted | undefined, team: Budgeted | undefined, now: number = this.#now()): BudgetCheck {
    const keyBudget = key?.budget;
    const teamBudget = team?.budget;
    if (keyBudget === undefined && teamBudget === undefined) return budgetOk;
    const periods = this.#advance(now);
    const keyCounter =
      keyBudget === undefined ? '' : this.#keyPrefix + key!.id + suffix(periods, keyBudget.period);
    const teamCounter =
      teamBudget === undefined ? '' : this.#teamPrefix + team!.id + suffix(periods, teamBudget.period);
    const spent = answered(
      this.#state.read(
        keyBudget === undefined
          ? [teamCounter]
          : teamBudget === undefined
            ? [keyCounter]
            : [keyCounter, teamCounter],
        now,
      ),
    );
    const keySpent = keyBudget === undefined ? 0 : spent[0]!;
    const teamSpent = teamBudget === undefined ? 0 : spent[keyBudget === undefined ? 0 : 1]!;
    const keyLevel = keyBudget === undefined ? 0 : severity(keyBudget, keySpent);
    const teamLevel = teamBudget === undefined ? 0 : severity(teamBudget, teamSpent);
    if (keyLevel === 0 && teamLevel === 0) return budgetOk;
    const state = Math.max(keyLevel, teamLevel) === 2 ? 'exceeded' : 'soft';
    return keyLevel >= teamLevel
      ? { state, scope: 'key', budget: keyBudget!, spent: keySpent }
      : { state, scope: 'team', budget: teamBudget!, spent: teamSpent };
  }

  /** Adds a request's cost to its key and its team; a free request changes nothing. */
  record(
    keyId: string | undefined,
    teamId: string | undefined,
    cost: number,
    now: number = this.#now(),
  ): void {
    if (!(cost > 0) || !Number.isFinite(cost)) return;
    const hasKey = keyId !== undefined && keyId !== '';
    const hasTeam = teamId !== undefined && teamId !== '';
    if (!hasKey && !hasTeam) return;
    const periods = this.#advance(now);
    const counters: Counter[] = [];
    if (hasKey) pushCounters(counters, this.#keyPrefix + keyId, periods);
    if (hasTeam) pushCounters(counters, this.#teamPrefix + teamId, periods);
    answered(this.#state.add(counters, cost, now));
  }

  /** Dollars a key or team has spent in the current `period`. */
  spent(scope: BudgetScope, id: string, period: BudgetPeriod, now: number = this.#now()): number {
    const periods = this.#advance(now);
    const name = (scope === 'key' ? this.#keyPrefix : this.#teamPrefix) + id + suffix(periods, period);
    return answered(this.#state.read([name], now))[0]!;
  }

  /** The first days of the current periods, for `UsageLedger.spendSince`. */
  periodStarts(now: number = this.#now()): PeriodStarts {
    return periodStarts(this.#advance(now).dayStart);
  }

  /**
   * Restores spend in the current periods from the stored rows, as read with `periodStarts()`
   * (see UsageLedger.spendSince): each key's and team's counters are raised to the rows' sum,
   * never lowered. The ledger is written a little after the counters, so on a shared state that
   * other replicas already count in, what they hold beyond the rows is spend not yet flushed and
   * stays; and loading twice counts nothing twice.
   *
   * @example spend.load(await ledger.spendSince(spend.periodStarts()));
   */
  load(rows: Iterable<SpendRow>, now: number = this.#now()): void {
    const periods = this.#advance(now);
    // Sums by counter name prefix ("spend:key:alice"): a key that moved teams has several rows,
    // and a team one per key.
    const totals = new Map<string, [day: number, week: number, month: number]>();
    const sum = (name: string, row: SpendRow) => {
      const total = totals.get(name);
      if (total === undefined) totals.set(name, [row.day, row.week, row.month]);
      else {
        total[0] += row.day;
        total[1] += row.week;
        total[2] += row.month;
      }
    };
    for (const row of rows) {
      if (row.keyId !== '') sum(this.#keyPrefix + row.keyId, row);
      if (row.teamId !== '') sum(this.#teamPrefix + row.teamId, row);
    }
    if (totals.size === 0) return;
    const counters: Counter[] = [];
    const values: number[] = [];
    for (const [name, [day, week, month]] of totals) {
      pushCounters(counters, name, periods);
      values.push(day, week, month);
    }
    answered(this.#state.raise(counters, values, now));
  }

  #advance(now: number): Periods {
    if (now >= this.#periods.dayEnd) this.#periods = periodsAt(now);
    return this.#periods;
  }
}

function suffix(periods: Periods, period: BudgetPeriod): string {
  return period === 'day' ? periods.day : period === 'week' ? periods.week : periods.month;
}

/** The day's, week's and month's counters of `name` ("spend:key:alice"), in that order. */
function pushCounters(counters: Counter[], name: string, periods: Periods): void {
  counters.push(
    { key: name + periods.day, expiresAt: periods.dayExpires },
    { key: name + periods.week, expiresAt: periods.weekExpires },
    { key: name + periods.month, expiresAt: periods.monthExpires },
  );
}

/**
 * The state's answer, which must be synchronous: admission cannot wait for it yet
 * (src/auth/access.ts throws the same for rate limits).
 */
function answered<T>(value: MaybePromise<T>): T {
  if (value instanceof Promise) {
    // Its outcome has no one to go to: the caller hears of the problem from the throw.
    value.catch(() => {});
    throw new Error('an asynchronous shared state needs an asynchronous admission stage');
  }
  return value;
}
