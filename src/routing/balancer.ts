/**
 * What a load-balancing strategy sees of a deployment, and what it must do. Strategies are pure
 * choosers over live figures that the gateway keeps up to date (outstanding requests, latency
 * averages, scraped load); they never do I/O and never change those figures.
 */

/** USD per million tokens. */
export interface Price {
  readonly input: number;
  readonly output: number;
}

/** A load-aware target's queue, as last scraped from its /metrics page. */
export interface LoadReading {
  /** Requests queued, not yet running (vllm:num_requests_waiting, llamacpp:requests_deferred …). */
  readonly waiting: number;
  /** Requests being served (vllm:num_requests_running, busy slots …). */
  readonly running: number;
  /** KV-cache use between 0 and 1, where the server reports it. */
  readonly cacheUsage: number | undefined;
  /** performance.now() of the scrape. */
  readonly at: number;
}

/** The live figures of one deployment that strategies choose by. */
export interface DeploymentStats {
  /** Unique within the gateway: "<model>/<deployment name>". */
  readonly key: string;
  /** Share of traffic relative to the model's other deployments; > 0. */
  readonly weight: number;
  readonly price: Price | undefined;
  /** Requests sent and not yet finished. */
  outstanding: number;
  /** Exponentially weighted moving average of time to first byte, ms; undefined until measured. */
  latency: number | undefined;
  /** Exponentially weighted moving average of whole-request duration, ms; undefined until measured. */
  duration: number | undefined;
  /** performance.now() of the latest latency or duration sample; 0 until measured. */
  measuredAt: number;
  /** Last scraped load; undefined when never scraped or the scrape is failing. */
  load: LoadReading | undefined;
}

/** What a strategy may know about the request being placed. */
export interface BalanceRequest {
  /** Affinity strategies: the session id or prompt prefix to keep on one deployment. */
  readonly affinityKey: string | undefined;
}

export interface Balancer {
  /**
   * Picks one of `candidates`: a non-empty list of deployments that are up and have room, in
   * config order, a subset of those the balancer was built with.
   */
  pick<T extends DeploymentStats>(candidates: readonly T[], request: BalanceRequest): T;
}

/** Strategy names as written in the config (`strategy:` on a model). */
export const strategies = [
  'weighted',
  'round-robin',
  'least-outstanding',
  'latency',
  'cost',
  'load',
  'affinity',
] as const;
export type Strategy = (typeof strategies)[number];
