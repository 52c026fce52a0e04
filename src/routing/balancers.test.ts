import { describe, expect, it } from 'vitest';
import type { Balancer, DeploymentStats } from './balancer.js';
import { createBalancer } from './balancers.js';

/** mulberry32: a small seeded PRNG, so every run draws the same numbers. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let mixed = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** An idle, unmeasured, unpriced deployment of weight 1; `change` adjusts it. */
function deployment(key: string, change: Partial<DeploymentStats> = {}): DeploymentStats {
  return {
    key,
    weight: 1,
    price: undefined,
    outstanding: 0,
    latency: undefined,
    duration: undefined,
    // Measured just now, unless a test says otherwise: its averages have not faded.
    measuredAt: performance.now(),
    load: undefined,
    ...change,
  };
}

const noKey = { affinityKey: undefined };

/** How many of `picks` each deployment got. */
function tally(
  balancer: Balancer,
  candidates: readonly DeploymentStats[],
  picks: number,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (let index = 0; index < picks; index++) {
    const { key } = balancer.pick(candidates, noKey);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

describe('weighted', () => {
  it('sends each deployment its weight’s share of traffic', () => {
    const deployments = [1, 2, 3, 4].map((weight) => deployment(`m/${weight}`, { weight }));
    const balancer = createBalancer('weighted', deployments, { random: seeded(1) });
    const counts = tally(balancer, deployments, 20_000);
    for (const { key, weight } of deployments) {
      expect(Math.abs(counts.get(key)! / 20_000 - weight / 10)).toBeLessThan(0.02);
    }
  });

  it('only picks among the candidates it is given', () => {
    const deployments = [deployment('m/a'), deployment('m/b'), deployment('m/c')];
    const balancer = createBalancer('weighted', deployments, { random: seeded(2) });
    const counts = tally(balancer, [deployments[0]!, deployments[2]!], 1_000);
    expect(counts.has('m/b')).toBe(false);
    expect(counts.get('m/a')! + counts.get('m/c')!).toBe(1_000);
  });
});

describe('round-robin', () => {
  it('takes the candidates in turn, and keeps turning when one drops out', () => {
    const deployments = [deployment('m/a'), deployment('m/b'), deployment('m/c')];
    const balancer = createBalancer('round-robin', deployments, { random: seeded(3) });
    const order = (candidates: readonly DeploymentStats[], picks: number) =>
      Array.from({ length: picks }, () => balancer.pick(candidates, noKey).key);
    expect(order(deployments, 7)).toEqual(['m/a', 'm/b', 'm/c', 'm/a', 'm/b', 'm/c', 'm/a']);
    expect(order([deployments[0]!, deployments[2]!], 4)).toEqual(['m/c', 'm/a', 'm/c', 'm/a']);
  });
});

describe('least-outstanding', () => {
  it('picks the deployment with the fewest requests in flight per unit of weight', () => {
    const deployments = [
      deployment('m/a', { outstanding: 5 }),
      deployment('m/b', { outstanding: 1 }),
      deployment('m/c', { outstanding: 3 }),
    ];
    const balancer = createBalancer('least-outstanding', deployments, { random: seeded(4) });
    expect(tally(balancer, deployments, 100).get('m/b')).toBe(100);

    // 4 in flight on weight 4 is lighter than 2 on weight 1.
    const big = deployment('m/big', { weight: 4, outstanding: 4 });
    const small = deployment('m/small', { weight: 1, outstanding: 2 });
    expect(
      createBalancer('least-outstanding', [big, small], { random: seeded(5) }).pick([big, small], noKey),
    ).toBe(big);
  });

  it('shares traffic among equally idle deployments instead of always taking the first', () => {
    const deployments = [deployment('m/a'), deployment('m/b'), deployment('m/c')];
    const balancer = createBalancer('least-outstanding', deployments, { random: seeded(6) });
    const counts = tally(balancer, deployments, 3_000);
    for (const { key } of deployments) expect(counts.get(key)).toBeGreaterThan(900);
  });

  it('evens out a skewed start as requests are sent', () => {
    const deployments = [deployment('m/a', { outstanding: 10 }), deployment('m/b'), deployment('m/c')];
    const balancer = createBalancer('least-outstanding', deployments, { random: seeded(7) });
    for (let index = 0; index < 20; index++) balancer.pick(deployments, noKey).outstanding++;
    expect(deployments.map((target) => target.outstanding)).toEqual([10, 10, 10]);
  });
});

describe('latency', () => {
  it('prefers a deployment ten times faster', () => {
    const fast = deployment('m/fast', { latency: 100 });
    const slow = deployment('m/slow', { latency: 1_000 });
    const balancer = createBalancer('latency', [fast, slow], { random: seeded(8) });
    expect(tally(balancer, [fast, slow], 2_000).get('m/fast')! / 2_000).toBeGreaterThan(0.8);
  });

  it('goes by duration where time to first byte is not measured', () => {
    const fast = deployment('m/fast', { duration: 100 });
    const slow = deployment('m/slow', { duration: 1_000 });
    const balancer = createBalancer('latency', [fast, slow], { random: seeded(9) });
    expect(tally(balancer, [fast, slow], 1_000).get('m/fast')! / 1_000).toBeGreaterThan(0.8);
  });

  it('sends to the slower deployment once the fast one has a queue', () => {
    const fast = deployment('m/fast', { latency: 100, outstanding: 20 });
    const slow = deployment('m/slow', { latency: 1_000 });
    const balancer = createBalancer('latency', [fast, slow], { random: seeded(10) });
    expect(balancer.pick([fast, slow], noKey)).toBe(slow);
  });

  it('tries a new, unmeasured deployment', () => {
    const deployments = [
      deployment('m/fast', { latency: 100 }),
      deployment('m/slow', { latency: 1_000 }),
      deployment('m/new'),
    ];
    const balancer = createBalancer('latency', deployments, { random: seeded(11) });
    expect(tally(balancer, deployments, 3_000).get('m/new')! / 3_000).toBeGreaterThan(0.5);
  });

  it('returns the only candidate', () => {
    const only = deployment('m/only', { latency: 5_000, outstanding: 9 });
    const balancer = createBalancer('latency', [only], { random: seeded(12) });
    expect(balancer.pick([only], noKey)).toBe(only);
  });
});

describe('cost', () => {
  const premium = deployment('m/premium', { price: { input: 10, output: 30 }, duration: 500 });
  const budget = deployment('m/budget', { price: { input: 1, output: 2 }, duration: 800 });
  const local = deployment('m/local', { duration: 5_000 });
  const deployments = [premium, budget, local];

  it('picks the cheapest deployment whose average duration meets the objective', () => {
    const balancer = createBalancer('cost', deployments, { random: seeded(13), latencyObjective: 2_000 });
    expect(tally(balancer, deployments, 100).get('m/budget')).toBe(100);
  });

  it('counts an unmeasured deployment as meeting the objective', () => {
    const fresh = deployment('m/fresh', { price: { input: 0.5, output: 0.5 } });
    const balancer = createBalancer('cost', [...deployments, fresh], {
      random: seeded(14),
      latencyObjective: 2_000,
    });
    expect(balancer.pick([...deployments, fresh], noKey)).toBe(fresh);
  });

  it('falls back to the fastest when none meets the objective', () => {
    const balancer = createBalancer('cost', deployments, { random: seeded(15), latencyObjective: 100 });
    expect(balancer.pick(deployments, noKey)).toBe(premium);
  });

  it('picks the cheapest, local counting as free, without an objective', () => {
    const balancer = createBalancer('cost', deployments, { random: seeded(16) });
    expect(balancer.pick(deployments, noKey)).toBe(local);
  });

  it('shares traffic between equally cheap deployments', () => {
    const twin = deployment('m/twin', { price: { input: 2, output: 1 }, duration: 300 });
    const balancer = createBalancer('cost', [...deployments, twin], {
      random: seeded(17),
      latencyObjective: 2_000,
    });
    const counts = tally(balancer, [...deployments, twin], 2_000);
    expect(counts.get('m/budget')! / 2_000).toBeCloseTo(0.5, 1);
    expect(counts.get('m/twin')! / 2_000).toBeCloseTo(0.5, 1);
  });
});

describe('load', () => {
  const reading = (waiting: number, running: number, cacheUsage?: number) => ({
    waiting,
    running,
    cacheUsage,
    at: 0,
  });

  it('follows the queue depth each server reports', () => {
    const first = deployment('m/first', { load: reading(5, 2) });
    const second = deployment('m/second', { load: reading(0, 8) });
    const balancer = createBalancer('load', [first, second], { random: seeded(18) });
    expect(balancer.pick([first, second], noKey)).toBe(second);
    first.load = reading(0, 2);
    expect(balancer.pick([first, second], noKey)).toBe(first);
  });

  it('counts requests sent since the last scrape', () => {
    const first = deployment('m/first', { load: reading(0, 2), outstanding: 10 });
    const second = deployment('m/second', { load: reading(0, 8) });
    const balancer = createBalancer('load', [first, second], { random: seeded(19) });
    expect(balancer.pick([first, second], noKey)).toBe(second);
  });

  it('avoids the fuller KV cache when queues are equal', () => {
    const full = deployment('m/full', { load: reading(0, 2, 0.9) });
    const empty = deployment('m/empty', { load: reading(0, 2, 0.1) });
    const balancer = createBalancer('load', [full, empty], { random: seeded(20) });
    expect(balancer.pick([full, empty], noKey)).toBe(empty);
  });

  it('scores a deployment without a reading by the requests the gateway has in flight to it', () => {
    const scraped = deployment('m/scraped', { load: reading(0, 1) });
    const unscraped = deployment('m/unscraped', { outstanding: 3 });
    const balancer = createBalancer('load', [scraped, unscraped], { random: seeded(21) });
    expect(balancer.pick([scraped, unscraped], noKey)).toBe(scraped);
    unscraped.outstanding = 0;
    expect(balancer.pick([scraped, unscraped], noKey)).toBe(unscraped);
  });

  it('shares traffic among equally loaded deployments', () => {
    const deployments = [
      deployment('m/a', { load: reading(1, 1) }),
      deployment('m/b', { load: reading(1, 1) }),
    ];
    const balancer = createBalancer('load', deployments, { random: seeded(22) });
    expect(tally(balancer, deployments, 2_000).get('m/a')! / 2_000).toBeCloseTo(0.5, 1);
  });
});

describe('affinity', () => {
  const keys = Array.from({ length: 4_000 }, (_, index) => `session-${index}`);

  /** Which deployment each key lands on. */
  function assign(balancer: Balancer, candidates: readonly DeploymentStats[]): string[] {
    return keys.map((affinityKey) => balancer.pick(candidates, { affinityKey }).key);
  }

  function fourDeployments(): DeploymentStats[] {
    return ['a', 'b', 'c', 'd'].map((name) => deployment(`m/${name}`));
  }

  it('sends the same key to the same deployment', () => {
    const deployments = fourDeployments();
    const first = assign(createBalancer('affinity', deployments, { random: seeded(23) }), deployments);
    const second = assign(createBalancer('affinity', deployments, { random: seeded(24) }), deployments);
    expect(second).toEqual(first);
  });

  it('spreads keys roughly evenly over the deployments', () => {
    const deployments = fourDeployments();
    const assignment = assign(createBalancer('affinity', deployments, { random: seeded(25) }), deployments);
    for (const { key } of deployments) {
      const share = assignment.filter((owner) => owner === key).length / keys.length;
      expect(share).toBeGreaterThan(0.18);
      expect(share).toBeLessThan(0.32);
    }
  });

  it('gives a heavier deployment a larger share of keys', () => {
    const heavy = deployment('m/heavy', { weight: 3 });
    const light = deployment('m/light', { weight: 1 });
    const assignment = assign(createBalancer('affinity', [heavy, light], { random: seeded(26) }), [
      heavy,
      light,
    ]);
    const share = assignment.filter((owner) => owner === heavy.key).length / keys.length;
    expect(share).toBeGreaterThan(0.65);
    expect(share).toBeLessThan(0.85);
  });

  it('moves only the keys of a deployment that goes down, and gives them back when it returns', () => {
    const deployments = fourDeployments();
    const balancer = createBalancer('affinity', deployments, { random: seeded(27) });
    const before = assign(balancer, deployments);
    const withoutC = assign(
      balancer,
      deployments.filter((target) => target.key !== 'm/c'),
    );
    keys.forEach((_, index) => {
      if (before[index] !== 'm/c') expect(withoutC[index]).toBe(before[index]);
      else expect(withoutC[index]).not.toBe('m/c');
    });
    const movedTo = new Set(withoutC.filter((_, index) => before[index] === 'm/c'));
    expect(movedTo).toEqual(new Set(['m/a', 'm/b', 'm/d']));
    expect(assign(balancer, deployments)).toEqual(before);
  });

  it('spills a hot key to the next deployment once its own is loaded past the bound', () => {
    const deployments = fourDeployments();
    const balancer = createBalancer('affinity', deployments, { random: seeded(28) });
    const hot = { affinityKey: 'session-hot' };
    const owner = balancer.pick(deployments, hot);
    for (let index = 0; index < 40; index++) balancer.pick(deployments, hot).outstanding++;
    // ceil(1.25 × (39 + 1) / 4) = 13: the owner holds what the bound allows, the rest spill.
    expect(owner.outstanding).toBe(13);
    expect(deployments.filter((target) => target !== owner && target.outstanding > 0).length).toBeGreaterThan(
      0,
    );
    for (const target of deployments) expect(target.outstanding).toBeLessThanOrEqual(13);
  });

  it('falls back to weighted random without an affinity key', () => {
    const deployments = fourDeployments();
    const balancer = createBalancer('affinity', deployments, { random: seeded(29) });
    const counts = tally(balancer, deployments, 4_000);
    for (const { key } of deployments) expect(counts.get(key)! / 4_000).toBeCloseTo(0.25, 1);
  });
});

describe('averages that are not refreshed fade', () => {
  it('latency: a slow deployment unmeasured for a while is tried again', () => {
    const fast = deployment('fast', { latency: 20 });
    const slow = deployment('slow', { latency: 300 });
    const balancer = createBalancer('latency', [fast, slow], { random: seeded(7) });
    expect(tally(balancer, [fast, slow], 100).get('slow') ?? 0).toBe(0);
    // Thirty seconds without a sample: 300 ms fades below the fast one's fresh 20 ms.
    slow.measuredAt = performance.now() - 30_000;
    expect(tally(balancer, [fast, slow], 100).get('slow')).toBe(100);
  });

  it('cost: a cheap deployment that missed the objective is tried again later', () => {
    const cheap = deployment('cheap', { price: { input: 0.1, output: 0.1 }, duration: 900 });
    const dear = deployment('dear', { price: { input: 5, output: 15 }, duration: 50 });
    const balancer = createBalancer('cost', [cheap, dear], { random: seeded(3), latencyObjective: 200 });
    expect(balancer.pick([cheap, dear], noKey)).toBe(dear);
    cheap.measuredAt = performance.now() - 30_000;
    expect(balancer.pick([cheap, dear], noKey)).toBe(cheap);
  });
});
