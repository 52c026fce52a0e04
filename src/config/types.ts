/** The validated, compiled and frozen configuration the rest of Switchyard reads. */

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
}

export interface GatewayConfig {
  readonly server: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimit: number;
    readonly drainTimeout: number;
    readonly keepAliveTimeout: number;
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
    readonly port: number;
    readonly threads: number | undefined;
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
  /** The admin API (/admin). */
  readonly admin: {
    /** Secret: never logged, compared in constant time. Undefined closes every /admin route (403). */
    readonly key: string | undefined;
  };
  /** Where the models came from, for the start-up message. */
  readonly source: 'file' | 'environment';
}
