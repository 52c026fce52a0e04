import { z } from 'zod';
import { strategies } from '../routing/balancer.js';
import { whenSchema } from '../routing/conditions.js';
import { failureClasses } from './types.js';
import { parseDuration, parseKeepAlive, parseMemoryBudget, parseSize } from './units.js';

/**
 * The one schema for switchyard.yaml. Every object is strict: an unknown key is an error, so a
 * misspelt option never silently does nothing. Field names are snake_case, as in the file.
 */

/** A number, or a string in human units, read by `parse`; unreadable values get `message`. */
function unit<Parsed>(parse: (value: string | number) => Parsed | undefined, message: string) {
  return z.union([z.number(), z.string()]).transform((value, context) => {
    const parsed = parse(value);
    if (parsed === undefined) {
      context.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed;
  });
}

const duration = unit(parseDuration, 'must be a duration such as "500ms", "30s" or "5m"');
const keepAlive = unit(
  parseKeepAlive,
  'must be a duration such as "5m" or "30s", a number of seconds, 0 to unload when idle, or -1 to keep models loaded',
);
const size = unit(parseSize, 'must be a size such as "512kb" or "10mb"');
const memoryBudget = unit(
  parseMemoryBudget,
  'must be "auto" or a size such as "8GiB" or "512mb" (a plain number is bytes)',
);

const httpUrl = z.string().refine(
  (value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '';
    } catch {
      return false;
    }
  },
  { message: 'must be an http(s) URL without query or fragment, such as "https://api.openai.com/v1"' },
);

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headers = z.record(
  z.string().regex(headerName, { message: 'must be a valid HTTP header name' }),
  z.string(),
);

const timeouts = z.strictObject({
  connect: duration.optional(),
  first_byte: duration.optional(),
  idle: duration.optional(),
  total: duration.optional(),
});

/** Wire schemas Switchyard speaks upstream; each has an adapter in src/providers (registry.ts). */
export const providerKinds = [
  'openai-compatible',
  'azure-openai',
  'anthropic',
  'gemini',
  'ollama',
  'bedrock',
] as const;
/** Endpoints of kinds whose API lives at one well-known place, used when no url is given. */
export const defaultUrls: Readonly<Partial<Record<(typeof providerKinds)[number], string>>> = {
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
};

/** Target kinds: a provider's wire schema, or `local` for a model in the local store. */
export const targetKinds = [...providerKinds, 'local'] as const;

/** Options only some wire schemas read; the adapter of any other kind ignores them. */
const kindOptions = {
  /** azure-openai: the api-version query parameter; omitted, Azure's v1 API is used. */
  api_version: z.string().min(1).optional(),
  /** anthropic, bedrock: max_tokens when the client sends none (Anthropic requires one). */
  default_max_tokens: z.number().int().positive().optional(),
  /**
   * bedrock: the AWS region. Without url the endpoint is https://bedrock-runtime.<region>.amazonaws.com;
   * requests signed with AWS credentials carry it in their signature.
   */
  region: z
    .string()
    .regex(/^[a-z]{2}(?:-[a-z]+)+-\d+$/, { message: 'must be an AWS region such as "us-east-1"' })
    .optional(),
};

const provider = z
  .strictObject({
    kind: z.enum(providerKinds),
    /** Omitted for kinds with a well-known endpoint (anthropic, gemini; bedrock given its region). */
    url: httpUrl.optional(),
    api_key: z.string().optional(),
    headers: headers.optional(),
    timeouts: timeouts.optional(),
    max_connections: z.number().int().positive().optional(),
    stream_usage: z.boolean().optional(),
    ...kindOptions,
  })
  .superRefine((value, context) => {
    // Bedrock's endpoint is regional: the region stands in for the url.
    if (value.kind === 'bedrock' && value.url === undefined && value.region === undefined) {
      context.addIssue({
        code: 'custom',
        message: 'a bedrock provider needs "region" (such as "us-east-1"), or "url"',
        path: ['region'],
      });
    } else if (value.url === undefined && value.kind !== 'bedrock' && !(value.kind in defaultUrls)) {
      context.addIssue({ code: 'custom', message: `a ${value.kind} provider needs "url"`, path: ['url'] });
    }
  });

