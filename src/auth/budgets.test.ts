import { describe, expect, it } from 'vitest';
import { type Budgeted, budgetOk, periodStarts, SpendTracker } from './budgets.js';
import {
  type Bucket,
  type Counter,
  type MaybePromise,
  MemoryState,
  type SharedState,
  type TakeResult,
} from './shared-state.js';
import type { Budget } from './types.js';

const at = (iso: string) => Date.parse(iso);

function key(id: string, budget?: Budget): Budgeted {
  return { id, budget };
}

/** Answers through promises while `remote`, as a state on Redis would; synchronously otherwise. */
class RemoteState implements SharedState {
  readonly #inner = new MemoryState();
  remote = true;
  take(buckets: readonly Bucket[], costs: readonly number[], now: number): MaybePromise<TakeResult> {
    return this.#answer(this.#inner.take(buckets, costs, now));
  }
  adjust(buckets: readonly Bucket[], amounts: readonly number[], now: number): MaybePromise<void> {
    return this.#answer(this.#inner.adjust(buckets, amounts, now));
  }
  add(counters: readonly Counter[], amount: number, now: number): MaybePromise<void> {
    return this.#answer(this.#inner.add(counters, amount, now));
  }
  raise(counters: readonly Counter[], values: readonly number[], now: number): MaybePromise<void> {
    return this.#answer(this.#inner.raise(counters, values, now));
  }
  read(keys: readonly string[], now: number): MaybePromise<readonly number[]> {
    return this.#answer(this.#inner.read(keys, now));
  }
  #answer<T>(value: T): MaybePromise<T> {
    return this.remote ? Promise.resolve(value) : value;
  }
}

/** A tracker whose clock is a variable the test moves. */
function trackerAt(start: string, state?: MemoryState) {
  let now = at(start);
  const spend = new SpendTracker({ now: () => now, ...(state === undefined ? {} : { state }) });
  return {
    spend,
    moveTo(iso: string) {
      now = at(iso);
    },
  };
}

describe('SpendTracker periods', () => {
  it('adds up a day’s spend and starts afresh at midnight UTC', () => {
    const { spend, moveTo } = trackerAt('2025-06-11T10:00:00Z');
    const alice = key('alice', { amount: 1, period: 'day' });
    spend.record('alice', undefined, 0.6);
    expect(spend.check(alice, undefined)).toBe(budgetOk);
    moveTo('2025-06-11T23:59:59.999Z');
    spend.record('alice', undefined, 0.5);
    expect(spend.check(alice, undefined)).toEqual({
      state: 'exceeded',
      scope: 'key',
      budget: alice.budget,
      spent: 1.1,
    });
    moveTo('2025-06-12T00:00:00Z');
    expect(spend.check(alice, undefined)).toBe(budgetOk);
    expect(spend.spent('key', 'alice', 'day')).toBe(0);
    expect(spend.spent('key', 'alice', 'month')).toBeCloseTo(1.1, 12);
  });

  it('takes the clock as an argument as well as from the injected one', () => {
    const spend = new SpendTracker({ now: () => at('2025-06-11T10:00:00Z') });
    const alice = key('alice', { amount: 1, period: 'day' });
    spend.record('alice', undefined, 2, at('2025-06-11T10:00:00Z'));
    expect(spend.check(alice, undefined, at('2025-06-11T12:00:00Z')).state).toBe('exceeded');
    expect(spend.check(alice, undefined, at('2025-06-12T00:00:00Z'))).toBe(budgetOk);
  });

  it('keeps a week’s spend from Monday to Sunday and starts afresh on Monday', () => {
    const { spend, moveTo } = trackerAt('2025-06-09T00:00:00Z'); // a Monday
    const alice = key('alice', { amount: 10, period: 'week' });
    spend.record('alice', undefined, 4);
    moveTo('2025-06-11T12:00:00Z');
    spend.record('alice', undefined, 4);
    moveTo('2025-06-15T23:59:59.999Z'); // Sunday
    spend.record('alice', undefined, 2);
    expect(spend.check(alice, undefined)).toMatchObject({ state: 'exceeded', spent: 10 });
    expect(spend.periodStarts()).toEqual({ day: '2025-06-15', week: '2025-06-09', month: '2025-06-01' });
    moveTo('2025-06-16T00:00:00Z'); // Monday
    expect(spend.check(alice, undefined)).toBe(budgetOk);
    expect(spend.spent('key', 'alice', 'week')).toBe(0);
    expect(spend.spent('key', 'alice', 'month')).toBe(10);
  });

  it('starts a month afresh on the 1st, from December into January', () => {
    const { spend, moveTo } = trackerAt('2025-12-01T00:00:00Z');
    const alice = key('alice', { amount: 100, period: 'month' });
    spend.record('alice', undefined, 60);
    moveTo('2025-12-31T23:30:00Z');
    spend.record('alice', undefined, 40);
    expect(spend.check(alice, undefined)).toMatchObject({ state: 'exceeded', spent: 100 });
    moveTo('2026-01-01T00:00:00Z');
    expect(spend.check(alice, undefined)).toBe(budgetOk);
    // The ISO week that holds New Year's Day began on Monday, 29 December.
    expect(spend.periodStarts()).toEqual({ day: '2026-01-01', week: '2025-12-29', month: '2026-01-01' });
    expect(spend.spent('key', 'alice', 'week')).toBe(40);
  });

  it('counts a cost recorded late, with an instant before the current day, in the current day', () => {
    const { spend, moveTo } = trackerAt('2025-06-12T00:00:01Z');
    spend.check(key('alice', { amount: 1, period: 'day' }), undefined);
    moveTo('2025-06-11T23:59:59Z');
    spend.record('alice', undefined, 0.5);
    moveTo('2025-06-12T00:00:02Z');
    expect(spend.spent('key', 'alice', 'day')).toBe(0.5);
  });
});

