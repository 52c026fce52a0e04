import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { bedrockEndpoint, environmentCredentials, regionOfEndpoint } from './aws.js';
import {
  dataDirectory,
  defaultBodyLimit,
  defaultDrainTimeout,
  defaultHost,
  defaultKeepAliveTimeout,
  defaultPort,
  defaultTimeouts,
} from './defaults.js';
import {
  checkDeployments,
  checkModelReferences,
  compileDeployment,
  compileRouting,
  defaultDeployment,
  defaultRouting,
} from './routing.js';
import { configSchema, defaultUrls, type RawConfig, type RawTimeouts } from './schema.js';
import type {
  AwsCredentials,
  GatewayConfig,
  ModelConfig,
  ProviderKind,
  TargetConfig,
  Timeouts,
  TlsFiles,
} from './types.js';
import { environmentVendors } from './vendors.js';

export interface ConfigIssue {
  /** Where in the file, such as "models[2].targets[0].url"; "" for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** A config that cannot be used. Its message lists every problem, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: readonly ConfigIssue[],
    readonly file?: string,
  ) {
    super(
      `${file ? `${file}: ` : ''}invalid configuration\n${issues
        .map((issue) => `  ${issue.path ? `${issue.path}: ` : ''}${issue.message}`)
        .join('\n')}`,
    );
  }
}

type Env = NodeJS.ProcessEnv;

/** Reads, interpolates, validates and compiles a YAML config file. */
export async function loadConfigFile(file: string, env: Env = process.env): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(error);
    throw new ConfigError([{ path: '', message: reason }], file);
  }
  return parseConfigText(text, env, file);
}

export function parseConfigText(text: string, env: Env = process.env, file?: string): GatewayConfig {
  // Without prettyErrors, errors carry only offsets; the counter turns them into line numbers.
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => ({
        path: '',
        message: `YAML syntax error at line ${lineCounter.linePos(error.pos[0]).line}: ${error.message.split('\n')[0]}`,
      })),
      file,
    );
  }
  const tree: unknown = document.toJS() ?? {};
  try {
    return compileConfig(validateConfig(interpolate(tree, env, [])), env, 'file');
  } catch (error) {
    if (error instanceof ConfigError && !error.file) throw new ConfigError(error.issues, file);
    throw error;
  }
}

/** Checks a parsed tree against the schema, collecting every issue rather than the first. */
export function validateConfig(tree: unknown): RawConfig {
  // reportInput lets describeIssue tell a missing field from one of the wrong type.
  const result = configSchema.safeParse(tree, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.flatMap(describeIssue));
}

/** With no config file: one wildcard model per vendor found in the environment. */
export function configFromEnvironment(env: Env = process.env): GatewayConfig {
  const providers: NonNullable<RawConfig['providers']> = {};
  const models: NonNullable<RawConfig['models']> = [];
  for (const vendor of environmentVendors) {
    const key = vendor.keyVariable ? env[vendor.keyVariable] : undefined;
    const url = env[vendor.urlVariable] || (key ? vendor.defaultUrl : undefined);
    if (!url) continue;
    providers[vendor.name] = { kind: 'openai-compatible', url, ...(key ? { api_key: key } : {}) };
    models.push({ name: `${vendor.name}/*`, targets: [{ provider: vendor.name }], owned_by: vendor.name });
  }
  const first = models[0];
  if (first) models.push({ name: '*', targets: first.targets, owned_by: first.owned_by });
  // Vendor URLs come from the environment too, so they get the same checks as a file's.
  const raw = validateConfig({ providers, models, server: serverFromEnvironment(env) });
  return compileConfig(raw, env, 'environment');
}

function serverFromEnvironment(env: Env): Record<string, unknown> {
  const server: Record<string, unknown> = {};
  if (env.SWITCHYARD_HOST) server.host = env.SWITCHYARD_HOST;
  if (env.SWITCHYARD_PORT) server.port = Number(env.SWITCHYARD_PORT);
  return server;
}

