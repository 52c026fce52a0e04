import type { BalanceRequest, Balancer, DeploymentStats, Strategy } from './balancer.js';

export interface BalancerOptions {
  /** Uniform in [0, 1); passed in so that tests are deterministic. */
  readonly random: () => number;
  /** `cost`: ms a deployment's average duration may take and still count as fast enough. */
  readonly latencyObjective?: number | undefined;
  /**
   * `affinity`: how far above the average load a deployment may go before its keys spill to the
   * next one on the ring; at least 1. Default 1.25, the trade-off the paper measures as moving few
   * keys while capping the hottest deployment.
   */
  readonly loadFactor?: number | undefined;
}

/**
 * Builds the chooser for a model's `strategy:`. `deployments` are all of the model's
 * deployments; each pick gets the subset that is up.
 *
 * @example
 * const balancer = createBalancer('least-outstanding', deployments, { random: Math.random });
 * const target = balancer.pick(upNow, { affinityKey: undefined });
 */
export function createBalancer(
  strategy: Strategy,
  deployments: readonly DeploymentStats[],
  options: BalancerOptions,
): Balancer {
  const { random } = options;
  switch (strategy) {
    case 'weighted':
      return { pick: (candidates) => pickWeighted(candidates, random) };
    case 'round-robin':
      return new RoundRobinBalancer();
    case 'least-outstanding':
      return { pick: (candidates) => pickLeast(candidates, outstandingPerWeight, random) };
    case 'latency':
      return { pick: (candidates) => pickFasterOfTwo(candidates, random, performance.now()) };
    case 'cost':
      return options.latencyObjective === undefined
        ? { pick: (candidates) => pickLeast(candidates, pricePerMillion, random) }
        : new CostBalancer(options.latencyObjective, random);
    case 'load':
      return { pick: (candidates) => pickLeast(candidates, loadScore, random) };
    case 'affinity':
      return new AffinityBalancer(deployments, options.loadFactor ?? 1.25, random);
  }
}

/** A counter over the candidates; the same deployment follows another while the list holds still. */
class RoundRobinBalancer implements Balancer {
  #next = 0;

  pick<T extends DeploymentStats>(candidates: readonly T[]): T {
    const index = this.#next % candidates.length;
    this.#next = index + 1;
    return candidates[index]!;
  }
}

/**
 * The cheapest deployment that is fast enough: one whose average duration is within the
 * objective, or not yet measured (otherwise it would never be tried). When none is fast enough,
 * the fastest, since sending everything to the cheapest would miss the objective on every request.
 */
class CostBalancer implements Balancer {
  readonly #objective: number;
  readonly #random: () => number;
  readonly #priceIfFastEnough: (deployment: DeploymentStats) => number;
  #now = 0;

  constructor(objective: number, random: () => number) {
    this.#objective = objective;
    this.#random = random;
    this.#priceIfFastEnough = (deployment) =>
      this.#isFastEnough(deployment) ? pricePerMillion(deployment) : Number.POSITIVE_INFINITY;
  }

