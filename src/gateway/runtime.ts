import { mkdtempSync, rmSync } from 'node:fs';
import { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { AccessControl } from '../auth/access.js';
import { SpendTracker } from '../auth/budgets.js';
import { OidcVerifier } from '../auth/jwt.js';
import { KeyStore } from '../auth/key-store.js';
import { MemoryState } from '../auth/shared-state.js';
import { bindLocalTargets, ConfigError, hasLocalTargets, readTlsFiles } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { type AdminApiOptions, registerAdminApi } from '../control/admin-api.js';
import { AuditLog } from '../control/audit-log.js';
import { DeploymentMonitors } from '../routing/monitors.js';
import { RetryBudget } from '../routing/retry-budget.js';
import type { ModelStore } from '../runner/store/index.js';
import { Supervisor } from '../runner/supervisor.js';
import { openStore, type Store } from '../store/database.js';
import type { Logger } from '../telemetry/logger.js';
import { PayloadCapture } from '../telemetry/payload-capture.js';
import { captureKeyRing, type KeyRing, PayloadCryptoError } from '../telemetry/payload-crypto.js';
import { PriceTable } from '../telemetry/pricing.js';
import { RequestLog } from '../telemetry/request-log.js';
import { createRequestObserver } from '../telemetry/request-observer.js';
import { UsageLedger } from '../telemetry/usage-ledger.js';
import { buildGateway, type GatewayContext } from './server.js';
import { compileSnapshot } from './snapshot.js';
import { type CertificateWatcher, describeCertificate, watchCertificates } from './tls.js';
import { warmUp } from './warm-up.js';

/** Where the supervised runner listens. */
export type RunnerListen = { readonly port: number } | { readonly socket: string };

/** How to start the local runner, for configs with `local` targets; the CLI knows its own path. */
export interface RunnerLauncher {
  readonly command: string;
  /** The runner's arguments: listening on `listen.port` on loopback, or on the Unix socket `listen.socket`. */
  readonly args: (listen: RunnerListen, settings: GatewayConfig['runner']) => string[];
  /** The runner's whole environment; absent: the gateway's own. */
  readonly env?: (settings: GatewayConfig['runner']) => NodeJS.ProcessEnv;
}

export interface GatewayOptions {
  readonly runner?: RunnerLauncher;
  /**
   * The model store the admin API manages; default: the one under $SWITCHYARD_DATA_DIR, the
   * runner's, opened (and its code loaded) on the first admin request that needs it.
   */
  readonly modelStore?: () => Promise<ModelStore>;
  /** Reads the config again for a reload (SIGHUP, POST /admin/config/reload); absent: no reloads. */
  readonly loadConfig?: () => Promise<GatewayConfig>;
  /** In [0, 1): load balancing and jitter; seeded in tests. */
  readonly random?: () => number;
  /**
   * Milliseconds since the epoch, as keys, rate limits and budgets read the time (default
   * Date.now); tests hold it still to count a burst against a per-minute limit exactly.
   */
  readonly now?: () => number;
}

export interface RunningGateway {
  /** http://host:port the gateway listens on; https:// with `server.tls`. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly requestLog: RequestLog | undefined;
  /** The supervised local runner, when a target is `local`. */
  readonly runner: Supervisor | undefined;
  /**
   * Reads the config again and swaps it in without dropping a request: requests in flight finish
   * on the config they started with, deployments that stay keep their breakers and averages, and
   * upstreams that stay keep their connections. Throws ConfigError, keeping the running config,
   * when the new one is invalid.
   */
  reload(): Promise<{ models: number }>;
  /**
   * Graceful stop: refuse new requests, let those in flight (streams included) finish for up
   * to the drain timeout, then close what is left, flush the request log and close the store.
   */
  close(): Promise<void>;
}

const idleSweepInterval = 50;

/** Opens the store, compiles the config, and starts listening. */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger,
  options: GatewayOptions = {},
): Promise<RunningGateway> {
  // Read again, not trusted from config load: the files may have changed since.
  const tls = config.server.tls === undefined ? undefined : readTlsFiles(config.server.tls);
  // Before anything starts: a capture key missing from the environment stops the start cleanly.
  captureRing(config);
  let runner: Supervisor | undefined;
  let runnerUrl: string | undefined;
  let runnerSocket: RunnerSocket | undefined;
  if (hasLocalTargets(config)) {
    if (!options.runner)
      throw new Error('this config has local targets, but no way to start the runner was given');
    let listen: RunnerListen;
    if (config.runner.port === 0) {
      // By default the runner listens on a Unix socket in a directory only this user can enter:
      // it has no authentication of its own, and a loopback port is open to every local user.
      // It also saves the TCP stack on every streamed token, and picking a free port races.
      runnerSocket = openRunnerSocket();
      listen = { socket: runnerSocket.path };
      runnerUrl = 'http://localhost';
    } else {
      listen = { port: config.runner.port };
      runnerUrl = `http://127.0.0.1:${config.runner.port}`;
    }
    config = bindLocalTargets(config, runnerUrl, runnerSocket?.path);
    runner = new Supervisor({
      name: 'runner',
      command: options.runner.command,
      args: options.runner.args(listen, config.runner),
      env: options.runner.env?.(config.runner),
      healthUrl: `${runnerUrl}/healthz`,
      dispatcher: runnerSocket?.agent,
      logger,
    });
    // Not awaited: the gateway serves at once, answering 503 for local models until it is ready.
    void runner.start();
  }
  const store = await openStore(config.store.path);
  const requestLog = config.store.requestLog.enabled
    ? new RequestLog(store, config.store.requestLog, logger)
    : undefined;
  const random = options.random ?? Math.random;
  const access = await openAccess(config, store, logger, options.now ?? Date.now);
  const snapshot = compileSnapshot(config, { random });
  let monitors = new DeploymentMonitors(snapshot.table.deployments, logger);
  const context: GatewayContext = {
    snapshot,
    draining: false,
    retryBudget: new RetryBudget(config.retryBudget),
    random,
    runnerReady: () => runner === undefined || runner.state === 'ready',
    observe: createRequestObserver(logger, requestLog),
    access: access.control,
    capture: access.capture,
    logger,
  };
  const app = buildGateway(context, tls);
  // The control plane's admin API shares the listener, in its own encapsulated plugin.
  registerAdminApi(app, {
    key: config.admin.key,
    modelStore: options.modelStore ?? openLocalModelStore,
    runner:
      runner === undefined || runnerUrl === undefined
        ? undefined
        : { url: runnerUrl, dispatcher: runnerSocket?.agent, ready: () => runner.state === 'ready' },
    routing: {
      deployments: () => context.snapshot.table.deployments,
      reload: options.loadConfig === undefined ? undefined : () => reload(),
    },
    // Every admin action and refused admin call, hash-chained in the gateway's store.
    audit: new AuditLog(store.db),
    keys: { store: access.keys, changed: () => access.refreshKeys() },
    usage: access.ledger,
    verifier: access.verifier,
    user: (name) => access.keys.findUser(name),
    logger,
  });
  try {
    // Before listening, so no client request runs the request path's code cold (warm-up.ts).
    await warmUp(config, logger);
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (error) {
    monitors.stop();
    await snapshot.pools.destroy();
    await access.close();
    await store.close();
    await runner?.stop();
    await runnerSocket?.close();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let certificates: CertificateWatcher | undefined;
  if (tls !== undefined && config.server.tls !== undefined && app.server instanceof HttpsServer) {
    certificates = watchCertificates(app.server, config.server.tls, tls, logger);
    logger.info({ cert: config.server.tls.cert, ...describeCertificate(tls.cert) }, 'serving HTTPS');
  }

  let reloading = Promise.resolve({ models: config.models.length });
  const reload = () => {
    reloading = reloading
      .catch(() => undefined)
      .then(async () => {
        if (!options.loadConfig) throw new Error('this gateway was started without a config to reload');
        let next = await options.loadConfig();
        if (hasLocalTargets(next)) {
          if (runnerUrl === undefined) {
            throw new ConfigError([
              {
                path: 'models',
                message: 'local targets were added; restart Switchyard to start the local runner',
              },
            ]);
          }
          next = bindLocalTargets(next, runnerUrl, runnerSocket?.path);
        }
        // The listener, store and runner keep the settings they started with; models and routing change.
        next = {
          ...next,
          server: context.snapshot.config.server,
          store: context.snapshot.config.store,
          runner: context.snapshot.config.runner,
        };
        const previous = context.snapshot;
        const compiled = compileSnapshot(next, { previous, random });
        monitors.stop();
        monitors = new DeploymentMonitors(compiled.table.deployments, logger);
        context.snapshot = compiled;
        if (JSON.stringify(previous.config.retryBudget) !== JSON.stringify(next.retryBudget)) {
          context.retryBudget = new RetryBudget(next.retryBudget);
        }
        access.control.configure({
          auth: next.auth,
          limits: next.limits,
          prices: new PriceTable(next.pricing),
        });
        if (JSON.stringify(previous.config.capture) !== JSON.stringify(next.capture)) {
          logger.warn('capture settings changed; they take effect at the next start');
        }
        void previous.pools.closeUnshared(compiled.pools);
        logger.info({ models: next.models.map((model) => model.name) }, 'config reloaded');
        return { models: next.models.length };
      });
    return reloading;
  };

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      context.draining = true;
      certificates?.close();
      // Keep-alive connections go idle as their last answer finishes; Node closes only those
      // idle when close() is called, so sweep the rest as they free up.
      const idleSweep = setInterval(() => app.server.closeIdleConnections(), idleSweepInterval);
      const drainTimer = setTimeout(() => {
        logger.warn(
          { drain_timeout_ms: config.server.drainTimeout },
          'drain timeout reached; closing open connections',
        );
        app.server.closeAllConnections();
      }, config.server.drainTimeout);
      try {
        await app.close();
      } finally {
        clearTimeout(drainTimer);
        clearInterval(idleSweep);
      }
      monitors.stop();
      await context.snapshot.pools.destroy();
      await runner?.stop();
      await runnerSocket?.close();
      await requestLog?.close();
      await access.close();
      await store.close();
    })();
    return closing;
  };

  const scheme = tls === undefined ? 'http' : 'https';
  return { url: `${scheme}://${host}:${address.port}`, app, store, requestLog, runner, reload, close };
}