describe('periodStarts', () => {
  it('names the UTC day, ISO week and month that hold an instant', () => {
    expect(periodStarts(at('2025-06-01T23:00:00Z'))).toEqual({
      day: '2025-06-01',
      week: '2025-05-26',
      month: '2025-06-01',
    });
    expect(periodStarts(at('2024-02-29T12:00:00Z'))).toEqual({
      day: '2024-02-29',
      week: '2024-02-26',
      month: '2024-02-01',
    });
  });
});

describe('SpendTracker budgets', () => {
  it('answers soft once spend reaches the soft amount, then exceeded at the amount', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    const alice = key('alice', { amount: 10, soft: 8, period: 'month' });
    spend.record('alice', undefined, 7);
    expect(spend.check(alice, undefined)).toBe(budgetOk);
    spend.record('alice', undefined, 1);
    expect(spend.check(alice, undefined)).toEqual({
      state: 'soft',
      scope: 'key',
      budget: alice.budget,
      spent: 8,
    });
    spend.record('alice', undefined, 2);
    expect(spend.check(alice, undefined)).toEqual({
      state: 'exceeded',
      scope: 'key',
      budget: alice.budget,
      spent: 10,
    });
  });

  it('answers the same ok object, allocating nothing, when no budget is near', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    spend.record('alice', 'red', 1);
    expect(spend.check(key('alice'), key('red'))).toBe(budgetOk);
    expect(spend.check(undefined, undefined)).toBe(budgetOk);
    expect(
      spend.check(key('alice', { amount: 5, period: 'day' }), key('red', { amount: 5, period: 'day' })),
    ).toBe(budgetOk);
  });

  it('records nothing for a free request', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    spend.record('alice', 'red', 0);
    spend.record('alice', 'red', Number.NaN);
    expect(spend.spent('key', 'alice', 'day')).toBe(0);
    expect(spend.check(key('alice', { amount: 0.001, period: 'day' }), undefined)).toBe(budgetOk);
  });

  it('lets two keys of a team share its budget, and blocks both once one key exhausts it', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    const red = key('red', { amount: 5, period: 'day' });
    const alice = key('alice', { amount: 100, period: 'day' });
    const bob = key('bob');
    spend.record('alice', 'red', 3);
    spend.record('bob', 'red', 1);
    expect(spend.check(alice, red)).toBe(budgetOk);
    expect(spend.check(bob, red)).toBe(budgetOk);
    spend.record('alice', 'red', 1);
    // Alice is far inside her own budget, and Bob has none: the team's refuses them both.
    expect(spend.check(alice, red)).toEqual({
      state: 'exceeded',
      scope: 'team',
      budget: red.budget,
      spent: 5,
    });
    expect(spend.check(bob, red)).toEqual({ state: 'exceeded', scope: 'team', budget: red.budget, spent: 5 });
    expect(spend.spent('key', 'alice', 'day')).toBe(4);
    expect(spend.spent('team', 'red', 'day')).toBe(5);
  });

  it('refuses a key at its own budget while the rest of its team goes on', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    const red = key('red', { amount: 100, period: 'month' });
    const alice = key('alice', { amount: 2, period: 'day' });
    const bob = key('bob', { amount: 2, period: 'day' });
    spend.record('alice', 'red', 2);
    expect(spend.check(alice, red)).toMatchObject({ state: 'exceeded', scope: 'key' });
    expect(spend.check(bob, red)).toBe(budgetOk);
  });

  it('answers the most severe of the key’s and the team’s states', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    spend.record('alice', 'red', 9);
    const softKey = key('alice', { amount: 10, soft: 5, period: 'day' });
    const exceededTeam = key('red', { amount: 9, period: 'day' });
    expect(spend.check(softKey, exceededTeam)).toMatchObject({ state: 'exceeded', scope: 'team' });
    const exceededKey = key('alice', { amount: 9, period: 'day' });
    const softTeam = key('red', { amount: 10, soft: 5, period: 'day' });
    expect(spend.check(exceededKey, softTeam)).toMatchObject({ state: 'exceeded', scope: 'key' });
    expect(spend.check(softKey, softTeam)).toMatchObject({ state: 'soft', scope: 'key' });
  });

  it('measures each budget over its own period', () => {
    const { spend, moveTo } = trackerAt('2025-06-10T10:00:00Z');
    spend.record('alice', 'red', 3);
    moveTo('2025-06-11T10:00:00Z');
    spend.record('alice', 'red', 1);
    const daily = key('alice', { amount: 2, period: 'day' });
    const monthly = key('red', { amount: 4, period: 'month' });
    expect(spend.check(daily, undefined)).toBe(budgetOk);
    expect(spend.check(undefined, monthly)).toMatchObject({ state: 'exceeded', scope: 'team', spent: 4 });
  });
});

