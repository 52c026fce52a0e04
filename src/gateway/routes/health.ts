import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../server.js';

/**
 * /healthz: the process is alive and serving HTTP. /readyz: a config is loaded, its upstream
 * pools exist, the local runner (if any) answers, and the gateway is not draining — load
 * balancers should send traffic.
 */
export function registerHealthRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { snapshot } = context;
    const runnerReady = context.runnerReady();
    const ready = !context.draining && runnerReady;
    reply.code(ready ? 200 : 503);
    return {
      status: context.draining ? 'draining' : runnerReady ? 'ready' : 'runner starting',
      models: snapshot.table.models.length,
      upstream_pools: snapshot.pools.size,
      config_source: snapshot.config.source,
    };
  });
}
