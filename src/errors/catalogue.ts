/**
 * The one catalogue of failures a client can see. Every code has a fixed HTTP status, an OpenAI
 * error `type`, a retryable flag (may the same request succeed if sent again?) and a default
 * message that tells the caller what to do. Handlers throw `GatewayError`; only `render.ts`
 * turns one into bytes.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly retryable: boolean;
  readonly message: string;
}

/** The `error.type` values OpenAI's API uses; clients switch on them. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error'
  | 'timeout_error';

export const errorCatalogue = {
  invalid_json: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The request body is not valid JSON. Send a JSON object with Content-Type: application/json.',
  },
  invalid_body: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The request body must be a JSON object.',
  },
  missing_field: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'A required field is missing.',
  },
  invalid_field: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'A field has the wrong type or value.',
  },
  invalid_header: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'A request header has an invalid value.',
  },
  model_not_found: {
    status: 404,
    type: 'not_found_error',
    retryable: false,
    message: 'The model does not exist. Call GET /v1/models for the models this gateway serves.',
  },
  route_not_found: {
    status: 404,
    type: 'not_found_error',
    retryable: false,
    message:
      'No such endpoint. See GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/embeddings.',
  },
  method_not_allowed: {
    status: 405,
    type: 'invalid_request_error',
    retryable: false,
    message: 'This endpoint does not accept that HTTP method.',
  },
  payload_too_large: {
    status: 413,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The request body is larger than this gateway accepts (server.body_limit).',
  },
  unsupported_media_type: {
    status: 415,
    type: 'invalid_request_error',
    retryable: false,
    message: 'Unsupported Content-Type. Send the body as application/json.',
  },
  upstream_rejected: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The upstream provider rejected the request.',
  },
  upstream_auth_failed: {
    status: 502,
    type: 'server_error',
    retryable: false,
    message:
      "The upstream provider refused this gateway's credentials. An operator must check the target's api_key.",
  },
  upstream_rate_limited: {
    status: 429,
    type: 'rate_limit_error',
    retryable: true,
    message: 'The upstream provider is rate limiting requests. Retry after the time in Retry-After.',
  },
  upstream_overloaded: {
    status: 503,
    type: 'server_error',
    retryable: true,
    message: 'The upstream provider is overloaded (Anthropic answers 529). Retry after a short wait.',
  },
  unsupported_param: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message:
      'The request uses a parameter the target cannot honour. Remove it, or set drop_unsupported_params on the model.',
  },
  unsupported_endpoint: {
    status: 400,
    type: 'invalid_request_error',
    retryable: false,
    message:
      "The model's target does not offer this endpoint (for example, embeddings from a chat-only API).",
  },
  upstream_error: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message: 'The upstream provider failed to answer. Retry the request.',
  },
  upstream_unreachable: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message: 'Could not connect to the upstream provider. Check that it is running and its URL is right.',
  },
  upstream_connection_reset: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message: 'The upstream provider closed the connection before answering. Retry the request.',
  },
  upstream_bad_response: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message: 'The upstream provider sent a response this gateway could not read.',
  },
  upstream_stream_failed: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message: 'The upstream stream broke off before it finished. Retry the request.',
  },
  upstream_connect_timeout: {
    status: 504,
    type: 'timeout_error',
    retryable: true,
    message: 'Timed out connecting to the upstream provider (timeouts.connect).',
  },
  upstream_first_byte_timeout: {
    status: 504,
    type: 'timeout_error',
    retryable: true,
    message: 'The upstream provider did not start answering in time (timeouts.first_byte).',
  },
  upstream_idle_timeout: {
    status: 504,
    type: 'timeout_error',
    retryable: true,
    message: 'The upstream provider stalled between chunks for too long (timeouts.idle).',
  },
  request_timeout: {
    status: 504,
    type: 'timeout_error',
    retryable: true,
    message: 'The request took longer than the total time allowed (timeouts.total).',
  },
  model_overloaded: {
    status: 503,
    type: 'server_error',
    retryable: true,
    message:
      'The local model is busy: every slot is in use and its wait queue is full. Retry after the time in Retry-After.',
  },
  model_too_large: {
    status: 503,
    type: 'server_error',
    // The model needs more than the runner's whole memory budget: the same request fails again
    // until the config changes.
    retryable: false,
    message:
      "The local model needs more memory than the runner's budget (runner.max_memory) allows even with no other model loaded. Lower runner.context_size or runner.parallel, or raise runner.max_memory.",
  },
  no_healthy_target: {
    status: 503,
    type: 'server_error',
    retryable: true,
    message:
      "None of the model's deployments can take a request now (circuit open, health check failing or at its concurrency limit). Retry after the time in Retry-After.",
  },
  runner_unavailable: {
    status: 503,
    type: 'server_error',
    retryable: true,
    message: 'The local model runner is starting or restarting. Retry after the time in Retry-After.',
  },
  // The admin API (/admin): its authorisation, and the model store's failures it passes on.
  admin_disabled: {
    status: 403,
    type: 'permission_error',
    retryable: false,
    message:
      'The admin API is disabled because no admin key is configured. Set SWITCHYARD_ADMIN_KEY (or admin.key in the config file) and restart, then send it as Authorization: Bearer <key>.',
  },
  unauthorized: {
    status: 401,
    type: 'authentication_error',
    retryable: false,
    message: 'Missing or invalid admin key. Send the configured key as Authorization: Bearer <key>.',
  },
  forbidden: {
    status: 403,
    type: 'permission_error',
    retryable: false,
    message: 'Your role does not allow this request.',
  },
  // The data plane's keys, limits and budgets (src/auth).
  invalid_api_key: {
    status: 401,
    type: 'authentication_error',
    retryable: false,
    message:
      'Missing or invalid API key. Send a Switchyard key as Authorization: Bearer <key> (or x-api-key: <key>); an admin creates one with `switchyard keys create`.',
  },
  model_not_allowed: {
    status: 403,
    type: 'permission_error',
    retryable: false,
    message: 'This API key may not use this model.',
  },
  rate_limit_exceeded: {
    status: 429,
    type: 'rate_limit_error',
    retryable: true,
    message: 'Rate limit reached. Retry after the time in Retry-After.',
  },
  budget_exceeded: {
    status: 429,
    type: 'insufficient_quota',
    retryable: false,
    message: 'The budget for this key or its team is spent for the current period.',
  },
  not_found: {
    status: 404,
    type: 'not_found_error',
    retryable: false,
    message:
      'No admin object (key, team or user) has that id. List them with GET /admin/keys, /admin/teams or /admin/users.',
  },
  invalid_config: {
    status: 422,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The config file is invalid, so the running config was kept. Fix the file and reload again.',
  },
  reload_unavailable: {
    status: 409,
    type: 'invalid_request_error',
    retryable: false,
    message:
      'This gateway was started without a config file (from the environment), so there is nothing to reload. Start it with --config FILE.',
  },
  checksum_mismatch: {
    status: 422,
    type: 'invalid_request_error',
    retryable: false,
    message:
      "The file's sha256 differs from the expected one, so nothing was stored. Check the sha256 and the source.",
  },
  invalid_model: {
    status: 422,
    type: 'invalid_request_error',
    retryable: false,
    message: 'The file is not a usable GGUF model, so nothing was stored.',
  },
  pull_in_progress: {
    status: 409,
    type: 'invalid_request_error',
    retryable: false,
    message:
      'Another process is pulling the same file into the model store. Wait for it to finish; the model then appears in GET /admin/models.',
  },
  pull_failed: {
    status: 502,
    type: 'server_error',
    retryable: true,
    message:
      'The model could not be downloaded from its source. Pull again: the download resumes where it stopped.',
  },
  insufficient_storage: {
    status: 507,
    type: 'server_error',
    // A full disk stays full: the same request fails until an operator frees space.
    retryable: false,
    message: "The model store's disk has no room for the file. Free space (remove models) and try again.",
  },
  shutting_down: {
    status: 503,
    type: 'server_error',
    retryable: true,
    message: 'The gateway is shutting down. Retry against another replica.',
  },
  internal_error: {
    status: 500,
    type: 'server_error',
    retryable: true,
    message: 'The gateway failed unexpectedly. The request id in x-request-id identifies it in the logs.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface GatewayErrorOptions {
  /** The request field the error is about, OpenAI's `error.param`. */
  param?: string | null;
  /** Overrides the catalogue status, for errors that carry an upstream's own 4xx status. */
  status?: number;
  /** Extra response headers, such as Retry-After. */
  headers?: Record<string, string>;
  /** An upstream's own `type` and `code`, rendered instead of ours so clients see what they expect. */
  upstream?: { type?: string | undefined; code?: string | undefined };
  cause?: unknown;
}

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly retryable: boolean;
  readonly param: string | null;
  readonly headers: Record<string, string> | undefined;
  readonly upstream: GatewayErrorOptions['upstream'];

  constructor(code: ErrorCode, message?: string, options: GatewayErrorOptions = {}) {
    const spec: ErrorSpec = errorCatalogue[code];
    super(message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? spec.status;
    this.type = spec.type;
    this.retryable = spec.retryable;
    this.param = options.param ?? null;
    this.headers = options.headers;
    this.upstream = options.upstream;
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError;
}
