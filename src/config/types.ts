/** The validated, compiled and frozen configuration the rest of Switchyard reads. */

import type { Strategy } from '../routing/balancer.js';
import type { CircuitBreakerSettings } from '../routing/circuit-breaker.js';

export type ProviderKind =
  | 'openai-compatible'
  | 'azure-openai'
  | 'anthropic'
  | 'gemini'
  | 'ollama'
  | 'bedrock';
/** `local`: a model in the local store, served by the runner that `serve` supervises. */
export type TargetKind = ProviderKind | 'local';

export interface Timeouts {
  /** Milliseconds to establish the TCP/TLS connection. */
  readonly connect: number;
  /** Milliseconds from sending the request until the upstream's response headers. */
  readonly firstByte: number;
  /** Milliseconds allowed between two chunks of the upstream body. */
  readonly idle: number;
  /** Milliseconds for the whole exchange, stream included. */
  readonly total: number;
}

export interface TargetConfig {
  /** Short name for logs and headers: the provider's name, or the URL's host. */
  readonly name: string;
  readonly kind: TargetKind;
  /** scheme://host[:port], the key of the connection pool. */
  readonly origin: string;
  /** Path prefix before the endpoint, without a trailing slash ("/v1"). */
  readonly basePath: string;
  /** Secret. Never logged, never returned to clients. */
  readonly apiKey: string | undefined;
  /** Upstream model name; undefined passes the client's name (or the wildcard's tail) through. */
  readonly model: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeouts: Timeouts;
  readonly maxConnections: number | undefined;
  /**
   * A Unix socket the origin is reached through, set for `local` targets when `serve`'s runner
   * listens on one; `origin` then only names the Host.
   */
  readonly socketPath?: string | undefined;
  /** Ask the upstream for a usage chunk on every stream, so accounting is complete. */
  readonly streamUsage: boolean;
  /** azure-openai: the api-version query parameter; undefined uses Azure's v1 API. */
  readonly apiVersion: string | undefined;
  /** anthropic, bedrock: max_tokens sent when the client gives none (Anthropic requires it). */
  readonly defaultMaxTokens: number | undefined;
  /** bedrock: the AWS region, part of every SigV4 signature ("us-east-1"). */
  readonly region: string | undefined;
  /**
   * bedrock without api_key: the AWS credentials read from the environment when the config was
   * compiled, for SigV4 signing. Secret: never logged, never returned to clients.
   */
  readonly awsCredentials: AwsCredentials | undefined;
  /** How the target takes part in its model's routing, as one of its deployments. */
  readonly deployment: DeploymentSettings;
}

/** A target's place among its model's deployments: its share, tier, limits and role. */
export interface DeploymentSettings {
  /** Unique within the model; `name` on the target, else the provider's name or the URL's host. */
  readonly name: string;
  /** A version label ("2024-08-06", "v2"), sent back in x-switchyard-version and logged. */
  readonly version: string | undefined;
  /** Share of the model's traffic relative to its other deployments. */
  readonly weight: number;
  /** Lower is tried first; a higher tier serves only while every lower one is unavailable. */
  readonly priority: number;
  /** Requests in flight at most; a full deployment is skipped. */
  readonly maxConcurrency: number | undefined;
  /** USD per million tokens, for the cost strategy. */
  readonly price: { readonly input: number; readonly output: number } | undefined;
  /** Percent of the model's traffic assigned to this deployment, sticky per user (a canary). */
  readonly split: number;
  /** Percent of the model's traffic mirrored here; a shadow never serves a client. */
  readonly shadow: number;
  /** The Prometheus page the load strategy scrapes: a URL, or a path on the target's origin. */
  readonly metricsUrl: string;
  /** Active health checks; undefined: none, the breaker alone judges health. */
  readonly healthCheck: HealthCheckSettings | undefined;
}

export interface HealthCheckSettings {
  /** Where a GET is sent, a URL or a path on the target's origin; a 2xx answer is healthy. */
  readonly url: string;
  readonly interval: number;
  readonly timeout: number;
  /** Failures in a row that take the deployment out. */
  readonly unhealthyThreshold: number;
  /** Successes in a row that bring it back. */
  readonly healthyThreshold: number;
}

/** Classes of failure a fallback may be configured for (`fallback_on`). */
export const failureClasses = [
  'rate_limited',
  'overloaded',
  'server_error',
  'timeout',
  'unreachable',
  'auth',
  'context_window',
  'content_policy',
] as const;
export type FailureClass = (typeof failureClasses)[number];

/** A deployment's circuit breaker, as the config sets it (routing/circuit-breaker.ts). */
export type BreakerSettings = Omit<CircuitBreakerSettings, 'onStateChange'>;

/** A conditional route: requests matching `when` go to model `model` instead. */
export interface ConditionalRoute {
  /** The raw `when` clause, compiled by the routing table. */
  readonly when: Readonly<Record<string, unknown>>;
  readonly model: string;
}

