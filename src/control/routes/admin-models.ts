import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import type { ModelManifest } from '../../runner/store/index.js';
import { formatModelName, parseModelName } from '../../runner/store/model-name.js';
import type { AdminContext } from '../admin-api.js';
import { storeFailure } from '../store-errors.js';

/**
 * The model store, as `switchyard models ls | inspect | rm`:
 *
 * - GET /admin/models: every manifest, `{ "models": [...] }`;
 * - GET /admin/models/{name:tag}: one manifest (404 naming it);
 * - DELETE /admin/models/{name:tag}: removes it (404 if absent); its file goes too unless another
 *   name shares it.
 *
 * Names may hold slashes ("org/model:q4"), so the name is the rest of the path; the tag defaults
 * to "latest".
 */
export function registerAdminModelRoutes(app: FastifyInstance, context: AdminContext): void {
  app.get('/models', async () => {
    const store = await context.store();
    try {
      return { models: await store.list() };
    } catch (error) {
      throw storeFailure(error);
    }
  });

  app.get('/models/*', async (request) => {
    const name = modelName(request);
    const store = await context.store();
    try {
      return await store.get(name);
    } catch (error) {
      throw notFoundOr(error, name);
    }
  });

  app.delete('/models/*', async (request) => {
    const name = modelName(request);
    const store = await context.store();
    try {
      const { manifest, blobRemoved } = await store.remove(name);
      context.logger.info(
        { id: request.id, model: name, digest: manifest.digest, blob_removed: blobRemoved },
        'admin: model removed',
      );
      await context.audit(request, {
        action: 'model.delete',
        target: name,
        before: auditedManifest(manifest),
        after: { blob_removed: blobRemoved },
        outcome: 'ok',
      });
      return { deleted: name, digest: manifest.digest, blob_removed: blobRemoved };
    } catch (error) {
      const failure = notFoundOr(error, name);
      await context.audit(request, {
        action: 'model.delete',
        target: name,
        after: { error: failure.code },
        outcome: 'failed',
      });
      throw failure;
    }
  });
}

/** What the audit log keeps of a manifest: enough to tell which file it was and where it came from. */
export function auditedManifest(manifest: ModelManifest): Record<string, unknown> {
  return { digest: manifest.digest, size: manifest.size, source: manifest.source };
}

/** The path's model name as `name:tag`, validated; a 400 naming "name" if it cannot be one. */
function modelName(request: FastifyRequest): string {
  const raw = (request.params as { '*': string })['*'];
  let text: string;
  try {
    text = decodeURIComponent(raw);
  } catch {
    throw new GatewayError('invalid_field', `"${raw}" is not a valid URL-encoded model name.`, {
      param: 'name',
    });
  }
  try {
    return formatModelName(parseModelName(text));
  } catch (error) {
    throw storeFailure(error, { ref: 'name' });
  }
}

function notFoundOr(error: unknown, name: string): GatewayError {
  const failure = storeFailure(error, { ref: 'name' });
  if (failure.code !== 'model_not_found') return failure;
  return new GatewayError(
    'model_not_found',
    `There is no model "${name}" in the model store. GET /admin/models lists them; POST /admin/models/pull adds one.`,
    { param: 'name', cause: error },
  );
}
