import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { parseKeepAlive, parseMemoryBudget } from '../config/units.js';
import { currentPoolThreads, LlamaEngine } from '../runner/engine/index.js';
import { buildRunnerServer, type RunnerModel } from '../runner/server/index.js';
import { StoreModelCatalog } from '../runner/store-model-catalog.js';
import { createLogger, flushLogger } from '../telemetry/logger.js';
import { negativeValues } from './arguments.js';
import { openModelStore } from './models.js';
import {
  claimRunnerState,
  releaseRunnerState,
  requestRunner,
  runnerStatePath,
  runnerUrl,
  unixRunnerUrl,
} from './runner-state.js';

/**
 * `switchyard runner`: serves every model in the local store over an OpenAI-compatible API on
 * loopback. `switchyard serve` starts and supervises it for `local` targets; it can also run on
 * its own. Models are named `name:tag` as in `switchyard models ls`, and load on first request
 * (or at start with --preload), and unload once idle for --keep-alive (Ollama's syntax: "5m",
 * seconds, 0, or -1 for forever). At most --max-loaded-models stay loaded at once, taking at
 * most --max-memory of RAM together ('auto', a size such as "8GiB", or bytes) and, with a GPU
 * (--gpu auto), no more of its memory than it has free. Once
 * listening it records its URL and pid in `<data dir>/runner.json`, where `switchyard ps` finds it.
 */