const percent = z.number().min(0).max(100);
const deploymentName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/, {
  message: 'must start with a letter or digit and use only letters, digits, ".", "_", ":", "@" and "-"',
});

/** Active health checks: `true` for the kind's usual path, or the path (or URL) and timings. */
const healthCheck = z.union([
  z.boolean(),
  z.strictObject({
    /** Path on the target's origin, such as "/health"; default by kind (GET <base>/models …). */
    path: z.string().startsWith('/', { message: 'must start with "/"' }).optional(),
    url: httpUrl.optional(),
    interval: duration.optional(),
    timeout: duration.optional(),
    unhealthy_threshold: z.number().int().positive().optional(),
    healthy_threshold: z.number().int().positive().optional(),
  }),
]);

/** How a target takes part in its model's routing, as one of its deployments. */
const deploymentFields = {
  /** Unique within the model; default the provider's name or the URL's host. */
  name: deploymentName.optional(),
  version: z.string().min(1).optional(),
  weight: z.number().positive().optional(),
  priority: z.number().int().min(0).optional(),
  max_concurrency: z.number().int().positive().optional(),
  /** USD per million tokens, for the cost strategy. */
  price: z.strictObject({ input: z.number().min(0), output: z.number().min(0) }).optional(),
  /** Percent of the model's traffic sent here, sticky per user: a canary or an A/B arm. */
  split: percent.optional(),
  /** Percent of the model's traffic mirrored here; its answers are recorded, never returned. */
  shadow: percent.optional(),
  metrics_url: httpUrl.optional(),
  health_check: healthCheck.optional(),
};

const target = z
  .strictObject({
    provider: z.string().min(1).optional(),
    kind: z.enum(targetKinds).optional(),
    url: httpUrl.optional(),
    api_key: z.string().optional(),
    model: z.string().min(1).optional(),
    headers: headers.optional(),
    timeouts: timeouts.optional(),
    max_connections: z.number().int().positive().optional(),
    stream_usage: z.boolean().optional(),
    ...kindOptions,
    ...deploymentFields,
  })
  .superRefine((value, context) => {
    if (value.split !== undefined && value.shadow !== undefined) {
      context.addIssue({
        code: 'custom',
        message: 'a deployment takes "split" (serves a share) or "shadow" (mirrors a share), not both',
        path: ['shadow'],
      });
    }
    if (value.kind === 'local') {
      // Served by the supervised runner: the model is a name in the local store. Whether it may
      // be left out depends on the model's name, so the model checks that (localModelNamed).
      for (const key of ['provider', 'url', 'api_key'] as const) {
        if (value[key] !== undefined) {
          context.addIssue({ code: 'custom', message: `a local target takes no "${key}"`, path: [key] });
        }
      }
      return;
    }
    // A bedrock target's endpoint follows from its region, checked once the provider is known.
    const knownEndpoint = value.kind !== undefined && (value.kind in defaultUrls || value.kind === 'bedrock');
    if (value.provider === undefined && value.url === undefined && !knownEndpoint) {
      context.addIssue({
        code: 'custom',
        message: 'needs either "provider" (a name under providers) or "url"',
      });
    }
    if (value.provider !== undefined && value.url !== undefined) {
      context.addIssue({ code: 'custom', message: 'give "provider" or "url", not both', path: ['url'] });
    }
  });

const modelName = z
  .string()
  .min(1)
  .regex(/^[^*\s]*\*?$/, { message: 'may contain no spaces and "*" only at the end, such as "openai/*"' });

