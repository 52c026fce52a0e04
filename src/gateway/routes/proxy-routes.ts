import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import type { ModelTable } from '../../routing/model-table.js';
import type { Endpoint } from '../../spec/openai.js';
import { proxy } from '../proxy.js';
import type { GatewayContext } from '../server.js';
import { validateRequestBody } from '../validate.js';

/** The OpenAI endpoints that go upstream; they differ only in path and body rules. */
const proxiedEndpoints: readonly Endpoint[] = ['chat/completions', 'completions', 'embeddings'];

export function registerProxyRoutes(app: FastifyInstance, context: GatewayContext): void {
  for (const endpoint of proxiedEndpoints) {
    // Synchronous: after hijack() the proxy owns the response, so there is nothing to await.
    app.post(`/v1/${endpoint}`, (request, reply) => {
      // parse → plan → execute; proxy() writes the answer and reports it itself.
      const body = validateRequestBody(endpoint, request.body);
      const { table } = context.snapshot;
      const route = table.resolve(body.model);
      if (route === undefined) throw modelNotFound(body.model, table);
      if (route.target.config.kind === 'local' && !context.runnerReady()) {
        throw new GatewayError(
          'runner_unavailable',
          `The local runner serving "${body.model}" is starting or restarting. Retry in a moment.`,
          { headers: { 'retry-after': '1' } },
        );
      }
      reply.hijack();
      proxy({
        requestId: request.id,
        startedAt: request.startedAt,
        startedAtEpoch: request.startedAtEpoch,
        endpoint,
        route,
        body,
        raw: request.rawBody!,
        pool: route.pool,
        response: reply.raw,
        observe: context.observe,
      });
    });
  }
}

const listedModels = 20;

export function modelNotFound(name: string, table: ModelTable): GatewayError {
  const names = table.models.map((model) => model.name);
  if (names.length === 0) {
    return new GatewayError(
      'model_not_found',
      `The model "${name}" does not exist: no models are configured. Start Switchyard with --config FILE, or set a provider key such as OPENAI_API_KEY.`,
      { param: 'model' },
    );
  }
  const shown = names.slice(0, listedModels).join(', ');
  const more = names.length > listedModels ? ` and ${names.length - listedModels} more (GET /v1/models)` : '';
  return new GatewayError(
    'model_not_found',
    `The model "${name}" does not exist. Available models: ${shown}${more}.`,
    {
      param: 'model',
    },
  );
}
