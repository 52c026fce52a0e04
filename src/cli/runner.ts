import { parseArgs } from 'node:util';
import { parseKeepAlive } from '../config/units.js';
import { LlamaEngine } from '../runner/engine/index.js';
import { buildRunnerServer, type RunnerModel } from '../runner/server/index.js';
import { createLogger, flushLogger } from '../telemetry/logger.js';
import { openModelStore } from './models.js';

/**
 * `switchyard runner`: serves every model in the local store over an OpenAI-compatible API on
 * loopback. `switchyard serve` starts and supervises it for `local` targets; it can also run on
 * its own. Models are named `name:tag` as in `switchyard models ls`, and load on first request
 * (or at start with --preload), and unload once idle for --keep-alive (Ollama's syntax: "5m",
 * seconds, 0, or -1 for forever). At most --max-loaded-models stay loaded at once.
 */
export async function runnerCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '4100' },
      threads: { type: 'string' },
      parallel: { type: 'string', default: '2' },
      'context-size': { type: 'string', default: '4096' },
      'max-queue': { type: 'string', default: '16' },
      'keep-alive': { type: 'string', default: '5m' },
      'max-loaded-models': { type: 'string', default: '3' },
      preload: { type: 'string', default: '' },
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
  const models = new Map<string, RunnerModel>();
  for (const manifest of await store.list()) {
    const demo = manifest.metadata.demo === true;
    models.set(`${manifest.name}:${manifest.tag}`, {
      path: store.blobPath(manifest.digest),
      contextSize: numbers.contextSize,
      parallel: numbers.parallel,
      maxQueue: numbers.maxQueue,
      keepAliveMs,
      ...(demo ? { description: 'demo model with random weights: it answers with gibberish' } : {}),
    });
  }
  const engine = new LlamaEngine({
    maxLoadedModels: numbers.maxLoadedModels,
    ...(numbers.threads === undefined ? {} : { threads: numbers.threads }),
  });
  // The server gets no logger: per-request lines belong to the gateway, which logs every request.
  const app = buildRunnerServer({ engine, models, preload });
  await app.listen({ host: values.host, port: numbers.port });
  const address = app.server.address() as { address: string; port: number };
  logger.info(
    { url: `http://${address.address}:${address.port}`, models: [...models.keys()], preloaded: preload },
    'runner listening',
  );

  return new Promise<number>((resolve) => {
    const stop = () => {
      void app
        .close()
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
