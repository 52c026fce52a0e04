import type { FastifyInstance, FastifyReply } from 'fastify';
import { request as undiciRequest } from 'undici';
import { GatewayError } from '../../errors/index.js';
import type { Route } from '../../routing/model-table.js';
import { type ChatRequest, contentText } from '../../spec/openai-chat.js';
import {
  anthropicToCanonical,
  countTokensToCanonical,
  parseAnthropicRequest,
  parseCountTokensRequest,
} from '../../surfaces/anthropic/index.js';
import { anthropicSurface } from '../../surfaces/anthropic/surface.js';
import { Attempt, type Launcher } from '../attempts.js';
import type { GatewayContext } from '../server.js';
import { shadowTranslated } from '../shadow.js';
import { planChat, translatedProxy } from '../translated-proxy.js';
import { resolveRoute } from './proxy-routes.js';

/**
 * Anthropic's Messages API as a second front door: POST /v1/messages (streamed or not) and POST
 * /v1/messages/count_tokens, so Claude SDK clients reach any model behind Switchyard. The
 * request is translated to canonical at the edge, routed like any other, and the answer, stream
 * and errors come back in Anthropic's format (`surface: 'anthropic'` tells the error handler).
 */
export function registerMessagesRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.post('/v1/messages', { config: { surface: 'anthropic' } }, (request, reply) => {
    // parse → route → execute, as for OpenAI's endpoints; routing sees the canonical request.
    const canonical = anthropicToCanonical(parseAnthropicRequest(request.body));
    request.body = canonical;
    request.grant = context.access.admit(request.caller, canonical.model, canonical, 'chat/completions');
    new Attempt(
      context,
      request,
      reply,
      anthropicSurface,
      messagesLauncher,
      '/v1/messages',
      canonical.model,
    ).start();
  });

  app.post('/v1/messages/count_tokens', { config: { surface: 'anthropic' } }, async (request, reply) => {
    const counted = parseCountTokensRequest(request.body);
    // Not admitted (counting spends no tokens), but a key still counts only on its own models.
    context.access.authorizeModel(request.caller, counted.model);
    const route = resolveRoute(counted.model, context);
    try {
      return await countTokens(route, counted, request.id, reply);
    } finally {
      // Counting is not a request the deployment's breaker or averages should judge it by.
      route.deployment.settle('neutral', 0);
    }
  });
}

/** Counts a prompt's tokens: exactly where the target can, else an estimate marked as one. */
async function countTokens(
  route: Route,
  counted: ReturnType<typeof parseCountTokensRequest>,
  requestId: string,
  reply: FastifyReply,
): Promise<unknown> {
  const { kind, basePath } = route.target.config;
  if (kind === 'anthropic') {
    // Anthropic counts exactly with its own tokenizer; ask it.
    const answer = await askUpstream(route, `${basePath}/v1/messages/count_tokens`, requestId, {
      ...counted,
      model: route.upstreamModel,
    });
    return reply.type('application/json').send(answer);
  }
  const prompt = countTokensToCanonical(counted);
  if (kind === 'local') {
    // The runner holds the model's tokenizer and chat template: it counts the prompt exactly as
    // a chat completion's usage would (runner's POST /v1/chat/count_tokens).
    const answer = await askUpstream(route, `${basePath}/chat/count_tokens`, requestId, {
      ...prompt,
      model: route.upstreamModel,
    });
    return { input_tokens: promptTokensOf(answer, route.target.config.name) };
  }
  // Other upstreams have no counting endpoint in their API: estimate, and say so.
  void reply.header('x-switchyard-token-count', 'estimated');
  return { input_tokens: estimateTokens(prompt) };
}

/** Sends a canonical chat request, translated from Anthropic's, to a route. */
const messagesLauncher: Launcher = {
  launch(route: Route, attempt: Attempt): void {
    const { request } = attempt;
    const canonical = request.body as ChatRequest;
    const upstream = planChat(canonical, route);
    attempt.hijack();
    translatedProxy({
      requestId: request.id,
      startedAt: request.startedAt,
      startedAtEpoch: request.startedAtEpoch,
      endpointPath: '/v1/messages',
      model: canonical.model,
      route,
      pool: route.pool,
      response: attempt.response,
      observe: attempt.context.observe,
      surface: anthropicSurface,
      attempt,
      operation: 'chat',
      upstream,
      stream: canonical.stream === true,
      // Anthropic's final message_delta carries the usage, so the surface always needs it.
      includeUsage: true,
    });
  },
  shadow(route: Route, attempt: Attempt): void {
    shadowTranslated(route, attempt, attempt.request.body as ChatRequest);
  },
};

/**
 * POSTs a JSON body to the route's target through its pool, with its headers and timeouts, and
 * returns the answer's text; an error status becomes the catalogue's error through the target's
 * adapter, as for a chat request.
 */
async function askUpstream(route: Route, path: string, requestId: string, body: unknown): Promise<string> {
  const { config, headers, adapter } = route.target;
  const answer = await undiciRequest(`${config.origin}${path}`, {
    method: 'POST',
    dispatcher: route.pool,
    headers: headers.concat('x-request-id', requestId),
    body: JSON.stringify(body),
    headersTimeout: config.timeouts.firstByte,
    bodyTimeout: config.timeouts.idle,
  });
  const text = await answer.body.text();
  if (answer.statusCode >= 300) throw adapter.failure(answer.statusCode, answer.headers, text, config.name);
  return text;
}

/** The runner's `{prompt_tokens}`; anything else is an unreadable answer, not a count of 0. */
function promptTokensOf(answer: string, targetName: string): number {
  let tokens: unknown;
  try {
    tokens = (JSON.parse(answer) as { prompt_tokens?: unknown } | null)?.prompt_tokens;
  } catch {
    tokens = undefined;
  }
  if (typeof tokens !== 'number' || !Number.isInteger(tokens) || tokens < 0) {
    throw new GatewayError(
      'upstream_bad_response',
      `The answer from "${targetName}" is unreadable: it has no "prompt_tokens" count.`,
    );
  }
  return tokens;
}

/**
 * About four characters a token, as OpenAI's and Anthropic's guides put it for English text,
 * plus a few tokens per message for the chat template's framing. An estimate for budgeting,
 * labelled as such in the response header; never used for billing.
 */
function estimateTokens(request: ReturnType<typeof countTokensToCanonical>): number {
  let characters = 0;
  let messages = 0;
  for (const message of request.messages) {
    messages++;
    characters += contentText(message.content as Parameters<typeof contentText>[0]).length;
    if (message.role === 'assistant') {
      for (const call of message.tool_calls ?? []) {
        characters += call.function.name.length + call.function.arguments.length;
      }
    }
  }
  if (request.tools !== undefined) characters += JSON.stringify(request.tools).length;
  return Math.max(1, Math.ceil(characters / 4) + messages * 4);
}
