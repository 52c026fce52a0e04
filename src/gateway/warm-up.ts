import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessControl } from '../auth/access.js';
import { SpendTracker } from '../auth/budgets.js';
import { MemoryState } from '../auth/shared-state.js';
import { defaultBodyLimit } from '../config/defaults.js';
import { bindLocalTargets, withLocalModel } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { RetryBudget } from '../routing/retry-budget.js';
import type { Logger } from '../telemetry/logger.js';
import { PriceTable } from '../telemetry/pricing.js';
import { buildGateway } from './server.js';
import { compileSnapshot } from './snapshot.js';

/** The model the warm-up asks for; it exists only in the warm-up's own gateway. */
const warmUpModel = 'switchyard-warm-up';
/** Content chunks in the warm-up's streamed answer: enough to run the per-chunk code more than once. */
const streamedChunks = 8;

/**
 * Runs the data plane's request path (three requests), so that the first client request after a
 * start does not pay for compiling it. V8 compiles a function on its first call, and a request
 * through the gateway touches a few hundred of them (Fastify, undici, our pipeline): about 5 ms
 * of CPU on the first request that later ones do not spend (bench/runner: a preloaded model's
 * first token).
 *
 * The requests go to a gateway of their own, built by the same code from `config`'s server
 * settings with one local model, whose "runner" is a Unix socket served here that answers in
 * OpenAI's wire format. Nothing of the real gateway sees them: its request log, usage ledger,
 * limits, budgets, deployments' statistics and breakers, the runner and its metrics stay as they
 * were. Compiled code belongs to the function, not to the instance, so the real gateway's first
 * request runs it warm. A failure is logged and ignored: warming is an optimisation.
 */
export async function warmUp(config: GatewayConfig, logger: Logger): Promise<void> {
  const started = performance.now();
  const cleanup: (() => unknown)[] = [];
  try {
    const directory = mkdtempSync(join(tmpdir(), 'switchyard-warm-'));
    cleanup.push(() => rmSync(directory, { recursive: true, force: true }));
    const socketPath = join(directory, 'upstream.sock');
    const upstream = createServer(answerLikeARunner);
    await new Promise<void>((resolve, reject) => {
      upstream.once('error', reject);
      upstream.listen(socketPath, resolve);
    });
    cleanup.push(() => {
      upstream.closeAllConnections();
      return new Promise((resolve) => upstream.close(resolve));
    });
    const warm = warmUpConfig(config, socketPath);
    const snapshot = compileSnapshot(warm);
    cleanup.push(() => snapshot.pools.destroy());
    const app = buildGateway({
      snapshot,
      draining: false,
      retryBudget: new RetryBudget(warm.retryBudget),
      random: Math.random,
      runnerReady: () => true,
      observe: () => {},
      access: new AccessControl({
        auth: warm.auth,
        limits: warm.limits,
        prices: new PriceTable({}),
        state: new MemoryState(),
        spend: new SpendTracker(),
        ledger: undefined,
        logger,
      }),
      capture: undefined,
      logger,
    });
    cleanup.push(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const signal = AbortSignal.timeout(warmUpTimeout);
    for (const [path, body] of warmUpRequests) await send(port, path, body, signal);
    logger.debug({ duration_ms: Math.round(performance.now() - started) }, 'request path warmed up');
  } catch (error) {
    logger.warn({ err: error }, 'warming up the request path failed; the first requests will run slower');
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (error) {
        logger.debug({ err: error }, 'cleaning up after the warm-up failed');
      }
    }
  }
}

/**
 * `config`'s server and routing settings, with the default body limit (the warm-up's requests
 * must fit whatever a user set), open auth, no limits or capture, and one local model.
 */
function warmUpConfig(config: GatewayConfig, socketPath: string): GatewayConfig {
  const bare: GatewayConfig = {
    ...config,
    server: { ...config.server, bodyLimit: defaultBodyLimit },
    auth: { mode: 'open', oidc: undefined },
    limits: { global: undefined, models: {} },
    capture: { ...config.capture, enabled: false },
    models: [],
  };
  return bindLocalTargets(withLocalModel(bare, warmUpModel, warmUpModel), 'http://localhost', socketPath);
}

/**
 * What a client most often sends: OpenAI chat completions streamed with usage and whole, and an
 * Anthropic message streamed, which the gateway translates for the OpenAI-compatible runner.
 */
const warmUpRequests: readonly (readonly [string, object])[] = [
  ['/v1/chat/completions', { ...chat(), stream: true, stream_options: { include_usage: true } }],
  ['/v1/chat/completions', chat()],
  ['/v1/messages', { ...chat(), stream: true }],
];

function chat() {
  return { model: warmUpModel, messages: [{ role: 'user', content: 'warm-up' }], max_tokens: streamedChunks };
}

/** The warm-up's requests finish in tens of milliseconds; past this, the start goes on without them. */
const warmUpTimeout = 5_000;

/** One request to the warm-up gateway, read to its end; a status other than 200 throws. */
function send(port: number, path: string, body: object, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, method: 'POST', path, agent: false, signal },
      (response) => {
        response.resume();
        response.once('error', reject);
        response.once('end', () =>
          response.statusCode === 200
            ? resolve()
            : reject(new Error(`the warm-up request to ${path} was answered ${response.statusCode}`)),
        );
      },
    );
    outgoing.once('error', reject);
    outgoing.setHeader('content-type', 'application/json');
    outgoing.end(JSON.stringify(body));
  });
}

/** The warm-up's upstream: a chat completion in OpenAI's format, streamed with usage or whole. */
function answerLikeARunner(incoming: IncomingMessage, response: ServerResponse): void {
  const chunks: Buffer[] = [];
  incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
  incoming.on('end', () => {
    let stream: boolean | undefined;
    try {
      ({ stream } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { stream?: boolean });
    } catch {
      // Only the warm-up's own requests come here; still, a throw in this handler would end the process.
      response.writeHead(400).end();
      return;
    }
    const base = { id: 'chatcmpl-warm-up', created: Math.floor(Date.now() / 1000), model: warmUpModel };
    const usage = { prompt_tokens: 1, completion_tokens: streamedChunks, total_tokens: 1 + streamedChunks };
    if (stream !== true) {
      response.setHeader('content-type', 'application/json');
      response.end(
        JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'warm '.repeat(streamedChunks) },
              finish_reason: 'length',
            },
          ],
          usage,
        }),
      );
      return;
    }
    response.setHeader('content-type', 'text/event-stream');
    const event = (choices: unknown[], extra: object = {}) =>
      response.write(
        `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, ...extra })}\n\n`,
      );
    event([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
    for (let chunk = 0; chunk < streamedChunks; chunk++) {
      event([{ index: 0, delta: { content: 'warm ' }, finish_reason: null }]);
    }
    event([{ index: 0, delta: {}, finish_reason: 'length' }]);
    event([], { usage });
    response.end('data: [DONE]\n\n');
  });
}