/** How a model spreads, retries and falls back its requests. */
export interface ModelRouting {
  readonly strategy: Strategy;
  /** cost: the latency (ms, average duration) a cheaper deployment must meet to be chosen. */
  readonly latencyObjective: number | undefined;
  /** affinity: the header naming a session, else the prompt's first `promptPrefix` characters. */
  readonly affinity: {
    readonly header: string | undefined;
    readonly promptPrefix: number;
    readonly loadFactor: number;
  };
  /** The header whose value keeps a user on one side of a traffic split; else body `user`. */
  readonly stickyHeader: string;
  readonly retries: { readonly attempts: number; readonly backoff: number; readonly maxBackoff: number };
  /** Models tried in order once this model's attempts have failed with a class in `fallbackOn`. */
  readonly fallbacks: readonly string[];
  readonly fallbackOn: readonly FailureClass[];
  readonly contextWindowFallbacks: readonly string[];
  readonly contentPolicyFallbacks: readonly string[];
  /** undefined: no breaker (`breaker: false`). */
  readonly breaker: BreakerSettings | undefined;
  readonly routes: readonly ConditionalRoute[];
}

/** An AWS access key, as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN give it. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Set for temporary credentials (an assumed role, SSO); sent as x-amz-security-token. */
  readonly sessionToken: string | undefined;
}

export interface ModelConfig {
  /** What clients send as `model`; may end with "*" to match a family ("openai/*"). */
  readonly name: string;
  readonly targets: readonly TargetConfig[];
  readonly ownedBy: string;
  /** Drop parameters a target cannot carry instead of answering 400. */
  readonly dropUnsupportedParams: boolean;
  readonly routing: ModelRouting;
}

/** Where the listener's certificate and key live; the files are read at start and on change. */
export interface TlsFiles {
  /** PEM certificate, with any intermediates after it. */
  readonly cert: string;
  /** PEM private key. Secret: its contents are never logged. */
  readonly key: string;
}

export interface GatewayConfig {
  readonly server: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimit: number;
    readonly drainTimeout: number;
    readonly keepAliveTimeout: number;
    /** Serve HTTPS from these PEM files (absolute paths); undefined: plain HTTP. */
    readonly tls: TlsFiles | undefined;
  };
  readonly log: { readonly level: string };
  readonly store: {
    /** SQLite file path, or ":memory:". */
    readonly path: string;
    readonly requestLog: {
      readonly enabled: boolean;
      readonly flushInterval: number;
      readonly batchSize: number;
    };
  };
  readonly models: readonly ModelConfig[];
  /** Settings of the local runner, which starts when a target is `local`. */
  readonly runner: {
    /** Loopback port for the supervised runner; 0: a private Unix socket (the default). */
    readonly port: number;
    readonly threads: number | undefined;
    /**
     * The runner process's libuv thread pool size; unset: UV_THREADPOOL_SIZE, else one thread on
     * machines with two cores or fewer and libuv's four on bigger ones (`runnerPoolThreads`).
     */
    readonly poolThreads: number | undefined;
    readonly parallel: number;
    readonly contextSize: number;
    readonly maxQueue: number;
    /** Milliseconds an idle model stays loaded; `Infinity` for forever, 0 to unload when idle. */
    readonly keepAlive: number;
    /** Model names (`name:tag`) loaded and warmed before the runner reports healthy. */
    readonly preload: readonly string[];
    readonly maxLoadedModels: number;
    /** Bytes of RAM the loaded models may take together, or 'auto' for the runner's own share of the machine. */
    readonly maxMemory: number | 'auto';
    /** 'auto' uses a GPU when a prebuilt GPU binary loads; 'off' keeps to the CPU. */
    readonly gpu: 'auto' | 'off';
  };
  readonly retryBudget: {
    /** Retries allowed as a share of requests, across the gateway. */
    readonly ratio: number;
    /** Retries per second always allowed, so a quiet gateway can still retry. */
    readonly minPerSecond: number;
  };
  readonly auth: {
    /** 'keys': a virtual key is required once any exists; 'open': no data-plane auth (warned at start). */
    readonly mode: 'keys' | 'open';
    readonly oidc: OidcSettings | undefined;
  };
  /** Gateway-wide and per-model limits; keys' and teams' own are in the store. */
  readonly limits: {
    readonly global: RateLimit | undefined;
    /** By model name as clients send it. */
    readonly models: Readonly<Record<string, RateLimit>>;
  };
  /** Prices by model name, US dollars per million tokens, over the built-in table. */
  readonly pricing: Readonly<Record<string, ModelPrice>>;
  readonly capture: {
    readonly enabled: boolean;
    /** Stored with each row, so rows written under an older key still find it. */
    readonly keyId: string;
    /** The environment variable holding the key (32 bytes, base64 or hex). */
    readonly keyEnv: string;
    /** A file holding the key instead; absolute. */
    readonly keyFile: string | undefined;
    /** Milliseconds a captured payload is kept. */
    readonly retention: number;
  };
  /** The admin API (/admin). */
  readonly admin: {
    /** Secret: never logged, compared in constant time. Undefined closes every /admin route (403). */
    readonly key: string | undefined;
  };
  /** Where the models came from, for the start-up message. */
  readonly source: 'file' | 'environment';
}

/** Requests and tokens per minute; an absent field is no limit. */
export interface RateLimit {
  readonly rpm?: number | undefined;
  readonly tpm?: number | undefined;
}

/** US dollars per million tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
  /** Cached prompt tokens; the input price when absent. */
  readonly cachedInput?: number | undefined;
}

/** Single sign-on for the admin API: bearer JWTs from this issuer, checked against its JWKS. */
export interface OidcSettings {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly jwksUrl: string;
  /** Milliseconds of clock difference tolerated on exp, nbf and iat; at most 5 minutes. */
  readonly clockSkewMs: number;
  /** The claim holding the role (a dotted path; a string or an array of strings). */
  readonly roleClaim: string;
  readonly teamClaim: string;
}
