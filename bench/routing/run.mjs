// `npm run bench:routing` (issue 5): what a client sees when a model is spread over two
// deployments and one of them misbehaves.
//
// 1. Strategies: upstream B is degraded (+200 ms at the median, 5% of requests answered 500);
//    each strategy gets a fresh gateway and the same seeded load. Client p50/p90/p99, error rate,
//    share served by A and mean attempts, next to the client talking to A directly.
// 2. Outage: both upstreams healthy, health checks on; A is killed 2 s into an 8 s load and
//    restarted at 5 s. Client-visible errors after the kill, the time to the last of them, p99
//    around the kill, and how long A takes to serve again.
//
// The load client and both upstreams share CPU 0; the gateway has CPU 1.
//
// Environment:
//   BENCH_REQUESTS     requests per strategy row (default 600)
//   BENCH_CONCURRENCY  concurrent clients (default 8)
//   BENCH_NO_WRITE=1   print the results but leave BENCHMARKS.md (and bench/.out) alone

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  freePort,
  httpRequest,
  runBenchmark,
  startPinned,
  stopProcess,
  waitUntilReady,
} from '../overhead/processes.mjs';
import { runLoad } from './load.mjs';
import { renderMarkdown, summariseOutage, summariseRun, writeRoutingSection } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '../..');
const gatewayEntry = path.join(repositoryRoot, 'dist/cli/main.js');
const outputDirectory = path.join(repositoryRoot, 'bench/.out');

const loadCpu = 0;
const gatewayCpu = os.availableParallelism() > 1 ? 1 : 0;
const model = 'bench-model';