  pick<T extends DeploymentStats>(candidates: readonly T[]): T {
    this.#now = performance.now();
    for (const candidate of candidates) {
      if (this.#isFastEnough(candidate)) return pickLeast(candidates, this.#priceIfFastEnough, this.#random);
    }
    return pickLeast(candidates, measuredDuration, this.#random);
  }

  /** A slow average fades while unmeasured, so a deployment that recovered is tried again. */
  #isFastEnough(deployment: DeploymentStats): boolean {
    const duration = deployment.duration ?? deployment.latency;
    return duration === undefined || fading(duration, deployment, this.#now) <= this.#objective;
  }
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
 * with Bounded Loads", 2017): a key stays on one deployment, so its prompt cache stays warm,
 * until that deployment carries more than `loadFactor` times the average; then the key's excess
 * walks on to the next deployment on the ring. The ring holds every deployment, up or not, so a
 * deployment that goes down moves only its own keys and takes them back when it returns.
 */
class AffinityBalancer implements Balancer {
  /** Ring positions, ascending. */
  readonly #points: Uint32Array;
  /** The index in `deployments` of the deployment at each position. */
  readonly #owners: Uint32Array;
  readonly #indexByKey: Map<string, number>;
  /**
   * During a pick, each deployment's position in `candidates` plus one, 0 when it is not a
   * candidate; kept between picks so that a pick allocates nothing.
   */
  readonly #candidateSlot: Int32Array;
  readonly #loadFactor: number;
  readonly #random: () => number;

  constructor(deployments: readonly DeploymentStats[], loadFactor: number, random: () => number) {
    this.#loadFactor = loadFactor;
    this.#random = random;
    this.#indexByKey = new Map(deployments.map((deployment, index) => [deployment.key, index]));
    this.#candidateSlot = new Int32Array(deployments.length);
    const totalWeight = deployments.reduce((sum, deployment) => sum + deployment.weight, 0);
    const ring: { point: number; owner: number }[] = [];
    deployments.forEach((deployment, owner) => {
      const share = (deployment.weight * deployments.length) / totalWeight;
      const count = Math.max(1, Math.round(virtualNodesPerDeployment * share));
      for (let node = 0; node < count; node++) ring.push({ point: hash(`${deployment.key}#${node}`), owner });
    });
    ring.sort((left, right) => left.point - right.point);
    this.#points = Uint32Array.from(ring, (entry) => entry.point);
    this.#owners = Uint32Array.from(ring, (entry) => entry.owner);
  }

  pick<T extends DeploymentStats>(candidates: readonly T[], request: BalanceRequest): T {
    if (request.affinityKey === undefined) return pickWeighted(candidates, this.#random);
    const slots = this.#candidateSlot;
    let totalOutstanding = 0;
    for (let position = 0; position < candidates.length; position++) {
      const candidate = candidates[position]!;
      totalOutstanding += candidate.outstanding;
      const index = this.#indexByKey.get(candidate.key);
      if (index !== undefined) slots[index] = position + 1;
    }
    const capacity = Math.ceil((this.#loadFactor * (totalOutstanding + 1)) / candidates.length);

    const points = this.#points;
    const start = firstAtOrAfter(points, hash(request.affinityKey));
    let owner: T | undefined;
    let chosen: T | undefined;
    for (let step = 0; step < points.length && chosen === undefined; step++) {
      const slot = slots[this.#owners[(start + step) % points.length]!]!;
      if (slot === 0) continue;
      const candidate = candidates[slot - 1]!;
      owner ??= candidate;
      if (candidate.outstanding + 1 <= capacity) chosen = candidate;
    }
    slots.fill(0);
    // With loadFactor ≥ 1 some candidate is always within capacity; the owner covers a smaller
    // factor, and a random pick covers candidates the balancer was not built with.
    return chosen ?? owner ?? pickWeighted(candidates, this.#random);
  }
}

/** Enough points that each deployment's share of the ring is within a few percent of its weight. */
const virtualNodesPerDeployment = 100;

/** The index of the first ring point at or after `value`, wrapping to 0 past the end. */
function firstAtOrAfter(points: Uint32Array, value: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low === points.length ? 0 : low;
}

/**
 * FNV-1a over UTF-16 code units, then murmur3's finaliser: FNV alone leaves keys that differ in
 * their last character (`a#1`, `a#2`) close together on the ring. Non-cryptographic on purpose;
 * it runs on every pick.
 */
function hash(text: string): number {
  let value = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    value = Math.imul(value ^ text.charCodeAt(index), 0x01000193);
  }
  value ^= value >>> 16;
  value = Math.imul(value, 0x85ebca6b);
  value ^= value >>> 13;
  value = Math.imul(value, 0xc2b2ae35);
  value ^= value >>> 16;
  return value >>> 0;
}

/** One candidate drawn with probability proportional to its weight. */
function pickWeighted<T extends DeploymentStats>(candidates: readonly T[], random: () => number): T {
  return candidates[weightedIndex(candidates, random, -1)]!;
}

/** A weighted draw's index, leaving out `skip` (-1 for none). */
function weightedIndex(candidates: readonly DeploymentStats[], random: () => number, skip: number): number {
  let total = 0;
  for (let index = 0; index < candidates.length; index++) {
    if (index !== skip) total += candidates[index]!.weight;
  }
  let draw = random() * total;
  let last = -1;
  for (let index = 0; index < candidates.length; index++) {
    if (index === skip) continue;
    last = index;
    draw -= candidates[index]!.weight;
    if (draw < 0) return index;
  }
  // Rounding can leave the draw at exactly zero after the last weight.
  return last;
}

/**
 * The candidate with the lowest score; ties are drawn by weight, so that idle deployments with
 * equal scores still share traffic instead of the first in config order taking it all.
 */
function pickLeast<T extends DeploymentStats>(
  candidates: readonly T[],
  score: (deployment: DeploymentStats) => number,
  random: () => number,
): T {
  let first = candidates[0]!;
  let best = score(first);
  let tiedWeight = first.weight;
  let ties = 1;
  for (let index = 1; index < candidates.length; index++) {
    const candidate = candidates[index]!;
    const value = score(candidate);
    if (value < best) {
      first = candidate;
      best = value;
      tiedWeight = candidate.weight;
      ties = 1;
    } else if (value === best) {
      tiedWeight += candidate.weight;
      ties++;
    }
  }
  if (ties === 1) return first;
  let draw = random() * tiedWeight;
  let last = first;
  for (const candidate of candidates) {
    if (score(candidate) !== best) continue;
    last = candidate;
    draw -= candidate.weight;
    if (draw < 0) return candidate;
  }
  return last;
}

/**
 * Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
 * 2001): comparing two random candidates instead of all of them keeps a fast deployment from
 * being flooded by every gateway replica at once, while still favouring it strongly.
 */
function pickFasterOfTwo<T extends DeploymentStats>(
  candidates: readonly T[],
  random: () => number,
  now: number,
): T {
  if (candidates.length === 1) return candidates[0]!;
  const first = weightedIndex(candidates, random, -1);
  const second = weightedIndex(candidates, random, first);
  const left = candidates[first]!;
  const right = candidates[second]!;
  return latencyScore(right, now) < latencyScore(left, now) ? right : left;
}

/**
 * Expected wait: average time to first byte (or duration) for each request ahead, plus this one.
 * An unmeasured deployment scores 0 so that it gets tried, and a measured one's average fades
 * while it gets no traffic, so a slow deployment that recovered is tried again now and then.
 */
function latencyScore(deployment: DeploymentStats, now: number): number {
  const average = deployment.latency ?? deployment.duration ?? 0;
  return fading(average, deployment, now) * (deployment.outstanding + 1);
}

/**
 * Time over which an unrefreshed average loses about two thirds of its weight. A deployment ten
 * times slower than the best is tried again after about 2.3 × this without traffic (ln 10).
 */
const stalenessConstant = 5_000;

/** `average` faded by how long ago it was measured (Finagle's peak EWMA decays the same way). */
function fading(average: number, deployment: DeploymentStats, now: number): number {
  const age = now - deployment.measuredAt;
  return age <= 0 ? average : average * Math.exp(-age / stalenessConstant);
}

function outstandingPerWeight(deployment: DeploymentStats): number {
  return deployment.outstanding / deployment.weight;
}

/**
 * Queued requests weigh most, as each waits for a whole running one; a full KV cache means the
 * server is about to queue. The gateway's own outstanding requests count too: those sent since
 * the last scrape are not in the reading yet.
 */
function loadScore(deployment: DeploymentStats): number {
  const load = deployment.load;
  if (load === undefined) return deployment.outstanding;
  return load.waiting * 4 + load.running + (load.cacheUsage ?? 0) * 2 + deployment.outstanding;
}

/** A deployment without a price is local or free. */
function pricePerMillion(deployment: DeploymentStats): number {
  return deployment.price === undefined ? 0 : deployment.price.input + deployment.price.output;
}

function measuredDuration(deployment: DeploymentStats): number {
  return deployment.duration ?? deployment.latency ?? 0;
}