// ${NAME} or ${NAME:-fallback}; "$${" writes a literal "${".
const interpolationPattern = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces ${VAR} in every string of the tree. Every unset variable is an issue at its path, all
 * reported together, so one run names everything the environment lacks.
 */
export function interpolate(node: unknown, env: Env, path: (string | number)[]): unknown {
  const issues: ConfigIssue[] = [];
  const value = interpolateNode(node, env, path, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return value;
}

function interpolateNode(node: unknown, env: Env, path: (string | number)[], issues: ConfigIssue[]): unknown {
  if (typeof node === 'string') {
    const missing: string[] = [];
    const value = node.replace(interpolationPattern, (match, name?: string, fallback?: string) => {
      if (match === '$${') return '${';
      const found = env[name!];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      missing.push(name!);
      return '';
    });
    if (missing.length > 0) {
      issues.push({
        path: formatPath(path),
        message: `environment variable ${missing.join(', ')} is not set; set it, or write \${${missing[0]}:-default}`,
      });
    }
    return value;
  }
  if (Array.isArray(node)) {
    return node.map((item, index) => interpolateNode(item, env, [...path, index], issues));
  }
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = interpolateNode(value, env, [...path, key], issues);
    }
    return out;
  }
  return node;
}

export function compileConfig(raw: RawConfig, env: Env, source: GatewayConfig['source']): GatewayConfig {
  const issues: ConfigIssue[] = [];
  const providers = raw.providers ?? {};
  const seen = new Map<string, number>();
  const models: ModelConfig[] = [];

  (raw.models ?? []).forEach((model, modelIndex) => {
    const previous = seen.get(model.name);
    if (previous !== undefined) {
      issues.push({
        path: `models[${modelIndex}].name`,
        message: `"${model.name}" is already defined at models[${previous}]; model names must be unique`,
      });
      return;
    }
    seen.set(model.name, modelIndex);
    const targets: TargetConfig[] = [];
    model.targets.forEach((target, targetIndex) => {
      const path = `models[${modelIndex}].targets[${targetIndex}]`;
      const provider = target.provider === undefined ? undefined : providers[target.provider];
      if (target.provider !== undefined && provider === undefined) {
        const names = Object.keys(providers);
        issues.push({
          path: `${path}.provider`,
          message: `no provider named "${target.provider}"; ${
            names.length ? `defined providers: ${names.join(', ')}` : 'define it under "providers"'
          }`,
        });
        return;
      }
      if (target.kind === 'local') {
        const local = localTarget(target.model, compileTimeouts(undefined, model.timeouts, target.timeouts));
        targets.push(
          Object.freeze({
            ...local,
            deployment: compileDeployment(target, local.name, local, issues, path),
          }),
        );
        return;
      }
      const kind = target.kind ?? provider?.kind ?? 'openai-compatible';
      let region = target.region ?? provider?.region;
      const endpoint =
        target.url ??
        provider?.url ??
        (kind === 'bedrock' && region !== undefined
          ? bedrockEndpoint(region)
          : defaultUrls[kind as ProviderKind]);
      if (endpoint === undefined) {
        issues.push({
          path: `${path}.region`,
          message: 'a bedrock target needs "region" (such as "us-east-1"), or "url"',
        });
        return;
      }
      const url = new URL(endpoint);
      let apiKey = emptyToUndefined(target.api_key ?? provider?.api_key);
      let awsCredentials: AwsCredentials | undefined;
      if (kind === 'bedrock') {
        // As AWS's SDKs do: a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK, else SigV4 credentials.
        apiKey ??= emptyToUndefined(env.AWS_BEARER_TOKEN_BEDROCK);
        region ??= regionOfEndpoint(url.hostname);
        if (apiKey === undefined) {
          const lookup = environmentCredentials(env);
          if (!lookup.found) {
            issues.push({ path, message: lookup.message });
          } else if (region === undefined) {
            issues.push({
              path: `${path}.region`,
              message: `is needed to sign requests with AWS credentials, and "${url.host}" does not name one; set it, such as "us-east-1"`,
            });
          } else {
            awsCredentials = lookup.credentials;
          }
        }
      }
      const name = target.provider ?? url.host;
      const origin = url.origin;
      const basePath = url.pathname.replace(/\/+$/, '');
      targets.push(
        Object.freeze({
          name,
          kind,
          origin,
          basePath,
          apiKey,
          model: target.model,
          headers: Object.freeze({ ...provider?.headers, ...target.headers }),
          timeouts: compileTimeouts(provider?.timeouts, model.timeouts, target.timeouts),
          maxConnections: target.max_connections ?? provider?.max_connections,
          streamUsage: target.stream_usage ?? provider?.stream_usage ?? true,
          apiVersion: target.api_version ?? provider?.api_version,
          defaultMaxTokens: target.default_max_tokens ?? provider?.default_max_tokens,
          region,
          awsCredentials,
          deployment: compileDeployment(target, name, { kind, basePath }, issues, path),
        }),
      );
    });
    // Only once every target compiled, so one bad target is not reported twice.
    if (targets.length === model.targets.length) checkDeployments(targets, `models[${modelIndex}]`, issues);
    models.push(
      Object.freeze({
        name: model.name,
        targets: Object.freeze(targets),
        ownedBy: model.owned_by ?? targets[0]?.name ?? 'switchyard',
        dropUnsupportedParams: model.drop_unsupported_params ?? false,
        routing: compileRouting(model),
      }),
    );
  });
  checkModelReferences(models, issues);
  const adminKey = compileAdminKey(raw.admin?.key, env, issues);
  const server = raw.server ?? {};
  const tls = compileTls(server.tls, issues);
  if (issues.length > 0) throw new ConfigError(issues);

  const requestLog = raw.store?.request_log ?? {};
  return deepFreeze({
    runner: {
      port: raw.runner?.port ?? 0,
      threads: raw.runner?.threads,
      poolThreads: raw.runner?.pool_threads,
      parallel: raw.runner?.parallel ?? 2,
      contextSize: raw.runner?.context_size ?? 4096,
      maxQueue: raw.runner?.max_queue ?? 16,
      keepAlive: raw.runner?.keep_alive ?? 5 * 60_000,
      preload: raw.runner?.preload ?? [],
      maxLoadedModels: raw.runner?.max_loaded_models ?? 3,
      maxMemory: raw.runner?.max_memory ?? 'auto',
      gpu: raw.runner?.gpu ?? 'auto',
    },
    server: {
      host: server.host ?? defaultHost,
      port: server.port ?? defaultPort,
      bodyLimit: server.body_limit ?? defaultBodyLimit,
      drainTimeout: server.drain_timeout ?? defaultDrainTimeout,
      keepAliveTimeout: server.keep_alive_timeout ?? defaultKeepAliveTimeout,
      tls,
    },
    log: { level: raw.log?.level ?? env.SWITCHYARD_LOG_LEVEL ?? 'info' },
    store: {
      path: raw.store?.path ?? join(dataDirectory(env), 'switchyard.db'),
      requestLog: {
        enabled: requestLog.enabled ?? true,
        flushInterval: requestLog.flush_interval ?? 1_000,
        batchSize: requestLog.batch_size ?? 500,
      },
    },
    models,
    retryBudget: {
      ratio: raw.routing?.retry_budget?.ratio ?? 0.1,
      minPerSecond: raw.routing?.retry_budget?.min_per_second ?? 10,
    },
    admin: { key: adminKey },
    auth: {
      mode: raw.auth?.mode ?? 'keys',
      oidc:
        raw.auth?.oidc === undefined
          ? undefined
          : {
              issuer: raw.auth.oidc.issuer,
              audience: raw.auth.oidc.audience,
              jwksUrl: raw.auth.oidc.jwks_url,
              clockSkewMs: raw.auth.oidc.clock_skew ?? 60_000,
              roleClaim: raw.auth.oidc.role_claim ?? 'role',
              teamClaim: raw.auth.oidc.team_claim ?? 'team',
            },
    },
    limits: { global: raw.limits?.global, models: raw.limits?.models ?? {} },
    pricing: Object.fromEntries(
      Object.entries(raw.pricing ?? {}).map(([name, price]) => [
        name,
        { input: price.input, output: price.output, cachedInput: price.cached_input },
      ]),
    ),
    capture: {
      enabled: raw.capture?.enabled ?? false,
      keyId: raw.capture?.key_id ?? 'k1',
      keyEnv: raw.capture?.key_env ?? 'SWITCHYARD_CAPTURE_KEY',
      keyFile: raw.capture?.key_file === undefined ? undefined : resolve(raw.capture.key_file),
      retention: raw.capture?.retention ?? 30 * 86_400_000,
    },
    source,
  });
}

