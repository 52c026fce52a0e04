import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../server.js';

/**
 * /healthz: the process is alive and serving HTTP. /readyz: a config is loaded, its upstream
 * pools exist, and the gateway is not draining — load balancers should send traffic.
 */
export function registerHealthRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { snapshot } = context;
    const ready = !context.draining;
    reply.code(ready ? 200 : 503);
    return {
      status: ready ? 'ready' : 'draining',
      models: snapshot.table.models.length,
      upstream_pools: snapshot.pools.size,
      config_source: snapshot.config.source,
    };
  });
}
