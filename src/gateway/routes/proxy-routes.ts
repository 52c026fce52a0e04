import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import type { Route } from '../../routing/model-table.js';
import type { Endpoint, ProxyRequestBody } from '../../spec/openai.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import { openAISurface } from '../../surfaces/openai.js';
import { Attempt, type Launcher, modelNotFound } from '../attempts.js';
import { proxy } from '../proxy.js';
import type { GatewayContext } from '../server.js';
import { shadowPassthrough, shadowTranslated } from '../shadow.js';
import { planChat, planEmbeddings, translatedProxy } from '../translated-proxy.js';
import { validateRequestBody } from '../validate.js';

/** The OpenAI endpoints that go upstream; they differ only in path and body rules. */
const proxiedEndpoints: readonly Endpoint[] = ['chat/completions', 'completions', 'embeddings'];

export function registerProxyRoutes(app: FastifyInstance, context: GatewayContext): void {
  for (const endpoint of proxiedEndpoints) {
    const endpointPath = `/v1/${endpoint}`;
    const launcher = openAILauncher(endpoint, endpointPath);
    // Synchronous: after hijack() the proxy owns the response, so there is nothing to await.
    app.post(endpointPath, (request, reply) => {
      // parse → route → execute; the exchanges write the answer and report it themselves.
      const body = validateRequestBody(endpoint, request.body);
      request.grant = context.access.admit(request.caller, body.model, body, endpoint);
      new Attempt(context, request, reply, openAISurface, launcher, endpointPath, body.model).start();
    });
  }
}

/** Sends an OpenAI request to a route: its bytes forwarded, or translated for another schema. */
function openAILauncher(endpoint: Endpoint, endpointPath: string): Launcher {
  return {
    launch(route: Route, attempt: Attempt): void {
      const { request } = attempt;
      const body = request.body as ProxyRequestBody;
      if (route.target.passthrough) {
        // The upstream speaks OpenAI's schema: forward the client's bytes (ADR 0003). The call is
        // one object literal: spreading shared fields into it cost about 8 µs a request in the
        // overhead benchmark's profile.
        attempt.hijack();
        proxy({
          requestId: request.id,
          startedAt: request.startedAt,
          startedAtEpoch: request.startedAtEpoch,
          endpointPath,
          model: body.model,
          route,
          pool: route.pool,
          response: attempt.response,
          observe: attempt.context.observe,
          surface: openAISurface,
          attempt,
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
      attempt.hijack();
      translatedProxy({
        requestId: request.id,
        startedAt: request.startedAt,
        startedAtEpoch: request.startedAtEpoch,
        endpointPath,
        model: body.model,
        route,
        pool: route.pool,
        response: attempt.response,
        observe: attempt.context.observe,
        surface: openAISurface,
        attempt,
        operation: embeddings ? 'embeddings' : 'chat',
        upstream: planned.upstream,
        stream,
        includeUsage: stream && body.stream_options?.include_usage === true,
        encodeBase64: planned.encodeBase64,
      });
    },

    shadow(route: Route, attempt: Attempt): void {
      const body = attempt.request.body as ProxyRequestBody;
      if (route.target.passthrough) {
        shadowPassthrough(route, attempt, endpoint, body);
        return;
      }
      if (endpoint === 'chat/completions') shadowTranslated(route, attempt, body as ChatRequest);
      else route.deployment.settle('neutral', 0);
    },
  };
}

/** The route for a model name with no request to route by (count_tokens): 404, or 503 while unavailable. */
export function resolveRoute(model: string, context: GatewayContext): Route {
  const { table } = context.snapshot;
  const found = table.lookup(model);
  if (found === undefined) throw modelNotFound(model, table.models);
  const route = table.resolve(model);
  if (route === undefined) throw found.entry.unavailable();
  if (route.target.config.kind === 'local' && !context.runnerReady()) {
    route.deployment.settle('neutral', 0);
    throw new GatewayError(
      'runner_unavailable',
      `The local runner serving "${model}" is starting or restarting. Retry in a moment.`,
      { headers: { 'retry-after': '1' } },
    );
  }
  return route;
}