/**
 * A target served by the local runner. Its origin stays unbound (port 0) until the gateway has chosen
 * the runner's port (see `bindLocalTargets`). Without `model`, the client's name, or a wildcard's
 * tail, names the store model, which the runner looks up when asked (models pulled after start too).
 */
export function localTarget(model: string | undefined, timeouts: Timeouts): TargetConfig {
  return Object.freeze({
    name: 'local',
    kind: 'local',
    origin: unboundLocalOrigin,
    basePath: '/v1',
    apiKey: undefined,
    model,
    headers: Object.freeze({}),
    timeouts,
    maxConnections: undefined,
    streamUsage: true,
    apiVersion: undefined,
    defaultMaxTokens: undefined,
    region: undefined,
    awsCredentials: undefined,
    deployment: defaultDeployment('local'),
  });
}

export const unboundLocalOrigin = 'http://127.0.0.1:0';

/** The config with every local target pointed at the runner's origin. */
export function bindLocalTargets(config: GatewayConfig, origin: string, socketPath?: string): GatewayConfig {
  return deepFreeze({
    ...config,
    models: config.models.map((model) => ({
      ...model,
      targets: model.targets.map((target) =>
        target.kind === 'local' ? { ...target, origin, socketPath } : target,
      ),
    })),
  });
}

