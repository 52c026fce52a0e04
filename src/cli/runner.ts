import { parseArgs } from 'node:util';
import { LlamaEngine } from '../runner/engine/index.js';
import { buildRunnerServer, type RunnerModel } from '../runner/server/index.js';
import { createLogger, flushLogger } from '../telemetry/logger.js';
import { openModelStore } from './models.js';

/**
 * `switchyard runner`: serves every model in the local store over an OpenAI-compatible API on
 * loopback. `switchyard serve` starts and supervises it for `local` targets; it can also run on
 * its own. Models are named `name:tag` as in `switchyard models ls`, and load on first request.
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
    },
  });
  const numbers = {
    port: whole(values.port, 'port', 0),
    threads: values.threads === undefined ? undefined : whole(values.threads, 'threads', 1),
    parallel: whole(values.parallel, 'parallel', 1),
    contextSize: whole(values['context-size'], 'context-size', 64),
    maxQueue: whole(values['max-queue'], 'max-queue', 0),
  };
  const invalid = Object.entries(numbers).find(([, value]) => Number.isNaN(value));
  if (invalid) {
    process.stderr.write(`switchyard runner: --${invalid[0]} must be a whole number\n`);
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
      ...(demo ? { description: 'demo model with random weights: it answers with gibberish' } : {}),
    });
  }
  const engine = new LlamaEngine(numbers.threads === undefined ? {} : { threads: numbers.threads });
  // The server gets no logger: per-request lines belong to the gateway, which logs every request.
  const app = buildRunnerServer({ engine, models });
  await app.listen({ host: values.host, port: numbers.port });
  const address = app.server.address() as { address: string; port: number };
  logger.info(
    { url: `http://${address.address}:${address.port}`, models: [...models.keys()] },
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

function whole(text: string, _name: string, minimum: number): number {
  const value = Number(text);
  return Number.isInteger(value) && value >= minimum ? value : Number.NaN;
}
