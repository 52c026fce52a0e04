import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import type { TokenVerifier } from '../auth/jwt.js';
import type { KeyStore } from '../auth/key-store.js';
import type { User } from '../auth/types.js';
import { fromFrameworkError, GatewayError, renderOpenAIError } from '../errors/index.js';
import type { Deployment } from '../routing/deployment.js';
import type { ModelStore } from '../runner/store/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { UsageLedger } from '../telemetry/usage-ledger.js';
import { adminAuthorisation } from './admin-auth.js';
import type { AuditLog, AuditRecord } from './audit-log.js';
import { registerAdminAuditRoutes } from './routes/admin-audit.js';
import { registerAdminImportRoute } from './routes/admin-import.js';
import { registerAdminKeyRoutes } from './routes/admin-keys.js';
import { registerAdminModelRoutes } from './routes/admin-models.js';
import { registerAdminPsRoute } from './routes/admin-ps.js';
import { registerAdminPullRoute } from './routes/admin-pull.js';
import { registerAdminRoutingRoutes } from './routes/admin-routing.js';
import { registerAdminUsageRoutes } from './routes/admin-usage.js';

/** The supervised local runner, as the admin API sees it. */
export interface AdminRunner {
  /** http://127.0.0.1:port, or http://localhost reached through `dispatcher` (a Unix socket). */
  readonly url: string;
  readonly dispatcher?: Dispatcher | undefined;
  readonly ready: () => boolean;
}

export interface AdminApiOptions {
  /** The admin key; with no `verifier` either, every /admin route is closed (403). Never logged. */
  readonly key: string | undefined;
  /** Accepts single-sign-on bearer tokens (auth.oidc), roles from their claims or `user`. */
  readonly verifier?: TokenVerifier | undefined;
  /** A user record by name, whose role and team override a token's claims. */
  readonly user?: ((name: string) => Promise<User | undefined>) | undefined;
  /**
   * Opens the model store, on the first request that needs it: a gateway whose admin API is
   * never used never loads the store's code.
   */
  readonly modelStore: () => Promise<ModelStore>;
  /** The runner `serve` supervises, when a model has a local target. */
  readonly runner: AdminRunner | undefined;
  readonly routing: AdminRouting;
  readonly logger: Logger;
  /**
   * The audit log (the gateway's store); without one, admin actions are only logged and
   * GET /admin/audit does not exist.
   */
  readonly audit?: AuditLog | undefined;
  /**
   * Virtual keys, teams and users (/admin/keys, /admin/teams, /admin/users); absent: no such
   * routes. `changed` is called after each successful change, so the data plane can recompile
   * its key table from the store.
   */
  readonly keys?: { readonly store: KeyStore; readonly changed: () => void | Promise<void> } | undefined;
  /** Usage and cost per key, team, model and day (GET /admin/usage); absent: no such route. */
  readonly usage?: UsageLedger | undefined;
}

/** The data plane's routing, as the admin API sees it. */
export interface AdminRouting {
  /** Every deployment of the config now serving, with its live figures. */
  readonly deployments: () => Iterable<Deployment>;
  /** Reads the config file again and swaps it in; undefined when the gateway has no file to read. */
  readonly reload: (() => Promise<{ models: number }>) | undefined;
}

/** What the admin routes share. */
export interface AdminContext {
  readonly store: () => Promise<ModelStore>;
  readonly runner: AdminRunner | undefined;
  readonly routing: AdminRouting;
  readonly logger: Logger;
  /**
   * Aborted when the gateway shuts down, and only then: pulls and imports outlive the request
   * that started them (see admin-pull.ts), but not the process.
   */
  readonly shutdown: AbortSignal;
  /**
   * Records an admin action in the audit log, as the admin key's, from the request's address;
   * resolves once the entry is committed. A failed write is logged, never thrown: the action it
   * records has already happened, and its answer must still say so.
   */
  readonly audit: (request: FastifyRequest, record: AdminAuditRecord) => Promise<void>;
}

/** An admin action, as a route reports it to the audit log. */
export type AdminAuditRecord = Omit<AuditRecord, 'actor' | 'source' | 'requestId'>;

