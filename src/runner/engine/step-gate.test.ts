import type { BatchItem, Token } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { StepGate, shareBatch } from './step-gate.js';

/** A queued decode of `tokens` tokens (a generating sequence queues 1, a prompt many). */
const item = (tokens: number, evaluationPriority: BatchItem['evaluationPriority'] = 5): BatchItem => ({
  tokens: Array.from({ length: tokens }, (_, index) => index as Token),
  logits: [],
  evaluationPriority,
});

describe('StepGate', () => {
  it('holds a step while fewer sequences are queued than are generating, and lets it go once all are', () => {
    const gate = new StepGate();
    gate.enter();
    gate.enter();
    gate.enter();
    const queued = [item(1), item(1)];
    expect(gate.strategy({ items: queued, size: 512 })).toEqual([]);
    expect(gate.strategy({ items: queued, size: 512 })).toEqual([]);
    const all = [...queued, item(1)];
    expect(gate.strategy({ items: all, size: 512 }).map((chosen) => chosen.processAmount)).toEqual([1, 1, 1]);
    expect(gate.counts).toEqual({ steps: 1, sequences: 3 });
  });

  it('lets a step go with what is queued after holding it maxHolds times in a row', () => {
    const gate = new StepGate({ maxHolds: 3 });
    gate.enter();
    gate.enter();
    const queued = [item(1)];
    for (let hold = 0; hold < 3; hold++) expect(gate.strategy({ items: queued, size: 512 })).toEqual([]);
    expect(gate.strategy({ items: queued, size: 512 })).toHaveLength(1);
    // The count starts again for the next step.
    expect(gate.strategy({ items: queued, size: 512 })).toEqual([]);
    expect(gate.counts).toEqual({ steps: 1, sequences: 1 });
  });

  it('stops waiting for a sequence once it leaves', () => {
    const gate = new StepGate();
    gate.enter();
    gate.enter();
    expect(gate.strategy({ items: [item(1)], size: 512 })).toEqual([]);
    gate.leave();
    expect(gate.strategy({ items: [item(1)], size: 512 })).toHaveLength(1);
  });

  it("lists a step's sequences in increasing id order, read from the queue it follows", () => {
    const gate = new StepGate();
    const items = [item(1), item(1), item(1), item(1)];
    const ids = [3, 1, 0, 2];
    gate.follow(() => ids.map((sequenceId) => ({ sequenceId })));
    for (const _ of items) gate.enter();
    const batch = gate.strategy({ items, size: 512 });
    expect(batch.map((chosen) => ids[items.indexOf(chosen.item)])).toEqual([0, 1, 2, 3]);
  });

  it('keeps the order as given when the queue it follows does not match the items', () => {
    const gate = new StepGate();
    const items = [item(1), item(1)];
    gate.follow(() => [{ sequenceId: 1 }]);
    gate.enter();
    gate.enter();
    expect(gate.strategy({ items, size: 512 }).map((chosen) => chosen.item)).toEqual(items);
  });

  it('times both layouts for each number of sequences and keeps the faster one', () => {
    let clock = 0;
    const gate = new StepGate({ now: () => clock });
    /** Runs steps of `ids.length` sequences; a joined step takes `joinedMs`, one apart `apartMs`. */
    const run = (ids: number[], steps: number, joinedMs: number, apartMs: number) => {
      const items = ids.map(() => item(1));
      gate.follow(() => ids.map((sequenceId) => ({ sequenceId })));
      const layouts: string[] = [];
      for (let step = 0; step < steps; step++) {
        const order = gate.strategy({ items, size: 512 }).map((chosen) => ids[items.indexOf(chosen.item)]!);
        const joined = order.every((id, index) => index === 0 || id > order[index - 1]!);
        layouts.push(joined ? 'joined' : 'apart');
        clock += joined ? joinedMs : apartMs;
      }
      return layouts;
    };
    gate.enter();
    gate.enter();
    // Two sequences: apart is faster here, so after 8 steps of each it is kept.
    const pairs = run([1, 0], 40, 10, 6);
    expect(pairs.slice(0, 16).filter((layout) => layout === 'apart')).toHaveLength(8);
    expect(pairs.slice(17)).toEqual(Array(23).fill('apart'));
    expect(gate.arrangementFor(2)).toBe('apart');
    // Nothing to gain by holding a step for the second sequence then: it goes with the first.
    expect(gate.strategy({ items: [item(1)], size: 512 })).toHaveLength(1);
    // Four sequences: joined is faster, and kept; the choice for two stands apart from it.
    gate.enter();
    gate.enter();
    const fours = run([3, 1, 0, 2], 40, 8, 20);
    expect(fours.slice(17)).toEqual(Array(23).fill('joined'));
    expect(gate.arrangementFor(4)).toBe('joined');
    expect(gate.arrangementFor(2)).toBe('apart');
  });

  it('keeps a layout it is given, holding steps only when it is joined', () => {
    for (const arrangement of ['joined', 'apart'] as const) {
      let clock = 0;
      const gate = new StepGate({ now: () => clock, arrangement });
      const items = [item(1), item(1), item(1)];
      const ids = [2, 0, 1];
      gate.follow(() => ids.map((sequenceId) => ({ sequenceId })));
      for (let entered = 0; entered < 4; entered++) gate.enter();
      // Three of four queued: joined waits for the fourth, apart lets the step go.
      expect(gate.strategy({ items, size: 512 })).toHaveLength(arrangement === 'joined' ? 0 : 3);
      gate.leave();
      for (let step = 0; step < 30; step++) {
        const order = gate.strategy({ items, size: 512 }).map((chosen) => ids[items.indexOf(chosen.item)]);
        expect(order).toEqual(arrangement === 'joined' ? [0, 1, 2] : [2, 1, 0]);
        // Whatever the timings, nothing changes the layout.
        clock += arrangement === 'joined' ? 50 : 1;
      }
      expect(gate.arrangementFor(3)).toBe(arrangement);
    }
  });

  it('does not time a step that evaluates a prompt, and lays it out joined', () => {
    let clock = 0;
    const gate = new StepGate({ now: () => clock });
    const items = [item(20), item(1)];
    const ids = [1, 0];
    gate.follow(() => ids.map((sequenceId) => ({ sequenceId })));
    gate.enter();
    gate.enter();
    for (let step = 0; step < 30; step++) {
      const order = gate.strategy({ items, size: 512 }).map((chosen) => ids[items.indexOf(chosen.item)]);
      expect(order).toEqual([0, 1]);
      clock += 5;
    }
    expect(gate.arrangementFor(2)).toBe('joined');
  });

  it('goes on from the counts of the gate it replaces', () => {
    const gate = new StepGate({ counted: { steps: 10, sequences: 35 } });
    gate.enter();
    gate.strategy({ items: [item(1)], size: 512 });
    expect(gate.counts).toEqual({ steps: 11, sequences: 36 });
  });
});

describe('shareBatch', () => {
  it('gives each generating sequence its one token', () => {
    const items = [item(1), item(1), item(1), item(1)];
    expect(shareBatch(items, 512)).toEqual(items.map((queued) => ({ item: queued, processAmount: 1 })));
  });

  it('shares the batch among prompts, then gives what is left to the higher priority first', () => {
    const low = item(400, 1);
    const high = item(400, 5);
    const short = item(10, 3);
    const batch = shareBatch([low, high, short], 300);
    expect(batch.map((chosen) => chosen.processAmount)).toEqual([100, 190, 10]);
    expect(batch.reduce((sum, chosen) => sum + chosen.processAmount, 0)).toBe(300);
  });

  it('never puts more tokens in a step than the batch holds, leaving later items for the next', () => {
    const batch = shareBatch([item(3), item(3), item(3)], 2);
    expect(batch.map((chosen) => chosen.processAmount)).toEqual([1, 1]);
  });
});
