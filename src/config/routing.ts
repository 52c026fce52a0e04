import type { Strategy } from '../routing/balancer.js';
import { circuitBreakerDefaults } from '../routing/circuit-breaker.js';
import type { ConfigIssue } from './load.js';
import type { RawConfig } from './schema.js';
import {
  type DeploymentSettings,
  type FailureClass,
  failureClasses,
  type ModelConfig,
  type ModelRouting,
  type TargetConfig,
  type TargetKind,
} from './types.js';

type RawModel = NonNullable<RawConfig['models']>[number];
type RawTarget = RawModel['targets'][number];

/** Failures worth another model by default: the upstream's trouble, not the request's. */
const defaultFallbackOn: readonly FailureClass[] = failureClasses.filter(
  (failure) => failure !== 'context_window' && failure !== 'content_policy',
);

/** Where a kind answers a cheap authenticated GET, for `health_check: true`. */
function defaultHealthPath(kind: TargetKind, basePath: string): string | undefined {
  switch (kind) {
    case 'local':
      return '/healthz';
    case 'openai-compatible':
    case 'azure-openai':
      return `${basePath}/models`;
    case 'anthropic':
      return `${basePath}/v1/models`;
    case 'gemini':
      return `${basePath}/v1beta/models`;
    case 'ollama':
      return '/api/tags';
    case 'bedrock':
      // Every Bedrock request must be signed for its own path; give a path or URL explicitly.
      return undefined;
  }
}

export function compileDeployment(
  raw: RawTarget,
  defaultName: string,
  target: { kind: TargetKind; basePath: string },
  issues: ConfigIssue[],
  path: string,
): DeploymentSettings {
  let healthCheck: DeploymentSettings['healthCheck'];
  const check = raw.health_check;
  if (check !== undefined && check !== false) {
    const options = check === true ? {} : check;
    const url = options.url ?? options.path ?? defaultHealthPath(target.kind, target.basePath);
    if (url === undefined) {
      issues.push({
        path: `${path}.health_check`,
        message: `a ${target.kind} target has no default health path; give "path" or "url"`,
      });
    } else {
      healthCheck = Object.freeze({
        url,
        interval: options.interval ?? 10_000,
        timeout: options.timeout ?? 2_000,
        unhealthyThreshold: options.unhealthy_threshold ?? 2,
        healthyThreshold: options.healthy_threshold ?? 1,
      });
    }
  }
  return Object.freeze({
    name: raw.name ?? defaultName,
    version: raw.version,
    weight: raw.weight ?? 1,
    priority: raw.priority ?? 0,
    maxConcurrency: raw.max_concurrency,
    price: raw.price === undefined ? undefined : Object.freeze({ ...raw.price }),
    split: raw.split ?? 0,
    shadow: raw.shadow ?? 0,
    metricsUrl: raw.metrics_url ?? '/metrics',
    healthCheck,
  });
}

/**
 * Deployment names must tell targets apart in headers and logs: an unnamed duplicate gets its
 * position appended ("openai#2"); a named one is an error. Splits must leave traffic to serve.
 */
export function checkDeployments(targets: TargetConfig[], path: string, issues: ConfigIssue[]): void {
  const seen = new Map<string, number>();
  targets.forEach((target, index) => {
    const name = target.deployment.name;
    const first = seen.get(name);
    if (first === undefined) {
      seen.set(name, index);
      return;
    }
    if (target.deployment.name !== target.name) {
      issues.push({
        path: `${path}.targets[${index}].name`,
        message: `"${name}" is already the name of targets[${first}]; deployment names must be unique within a model`,
      });
      return;
    }
    targets[index] = Object.freeze({
      ...target,
      deployment: Object.freeze({ ...target.deployment, name: `${name}#${index + 1}` }),
    });
  });
  const split = targets.reduce((sum, target) => sum + target.deployment.split, 0);
  const serving = targets.filter((target) => target.deployment.split === 0 && target.deployment.shadow === 0);
  if (split > 100) {
    issues.push({ path: `${path}.targets`, message: `the splits add up to ${split}%, more than 100%` });
  } else if (serving.length === 0 && split < 100) {
    issues.push({
      path: `${path}.targets`,
      message:
        'needs a target without "split" or "shadow" to serve the rest of the traffic, or splits that add up to 100%',
    });
  }
}

