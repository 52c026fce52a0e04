#!/usr/bin/env -S node --max-semi-space-size=2 --heap-growing-percent=50
// The V8 flags above bound the gateway's memory under load (docs/adr/0004-v8-memory-flags.md):
// measured on the overhead benchmark, peak RSS fell from about 200 MB to under 150 MB at the
// same CPU per request. They apply whenever the command runs as `switchyard` or `npm start`.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { ConfigError, configFromEnvironment, loadConfigFile, withLocalModel } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { formatKeepAlive } from '../config/units.js';
import { environmentVendorSwitches } from '../config/vendors.js';
import { type RunnerLauncher, startGateway } from '../gateway/runtime.js';
import { runnerPoolThreads } from '../runner/engine/threads.js';
import { createLogger, flushLogger } from '../telemetry/logger.js';

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
  switchyard runner [--port 4100 | --socket PATH] [--threads N] [--parallel 2] [--context-size 4096] [--max-queue 16]
                    [--max-loaded-models 3] [--max-memory auto|8GiB] [--gpu auto|off]
      Serve the store's models over an OpenAI-compatible API on loopback (serve supervises it).
  switchyard ps [--runner URL] [--json]
      The runner's loaded models: memory, processor, slots in use, idle time, when they unload.
  switchyard audit verify [--store PATH | --config FILE]
      Check the audit log's hash chain; exits 1 naming the first edited, deleted or moved entry.
  switchyard keys create|ls|show|update|revoke|rotate, teams create|ls|rm, users create|ls|rm
      Virtual API keys, teams and users, through a running gateway's admin API (--url,
      SWITCHYARD_ADMIN_KEY); \`switchyard keys\` explains each.
  switchyard usage [--by key|team|model|day] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--daily] [--json]
                   [--url URL] [--admin-key KEY]
      Requests, tokens and cost from a running gateway (SWITCHYARD_URL, SWITCHYARD_ADMIN_KEY).
  switchyard capture show <request-id> [--store PATH | --config FILE] [--key-id ID]
      Decrypt and print a captured request and response (key from SWITCHYARD_CAPTURE_KEY).
  switchyard capture purge [--older-than 30d] [--store PATH | --config FILE]
      Delete captured payloads older than the retention.
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
    // Loaded on demand: the gateway process never needs node-llama-cpp or the model store's code,
    // and loading them cost it about 10 MB of RSS (measured with the overhead benchmark).
    case 'pull':
      return (await import('./models.js')).pullCommand(rest);
    case 'models':
      return (await import('./models.js')).modelsCommand(rest);
    case 'runner':
      return (await import('./runner.js')).runnerCommand(rest);
    case 'ps':
      return (await import('./ps.js')).psCommand(rest);
    case 'audit':
      return (await import('./audit.js')).auditCommand(rest);
    case 'keys':
      return (await import('./keys.js')).keysCommand(rest);
    case 'teams':
      return (await import('./keys.js')).teamsCommand(rest);
    case 'users':
      return (await import('./keys.js')).usersCommand(rest);
    case 'usage':
      return (await import('./usage.js')).usageCommand(rest);
    case 'capture':
      return (await import('./capture.js')).captureCommand(rest);
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
  let demo = false;
  if (config.models.length === 0) {
    // Nothing configured: serve the demo model, so a fresh machine answers with no key and no
    // network. It is created once, in the model store.
    await (await import('./models.js')).ensureDemoModel(demoStoreName);
    config = withDemoModels(config);
    demo = true;
  }
  const options = { host: values.host, port };
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(config, logger, {
      runner: runnerLauncher(),
      // Only a file can change under a running gateway; the environment is read once.
      loadConfig: file === undefined ? undefined : () => loadServeConfig(file, options),
    });
  } catch (error) {
    // What the environment must supply at start (a capture key) is reported as the config is.
    if (error instanceof ConfigError) {
      process.stderr.write(`switchyard: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  logger.info(
    { url: gateway.url, models: config.models.map((model) => model.name), config: file ?? 'environment' },
    'switchyard listening',
  );
  if (demo) {
    logger.warn(
      `no models configured, so serving "${demoModelName}": a demo model with random weights that answers with gibberish. ` +
        'For real answers pull a model (switchyard pull hf:<org>/<repo>/<file>.gguf --name NAME:TAG) and ask for "local/NAME:TAG", ' +
        `or set a provider in the environment (${environmentVendorSwitches().join(', ')}).`,
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
    // SIGHUP reloads the config file, as nginx and HAProxy do; a bad file keeps the running one.
    process.on('SIGHUP', () => {
      if (file === undefined) {
        logger.warn('SIGHUP ignored: started without a config file, so there is nothing to reload');
        return;
      }
      gateway.reload().catch((error: unknown) => {
        logger.error(
          { err: error instanceof ConfigError ? error.message : error },
          'config reload failed; the running config stays',
        );
      });
    });
  });
}

/** The config file with the command line's --host and --port applied, as at start. */
async function loadServeConfig(
  file: string,
  overrides: { host: string | undefined; port: number | undefined },
): Promise<GatewayConfig> {
  const config = await loadConfigFile(file);
  const server = {
    ...config.server,
    host: overrides.host ?? config.server.host,
    port: overrides.port ?? config.server.port,
  };
  return withDemoModels({ ...config, server });
}

/** With no model configured, the demo model and every model of the store (`local/<name:tag>`). */
function withDemoModels(config: GatewayConfig): GatewayConfig {
  if (config.models.length > 0) return config;
  return withLocalModel(withLocalModel(config, demoModelName, demoStoreName), localStoreModels, undefined);
}

const demoModelName = 'demo';
const demoStoreName = 'demo:small';
const localStoreModels = 'local/*';

/** `switchyard runner …`, run by this same node binary and entry file, with the same node flags. */
function runnerLauncher(): RunnerLauncher {
  return {
    command: process.execPath,
    args: (listen, settings) => [
      ...process.execArgv,
      process.argv[1]!,
      'runner',
      ...('socket' in listen ? ['--socket', listen.socket] : ['--port', String(listen.port)]),
      '--parallel',
      String(settings.parallel),
      '--context-size',
      String(settings.contextSize),
      '--max-queue',
      String(settings.maxQueue),
      // "=" form: "-1" (keep forever) would otherwise read as a flag.
      `--keep-alive=${formatKeepAlive(settings.keepAlive)}`,
      '--max-loaded-models',
      String(settings.maxLoadedModels),
      // Bytes, or 'auto': the runner then takes its share of the machine it runs on.
      '--max-memory',
      String(settings.maxMemory),
      '--gpu',
      settings.gpu,
      ...(settings.preload.length === 0 ? [] : ['--preload', settings.preload.join(',')]),
      ...(settings.threads === undefined ? [] : ['--threads', String(settings.threads)]),
    ],
    // libuv reads its pool size once, before any of the runner's own code runs.
    env: (settings) => ({
      ...process.env,
      UV_THREADPOOL_SIZE: String(runnerPoolThreads(settings.poolThreads, process.env.UV_THREADPOOL_SIZE)),
    }),
  };
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
    // node:util parseArgs rejects unknown flags and missing values with ERR_PARSE_ARGS_* codes:
    // a bad command line, so its message alone (it names the flag) and exit code 2, not a stack.
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      process.stderr.write(`switchyard: ${(error as Error).message}\n`);
      process.exit(2);
    }
    process.stderr.write(
      `switchyard: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
