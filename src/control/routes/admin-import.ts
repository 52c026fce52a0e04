import type { FastifyInstance } from 'fastify';
import { formatModelName } from '../../runner/store/model-name.js';
import type { AdminContext } from '../admin-api.js';
import { AdminBody } from '../admin-fields.js';
import { storeFailure } from '../store-errors.js';
import { auditedManifest } from './admin-models.js';

/**
 * POST /admin/models/import `{ path, name, sha256? }`: `switchyard models import` over HTTP, for
 * a GGUF file already on the server's disk. Answers 201 with the manifest. The path must be
 * absolute: the server's working directory means nothing to a remote caller. As with a pull, the
 * import finishes even if the client goes away (a copy across file systems can take minutes).
 */
export function registerAdminImportRoute(app: FastifyInstance, context: AdminContext): void {
  app.post('/models/import', async (request, reply) => {
    const fields = new AdminBody(request.body, ['path', 'name', 'sha256']);
    const path = fields.absolutePath('path', 'the .gguf file on the server, such as "/models/qwen.gguf"');
    const name = fields.string('name', 'the model name to give it, such as "qwen:0.5b"');
    const sha256 = fields.string('sha256', 'the 64 hexadecimal digits of the file', 'optional');
    const store = await context.store();
    try {
      const manifest = await store.importFile(path, name, { sha256, signal: context.shutdown });
      context.logger.info(
        { id: request.id, model: formatModelName(manifest), digest: manifest.digest },
        'admin: model imported',
      );
      await context.audit(request, {
        action: 'model.import',
        target: formatModelName(manifest),
        after: auditedManifest(manifest),
        outcome: 'ok',
      });
      void reply.code(201);
      return manifest;
    } catch (error) {
      const failure = storeFailure(error, { ref: 'name', file: 'path' });
      context.logger.warn(
        { id: request.id, code: failure.code, message: failure.message },
        'admin: import failed',
      );
      await context.audit(request, {
        action: 'model.import',
        target: name,
        after: { path, error: failure.code },
        outcome: 'failed',
      });
      throw failure;
    }
  });
}
