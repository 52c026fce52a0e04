import Fastify, { type FastifyInstance } from 'fastify';
import type { AccessControl, Grant } from '../auth/access.js';
import type { KeyAuthentication } from '../auth/api-keys.js';
import { fromFrameworkError, GatewayError, renderOpenAIError } from '../errors/index.js';
import type { RetryBudget } from '../routing/retry-budget.js';
import { anthropicSurface } from '../surfaces/anthropic/surface.js';
import type { Logger } from '../telemetry/logger.js';
import type { PayloadCapture } from '../telemetry/payload-capture.js';
import type { RequestObserver } from '../telemetry/request-observer.js';
import { requestIdFor } from './request-id.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMessagesRoutes } from './routes/messages.js';
import { registerModelRoutes } from './routes/models.js';
import { registerProxyRoutes } from './routes/proxy-routes.js';
import type { Snapshot } from './snapshot.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The API surface a route speaks, so its errors render in that surface's envelope. */
    surface?: 'anthropic';
  }
  interface FastifyRequest {
    /** performance.now() when the request arrived. */
    startedAt: number;
    startedAtEpoch: number;
    /** The JSON body's bytes as received, forwarded upstream untouched where possible. */
    rawBody: Buffer | null;
    /** The virtual key the request came with, and its team; undefined when none is needed. */
    caller: KeyAuthentication | undefined;
    /** What admission granted (limits reserved, headers to send); settled when the answer ends. */
    grant: Grant | undefined;
  }
}

/** What the routes share: the current snapshot, the drain flag and where finished requests go. */
export interface GatewayContext {
  snapshot: Snapshot;
  draining: boolean;
  /** Caps retries at a share of all traffic, across models (routing.retry_budget). */
  retryBudget: RetryBudget;
  /** In [0, 1): backoff jitter; seeded in tests. */
  readonly random: () => number;
  /** False while a supervised local runner is starting or restarting. */
  readonly runnerReady: () => boolean;
  readonly observe: RequestObserver;
  /** Keys, limits, budgets and spend (src/auth/access.ts). */
  readonly access: AccessControl;
  /** Encrypted prompt and response capture, when `capture.enabled`. */
  readonly capture: PayloadCapture | undefined;
  readonly logger: Logger;
}

/** Probes keep answering while draining: /healthz stays 200, /readyz turns 503. */
const healthPaths = new Set(['/healthz', '/readyz']);

/** Receiving one request (headers and body) may take this long; answers are timed per target. */
const requestReceiveTimeout = 60_000;

/**
 * The data plane's HTTP server. Stages run in Fastify's declared hook order: onRequest (clock,
 * request id, drain check) → JSON parse (raw bytes kept) → route (validate → resolve → proxy).
 * Every failure, wherever raised, is rendered once by the error handler in OpenAI's envelope.
 * With `tls` (the PEM contents of `server.tls`) it serves HTTPS, over HTTP/1.1 as plain HTTP does.
 */