/**
 * The admin API under /admin, as an encapsulated Fastify plugin: its authorisation stage and
 * error handler apply to its own routes only, so the data plane's routes pay nothing for them.
 * Routes: the model store (GET/DELETE /admin/models[/name], POST /admin/models/pull and
 * /admin/models/import), the runner's loaded models (GET /admin/ps), and routing (GET
 * /admin/deployments, POST /admin/config/reload), and, given an audit log, the log itself (GET
 * /admin/audit and /admin/audit/verify). Every action, and every refused request, is recorded in
 * that log before its answer goes out.
 *
 * @example registerAdminApi(app, { key: config.admin.key, modelStore, runner: undefined, logger });
 */
export function registerAdminApi(app: FastifyInstance, options: AdminApiOptions): void {
  let opened: Promise<ModelStore> | undefined;
  const store = () => {
    opened ??= options.modelStore().catch((error: unknown) => {
      opened = undefined; // tried again by the next request
      throw error;
    });
    return opened;
  };
  const shutdown = new AbortController();
  const context: AdminContext = {
    store,
    runner: options.runner,
    routing: options.routing,
    logger: options.logger,
    shutdown: shutdown.signal,
    audit: (request, record) =>
      recordAudit(options, request, { ...record, actor: request.adminPrincipal?.actor ?? 'admin' }),
  };

  void app.register(
    async (admin) => {
      admin.decorateRequest('adminPrincipal', undefined);
      admin.addHook(
        'onRequest',
        adminAuthorisation({
          key: options.key,
          verifier: options.verifier,
          user: options.user,
          logger: options.logger,
          refused: (request, reason, detail, actor) =>
            recordAudit(options, request, {
              actor: actor ?? 'anonymous',
              action: 'auth.failure',
              target: request.url.split('?')[0],
              after: { method: request.method, reason, ...(detail === undefined ? {} : { detail }) },
              outcome: 'denied',
            }),
        }),
      );
      // Clients often send Content-Type: application/json on every call, GET and DELETE too, with
      // no body; here that is no body, where the data plane's parser answers 400.
      admin.removeContentTypeParser('application/json');
      admin.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
        if (body === '') {
          done(null, undefined);
          return;
        }
        try {
          done(null, JSON.parse(body as string));
        } catch (error) {
          done(
            new GatewayError(
              'invalid_json',
              `The request body is not valid JSON (${(error as Error).message}).`,
            ),
            undefined,
          );
        }
      });
      // Admin calls are not data-plane traffic: rendered here, and kept out of the request log.
      admin.setErrorHandler((error, request, reply) => {
        const failure = fromFrameworkError(error);
        // Store failures are logged by their routes; only the unexpected is logged here.
        if (failure.code === 'internal_error') {
          options.logger.error(
            { err: error, id: request.id, path: request.url.split('?')[0] },
            'admin request failed',
          );
        }
        if (failure.headers) void reply.headers(failure.headers);
        void reply.code(failure.status).type('application/json').send(renderOpenAIError(failure));
      });
      // Before the listener closes, so a drain does not wait on a pull that takes minutes.
      admin.addHook('preClose', (done) => {
        shutdown.abort(new Error('the gateway is shutting down'));
        done();
      });
      registerAdminModelRoutes(admin, context);
      registerAdminPullRoute(admin, context);
      registerAdminImportRoute(admin, context);
      registerAdminPsRoute(admin, context);
      registerAdminRoutingRoutes(admin, context);
      if (options.audit) registerAdminAuditRoutes(admin, options.audit);
      if (options.keys) registerAdminKeyRoutes(admin, context, options.keys);
      if (options.usage) {
        const keys = options.keys?.store;
        registerAdminUsageRoutes(admin, options.usage, Date.now, async (ref) =>
          keys === undefined ? undefined : (await keys.getTeam(ref).catch(() => undefined))?.id,
        );
      }
    },
    { prefix: '/admin' },
  );
}

async function recordAudit(
  options: AdminApiOptions,
  request: FastifyRequest,
  record: Omit<AuditRecord, 'source' | 'requestId'>,
): Promise<void> {
  if (options.audit === undefined) return;
  try {
    await options.audit.append({ ...record, source: request.ip, requestId: request.id });
  } catch (error) {
    options.logger.error(
      { err: error, id: request.id, action: record.action, target: record.target },
      'audit entry not recorded',
    );
  }
}
