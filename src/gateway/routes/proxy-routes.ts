import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import type { ModelTable, Route } from '../../routing/model-table.js';
import type { Endpoint } from '../../spec/openai.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import { openAISurface } from '../../surfaces/openai.js';
import { proxy } from '../proxy.js';
import type { GatewayContext } from '../server.js';
import { planChat, planEmbeddings, translatedProxy } from '../translated-proxy.js';
import { validateRequestBody } from '../validate.js';

/** The OpenAI endpoints that go upstream; they differ only in path and body rules. */
const proxiedEndpoints: readonly Endpoint[] = ['chat/completions', 'completions', 'embeddings'];

export function registerProxyRoutes(app: FastifyInstance, context: GatewayContext): void {
  for (const endpoint of proxiedEndpoints) {
    const endpointPath = `/v1/${endpoint}`;
    // Synchronous: after hijack() the proxy owns the response, so there is nothing to await.
    app.post(endpointPath, (request, reply) => {
      // parse → plan → execute; the proxy writes the answer and reports it itself.
      const body = validateRequestBody(endpoint, request.body);
      const route = resolveRoute(body.model, context);
      if (route.target.passthrough) {
        // The upstream speaks OpenAI's schema: forward the client's bytes (ADR 0003). The call is
        // one object literal: spreading shared fields into it cost about 8 µs a request in the
        // overhead benchmark's profile.
        reply.hijack();
        proxy({
          requestId: request.id,
          startedAt: request.startedAt,
          startedAtEpoch: request.startedAtEpoch,
          endpointPath,
          model: body.model,
          route,
          pool: route.pool,
          response: reply.raw,
          observe: context.observe,
          surface: openAISurface,
          endpoint,
          body,
          raw: request.rawBody!,
        });
        return;
      }
      if (endpoint === 'completions') {
        throw new GatewayError(
          'unsupported_endpoint',
          `Model "${body.model}" is served by "${route.target.config.name}" (${route.target.adapter.kind}), which has no legacy completions API; use /v1/chat/completions.`,
          { param: 'model' },
        );
      }
      const embeddings = endpoint === 'embeddings';
      const stream = !embeddings && body.stream === true;
      const planned = embeddings
        ? planEmbeddings(body as EmbeddingsRequest, route)
        : { upstream: planChat(body as ChatRequest, route), encodeBase64: false };
      reply.hijack();
      translatedProxy({
        requestId: request.id,
        startedAt: request.startedAt,
        startedAtEpoch: request.startedAtEpoch,
        endpointPath,
        model: body.model,
        route,
        pool: route.pool,
        response: reply.raw,
        observe: context.observe,
        surface: openAISurface,
        operation: embeddings ? 'embeddings' : 'chat',
        upstream: planned.upstream,
        stream,
        includeUsage: stream && body.stream_options?.include_usage === true,
        encodeBase64: planned.encodeBase64,
      });
    });
  }
}

/** The route for a model name: 404 listing the models, or 503 while its local runner is down. */
export function resolveRoute(model: string, context: GatewayContext): Route {
  const { table } = context.snapshot;
  const route = table.resolve(model);
  if (route === undefined) throw modelNotFound(model, table);
  if (route.target.config.kind === 'local' && !context.runnerReady()) {
    throw new GatewayError(
      'runner_unavailable',
      `The local runner serving "${model}" is starting or restarting. Retry in a moment.`,
      { headers: { 'retry-after': '1' } },
    );
  }
  return route;
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