function positiveInteger(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer, not "${raw}"`);
  return value;
}

const concurrency = positiveInteger('BENCH_CONCURRENCY', 8);
const options = {
  requests: positiveInteger('BENCH_REQUESTS', 600),
  concurrency,
  warmupRequests: concurrency * 4,
  write: process.env.BENCH_NO_WRITE !== '1',
  baseMs: 20,
  jitterMs: 5,
  degradedExtraMs: 200,
  degradedErrorRate: 0.05,
  retries: 2,
  breakerCooldown: '2s',
};
const strategies = ['round-robin', 'least-outstanding', 'latency'];
const timeline = {
  strategy: 'latency',
  durationSeconds: 8,
  killAtSeconds: 2,
  reviveAtSeconds: 5,
  healthInterval: '500ms',
  unhealthyThreshold: 2,
};
const seeds = { a: 1, b: 2 };
const requestBody = JSON.stringify({
  model,
  messages: [{ role: 'user', content: 'Say hello in three words.' }],
  max_tokens: 16,
});

// ---------------------------------------------------------------------------------------------
// Processes

async function startUpstream(temporary, name) {
  const port = await freePort();
  const controlPort = await freePort();
  const handle = startPinned({
    name: `upstream ${name}`,
    cpu: loadCpu,
    command: process.execPath,
    args: [path.join(here, 'upstream.mjs')],
    env: {
      UPSTREAM_NAME: name,
      PORT: String(port),
      CONTROL_PORT: String(controlPort),
      SEED: String(seeds[name]),
      BASE_MS: String(options.baseMs),
      JITTER_MS: String(options.jitterMs),
    },
    logPath: path.join(temporary, `upstream-${name}.log`),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(`${url}/health`, handle);
  const control = `http://127.0.0.1:${controlPort}`;
  const call = async (method, route, body) => {
    const response = await httpRequest(`${control}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status !== 200)
      throw new Error(`upstream ${name} ${route}: ${response.status} ${response.body}`);
    return JSON.parse(response.body);
  };
  return {
    name,
    handle,
    url,
    configure: (settings) => call('POST', '/configure', { seed: seeds[name], ...settings }),
    die: () => call('POST', '/die'),
    revive: () => call('POST', '/revive'),
    stats: () => call('GET', '/stats'),
  };
}

function gatewayConfig(directory, upstreams, { strategy, healthCheck }) {
  const check = healthCheck
    ? `\n        health_check: { path: /health, interval: ${timeline.healthInterval}, unhealthy_threshold: ${timeline.unhealthyThreshold} }`
    : '';
  const targets = upstreams
    .map(
      (upstream) => `      - url: ${upstream.url}/v1
        name: ${upstream.name}
        api_key: bench-key
        model: ${model}${check}`,
    )
    .join('\n');
  return `# Written by bench/routing/run.mjs
log:
  level: warn  # request lines are at info; warn keeps the benchmark quiet
store:
  path: ${directory}/bench.db
models:
  - name: ${model}
    strategy: ${strategy}
    retries: ${options.retries}
    breaker:
      cooldown: ${options.breakerCooldown}
    targets:
${targets}
`;
}

async function startGateway(temporary, upstreams, settings) {
  const name = `switchyard-${settings.strategy}${settings.healthCheck ? '-outage' : ''}`;
  const directory = path.join(temporary, name);
  mkdirSync(directory, { recursive: true });
  const configPath = path.join(directory, 'switchyard.yaml');
  writeFileSync(configPath, gatewayConfig(directory, upstreams, settings));
  const port = await freePort();
  // The entry point itself, so that its `#!/usr/bin/env -S node …` line sets the node flags the
  // `switchyard` command runs with.
  const handle = startPinned({
    name,
    cpu: gatewayCpu,
    command: gatewayEntry,
    args: ['serve', '--config', configPath, '--host', '127.0.0.1', '--port', String(port)],
    env: { NODE_ENV: 'production' },
    logPath: path.join(directory, 'output.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(`${url}/readyz`, handle);
  } catch (error) {
    await stopProcess(handle, { graceMs: 2_000 });
    throw error;
  }
  return { handle, url, logPath: path.join(directory, 'output.log') };
}

// ---------------------------------------------------------------------------------------------
// Phases

const load = (origin, more) =>
  runLoad({
    origin,
    headers: { authorization: 'Bearer bench-client-key' },
    body: requestBody,
    concurrency: options.concurrency,
    ...more,
  });

/** Opens the connections (and, for the latency strategy, its first averages), then resets the seeds. */
async function warmUp(origin, upstreams, settingsFor) {
  await load(origin, { requests: options.warmupRequests });
  for (const upstream of upstreams) await upstream.configure(settingsFor(upstream.name));
}

async function measureStrategies(temporary, upstreams) {
  const degraded = (name) =>
    name === 'b'
      ? { extraMs: options.degradedExtraMs, errorRate: options.degradedErrorRate }
      : { extraMs: 0, errorRate: 0 };
  const [a] = upstreams;
  const statsOf = async () =>
    Object.fromEntries(
      await Promise.all(upstreams.map(async (upstream) => [upstream.name, await upstream.stats()])),
    );

  process.stdout.write(`direct to A: ${options.requests} requests\n`);
  await warmUp(a.url, upstreams, degraded);
  const direct = summariseRun(await load(a.url, { requests: options.requests }), { defaultTarget: 'a' });

  const rows = [];
  for (const strategy of strategies) {
    process.stdout.write(`${strategy}: ${options.requests} requests\n`);
    const gateway = await startGateway(temporary, upstreams, { strategy, healthCheck: false });
    try {
      await warmUp(gateway.url, upstreams, degraded);
      const figures = summariseRun(await load(gateway.url, { requests: options.requests }));
      rows.push({ strategy, figures, upstreams: await statsOf() });
    } finally {
      await stopProcess(gateway.handle);
    }
  }
  return { direct, strategies: rows };
}

async function measureOutage(temporary, upstreams) {
  const [a] = upstreams;
  const healthy = () => ({ extraMs: 0, errorRate: 0 });
  process.stdout.write(
    `outage: ${timeline.strategy}, ${timeline.durationSeconds} s, A killed at ${timeline.killAtSeconds} s ` +
      `and restarted at ${timeline.reviveAtSeconds} s\n`,
  );
  for (const upstream of upstreams) await upstream.configure(healthy());
  const gateway = await startGateway(temporary, upstreams, {
    strategy: timeline.strategy,
    healthCheck: true,
  });
  const events = {};
  let samples;
  let origin;
  try {
    await warmUp(gateway.url, upstreams, healthy);
    origin = performance.now();
    const running = load(gateway.url, { durationMs: timeline.durationSeconds * 1000 });
    const scheduled = (async () => {
      await sleep(origin + timeline.killAtSeconds * 1000 - performance.now());
      // From the moment the kill was asked for: in-flight requests may fail before it is confirmed.
      events.killAt = performance.now();
      events.killAtWallClock = Date.now();
      await a.die();
      events.killConfirmedAt = performance.now();
      await sleep(origin + timeline.reviveAtSeconds * 1000 - performance.now());
      await a.revive();
      // From the moment A listens again: nothing could have reached it before.
      events.reviveAt = performance.now();
    })();
    [samples] = await Promise.all([running, scheduled]);
  } finally {
    await stopProcess(gateway.handle);
    // Later runs (and a second call) start from a live A.
    await a.revive();
  }
  const outage = summariseOutage(samples, { origin, killAt: events.killAt, reviveAt: events.reviveAt });
  outage.killTookMs = events.killConfirmedAt - events.killAt;
  // Read once the gateway has stopped, so that its asynchronous log is complete.
  outage.gatewayLog = gatewayLog(gateway.logPath, events.killAtWallClock);
  return outage;
}

/**
 * The gateway's log lines (warn and above: health check transitions among them), each with its
 * time in ms from the kill, from pino's epoch-millisecond `time`.
 */
function gatewayLog(logPath, killAtWallClock) {
  const lines = existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n') : [];
  return lines
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        const entry = JSON.parse(line);
        const reason = entry.reason === undefined ? '' : ` (${entry.reason})`;
        return {
          afterKillMs: typeof entry.time === 'number' ? entry.time - killAtWallClock : undefined,
          message: `${entry.msg ?? ''}${reason}`,
        };
      } catch {
        return { afterKillMs: undefined, message: line.slice(0, 160) };
      }
    });
}

// ---------------------------------------------------------------------------------------------

function describeMachine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    node: process.version,
    loadAverage: os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(' '),
  };
}

