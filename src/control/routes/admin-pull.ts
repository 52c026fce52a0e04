import type { OutgoingHttpHeaders } from 'node:http';
import { isAbsolute } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, openAIErrorBody } from '../../errors/index.js';
import { parseSha256 } from '../../runner/store/digest.js';
import type { PullProgress, PullResult } from '../../runner/store/index.js';
import { formatModelName, parseModelName } from '../../runner/store/model-name.js';
import { parsePullRef } from '../../runner/store/pull-ref.js';
import type { AdminContext } from '../admin-api.js';
import { AdminBody } from '../admin-fields.js';
import { storeFailure } from '../store-errors.js';
import { auditedManifest } from './admin-models.js';

const refHint = 'hf:<org>/<repo>/<file>.gguf, an http(s) URL, or an absolute path on the server';

interface PullRequest {
  readonly ref: string;
  readonly name: string | undefined;
  readonly sha256: string | undefined;
  readonly stream: boolean;
}

/**
 * POST /admin/models/pull `{ ref, name?, sha256?, stream? }`: `switchyard pull` over HTTP.
 *
 * - Without `stream`, it answers 201 with the manifest once the model is in the store.
 * - With `"stream": true`, it answers 200 at once with NDJSON, like Ollama's /api/pull: a
 *   `{"status":"pulling"}` line, progress lines `{"status":"downloading"|"hashing"|"copying",
 *   "completed":bytes,"total":bytes}` (total only when known), then either
 *   `{"status":"success","outcome":…,"model":manifest}` or an error envelope
 *   `{"error":{message,type,param,code}}`.
 *
 * A pull outlives the request that started it. Ollama cancels a pull when its client goes away;
 * here a model of gigabytes must not need one unbroken connection: proxies and load balancers
 * cut idle or long requests, and the non-streamed form sends nothing until the end. So a client
 * that disconnects stops receiving progress while the pull goes on; the same request sent again
 * joins it (concurrent pulls of one model share a download), and GET /admin/models shows the
 * result. Only the gateway's shutdown stops a pull, keeping its partial file for a resume.
 */
export function registerAdminPullRoute(app: FastifyInstance, context: AdminContext): void {
  app.post('/models/pull', async (request, reply) => {
    const pull = parsePullRequest(request.body);
    const store = await context.store();
    const started = (onProgress?: (progress: PullProgress) => void) =>
      store.pull(pull.ref, pull.name, { sha256: pull.sha256, signal: context.shutdown, onProgress });
    if (pull.stream) {
      await streamPull(request, reply, context, pull, started);
      return;
    }
    const { manifest } = await logged(request, context, pull, started());
    void reply.code(201);
    return manifest;
  });
}

function parsePullRequest(body: unknown): PullRequest {
  const fields = new AdminBody(body, ['ref', 'name', 'sha256', 'stream']);
  const ref = fields.string('ref', refHint);
  const name = fields.string('name', 'a model name such as "qwen:0.5b"', 'optional');
  const sha256 = fields.string('sha256', 'the 64 hexadecimal digits of the file', 'optional');
  const stream = fields.boolean('stream') ?? false;
  // Checked now, so that a mistake is an ordinary 400 before any stream starts.
  try {
    const source = parsePullRef(ref);
    if (source.kind === 'file' && !ref.trim().startsWith('file:') && !isAbsolute(ref.trim())) {
      throw new GatewayError(
        'invalid_field',
        `ref "${ref}" is a relative path; a local file must be named by its absolute path on the server.`,
        { param: 'ref' },
      );
    }
  } catch (error) {
    throw error instanceof GatewayError ? error : storeFailure(error, { ref: 'ref' });
  }
  try {
    if (name !== undefined) parseModelName(name);
  } catch (error) {
    throw storeFailure(error, { ref: 'name' });
  }
  try {
    if (sha256 !== undefined) parseSha256(sha256);
  } catch (error) {
    throw storeFailure(error);
  }
  return { ref, name, sha256, stream };
}

/**
 * Logs the outcome of a pull, and records it in the audit log, whether or not anyone is still
 * listening, and maps its failure.
 */
async function logged(
  request: FastifyRequest,
  context: AdminContext,
  pull: PullRequest,
  pulling: Promise<PullResult>,
): Promise<PullResult> {
  try {
    const result = await pulling;
    context.logger.info(
      {
        id: request.id,
        model: formatModelName(result.manifest),
        digest: result.manifest.digest,
        outcome: result.outcome,
      },
      'admin: model pulled',
    );
    await context.audit(request, {
      action: 'model.pull',
      target: formatModelName(result.manifest),
      after: { ...auditedManifest(result.manifest), outcome: result.outcome },
      outcome: 'ok',
    });
    return result;
  } catch (error) {
    const failure = storeFailure(error, { ref: 'ref', file: 'ref' });
    context.logger.warn(
      { id: request.id, code: failure.code, message: failure.message },
      'admin: pull failed',
    );
    await context.audit(request, {
      action: 'model.pull',
      target: pull.name ?? pull.ref,
      after: { ref: pull.ref, error: failure.code },
      outcome: 'failed',
    });
    throw failure;
  }
}

async function streamPull(
  request: FastifyRequest,
  reply: FastifyReply,
  context: AdminContext,
  pull: PullRequest,
  started: (onProgress: (progress: PullProgress) => void) => Promise<PullResult>,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    // Set by earlier stages (x-request-id); a hijacked reply no longer writes them itself.
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    'content-type': 'application/x-ndjson',
    'cache-control': 'no-cache',
  });
  // Writes to a client that has gone are skipped; the pull itself carries on.
  const line = (value: unknown) => {
    if (!raw.destroyed && !raw.writableEnded) raw.write(`${JSON.stringify(value)}\n`);
  };
  line({ status: 'pulling' });
  try {
    const { manifest, outcome } = await logged(
      request,
      context,
      pull,
      started((progress) =>
        line({
          status: progress.phase,
          completed: progress.received,
          ...(progress.total === undefined ? {} : { total: progress.total }),
        }),
      ),
    );
    line({ status: 'success', outcome, model: manifest });
  } catch (error) {
    line(openAIErrorBody(error as GatewayError));
  } finally {
    if (!raw.destroyed && !raw.writableEnded) raw.end();
  }
}
