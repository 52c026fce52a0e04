import { describe, expect, test } from 'vitest';
import { PromisedState } from '../../test/support/promised-state.js';
import {
  type Bucket,
  bucketResetMs,
  bucketWait,
  type Counter,
  MemoryState,
  type SharedState,
} from './shared-state.js';

const perMinute = (key: string, capacity: number): Bucket => ({ key, capacity, interval: 60_000 });
const until = (key: string, expiresAt: number): Counter => ({ key, expiresAt });

// The conformance suite every SharedState runs (DESIGN.md: one suite per extension point).
// A Redis implementation joins this list.
const implementations: [string, () => SharedState][] = [
  ['MemoryState', () => new MemoryState()],
  ['a state answering through promises', () => new PromisedState()],
];

describe.each(implementations)('SharedState conformance: %s', (_name, create) => {
  test('a bucket never seen is full, and taking leaves its level', async () => {
    const state = create();
    const result = await state.take([perMinute('a', 50)], [1], 0);
    expect(result).toEqual({ taken: true, levels: [49] });
  });

  test('takes from every bucket or from none', async () => {
    const state = create();
    const roomy = perMinute('roomy', 100);
    const tight = perMinute('tight', 10);
    await state.take([tight], [8], 0);
    const refused = await state.take([roomy, tight], [5, 5], 0);
    expect(refused).toEqual({ taken: false, levels: [100, 2] });
    const taken = await state.take([roomy, tight], [5, 2], 0);
    expect(taken).toEqual({ taken: true, levels: [95, 0] });
  });

  test('200 simultaneous takes from a bucket of 50 give exactly 50', async () => {
    const state = create();
    const bucket = perMinute('burst', 50);
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => state.take([bucket], [1], 1_000)),
    );
    expect(results.filter((result) => result.taken)).toHaveLength(50);
  });

  test('refills at capacity per interval, never above capacity', async () => {
    const state = create();
    const bucket = perMinute('refill', 60); // 1 per second
    await state.take([bucket], [60], 0);
    expect(await state.take([bucket], [1], 999)).toMatchObject({ taken: false });
    expect(await state.take([bucket], [1], 1_000)).toEqual({ taken: true, levels: [0] });
    expect(await state.take([bucket], [1], 10 * 60_000)).toEqual({ taken: true, levels: [59] });
  });

  test('a cost above capacity is taken only from a full bucket, leaving it in debt', async () => {
    const state = create();
    const bucket = perMinute('big', 1_000);
    await state.take([bucket], [1], 0);
    expect(await state.take([bucket], [1_500], 0)).toMatchObject({ taken: false });
    expect(await state.take([bucket], [1_500], 60)).toEqual({ taken: true, levels: [-500] });
    expect(await state.take([bucket], [0], 60)).toMatchObject({ taken: false });
  });

  test('adjust refunds up to capacity and charges into debt', async () => {
    const state = create();
    const bucket = perMinute('tokens', 1_000);
    await state.take([bucket], [400], 0);
    await state.adjust([bucket], [300], 0);
    expect(await state.take([bucket], [0], 0)).toEqual({ taken: true, levels: [900] });
    await state.adjust([bucket], [5_000], 0);
    expect(await state.take([bucket], [0], 0)).toEqual({ taken: true, levels: [1_000] });
    await state.adjust([bucket], [-1_250], 0);
    expect(await state.take([bucket], [1], 0)).toEqual({ taken: false, levels: [-250] });
    // 251 tokens at 1000 per minute: 15,060 ms.
    expect(await state.take([bucket], [1], 15_059)).toMatchObject({ taken: false });
    expect(await state.take([bucket], [1], 15_060)).toMatchObject({ taken: true });
  });

  test('a charge to a bucket never seen starts from full', async () => {
    const state = create();
    const bucket = perMinute('fresh', 100);
    await state.adjust([bucket], [-30], 0);
    expect(await state.take([bucket], [0], 0)).toEqual({ taken: true, levels: [70] });
  });

  test('a clock that steps back refills nothing and drains nothing', async () => {
    const state = create();
    const bucket = perMinute('skew', 60);
    await state.take([bucket], [10], 5_000);
    expect(await state.take([bucket], [0], 4_000)).toEqual({ taken: true, levels: [50] });
    expect(await state.take([bucket], [0], 6_000)).toEqual({ taken: true, levels: [51] });
  });

  test('a repeated key is taken from twice, and all or nothing still holds', async () => {
    const state = create();
    const bucket = perMinute('twice', 10);
    expect(await state.take([bucket, bucket], [6, 6], 0)).toMatchObject({ taken: false });
    expect(await state.take([bucket], [0], 0)).toEqual({ taken: true, levels: [10] });
    expect(await state.take([bucket, bucket], [4, 5], 0)).toEqual({ taken: true, levels: [6, 1] });
  });

  test('a changed capacity applies from the next call and keeps what was used', async () => {
    const state = create();
    await state.take([perMinute('changed', 100)], [10], 0);
    expect(await state.take([perMinute('changed', 50)], [0], 0)).toEqual({ taken: true, levels: [40] });
    expect(await state.take([perMinute('changed', 200)], [0], 0)).toEqual({ taken: true, levels: [190] });
  });

  test('a counter never added to reads 0', async () => {
    const state = create();
    expect(await state.read(['never', 'nor-this'], 0)).toEqual([0, 0]);
    expect(await state.read([], 0)).toEqual([]);
  });

  test('add adds the amount to every counter named, and read answers in the order asked', async () => {
    const state = create();
    const day = until('spend:day', 1_000);
    const month = until('spend:month', 5_000);
    await state.add([day, month], 0.5, 0);
    await state.add([month], 2, 10);
    expect(await state.read(['spend:month', 'absent', 'spend:day'], 20)).toEqual([2.5, 0, 0.5]);
  });

  test('a counter reads 0 from its expiry on, and an add after that starts afresh', async () => {
    const state = create();
    const day = until('expiring', 1_000);
    await state.add([day], 3, 0);
    expect(await state.read(['expiring'], 999)).toEqual([3]);
    expect(await state.read(['expiring'], 1_000)).toEqual([0]);
    await state.add([until('expiring', 2_000)], 1, 1_500);
    expect(await state.read(['expiring'], 1_500)).toEqual([1]);
  });

  test('add moves a counter’s expiry to the one it is given', async () => {
    const state = create();
    await state.add([until('moved', 1_000)], 1, 0);
    await state.add([until('moved', 3_000)], 1, 500);
    expect(await state.read(['moved'], 2_000)).toEqual([2]);
    expect(await state.read(['moved'], 3_000)).toEqual([0]);
  });

  test('200 simultaneous adds of 1 count 200', async () => {
    const state = create();
    const counter = until('concurrent', 60_000);
    await Promise.all(Array.from({ length: 200 }, async () => state.add([counter], 1, 0)));
    expect(await state.read(['concurrent'], 0)).toEqual([200]);
  });

  test('raise sets a counter to at least a value, never lowers it, and counts nothing twice', async () => {
    const state = create();
    const low = until('low', 10_000);
    const high = until('high', 10_000);
    await state.add([high], 7, 0);
    await state.raise([low, high], [4, 5], 0);
    await state.raise([low, high], [4, 5], 0);
    expect(await state.read(['low', 'high'], 0)).toEqual([4, 7]);
    await state.add([low], 1, 0);
    await state.raise([low], [4], 0);
    expect(await state.read(['low'], 0)).toEqual([5]);
  });

  test('raise treats an expired counter as 0 and sets its new expiry', async () => {
    const state = create();
    await state.add([until('stale', 1_000)], 9, 0);
    await state.raise([until('stale', 3_000)], [2], 1_000);
    expect(await state.read(['stale'], 2_999)).toEqual([2]);
    expect(await state.read(['stale'], 3_000)).toEqual([0]);
  });
});

