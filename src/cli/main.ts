#!/usr/bin/env -S node --max-semi-space-size=2 --heap-growing-percent=50
// The V8 flags above bound the gateway's memory under load (docs/adr/0004-v8-memory-flags.md):
// measured on the overhead benchmark, peak RSS fell from about 200 MB to under 150 MB at the
// same CPU per request. They apply whenever the command runs as `switchyard` or `npm start`.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { ConfigError, configFromEnvironment, loadConfigFile } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { environmentVendorSwitches } from '../config/vendors.js';
import { startGateway } from '../gateway/runtime.js';
import { createLogger, flushLogger } from '../telemetry/logger.js';
import { modelsCommand, pullCommand } from './models.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const usage = `switchyard ${version} — one OpenAI-compatible endpoint in front of every model

Usage:
  switchyard serve [--config FILE] [--host HOST] [--port PORT]
      Start the gateway. Without --config (or SWITCHYARD_CONFIG), providers are taken from the
      environment: ${environmentVendorSwitches().join(', ')}.
  switchyard config validate FILE
      Check a config file without starting anything; exits 1 and names each problem if invalid.
  switchyard pull <ref>          Download a GGUF model (hf:org/repo/file.gguf, a URL or a path)
  switchyard models ls|inspect|rm|import|create-demo
      Manage the local model store; \`switchyard models\` explains each.
  switchyard --version
`;

/** Exit codes: 0 done, 1 failed, 2 bad command line. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'config':
      return configCommand(rest);
    case 'pull':
      return pullCommand(rest);
    case 'models':
      return modelsCommand(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${version}\n`);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`switchyard: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
    },
    strict: true,
  });
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    process.stderr.write(`switchyard: --port must be a number from 0 to 65535, got "${values.port}"\n`);
    return 2;
  }
  const file = values.config ?? process.env.SWITCHYARD_CONFIG;
  let config: GatewayConfig;
  try {
    config = file ? await loadConfigFile(file) : configFromEnvironment();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchyard: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  config = {
    ...config,
    server: { ...config.server, host: values.host ?? config.server.host, port: port ?? config.server.port },
  };

  const logger = createLogger(config.log.level);
  const gateway = await startGateway(config, logger);
  logger.info(
    { url: gateway.url, models: config.models.map((model) => model.name), config: file ?? 'environment' },
    'switchyard listening',
  );
  if (config.models.length === 0) {
    logger.warn(
      `no models configured: pass --config FILE, or set a provider in the environment (${environmentVendorSwitches().join(', ')}); every model request answers 404 until then`,
    );
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without waiting');
        flushLogger(logger);
        resolve(1);
        return;
      }
      stopping = true;
      logger.info(
        { signal, drain_timeout_ms: config.server.drainTimeout },
        'shutting down: draining requests in flight',
      );
      gateway.close().then(
        () => {
          logger.info('shutdown complete');
          flushLogger(logger);
          resolve(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          flushLogger(logger);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

async function configCommand(args: string[]): Promise<number> {
  const [sub, file, ...extra] = args;
  if (sub !== 'validate' || !file || extra.length > 0) {
    process.stderr.write('Usage: switchyard config validate FILE\n');
    return 2;
  }
  try {
    const config = await loadConfigFile(file);
    const targets = config.models.reduce((count, model) => count + model.targets.length, 0);
    process.stdout.write(`${file}: valid (${config.models.length} models, ${targets} targets)\n`);
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `switchyard: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