export function buildGateway(
  context: GatewayContext,
  tls?: { readonly cert: Buffer; readonly key: Buffer },
): FastifyInstance {
  const { config } = context.snapshot;
  const app = Fastify({
    ...(tls === undefined ? {} : { https: { cert: tls.cert, key: tls.key } }),
    logger: false,
    bodyLimit: config.server.bodyLimit,
    keepAliveTimeout: config.server.keepAliveTimeout,
    requestTimeout: requestReceiveTimeout,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    genReqId: requestIdFor,
  });

  app.decorateRequest('startedAt', 0);
  app.decorateRequest('startedAtEpoch', 0);
  app.decorateRequest('rawBody', null);
  app.decorateRequest('caller', undefined);
  app.decorateRequest('grant', undefined);

  // Callback-style hooks: an async hook costs a promise per request on the hot path.
  app.addHook('onRequest', (request, reply, done) => {
    request.startedAt = performance.now();
    request.startedAtEpoch = Date.now();
    reply.header('x-request-id', request.id);
    if (context.draining && !healthPaths.has(request.routeOptions.url ?? '')) {
      reply.header('connection', 'close');
      done(new GatewayError('shutting_down'));
      return;
    }
    // The data plane's endpoints need a key once one exists; health and /admin have their own rules.
    // Judged by the route matched as well as the raw URL: the router decodes the path, so
    // "/%761/chat/completions" reaches /v1/chat/completions without starting with "/v1/".
    if (
      !context.access.open &&
      (request.url.startsWith('/v1/') || request.routeOptions.url?.startsWith('/v1/') === true)
    ) {
      try {
        request.caller = context.access.authenticate(request.headers);
      } catch (error) {
        done(error as Error);
        return;
      }
    }
    done();
  });
  // Responses the routes write through Fastify (not the proxied ones, which set their own).
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('server-timing', `gateway;dur=${(performance.now() - request.startedAt).toFixed(3)}`);
    const headers = request.grant?.headers;
    if (headers !== undefined) reply.headers(headers);
    done(null, payload);
  });

  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    request.rawBody = bytes;
    try {
      done(null, JSON.parse(bytes.toString('utf8')));
    } catch (error) {
      done(
        new GatewayError('invalid_json', `The request body is not valid JSON (${(error as Error).message}).`),
        undefined,
      );
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const failure = fromFrameworkError(error);
    if (failure.code === 'internal_error') {
      context.logger.error({ err: error, id: request.id, url: request.url }, 'unhandled error');
    }
    // Refused after admission (no deployment, say): the reservation goes back.
    if (request.grant !== undefined) context.access.settle(request.grant, undefined, undefined);
    const body = request.body as { model?: unknown } | undefined;
    context.observe({
      id: request.id,
      started_at: request.startedAtEpoch,
      endpoint: request.routeOptions.url ?? request.url,
      model: typeof body?.model === 'string' ? body.model : null,
      target: null,
      upstream_model: null,
      status: failure.status,
      stream: 0,
      prompt_tokens: null,
      completion_tokens: null,
      total_tokens: null,
      duration_ms: Math.round((performance.now() - request.startedAt) * 1000) / 1000,
      upstream_ms: null,
      first_byte_ms: null,
      error_code: failure.code,
      deployment: null,
      version: null,
      attempts: null,
      shadow: 0,
    });
    if (failure.headers) reply.headers(failure.headers);
    // The OpenAI and Anthropic SDKs retry every 5xx unless told otherwise; the catalogue knows
    // which failures a retry can fix (a model too large for the budget is not one).
    reply.header('x-should-retry', failure.retryable ? 'true' : 'false');
    if (request.routeOptions.config?.surface === 'anthropic') {
      const { status, body } = anthropicSurface.errorResponse(failure);
      reply.code(status).type('application/json').send(body);
      return;
    }
    reply.code(failure.status).type('application/json').send(renderOpenAIError(failure));
  });

  const allowed = new Map<RegExp, string[]>();
  app.addHook('onRoute', (route) => {
    if (route.method === 'HEAD') return;
    const pattern = new RegExp(`^${route.url.replace(/\*$/, '.+').replace(/:[^/]+/g, '[^/]+')}$`);
    const key = [...allowed.keys()].find((existing) => existing.source === pattern.source) ?? pattern;
    allowed.set(key, [...(allowed.get(key) ?? []), ...[route.method].flat()]);
  });

  app.setNotFoundHandler((request) => {
    const path = request.url.split('?')[0]!;
    for (const [pattern, methods] of allowed) {
      if (pattern.test(path)) {
        throw new GatewayError(
          'method_not_allowed',
          `${request.method} is not allowed on ${path}; use ${methods.join(' or ')}.`,
          { headers: { allow: methods.join(', ') } },
        );
      }
    }
    throw new GatewayError('route_not_found', `No endpoint ${request.method} ${path}. ${routeHint}`);
  });

  registerProxyRoutes(app, context);
  registerMessagesRoutes(app, context);
  registerModelRoutes(app, context);
  registerHealthRoutes(app, context);
  return app;
}

const routeHint =
  'Endpoints: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models.';
