import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { ModelConfig } from '../config/types.js';
import { GatewayError } from '../errors/index.js';
import { type PreparedTarget, prepareTarget } from '../providers/prepared-target.js';
import type { UpstreamPools } from '../providers/upstream-pools.js';
import type { BalanceRequest, Balancer } from './balancer.js';
import { createBalancer } from './balancers.js';
import { compileCondition } from './conditions.js';
import { Deployment } from './deployment.js';
import { type Caller, type RequestFeatures, requestFeatures } from './request-features.js';
import { stickyBucket } from './sticky.js';

/** Where one attempt goes: the model entry that matched, the deployment chosen, the upstream's name. */
export interface Route {
  readonly model: ModelConfig;
  readonly deployment: Deployment;
  readonly target: PreparedTarget;
  /** The connection pool of the target's origin. */
  readonly pool: Dispatcher;
  /** The model name to send upstream. */
  readonly upstreamModel: string;
}

/** The request as routing may look at it; features are derived only when a model needs them. */
export class RoutingRequest {
  readonly body: Record<string, unknown>;
  readonly headers: IncomingHttpHeaders;
  readonly caller: Caller | undefined;
  #features: RequestFeatures | undefined;

  constructor(body: Record<string, unknown>, headers: IncomingHttpHeaders, caller?: Caller) {
    this.body = body;
    this.headers = headers;
    this.caller = caller;
  }

  get features(): RequestFeatures {
    this.#features ??= requestFeatures(this.body, this.headers, this.caller);
    return this.#features;
  }
}

export interface ModelTableOptions {
  /** In [0, 1); seeded in tests. */
  readonly random?: () => number;
  /** The table this one replaces: deployments still present keep their live figures. */
  readonly previous?: ModelTable;
}

/** Conditional routes are followed at most this deep; the config check forbids loops anyway. */
const maxRouteHops = 4;

/**
 * One configured model at run time: its deployments by role (serving, split, shadow), the
 * strategy that spreads requests over them, and its conditional routes.
 */
export class RoutedModel {
  readonly config: ModelConfig;
  /** For a wildcard entry ("openai/*"), the part before "*". */
  readonly prefix: string | undefined;
  readonly deployments: readonly Deployment[];
  /** Deployments that take the traffic no split claims. */
  readonly serving: readonly Deployment[];
  readonly splits: readonly Deployment[];
  readonly shadows: readonly Deployment[];
  readonly conditions: readonly {
    readonly test: (features: RequestFeatures) => boolean;
    readonly model: string;
  }[];
  readonly #balancer: Balancer;
  readonly #random: () => number;
  /** Whether every serving deployment has the same priority. */
  readonly #oneTier: boolean;
  /** Whether choosing looks at the request: a sticky split, or affinity. */
  readonly readsRequest: boolean;
  /** The only deployment, when there is one and no split: the common case, chosen without arrays. */
  readonly #single: Deployment | undefined;