const model = z
  .strictObject({
    name: modelName,
    targets: z.array(target).min(1, { message: 'must list at least one target' }),
    owned_by: z.string().optional(),
    /**
     * Drop request parameters a target's API cannot carry (seed for Anthropic, logprobs for
     * Gemini …) instead of answering 400 naming them.
     */
    drop_unsupported_params: z.boolean().optional(),
    /** How requests are spread over the targets (deployments). */
    strategy: z.enum(strategies).optional(),
    /** cost: the average duration a cheaper deployment must keep to be chosen. */
    latency_objective: duration.optional(),
    affinity: z
      .strictObject({
        header: z.string().regex(headerName, { message: 'must be a valid HTTP header name' }).optional(),
        prompt_prefix: z.number().int().positive().optional(),
        load_factor: z.number().min(1).optional(),
      })
      .optional(),
    /** The header that keeps a user on one side of a traffic split; default x-session-id, then `user`. */
    sticky_header: z.string().regex(headerName, { message: 'must be a valid HTTP header name' }).optional(),
    retries: z
      .union([
        z.number().int().min(0).max(10),
        z.strictObject({
          attempts: z.number().int().min(0).max(10).optional(),
          backoff: duration.optional(),
          max_backoff: duration.optional(),
        }),
      ])
      .optional(),
    fallbacks: z.array(z.string().min(1)).optional(),
    fallback_on: z.array(z.enum(failureClasses)).optional(),
    context_window_fallbacks: z.array(z.string().min(1)).optional(),
    content_policy_fallbacks: z.array(z.string().min(1)).optional(),
    breaker: z
      .union([
        z.literal(false),
        z.strictObject({
          failure_rate: z.number().gt(0).max(1).optional(),
          window: duration.optional(),
          min_requests: z.number().int().positive().optional(),
          consecutive_failures: z.number().int().positive().optional(),
          cooldown: duration.optional(),
          max_cooldown: duration.optional(),
          probes: z.number().int().positive().optional(),
        }),
      ])
      .optional(),
    /** Conditional routes, tried in order: the first whose `when` holds sends the request to `model`. */
    routes: z.array(z.strictObject({ when: whenSchema, model: z.string().min(1) })).optional(),
    /** Defaults for the targets' own timeouts. */
    timeouts: timeouts.optional(),
  })
  .superRefine(localModelNamed, {
    // Also when a target has other problems, so that every issue is reported in one run.
    when: (payload) => Array.isArray((payload.value as { targets?: unknown } | undefined)?.targets),
  });

/**
 * A local target names its store model with "model". Under a wildcard name ("local/*") it may
 * leave it out: as for any target without "model", the rest of the client's name is sent, so
 * "local/qwen:0.5b" asks the runner for the store's "qwen:0.5b", pulled before or after start.
 */
function localModelNamed(
  value: { name: string; targets: readonly { kind?: string | undefined; model?: string | undefined }[] },
  context: z.RefinementCtx,
): void {
  if (typeof value.name === 'string' && value.name.endsWith('*')) return;
  value.targets.forEach((target, index) => {
    if (target?.kind === 'local' && target.model === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['targets', index],
        message:
          'a local target needs "model": a name from `switchyard models ls`, such as "demo:small" (only under a wildcard name such as "local/*" may it be left out)',
      });
    }
  });
}

const runner = z
  .strictObject({
    /** Loopback port for the supervised runner; 0 (the default): a private Unix socket instead. */
    port: z.number().int().min(0).max(65535).optional(),
    threads: z.number().int().positive().optional(),
    /** The runner's libuv thread pool, where node-llama-cpp's decode and sampling steps run. */
    pool_threads: z.number().int().positive().max(1024).optional(),
    parallel: z.number().int().positive().optional(),
    context_size: z.number().int().min(64).optional(),
    max_queue: z.number().int().min(0).optional(),
    /** How long an idle model stays loaded, as Ollama's keep_alive; a request's own overrides it. */
    keep_alive: keepAlive.optional(),
    /** Models loaded and warmed before the runner reports healthy. */
    preload: z.array(z.string().min(1)).optional(),
    /** Models loaded at once; the least recently used idle one is unloaded to make room. */
    max_loaded_models: z.number().int().positive().optional(),
    /**
     * RAM the loaded models may take together, by estimates from their GGUF headers; the least
     * recently used idle one is unloaded to make room. 'auto': three quarters of the machine's.
     */
    max_memory: memoryBudget.optional(),
    /**
     * 'auto' (default): CUDA, Vulkan or Metal when node-llama-cpp's prebuilt binary for it loads,
     * the CPU otherwise; 'off': always the CPU.
     */
    gpu: z.enum(['auto', 'off']).optional(),
  })
  .superRefine((runner, context) => {
    // Each preload beyond the budget would unload an earlier one, so the list could not be honoured.
    const budget = runner.max_loaded_models ?? 3;
    if ((runner.preload?.length ?? 0) > budget) {
      context.addIssue({
        code: 'custom',
        path: ['preload'],
        message: `names more models than max_loaded_models (${budget}) keeps loaded; shorten it or raise max_loaded_models`,
      });
    }
  });

