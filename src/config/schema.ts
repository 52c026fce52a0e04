import { z } from 'zod';
import { parseDuration, parseKeepAlive, parseSize } from './units.js';

/**
 * The one schema for switchyard.yaml. Every object is strict: an unknown key is an error, so a
 * misspelt option never silently does nothing. Field names are snake_case, as in the file.
 */

/** A number, or a string in human units, read by `parse`; unreadable values get `message`. */
function unit(parse: (value: string | number) => number | undefined, message: string) {
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

export const providerKinds = ['openai-compatible'] as const;
/** Target kinds: a provider's wire schema, or `local` for a model in the local store. */
export const targetKinds = [...providerKinds, 'local'] as const;

const provider = z.strictObject({
  kind: z.enum(providerKinds),
  url: httpUrl,
  api_key: z.string().optional(),
  headers: headers.optional(),
  timeouts: timeouts.optional(),
  max_connections: z.number().int().positive().optional(),
  stream_usage: z.boolean().optional(),
});

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
  })
  .superRefine((value, context) => {
    if (value.kind === 'local') {
      // Served by the supervised runner: the model is a name in the local store.
      if (value.model === undefined) {
        context.addIssue({
          code: 'custom',
          message: 'a local target needs "model": a name from `switchyard models ls`, such as "demo:small"',
        });
      }
      for (const key of ['provider', 'url', 'api_key'] as const) {
        if (value[key] !== undefined) {
          context.addIssue({ code: 'custom', message: `a local target takes no "${key}"`, path: [key] });
        }
      }
      return;
    }
    if (value.provider === undefined && value.url === undefined) {
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

const model = z.strictObject({
  name: modelName,
  targets: z.array(target).min(1, { message: 'must list at least one target' }),
  owned_by: z.string().optional(),
});

const runner = z
  .strictObject({
    /** Loopback port for the supervised runner; 0 picks a free one. */
    port: z.number().int().min(0).max(65535).optional(),
    threads: z.number().int().positive().optional(),
    parallel: z.number().int().positive().optional(),
    context_size: z.number().int().min(64).optional(),
    max_queue: z.number().int().min(0).optional(),
    /** How long an idle model stays loaded, as Ollama's keep_alive; a request's own overrides it. */
    keep_alive: keepAlive.optional(),
    /** Models loaded and warmed before the runner reports healthy. */
    preload: z.array(z.string().min(1)).optional(),
    /** Models loaded at once; the least recently used idle one is unloaded to make room. */
    max_loaded_models: z.number().int().positive().optional(),
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

export const configSchema = z.strictObject({
  runner: runner.optional(),
  server: z
    .strictObject({
      host: z.string().min(1).optional(),
      port: z.number().int().min(0).max(65535).optional(),
      body_limit: size.optional(),
      drain_timeout: duration.optional(),
      keep_alive_timeout: duration.optional(),
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