  constructor(config: ModelConfig, deployments: Deployment[], random: () => number) {
    this.config = config;
    this.prefix = config.name.endsWith('*') ? config.name.slice(0, -1) : undefined;
    this.deployments = deployments;
    this.splits = deployments.filter((deployment) => deployment.config.deployment.split > 0);
    this.shadows = deployments.filter((deployment) => deployment.config.deployment.shadow > 0);
    const serving = deployments.filter(
      (deployment) => deployment.config.deployment.split === 0 && deployment.config.deployment.shadow === 0,
    );
    // Splits adding up to 100% leave nothing unclaimed; they serve when their own choice fails.
    this.serving = serving.length > 0 ? serving : this.splits;
    this.#random = random;
    const { routing } = config;
    this.#balancer = createBalancer(routing.strategy, this.serving, {
      random,
      latencyObjective: routing.latencyObjective,
      loadFactor: routing.affinity.loadFactor,
    });
    this.conditions = routing.routes.map((route) => ({
      test: compileCondition(route.when),
      model: route.model,
    }));
    this.#single = this.splits.length === 0 && this.serving.length === 1 ? this.serving[0] : undefined;
    this.readsRequest = this.splits.length > 0 || routing.strategy === 'affinity';
    this.#oneTier = this.serving.every((deployment) => deployment.priority === this.serving[0]!.priority);
  }

  /**
   * Chooses and acquires a deployment for one attempt, or undefined when none admits a request.
   * `tried` are deployments this request already failed on: others are preferred, but a tried one
   * is chosen again when nothing else is left (a single-target model retries its target).
   */
  choose(
    request: RoutingRequest | undefined,
    tried: readonly Deployment[] = noDeployments,
  ): Deployment | undefined {
    const single = this.#single;
    if (single !== undefined) return single.admits() && single.acquire() ? single : undefined;
    if (this.splits.length > 0 && tried.length === 0) {
      const split = this.#splitFor(request);
      if (split?.admits() && split.acquire()) return split;
    }
    return (
      this.#pick(request, tried, true) ?? (tried.length > 0 ? this.#pick(request, tried, false) : undefined)
    );
  }

  /** The shadow deployment this request is mirrored to, if it is sampled for one. */
  shadowFor(): Deployment | undefined {
    for (const shadow of this.shadows) {
      if (this.#random() * 100 < shadow.config.deployment.shadow && shadow.admits() && shadow.acquire())
        return shadow;
    }
    return undefined;
  }

  /** 503 listing why each deployment is out, with the soonest time one may be back. */
  unavailable(): GatewayError {
    const reasons = this.serving.map((deployment) => `${deployment.name}: ${deployment.unavailableReason()}`);
    const waits = this.serving
      .map((deployment) => deployment.breaker?.retryAfter() ?? 0)
      .filter((wait) => wait > 0);
    const retryAfter = waits.length > 0 ? Math.max(1, Math.ceil(Math.min(...waits) / 1000)) : 1;
    return new GatewayError(
      'no_healthy_target',
      `No deployment of model "${this.config.name}" can take the request now: ${reasons.join('; ')}.`,
      { headers: { 'retry-after': String(retryAfter) } },
    );
  }

  /** The split deployment a user's sticky bucket falls in, or undefined for the serving pool. */
  #splitFor(request: RoutingRequest | undefined): Deployment | undefined {
    const key = request === undefined ? undefined : stickyKey(request, this.config.routing.stickyHeader);
    const bucket =
      key === undefined ? Math.floor(this.#random() * 10_000) : stickyBucket(key, this.config.name);
    let edge = 0;
    for (const split of this.splits) {
      edge += split.config.deployment.split * 100;
      if (bucket < edge) return split;
    }
    return undefined;
  }

  #pick(
    request: RoutingRequest | undefined,
    tried: readonly Deployment[],
    avoidTried: boolean,
  ): Deployment | undefined {
    // The common case: one tier, nothing tried, every deployment up: choose among them all,
    // without building a list.
    if (this.#oneTier && tried.length === 0 && this.serving.every(admits)) {
      const chosen = this.#balancer.pick(this.serving, this.#balanceRequest(request));
      if (chosen.acquire()) return chosen;
    }
    // The lowest priority tier with a deployment that admits a request.
    let candidates: Deployment[] = [];
    let tier = Number.POSITIVE_INFINITY;
    for (const deployment of this.serving) {
      if (deployment.priority > tier || !deployment.admits()) continue;
      if (avoidTried && tried.includes(deployment)) continue;
      if (deployment.priority < tier) {
        tier = deployment.priority;
        candidates = [];
      }
      candidates.push(deployment);
    }
    const balanceRequest = this.#balanceRequest(request);
    while (candidates.length > 0) {
      const chosen =
        candidates.length === 1 ? candidates[0]! : this.#balancer.pick(candidates, balanceRequest);
      if (chosen.acquire()) return chosen;
      // A half-open breaker with its probes out: choose among the rest.
      candidates = candidates.filter((candidate) => candidate !== chosen);
    }
    return undefined;
  }

  #balanceRequest(request: RoutingRequest | undefined): BalanceRequest {
    if (request === undefined) return noAffinity;
    const affinityKey = this.#affinityKey(request);
    return affinityKey === undefined ? noAffinity : { affinityKey };
  }

  #affinityKey(request: RoutingRequest): string | undefined {
    const { routing } = this.config;
    if (routing.strategy !== 'affinity') return undefined;
    const header =
      routing.affinity.header === undefined ? undefined : request.headers[routing.affinity.header];
    if (typeof header === 'string' && header !== '') return header;
    const prefix = request.features.promptPrefix(routing.affinity.promptPrefix);
    return prefix === '' ? undefined : prefix;
  }
}

const noDeployments: readonly Deployment[] = [];
const noAffinity: BalanceRequest = Object.freeze({ affinityKey: undefined });
const admits = (deployment: Deployment): boolean => deployment.admits();