/**
 * The admin API (/admin). Closed unless a key is set here or in SWITCHYARD_ADMIN_KEY; write it as
 * "${SWITCHYARD_ADMIN_KEY}" rather than in the file.
 */
const admin = z.strictObject({
  key: z.string().optional(),
});

/** Gateway-wide routing limits. */
const routing = z.strictObject({
  retry_budget: z
    .strictObject({
      ratio: z.number().min(0).max(1).optional(),
      min_per_second: z.number().min(0).optional(),
    })
    .optional(),
});

/** Requests and tokens per minute. */
const rateLimit = z.strictObject({
  rpm: z.number().int().positive().optional(),
  tpm: z.number().int().positive().optional(),
});

/**
 * Who may call: `keys` (the default) requires a virtual key on every data-plane request as soon
 * as one exists; `open` serves anyone, for local development, and says so at start. `oidc` lets
 * the admin API accept single-sign-on bearer tokens.
 */
const auth = z.strictObject({
  mode: z.enum(['keys', 'open']).optional(),
  oidc: z
    .strictObject({
      issuer: z.string().min(1),
      audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
      jwks_url: httpUrl,
      clock_skew: duration.refine((value) => value <= 300_000, { message: 'must be at most 5m' }).optional(),
      role_claim: z.string().min(1).optional(),
      team_claim: z.string().min(1).optional(),
    })
    .optional(),
});

/** Limits that are not a key's or a team's (those live in the store): gateway-wide and per model. */
const limits = z.strictObject({
  global: rateLimit.optional(),
  models: z.record(z.string().min(1), rateLimit).optional(),
});

/** US dollars per million tokens; overrides the built-in price of a model with the same name. */
const price = z.strictObject({
  input: z.number().min(0),
  output: z.number().min(0),
  cached_input: z.number().min(0).optional(),
});

/**
 * Prompt and response capture: off unless enabled, and then encrypted at rest (AES-256-GCM) with
 * the key in `key_env` (default SWITCHYARD_CAPTURE_KEY) or `key_file`, and purged after `retention`.
 */
const capture = z.strictObject({
  enabled: z.boolean().optional(),
  key_id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'must be 1 to 64 letters, digits, ".", "_" or "-"' })
    .optional(),
  key_env: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  retention: duration.optional(),
});

export const configSchema = z.strictObject({
  admin: admin.optional(),
  auth: auth.optional(),
  limits: limits.optional(),
  pricing: z.record(z.string().min(1), price).optional(),
  capture: capture.optional(),
  routing: routing.optional(),
  runner: runner.optional(),
  server: z
    .strictObject({
      host: z.string().min(1).optional(),
      port: z.number().int().min(0).max(65535).optional(),
      body_limit: size.optional(),
      drain_timeout: duration.optional(),
      keep_alive_timeout: duration.optional(),
      /** Serve HTTPS with this PEM certificate (chain) and key; both are watched and reloaded. */
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    })
    .optional(),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
    })
    .optional(),
  store: z
    .strictObject({
      path: z.string().min(1).optional(),
      request_log: z
        .strictObject({
          enabled: z.boolean().optional(),
          flush_interval: duration.optional(),
          batch_size: z.number().int().positive().optional(),
        })
        .optional(),
    })
    .optional(),
  providers: z
    .record(
      z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, {
        message:
          'is not a valid provider name; use letters, digits, ".", "_" and "-", starting with a letter or digit',
      }),
      provider,
    )
    .optional(),
  models: z.array(model).optional(),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawTimeouts = z.output<typeof timeouts>;
