import type { FastifyInstance } from 'fastify';
import { request as httpRequest } from 'undici';
import { GatewayError } from '../../errors/index.js';
import type { AdminContext } from '../admin-api.js';

/** The runner answers from memory; longer than this means it is stuck, not busy. */
const runnerTimeout = 5_000;

/**
 * GET /admin/ps: the models the supervised runner has loaded, as its own GET /api/ps (Ollama's
 * `ps`) reports them, `{ "models": [...] }`. 503 `runner_unavailable` when this gateway runs no
 * runner, or it is starting, restarting or not answering.
 */
export function registerAdminPsRoute(app: FastifyInstance, context: AdminContext): void {
  app.get('/ps', async (request, reply) => {
    const { runner } = context;
    if (runner === undefined) {
      throw new GatewayError(
        'runner_unavailable',
        'This gateway runs no local model runner: no model has a target of kind "local". Add one to the config to serve local models.',
      );
    }
    if (!runner.ready()) throw unavailable('is starting or restarting');
    let response: Awaited<ReturnType<typeof httpRequest>>;
    try {
      response = await httpRequest(`${runner.url}/api/ps`, {
        headersTimeout: runnerTimeout,
        bodyTimeout: runnerTimeout,
        headers: { 'x-request-id': request.id },
        ...(runner.dispatcher === undefined ? {} : { dispatcher: runner.dispatcher }),
      });
    } catch (error) {
      throw unavailable('did not answer', error);
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new GatewayError(
        'upstream_error',
        `The local runner answered GET /api/ps with HTTP ${response.statusCode}.`,
      );
    }
    void reply.type('application/json');
    // The runner's own JSON, passed on unparsed.
    return response.body.text();
  });
}

function unavailable(what: string, cause?: unknown): GatewayError {
  return new GatewayError('runner_unavailable', `The local model runner ${what}. Retry in a moment.`, {
    headers: { 'retry-after': '1' },
    ...(cause === undefined ? {} : { cause }),
  });
}