export async function runnerCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: negativeValues(args, ['keep-alive']),
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '4100' },
      threads: { type: 'string' },
      parallel: { type: 'string', default: '2' },
      'context-size': { type: 'string', default: '4096' },
      'max-queue': { type: 'string', default: '16' },
      'keep-alive': { type: 'string', default: '5m' },
      'max-loaded-models': { type: 'string', default: '3' },
      'max-memory': { type: 'string', default: 'auto' },
      gpu: { type: 'string', default: 'auto' },
      preload: { type: 'string', default: '' },
      socket: { type: 'string' },
    },
  });
  let numbers: Record<'port' | 'parallel' | 'contextSize' | 'maxQueue' | 'maxLoadedModels', number> & {
    threads: number | undefined;
  };
  try {
    numbers = {
      port: whole(values.port, 'port', 0),
      threads: values.threads === undefined ? undefined : whole(values.threads, 'threads', 1),
      parallel: whole(values.parallel, 'parallel', 1),
      contextSize: whole(values['context-size'], 'context-size', 64),
      maxQueue: whole(values['max-queue'], 'max-queue', 0),
      maxLoadedModels: whole(values['max-loaded-models'], 'max-loaded-models', 1),
    };
  } catch (error) {
    process.stderr.write(`switchyard runner: ${(error as Error).message}\n`);
    return 2;
  }
  const keepAliveMs = parseKeepAlive(values['keep-alive']);
  if (keepAliveMs === undefined) {
    process.stderr.write(
      'switchyard runner: --keep-alive must be a duration such as "5m", a number of seconds, 0 or -1\n',
    );
    return 2;
  }
  const maxMemoryBytes = parseMemoryBudget(values['max-memory']);
  if (maxMemoryBytes === undefined) {
    process.stderr.write(
      `switchyard runner: --max-memory must be "auto" or a size such as "8GiB" or "512mb", got "${values['max-memory']}"\n`,
    );
    return 2;
  }
  if (values.gpu !== 'auto' && values.gpu !== 'off') {
    process.stderr.write(`switchyard runner: --gpu must be "auto" or "off", got "${values.gpu}"\n`);
    return 2;
  }
  const preload = values.preload.split(',').filter((name) => name.length > 0);
  if (preload.length > numbers.maxLoadedModels) {
    // Each preload beyond the budget would unload an earlier one: the list cannot be honoured.
    process.stderr.write(
      `switchyard runner: --preload names ${preload.length} models, more than --max-loaded-models ${numbers.maxLoadedModels}\n`,
    );
    return 2;
  }

  const logger = createLogger(process.env.SWITCHYARD_LOG_LEVEL ?? 'info');
  const store = openModelStore();
  // Read again on a name the runner does not know and on GET /v1/models, so models pulled,
  // imported or removed after start (by the CLI or the admin API) are seen without a restart.
  const catalog = new StoreModelCatalog(
    store,
    (manifest): RunnerModel => ({
      path: store.blobPath(manifest.digest),
      contextSize: numbers.contextSize,
      parallel: numbers.parallel,
      maxQueue: numbers.maxQueue,
      keepAliveMs,
      ...(manifest.metadata.demo === true
        ? { description: 'demo model with random weights: it answers with gibberish' }
        : {}),
    }),
  );
  const models = await catalog.list();
  const engine = new LlamaEngine({
    maxLoadedModels: numbers.maxLoadedModels,
    maxMemoryBytes,
    // 'auto' falls back to the CPU when no GPU binary loads (about 0.3 s more at start here).
    gpu: values.gpu === 'auto' ? 'auto' : false,
    ...(numbers.threads === undefined ? {} : { threads: numbers.threads }),
  });
  // The server gets no logger: per-request lines belong to the gateway, which logs every request.
  const app = buildRunnerServer({ engine, models, catalog, preload });
  let url: string;
  if (values.socket !== undefined) {
    // A Unix socket instead of a port: only this user can connect (mode 0600), and nothing on
    // the network sees it. A socket file left by a runner that died is removed first; one a live
    // runner answers on is not taken over.
    const socketPath = resolvePath(values.socket);
    if (await runnerListensOn(socketPath)) {
      process.stderr.write(`switchyard runner: another runner is listening on ${socketPath}\n`);
      return 1;
    }
    await rm(socketPath, { force: true });
    // Made 0600 as it is bound, not chmod-ed after: in between, anyone could connect. Loading
    // preloaded models (ready) comes first, so the umask covers nothing but the bind.
    await app.ready();
    const umask = process.umask(0o177);
    try {
      await app.listen({ path: socketPath });
    } finally {
      process.umask(umask);
    }
    url = unixRunnerUrl(socketPath);
  } else {
    await app.listen({ host: values.host, port: numbers.port });
    url = runnerUrl(app.server.address() as AddressInfo);
  }
  logger.info(
    {
      url,
      models: [...models.keys()],
      preloaded: preload,
      threads: engine.threads,
      poolThreads: currentPoolThreads(),
    },
    'runner listening',
  );
  // Recorded for `switchyard ps`; see runnerStatePath for who keeps the file. A runner that
  // cannot record itself still serves: only `ps` without --runner misses it.
  const statePath = runnerStatePath();
  const state = { url, pid: process.pid, started_at: new Date().toISOString() };
  await claimRunnerState(statePath, state).then(
    (claim) => {
      if (!claim.claimed) {
        logger.warn(
          { state_file: statePath, recorded: claim.holder },
          `another runner (pid ${claim.holder.pid}) is recorded for \`switchyard ps\`; reach this one with \`switchyard ps --runner ${state.url}\``,
        );
      }
    },
    (error: unknown) =>
      logger.warn({ err: error, state_file: statePath }, 'could not record the runner for `switchyard ps`'),
  );

  return new Promise<number>((resolve) => {
    const stop = () => {
      void releaseRunnerState(statePath)
        .catch(() => undefined)
        .then(() => app.close())
        .then(() => engine.close())
        .then(
          () => resolve(0),
          () => resolve(1),
        )
        .finally(() => flushLogger(logger));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

/** A whole-number flag of at least `minimum`; throws a message naming the flag as typed. */
function whole(text: string, flag: string, minimum: number): number {
  const value = Number(text);
  if (Number.isInteger(value) && value >= minimum) return value;
  throw new Error(`--${flag} must be a whole number of at least ${minimum}, got "${text}"`);
}

/**
 * Whether something answers a runner's health check on the Unix socket at `socketPath`, whatever
 * the status: a runner still warming its preloaded models up answers 503, and is no stale socket.
 */
async function runnerListensOn(socketPath: string): Promise<boolean> {
  try {
    await requestRunner(unixRunnerUrl(socketPath), '/healthz', { headersTimeout: 1_000, bodyTimeout: 1_000 });
    return true;
  } catch {
    return false;
  }
}
