import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../../config/load.js';
import { GatewayError } from '../../errors/index.js';
import type { AdminContext } from '../admin-api.js';

/**
 * GET /admin/deployments: every deployment of the serving config with its live figures (requests
 * in flight, latency averages, breaker, health, scraped load) — what routing decides by.
 * POST /admin/config/reload: reads the config file again and swaps it in without dropping a
 * request; an invalid file is a 422 listing its problems, and the running config stays.
 */
export function registerAdminRoutingRoutes(app: FastifyInstance, context: AdminContext): void {
  app.get('/deployments', async () => {
    const deployments = [...context.routing.deployments()].map((deployment) => ({
      model: deployment.model.name,
      name: deployment.name,
      version: deployment.version ?? null,
      target: deployment.config.name,
      kind: deployment.config.kind,
      weight: deployment.weight,
      priority: deployment.priority,
      split: deployment.config.deployment.split,
      shadow: deployment.config.deployment.shadow,
      outstanding: deployment.outstanding,
      latency_ms: rounded(deployment.latency),
      duration_ms: rounded(deployment.duration),
      breaker: deployment.breaker?.state ?? 'disabled',
      healthy: deployment.healthy,
      health_reason: deployment.healthy ? null : deployment.healthReason,
      load: deployment.load === undefined ? null : { ...deployment.load, at: undefined },
    }));
    return { object: 'list', data: deployments };
  });

  app.post('/config/reload', async (request) => {
    const { reload } = context.routing;
    if (reload === undefined) throw new GatewayError('reload_unavailable');
    // Model names only: the config itself holds upstream keys, which never go in the audit log.
    const before = { models: modelNames(context) };
    try {
      const result = await reload();
      await context.audit(request, {
        action: 'config.reload',
        before,
        after: { models: modelNames(context) },
        outcome: 'ok',
      });
      return { reloaded: true, ...result };
    } catch (error) {
      const failure =
        error instanceof ConfigError
          ? new GatewayError('invalid_config', error.message, { cause: error })
          : error;
      await context.audit(request, {
        action: 'config.reload',
        before,
        after: { error: failure instanceof GatewayError ? failure.code : 'internal_error' },
        outcome: 'failed',
      });
      throw failure;
    }
  });
}

function modelNames(context: AdminContext): string[] {
  return [...new Set([...context.routing.deployments()].map((deployment) => deployment.model.name))];
}

function rounded(value: number | undefined): number | null {
  return value === undefined ? null : Math.round(value * 1000) / 1000;
}
