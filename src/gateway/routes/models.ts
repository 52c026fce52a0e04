import type { FastifyInstance } from 'fastify';
import type { ModelConfig } from '../../config/types.js';
import { modelNotFound } from '../attempts.js';
import type { GatewayContext } from '../server.js';

/** GET /v1/models and GET /v1/models/{id}, in OpenAI's list and model shapes. */
export function registerModelRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.get('/v1/models', async () => {
    const { table, createdAt } = context.snapshot;
    return { object: 'list', data: table.models.map((model) => describe(model.name, model, createdAt)) };
  });

  // Model ids may hold slashes ("openai/gpt-4o"), so the id is the rest of the path.
  app.get('/v1/models/*', async (request) => {
    const id = decodeURIComponent((request.params as { '*': string })['*']);
    const { table, createdAt } = context.snapshot;
    const model = table.match(id);
    if (model === undefined) throw modelNotFound(id, table.models);
    return describe(id, model, createdAt);
  });
}

function describe(id: string, model: ModelConfig, created: number) {
  return { id, object: 'model', created, owned_by: model.ownedBy };
}