/** Who a request is for: the sticky header, else the body's `user` (OpenAI's end-user id). */
function stickyKey(request: RoutingRequest, header: string): string | undefined {
  const value = request.headers[header];
  if (typeof value === 'string' && value !== '') return value;
  const user = request.body.user;
  return typeof user === 'string' && user !== '' ? user : undefined;
}

/**
 * Resolves the `model` a client sends to a model entry, in O(1) for exact names. Built once per
 * config; wildcard entries are tried longest prefix first, so "openai/*" wins over "*".
 */
export class ModelTable {
  /** Exact names with their lookup answer built once, since the tail is the name itself. */
  readonly #exact = new Map<string, { readonly entry: RoutedModel; readonly tail: string }>();
  readonly #patterns: RoutedModel[] = [];
  readonly #all: readonly ModelConfig[];
  readonly #deployments = new Map<string, Deployment>();

  constructor(models: readonly ModelConfig[], pools: UpstreamPools, options: ModelTableOptions = {}) {
    this.#all = models;
    const random = options.random ?? Math.random;
    for (const config of models) {
      const deployments = config.targets.map((target) => {
        const prepared = prepareTarget(target);
        const key = `${config.name}/${target.deployment.name}`;
        const previous = options.previous?.deployment(key);
        const deployment = new Deployment(
          config,
          prepared,
          pools.for(target),
          sameTarget(previous, prepared) ? previous : undefined,
        );
        this.#deployments.set(key, deployment);
        return deployment;
      });
      const entry = new RoutedModel(config, deployments, random);
      if (entry.prefix !== undefined) this.#patterns.push(entry);
      else this.#exact.set(config.name, Object.freeze({ entry, tail: config.name }));
    }
    this.#patterns.sort((a, b) => b.prefix!.length - a.prefix!.length);
  }

  /** The entry serving a client's model name, and the name to send upstream when the target names none. */
  lookup(name: string): { entry: RoutedModel; tail: string } | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    for (const pattern of this.#patterns) {
      if (name.startsWith(pattern.prefix!) && name.length > pattern.prefix!.length) {
        return { entry: pattern, tail: name.slice(pattern.prefix!.length) };
      }
    }
    return undefined;
  }

  /** Follows the entry's conditional routes for this request: the entry that really serves it. */
  follow(
    found: { entry: RoutedModel; tail: string },
    request: RoutingRequest,
  ): { entry: RoutedModel; tail: string } {
    let current = found;
    for (let hop = 0; hop < maxRouteHops && current.entry.conditions.length > 0; hop++) {
      const route = current.entry.conditions.find((condition) => condition.test(request.features));
      const next = route === undefined ? undefined : this.lookup(route.model);
      if (next === undefined) break;
      current = next;
    }
    return current;
  }

  /** A route for a name with no request to look at (count_tokens): the first choice, acquired. */
  resolve(name: string): Route | undefined {
    const found = this.lookup(name);
    if (found === undefined) return undefined;
    const deployment = found.entry.choose(undefined);
    return deployment === undefined ? undefined : routeTo(deployment, found.tail);
  }

  /** The model entry a name would be served by, or the wildcard entry itself when named. */
  match(name: string): ModelConfig | undefined {
    const pattern = this.#patterns.find((entry) => entry.config.name === name);
    return pattern?.config ?? this.lookup(name)?.entry.config;
  }

  deployment(key: string): Deployment | undefined {
    return this.#deployments.get(key);
  }

  /** Every deployment of every model, for health checks and load scrapes. */
  get deployments(): Iterable<Deployment> {
    return this.#deployments.values();
  }

  /** Every configured model, exact names and wildcards, in config order. */
  get models(): readonly ModelConfig[] {
    return this.#all;
  }
}

export function routeTo(deployment: Deployment, tail: string): Route {
  const target = deployment.target;
  return {
    model: deployment.model,
    deployment,
    target,
    pool: deployment.pool,
    upstreamModel: target.config.model ?? tail,
  };
}

/** The live figures of a deployment carry over only while it still points at the same upstream. */
function sameTarget(previous: Deployment | undefined, next: PreparedTarget): previous is Deployment {
  return (
    previous !== undefined &&
    previous.config.origin === next.config.origin &&
    previous.config.basePath === next.config.basePath &&
    previous.config.model === next.config.model
  );
}