describe('SpendTracker.load', () => {
  it('rebuilds keys’ and teams’ spend from stored rows, a key that moved teams included', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    spend.load([
      { keyId: 'alice', teamId: 'red', day: 1, week: 2, month: 3 },
      { keyId: 'alice', teamId: 'blue', day: 0, week: 1, month: 1 },
      { keyId: 'bob', teamId: 'red', day: 0.5, week: 0.5, month: 0.5 },
      { keyId: '', teamId: 'blue', day: 2, week: 2, month: 2 },
    ]);
    expect(spend.spent('key', 'alice', 'day')).toBe(1);
    expect(spend.spent('key', 'alice', 'week')).toBe(3);
    expect(spend.spent('key', 'alice', 'month')).toBe(4);
    expect(spend.spent('team', 'red', 'day')).toBe(1.5);
    expect(spend.spent('team', 'blue', 'month')).toBe(3);
    expect(spend.check(key('bob'), key('red', { amount: 3.5, period: 'month' }))).toMatchObject({
      state: 'exceeded',
      scope: 'team',
      spent: 3.5,
    });
  });
});

describe('SpendTracker.load, again', () => {
  it('keeps spend counted beyond the stored rows, and counts nothing twice when loaded twice', () => {
    const { spend } = trackerAt('2025-06-11T10:00:00Z');
    // Counted live (by this replica or another) and not yet flushed to the ledger.
    spend.record('alice', 'red', 5);
    spend.load([{ keyId: 'alice', teamId: 'red', day: 3, week: 3, month: 3 }]);
    expect(spend.spent('key', 'alice', 'day')).toBe(5);
    const rows = [{ keyId: 'alice', teamId: 'red', day: 6, week: 7, month: 8 }];
    spend.load(rows);
    spend.load(rows);
    expect(spend.spent('key', 'alice', 'day')).toBe(6);
    expect(spend.spent('team', 'red', 'week')).toBe(7);
    expect(spend.spent('team', 'red', 'month')).toBe(8);
  });
});

