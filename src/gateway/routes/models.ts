import type { FastifyInstance } from 'fastify';
import { allowsModel } from '../../auth/api-keys.js';
import type { ModelConfig } from '../../config/types.js';
import { modelNotFound } from '../attempts.js';
import type { GatewayContext } from '../server.js';

/**
 * GET /v1/models and GET /v1/models/{id}, in OpenAI's list and model shapes. A virtual key sees
 * only the models it may call.
 */
export function registerModelRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.get('/v1/models', async (request) => {
    const { table, createdAt } = context.snapshot;
    const caller = request.caller;
    const visible =
      caller === undefined
        ? table.models
        : table.models.filter((model) => allowsModel(caller.key, caller.team, model.name));
    return { object: 'list', data: visible.map((model) => describe(model.name, model, createdAt)) };
  });

  // Model ids may hold slashes ("openai/gpt-4o"), so the id is the rest of the path.
  app.get('/v1/models/*', async (request) => {
    const id = decodeURIComponent((request.params as { '*': string })['*']);
    const { table, createdAt } = context.snapshot;
    const model = table.match(id);
    const caller = request.caller;
    if (model === undefined || (caller !== undefined && !allowsModel(caller.key, caller.team, id))) {
      throw modelNotFound(id, table.models);
    }
    return describe(id, model, createdAt);
  });
}

function describe(id: string, model: ModelConfig, created: number) {
  return { id, object: 'model', created, owned_by: model.ownedBy };
}