export function hasLocalTargets(config: GatewayConfig): boolean {
  return config.models.some((model) => model.targets.some((target) => target.kind === 'local'));
}

/**
 * Adds a model served by the local runner: the demo model on a first start, or `local/*` with no
 * `storeName`, which serves every model of the store as `local/<name:tag>`.
 */
export function withLocalModel(
  config: GatewayConfig,
  name: string,
  storeName: string | undefined,
): GatewayConfig {
  return deepFreeze({
    ...config,
    models: [
      ...config.models,
      {
        name,
        targets: [localTarget(storeName, defaultTimeouts)],
        ownedBy: 'switchyard',
        dropUnsupportedParams: false,
        routing: defaultRouting(),
      },
    ],
  });
}

// Shorter keys can be guessed; the check also catches a variable set to a placeholder.
const minimumAdminKeyLength = 16;
const adminKeyPattern = /^[\x21-\x7e]+$/;

/** The admin key from the file, else SWITCHYARD_ADMIN_KEY; empty means none (the API stays closed). */
function compileAdminKey(fromFile: string | undefined, env: Env, issues: ConfigIssue[]): string | undefined {
  const inFile = emptyToUndefined(fromFile);
  const key = inFile ?? emptyToUndefined(env.SWITCHYARD_ADMIN_KEY);
  if (key === undefined) return undefined;
  // HTTP trims spaces around header values, so a key with spaces could never match; the key
  // itself is never put in the message.
  if (key.length < minimumAdminKeyLength || !adminKeyPattern.test(key)) {
    issues.push({
      path: inFile === undefined ? '' : 'admin.key',
      message: `${inFile === undefined ? 'SWITCHYARD_ADMIN_KEY ' : ''}must be at least ${minimumAdminKeyLength} printable characters without spaces; generate one with \`openssl rand -hex 32\``,
    });
  }
  return key;
}