export function compileRouting(raw: RawModel): ModelRouting {
  const retries = typeof raw.retries === 'number' ? { attempts: raw.retries } : (raw.retries ?? {});
  const breaker = raw.breaker;
  return Object.freeze({
    strategy: (raw.strategy ?? 'weighted') satisfies Strategy,
    latencyObjective: raw.latency_objective,
    affinity: Object.freeze({
      header: raw.affinity?.header?.toLowerCase(),
      promptPrefix: raw.affinity?.prompt_prefix ?? 2_000,
      loadFactor: raw.affinity?.load_factor ?? 1.25,
    }),
    stickyHeader: (raw.sticky_header ?? 'x-session-id').toLowerCase(),
    retries: Object.freeze({
      attempts: retries.attempts ?? 2,
      backoff: retries.backoff ?? 100,
      maxBackoff: retries.max_backoff ?? 2_000,
    }),
    fallbacks: Object.freeze([...(raw.fallbacks ?? [])]),
    fallbackOn: Object.freeze([...(raw.fallback_on ?? defaultFallbackOn)]),
    contextWindowFallbacks: Object.freeze([...(raw.context_window_fallbacks ?? [])]),
    contentPolicyFallbacks: Object.freeze([...(raw.content_policy_fallbacks ?? [])]),
    breaker:
      breaker === false
        ? undefined
        : Object.freeze({
            failureRate: breaker?.failure_rate ?? circuitBreakerDefaults.failureRate,
            window: breaker?.window ?? circuitBreakerDefaults.window,
            minRequests: breaker?.min_requests ?? circuitBreakerDefaults.minRequests,
            consecutiveFailures: breaker?.consecutive_failures ?? circuitBreakerDefaults.consecutiveFailures,
            cooldown: breaker?.cooldown ?? circuitBreakerDefaults.cooldown,
            maxCooldown: breaker?.max_cooldown ?? circuitBreakerDefaults.maxCooldown,
            probes: breaker?.probes ?? circuitBreakerDefaults.probes,
          }),
    routes: Object.freeze((raw.routes ?? []).map((route) => Object.freeze({ ...route }))),
  });
}

/**
 * Fallbacks and conditional routes must name models this config serves (exactly or through a
 * wildcard), and routes must not loop: A → B → A would never settle on a target.
 */
export function checkModelReferences(models: readonly ModelConfig[], issues: ConfigIssue[]): void {
  const exact = new Map(models.map((model) => [model.name, model]));
  const prefixes = models.filter((model) => model.name.endsWith('*')).map((model) => model.name.slice(0, -1));
  const find = (name: string): ModelConfig | undefined =>
    exact.get(name) ??
    (prefixes.some((prefix) => name.startsWith(prefix) && name.length > prefix.length)
      ? models.find((model) => model.name.endsWith('*') && name.startsWith(model.name.slice(0, -1)))
      : undefined);
  models.forEach((model, index) => {
    const lists = [
      ['fallbacks', model.routing.fallbacks],
      ['context_window_fallbacks', model.routing.contextWindowFallbacks],
      ['content_policy_fallbacks', model.routing.contentPolicyFallbacks],
    ] as const;
    for (const [field, names] of lists) {
      names.forEach((name, position) => {
        if (name === model.name) {
          issues.push({
            path: `models[${index}].${field}[${position}]`,
            message: 'a model cannot fall back to itself',
          });
        } else if (find(name) === undefined) {
          issues.push({
            path: `models[${index}].${field}[${position}]`,
            message: `no model named "${name}"; fallbacks must name models defined under "models"`,
          });
        }
      });
    }
    model.routing.routes.forEach((route, position) => {
      if (find(route.model) === undefined) {
        issues.push({
          path: `models[${index}].routes[${position}].model`,
          message: `no model named "${route.model}"; routes must send requests to models defined under "models"`,
        });
      }
    });
  });
  // A route loop: follow every route edge and look for a cycle (the graph is small).
  const edges = new Map(
    models.map((model) => [model.name, model.routing.routes.map((route) => route.model)]),
  );
  for (const start of edges.keys()) {
    const stack = [[start]];
    while (stack.length > 0) {
      const trail = stack.pop()!;
      for (const next of edges.get(trail.at(-1)!) ?? []) {
        if (next === start) {
          const index = models.findIndex((model) => model.name === start);
          issues.push({
            path: `models[${index}].routes`,
            message: `routes loop: ${[...trail, next].join(' → ')}`,
          });
          break;
        }
        if (!trail.includes(next)) stack.push([...trail, next]);
      }
    }
  }
}

/** A deployment with every routing setting at its default, for targets made in code. */
export function defaultDeployment(name: string): DeploymentSettings {
  return compileDeployment({}, name, { kind: 'openai-compatible', basePath: '' }, [], '');
}

/** A model's routing with every setting at its default, for models made in code. */
export function defaultRouting(): ModelRouting {
  return compileRouting({ name: '', targets: [] });
}