describe('MemoryState', () => {
  test('answers synchronously', () => {
    const state = new MemoryState();
    const result = state.take([perMinute('sync', 2)], [1], 0);
    expect(result).not.toBeInstanceOf(Promise);
    expect(result.taken).toBe(true);
    expect(state.adjust([perMinute('sync', 2)], [1], 0)).toBeUndefined();
  });

  test('200 takes in a tight synchronous loop from a bucket of 50 give exactly 50', () => {
    const state = new MemoryState();
    const bucket = perMinute('loop', 50);
    let taken = 0;
    for (let i = 0; i < 200; i++) if (state.take([bucket], [1], 0).taken) taken++;
    expect(taken).toBe(50);
  });

  test('evicts buckets once they have refilled, a few per call, without a timer', () => {
    const state = new MemoryState();
    for (let i = 0; i < 100; i++) state.take([perMinute(`idle:${i}`, 60)], [1], 0);
    expect(state.size).toBe(100);
    // One second later every idle bucket is full again; calls on one busy bucket sweep them away.
    const busy = perMinute('busy', 1_000_000);
    for (let i = 0; i < 100; i++) state.take([busy], [1], 1_000);
    expect(state.size).toBe(1);
  });

  test('keeps buckets that are not full, and those in debt', () => {
    const state = new MemoryState();
    state.take([perMinute('drained', 60)], [60], 0);
    state.adjust([perMinute('debt', 60)], [-120], 0);
    state.take([perMinute('idle', 60)], [1], 0);
    expect(state.sweep(1_000)).toBe(1);
    expect(state.size).toBe(2);
    expect(state.sweep(60_000)).toBe(1); // drained is full after a minute
    expect(state.sweep(119_999)).toBe(0); // 120 below full: two minutes
    expect(state.sweep(120_000)).toBe(1);
    expect(state.size).toBe(0);
  });

  test('an evicted bucket reads as full, as it was', () => {
    const state = new MemoryState();
    const bucket = perMinute('evicted', 60);
    state.take([bucket], [30], 0);
    state.sweep(30_000);
    expect(state.size).toBe(0);
    expect(state.take([bucket], [0], 31_000)).toEqual({ taken: true, levels: [60] });
  });

  test('a refund to a bucket never seen stores nothing', () => {
    const state = new MemoryState();
    state.adjust([perMinute('unseen', 60)], [10], 0);
    expect(state.size).toBe(0);
  });

  test('answers counter operations synchronously', () => {
    const state = new MemoryState();
    expect(state.add([until('sync', 1_000)], 1, 0)).toBeUndefined();
    expect(state.raise([until('sync', 1_000)], [2], 0)).toBeUndefined();
    expect(state.read(['sync'], 0)).toEqual([2]);
  });

  test('evicts counters once they have expired, a few per call, without a timer', () => {
    const state = new MemoryState();
    for (let i = 0; i < 100; i++) state.add([until(`day:${i}`, 1_000)], 1, 0);
    state.add([until('month', 60_000)], 1, 0);
    expect(state.size).toBe(101);
    // Calls on the one live counter sweep the expired ones away.
    for (let i = 0; i < 101; i++) state.read(['month'], 1_000);
    expect(state.size).toBe(1);
    expect(state.read(['month'], 1_000)).toEqual([1]);
  });

  test('sweep evicts expired counters with refilled buckets, and keeps live ones', () => {
    const state = new MemoryState();
    state.add([until('day', 1_000), until('week', 7_000)], 1, 0);
    state.take([perMinute('bucket', 60)], [1], 0);
    expect(state.sweep(999)).toBe(0);
    expect(state.sweep(1_000)).toBe(2); // the day's counter, and the bucket refilled in a second
    expect(state.read(['week'], 1_000)).toEqual([1]);
    expect(state.sweep(7_000)).toBe(1);
    expect(state.size).toBe(0);
  });

  test('raising a counter never seen to 0 stores nothing', () => {
    const state = new MemoryState();
    state.raise([until('zero', 1_000)], [0], 0);
    expect(state.size).toBe(0);
  });
});

describe('bucket arithmetic', () => {
  const bucket = perMinute('arithmetic', 600); // 10 per second

  test('bucketWait is the time to hold a cost, capped at a full bucket', () => {
    expect(bucketWait(bucket, 5, 5)).toBe(0);
    expect(bucketWait(bucket, 0, 5)).toBe(500);
    expect(bucketWait(bucket, -10, 1)).toBe(1_100);
    expect(bucketWait(bucket, 0, 10_000)).toBe(60_000);
  });

  test('bucketResetMs is the time to full', () => {
    expect(bucketResetMs(bucket, 600)).toBe(0);
    expect(bucketResetMs(bucket, 590)).toBe(1_000);
    expect(bucketResetMs(bucket, -600)).toBe(120_000);
  });
});