async function main() {
  if (!existsSync(gatewayEntry)) {
    throw new Error(`${path.relative(repositoryRoot, gatewayEntry)} is missing: run "npm run build" first`);
  }
  // Keep this process, the load client, off the gateway's CPU.
  spawnSync('taskset', ['-a', '-p', '-c', String(loadCpu), String(process.pid)], { stdio: 'ignore' });
  const temporary = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-routing-'));
  process.on('exit', () => rmSync(temporary, { recursive: true, force: true }));

  const startedAt = new Date();
  const results = {
    command: 'npm run bench:routing',
    startedAt: startedAt.toISOString(),
    machine: describeMachine(),
    pinning: { loadAndUpstreams: loadCpu, gateway: gatewayCpu },
    options,
    timeline,
  };
  process.stdout.write(
    `Routing benchmark: ${options.requests} requests per strategy, ${options.concurrency} concurrent\n` +
      `${results.machine.cpuModel}, ${results.machine.cores} CPUs, Node ${results.machine.node}, ` +
      `load average ${results.machine.loadAverage}\n`,
  );

  const upstreams = [await startUpstream(temporary, 'a'), await startUpstream(temporary, 'b')];
  try {
    Object.assign(results, await measureStrategies(temporary, upstreams));
    results.outage = await measureOutage(temporary, upstreams);
  } finally {
    for (const upstream of upstreams) await stopProcess(upstream.handle, { graceMs: 2_000 });
  }
  results.finishedAt = new Date().toISOString();

  const markdown = renderMarkdown(results);
  process.stdout.write(`\n${markdown}\n`);
  if (options.write) {
    mkdirSync(outputDirectory, { recursive: true });
    const jsonPath = path.join(
      outputDirectory,
      `routing-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`,
    );
    writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
    const benchmarksPath = path.join(repositoryRoot, 'BENCHMARKS.md');
    writeRoutingSection(benchmarksPath, markdown);
    process.stdout.write(
      `raw results: ${path.relative(repositoryRoot, jsonPath)}\nupdated ${path.relative(repositoryRoot, benchmarksPath)}\n`,
    );
  }
}

await runBenchmark('bench:routing', main);