/**
 * `server.tls` with its paths made absolute (relative ones are from the working directory), once
 * the files have been read and found to be a usable pair, so a typo fails `config validate`
 * rather than the first TLS handshake.
 */
function compileTls(raw: TlsFiles | undefined, issues: ConfigIssue[]): TlsFiles | undefined {
  if (raw === undefined) return undefined;
  const files = { cert: resolve(raw.cert), key: resolve(raw.key) };
  try {
    readTlsFiles(files);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    issues.push(...error.issues);
  }
  return files;
}

/**
 * Reads the PEM certificate and key `files` names and checks that they make a usable pair, as
 * node:tls would at the first handshake. Throws ConfigError naming the file, or both files, at fault.
 */
export function readTlsFiles(files: TlsFiles): { readonly cert: Buffer; readonly key: Buffer } {
  const issues: ConfigIssue[] = [];
  const read = (field: 'cert' | 'key') => {
    try {
      return readFileSync(files[field]);
    } catch (error) {
      const { code, message } = error as NodeJS.ErrnoException;
      const reason = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : message;
      issues.push({ path: `server.tls.${field}`, message: `cannot read "${files[field]}": ${reason}` });
      return undefined;
    }
  };
  const cert = read('cert');
  const key = read('key');
  if (cert === undefined || key === undefined) throw new ConfigError(issues);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    // OpenSSL's reason ("key values mismatch", "no start line") says which of the two is wrong.
    throw new ConfigError([
      {
        path: 'server.tls',
        message: `"${files.cert}" and "${files.key}" are not a usable certificate and key (${(error as Error).message}); both must be PEM, and the key must be the certificate's`,
      },
    ]);
  }
  return { cert, key };
}

/** The target's own timeouts, else its model's, else its provider's, else the defaults. */
function compileTimeouts(
  provider: RawTimeouts | undefined,
  model: RawTimeouts | undefined,
  target: RawTimeouts | undefined,
): Timeouts {
  return Object.freeze({
    connect: target?.connect ?? model?.connect ?? provider?.connect ?? defaultTimeouts.connect,
    firstByte: target?.first_byte ?? model?.first_byte ?? provider?.first_byte ?? defaultTimeouts.firstByte,
    idle: target?.idle ?? model?.idle ?? provider?.idle ?? defaultTimeouts.idle,
    total: target?.total ?? model?.total ?? provider?.total ?? defaultTimeouts.total,
  });
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === '' ? undefined : value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: formatPath([...issue.path, key]),
        message: 'unknown key; remove it or check its spelling',
      }));
    case 'invalid_type':
      return [
        {
          path,
          message:
            issue.input === undefined
              ? `is required (${issue.expected})`
              : `must be ${article(issue.expected)}`,
        },
      ];
    case 'invalid_value':
      return [
        { path, message: `must be one of: ${issue.values.map((value) => JSON.stringify(value)).join(', ')}` },
      ];
    case 'invalid_key':
      // A record key (a provider's name) that fails its pattern; the inner issue says why.
      return [{ path, message: issue.issues[0]?.message ?? 'is not an allowed name' }];
    case 'invalid_union': {
      // Our unions are number-or-string units whose transforms explain themselves.
      const inner = issue.errors.flat().find((child) => child.code === 'custom');
      return [{ path, message: inner?.message ?? 'has an unsupported value' }];
    }
    case 'too_small':
      return [
        {
          path,
          message: issue.message.startsWith('Too small')
            ? `is too small (minimum ${issue.minimum})`
            : issue.message,
        },
      ];
    case 'too_big':
      return [{ path, message: `is too large (maximum ${issue.maximum})` }];
    case 'invalid_format':
      return [
        { path, message: issue.message.startsWith('Invalid') ? `has an invalid format` : issue.message },
      ];
    default:
      return [{ path, message: issue.message }];
  }
}

function article(expected: string): string {
  const noun = expected === 'record' ? 'object' : expected;
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}
