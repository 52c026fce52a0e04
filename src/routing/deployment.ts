import type { Dispatcher } from 'undici';
import type { ModelConfig, TargetConfig } from '../config/types.js';
import type { PreparedTarget } from '../providers/prepared-target.js';
import type { DeploymentStats, LoadReading, Price } from './balancer.js';
import { CircuitBreaker } from './circuit-breaker.js';

/** Weight of the newest sample in the latency averages: about the last ten requests count. */
const ewmaWeight = 0.2;

/** How an attempt on a deployment ended, for its breaker and averages. */
export type Outcome = 'success' | 'failure' | 'neutral';

/**
 * One target of a model as the router sees it: its prepared target and connection pool, and its
 * live figures (requests in flight, latency averages, breaker, health, scraped load). The
 * figures outlive a config reload when the deployment is still there (see `carryOver`).
 */
export class Deployment implements DeploymentStats {
  readonly key: string;
  readonly name: string;
  readonly version: string | undefined;
  readonly weight: number;
  readonly priority: number;
  readonly price: Price | undefined;
  readonly maxConcurrency: number;
  readonly model: ModelConfig;
  readonly target: PreparedTarget;
  readonly pool: Dispatcher;
  readonly breaker: CircuitBreaker | undefined;
  outstanding = 0;
  latency: number | undefined;
  duration: number | undefined;
  measuredAt = 0;
  load: LoadReading | undefined;
  /** False while active health checks find it down. */
  healthy = true;
  healthReason = '';

  /** `previous`: the same deployment in the config this one replaces, whose figures carry over. */
  constructor(model: ModelConfig, target: PreparedTarget, pool: Dispatcher, previous?: Deployment) {
    const { deployment } = target.config;
    this.key = `${model.name}/${deployment.name}`;
    this.name = deployment.name;
    this.version = deployment.version;
    this.weight = deployment.weight;
    this.priority = deployment.priority;
    this.price = deployment.price;
    this.maxConcurrency = deployment.maxConcurrency ?? Number.POSITIVE_INFINITY;
    this.model = model;
    this.target = target;
    this.pool = pool;
    const settings = model.routing.breaker;
    if (previous === undefined) {
      this.breaker = settings === undefined ? undefined : new CircuitBreaker(settings);
      return;
    }
    // Requests in flight on the old config settle there; the averages, health and breaker move.
    this.latency = previous.latency;
    this.duration = previous.duration;
    this.measuredAt = previous.measuredAt;
    this.load = previous.load;
    this.healthy = previous.healthy;
    this.healthReason = previous.healthReason;
    const same =
      settings !== undefined &&
      previous.model.routing.breaker !== undefined &&
      sameSettings(settings, previous.model.routing.breaker);
    this.breaker = same
      ? previous.breaker
      : settings === undefined
        ? undefined
        : new CircuitBreaker(settings);
  }

  get config(): TargetConfig {
    return this.target.config;
  }

  /** Whether a request may be sent now: healthy, below its concurrency limit, breaker not open. */
  admits(): boolean {
    if (!this.healthy || this.outstanding >= this.maxConcurrency) return false;
    return this.breaker === undefined || this.breaker.state !== 'open';
  }

  /**
   * Takes the deployment for one attempt: in a half-open breaker that is one of its few probes,
   * so this may refuse even when `admits()` said yes.
   */
  acquire(): boolean {
    if (this.breaker !== undefined && !this.breaker.tryAcquire()) return false;
    this.outstanding++;
    return true;
  }

  /** The first byte came back `milliseconds` after the request was sent; `now` is performance.now(). */
  firstByte(milliseconds: number, now: number): void {
    this.latency =
      this.latency === undefined ? milliseconds : this.latency + ewmaWeight * (milliseconds - this.latency);
    this.measuredAt = now;
  }

  /** The attempt ended; `milliseconds` is its whole duration, `now` performance.now(). */
  settle(outcome: Outcome, milliseconds: number, now = performance.now()): void {
    this.outstanding--;
    if (outcome === 'success') {
      this.duration =
        this.duration === undefined
          ? milliseconds
          : this.duration + ewmaWeight * (milliseconds - this.duration);
      this.measuredAt = now;
      this.breaker?.onSuccess();
    } else if (outcome === 'failure') {
      this.breaker?.onFailure();
    } else {
      this.breaker?.release();
    }
  }

  /** Why it does not admit a request, for the error that lists every deployment. */
  unavailableReason(): string {
    if (!this.healthy) return `health check failing (${this.healthReason})`;
    if (this.outstanding >= this.maxConcurrency) return `at max_concurrency (${this.maxConcurrency})`;
    const wait = this.breaker?.retryAfter() ?? 0;
    if (wait > 0) return `circuit open, retried in ${Math.ceil(wait / 1000)} s`;
    return 'circuit half-open, probing';
  }
}

function sameSettings<T extends object>(a: T, b: T): boolean {
  return Object.entries(a).every(([key, value]) => b[key as keyof T] === value);
}