/** Loaded on demand: the store's code costs the gateway memory only once the admin API uses it. */
const openLocalModelStore: AdminApiOptions['modelStore'] = async () =>
  (await import('../runner/local-model-store.js')).openLocalModelStore();

/** The supervised runner's socket: its path, an Agent that reaches it, and the cleanup. */
interface RunnerSocket {
  readonly path: string;
  readonly agent: Agent;
  close(): Promise<void>;
}

/**
 * A socket path in a fresh directory of the temporary directory (mode 0700, as mkdtemp makes it),
 * short enough for the 107 bytes a socket path may take. Removed, with its directory, on close.
 */
function openRunnerSocket(): RunnerSocket {
  const directory = mkdtempSync(join(tmpdir(), 'switchyard-'));
  const path = join(directory, 'runner.sock');
  const agent = new Agent({ connect: { socketPath: path } });
  return {
    path,
    agent,
    async close() {
      await agent.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** The capture key ring from the environment, or undefined with capture off; a missing key is a config error. */
function captureRing(config: GatewayConfig): KeyRing | undefined {
  if (!config.capture.enabled) return undefined;
  try {
    return captureKeyRing(config.capture, process.env);
  } catch (error) {
    if (!(error instanceof PayloadCryptoError)) throw error;
    throw new ConfigError([{ path: 'capture', message: error.message }]);
  }
}

/** How often the key table is compiled again from the store: the backstop for changes made elsewhere. */
const keyRefreshInterval = 10_000;

/**
 * The auth side of the gateway: the key table (compiled from the store, and again after each
 * admin change and every few seconds), limits on in-memory shared state, spend loaded back from
 * the usage ledger so budgets survive a restart, payload capture when enabled, and the OIDC
 * verifier for the admin API.
 */
async function openAccess(config: GatewayConfig, store: Store, logger: Logger, now: () => number) {
  const keys = new KeyStore(store.db);
  const ledger = new UsageLedger(store.db, { flushInterval: 1_000, batchSize: 500 }, logger);
  // One shared state for buckets and spend: in memory now, one swap to Redis at scale-out.
  const state = new MemoryState();
  const spend = new SpendTracker({ now, state });
  spend.load(await ledger.spendSince(spend.periodStarts()));
  const control = new AccessControl({
    auth: config.auth,
    limits: config.limits,
    prices: new PriceTable(config.pricing),
    state,
    spend,
    ledger,
    logger,
    now,
  });
  const compile = () =>
    Promise.all([
      keys.table(),
      // The table leaves out keys revoked long ago; any row at all still means keys are required.
      store.db.selectFrom('api_keys').select('id').limit(1).executeTakeFirst(),
    ]).then(
      ([table, anyKey]) => control.setKeys(table, anyKey !== undefined),
      (error: unknown) => logger.error({ err: error }, 'key table not refreshed'),
    );
  // One compile at a time; a change that arrives during one gets a compile of its own after it,
  // so no committed change waits for the next timer.
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const refreshKeys = (): Promise<void> => {
    if (running === undefined) {
      running = compile().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running.then(() => {
      queued = undefined;
      return refreshKeys();
    });
    return queued;
  };
  await refreshKeys();
  const refresher = setInterval(refreshKeys, keyRefreshInterval);
  refresher.unref();
  if (config.auth.mode === 'open') {
    logger.warn(
      'auth.mode is open: the data plane serves requests without API keys. Use it for local development only.',
    );
  }
  let capture: PayloadCapture | undefined;
  if (config.capture.enabled) {
    capture = new PayloadCapture(
      store,
      { ring: captureRing(config)!, retention: config.capture.retention },
      logger,
    );
    capture.start();
  }
  const verifier = config.auth.oidc === undefined ? undefined : new OidcVerifier(config.auth.oidc);
  return {
    keys,
    control,
    ledger,
    capture,
    verifier,
    refreshKeys,
    async close() {
      clearInterval(refresher);
      await capture?.close();
      await ledger.close();
    },
  };
}