describe('SpendTracker on a shared state', () => {
  it('holds one budget between two trackers sharing a state, as replicas on Redis do', () => {
    const state = new MemoryState();
    const one = trackerAt('2025-06-11T10:00:00Z', state).spend;
    const two = trackerAt('2025-06-11T10:00:00Z', state).spend;
    const red = key('red', { amount: 5, period: 'day' });
    const alice = key('alice', { amount: 3, period: 'week' });
    one.record('alice', 'red', 2);
    two.record('bob', 'red', 2);
    expect(two.check(alice, red)).toBe(budgetOk);
    two.record('alice', 'red', 1);
    // Each tracker saw 3 of the team's 5 dollars recorded itself; together the team spent 5.
    expect(one.check(key('bob'), red)).toEqual({
      state: 'exceeded',
      scope: 'team',
      budget: red.budget,
      spent: 5,
    });
    expect(one.check(alice, undefined)).toMatchObject({ state: 'exceeded', scope: 'key', spent: 3 });
    expect(two.spent('key', 'alice', 'week')).toBe(3);
  });

  it('keeps a counter per key or team and period, each gone an hour after its period ends', () => {
    const state = new MemoryState();
    const { spend } = trackerAt('2025-06-11T10:00:00Z', state); // a Wednesday
    spend.record('alice', 'red', 1);
    expect(state.size).toBe(6);
    expect(
      state.read(
        ['spend:key:alice:day:2025-06-11', 'spend:team:red:month:2025-06'],
        at('2025-06-11T10:00:00Z'),
      ),
    ).toEqual([1, 1]);
    expect(state.sweep(at('2025-06-12T00:59:59.999Z'))).toBe(0);
    expect(state.sweep(at('2025-06-12T01:00:00Z'))).toBe(2); // the day's, key and team
    expect(state.read(['spend:key:alice:week:2025-06-09'], at('2025-06-12T01:00:00Z'))).toEqual([1]);
    expect(state.sweep(at('2025-06-16T01:00:00Z'))).toBe(2); // the week's
    expect(state.sweep(at('2025-07-01T00:59:59.999Z'))).toBe(0);
    expect(state.sweep(at('2025-07-01T01:00:00Z'))).toBe(2); // the month's
    expect(state.size).toBe(0);
  });

  it('touches no state without a budget, and reads only the counters of budgeted periods', () => {
    const reads: (readonly string[])[] = [];
    const state = new (class extends MemoryState {
      override read(keys: readonly string[], now: number): readonly number[] {
        if (keys.length > 0) reads.push(keys);
        return super.read(keys, now);
      }
    })();
    const { spend } = trackerAt('2025-06-11T10:00:00Z', state);
    spend.record('alice', 'red', 1);
    expect(spend.check(key('alice'), key('red'))).toBe(budgetOk);
    expect(spend.check(undefined, undefined)).toBe(budgetOk);
    expect(reads).toEqual([]);
    spend.check(key('alice', { amount: 5, period: 'week' }), key('red'));
    spend.check(key('alice'), key('red', { amount: 5, period: 'month' }));
    spend.check(key('alice', { amount: 5, period: 'day' }), key('red', { amount: 5, period: 'month' }));
    expect(reads).toEqual([
      ['spend:key:alice:week:2025-06-09'],
      ['spend:team:red:month:2025-06'],
      ['spend:key:alice:day:2025-06-11', 'spend:team:red:month:2025-06'],
    ]);
  });

  it('refuses a state that answers through promises, at construction and on a call', () => {
    const state = new RemoteState();
    expect(() => new SpendTracker({ state })).toThrow(
      'an asynchronous shared state needs an asynchronous admission stage',
    );
    state.remote = false;
    const spend = new SpendTracker({ state });
    state.remote = true;
    expect(() => spend.record('alice', undefined, 1)).toThrow('asynchronous admission stage');
    expect(() => spend.check(key('alice', { amount: 1, period: 'day' }), undefined)).toThrow(
      'asynchronous admission stage',
    );
  });
});
