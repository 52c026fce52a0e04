// `npm run bench:overhead`: what latency and CPU does Switchyard add to a request, next to a
// direct connection and to nginx doing the same proxying, all measured in one run on one machine.
//
// The load generator (wrk, or the streaming client) and the mock upstream share CPU 0; the proxy
// under test has CPU 1 to itself, so its CPU cost is not hidden by, nor charged to, the load.
//
// Environment:
//   BENCH_DURATION         seconds per wrk run (default 10)
//   BENCH_WARMUP           seconds of warm-up per target before measuring (default 2)
//   BENCH_STREAM_REQUESTS  streaming requests per target (default 2000, after 200 of warm-up)
//   BENCH_TARGETS          comma list, subset of direct,nginx,node-floor,switchyard,switchyard-rewrite
//   BENCH_NO_WRITE=1       print the results but leave BENCHMARKS.md alone
//   BENCH_PROFILE=1        afterwards, run Switchyard once more under --cpu-prof for a 16-connection
//                          run, leaving a .cpuprofile in bench/.out

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { clockTicksPerSecond, cpuTimes, treeUsage } from './proc-stats.mjs';
import {
  freePort,
  httpRequest,
  killAllNow,
  logTail,
  startPinned,
  stopProcess,
  waitUntilReady,
} from './processes.mjs';
import { renderMarkdown, writeBenchmarksSection } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '../..');
const outputDirectory = path.join(repositoryRoot, 'bench/.out');
const gatewayEntry = path.join(repositoryRoot, 'dist/cli/main.js');
// Run the gateway with the node flags its own `#!/usr/bin/env -S node …` line gives it, as the
// `switchyard` command and `npm start` do.
const gatewayNodeFlags = () =>
  (
    readFileSync(gatewayEntry, 'utf8')
      .split('\n', 1)[0]
      .match(/\bnode\b(.*)$/)?.[1] ?? ''
  )
    .trim()
    .split(/\s+/)
    .filter(Boolean);

const loadCpu = 0;
const proxyCpu = 1;
const connectionCounts = [1, 16, 64];
const streamWarmupRequests = 200;
const upstreamModel = 'bench-model';

const allTargets = ['direct', 'nginx', 'node-floor', 'switchyard', 'switchyard-rewrite'];
const targetLabels = {
  direct: 'direct',
  nginx: 'nginx',
  'node-floor': 'node floor (bare node:http + undici)',
  switchyard: 'switchyard',
  'switchyard-rewrite': 'switchyard (model rewrite)',
};

class BenchError extends Error {}

function positiveInteger(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new BenchError(`${name} must be a positive integer, got "${raw}"`);
  }
  return value;
}

function readOptions() {
  const targets = (process.env.BENCH_TARGETS ?? allTargets.join(','))
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = targets.filter((name) => !allTargets.includes(name));
  if (unknown.length > 0 || targets.length === 0) {
    throw new BenchError(
      `BENCH_TARGETS: unknown "${unknown.join(', ')}"; choose from ${allTargets.join(', ')}`,
    );
  }
  return {
    durationSeconds: positiveInteger('BENCH_DURATION', 10),
    warmupSeconds: positiveInteger('BENCH_WARMUP', 2),
    streamRequests: positiveInteger('BENCH_STREAM_REQUESTS', 2000),
    // Keep the order of allTargets: direct first, as every other target is compared with it.
    targets: allTargets.filter((name) => targets.includes(name)),
    write: process.env.BENCH_NO_WRITE !== '1',
    profile: process.env.BENCH_PROFILE === '1',
  };
}

function requestBodies(model) {
  const base = {
    model,
    messages: [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'Say hello in three words.' },
    ],
    max_tokens: 16,
  };
  return {
    nonStreaming: JSON.stringify(base),
    streaming: JSON.stringify({ ...base, stream: true, stream_options: { include_usage: true } }),
  };
}

// ---------------------------------------------------------------------------------------------
// Tools and machine

function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function ensureTools() {
  if (os.platform() !== 'linux') {
    throw new BenchError('this benchmark reads /proc and uses taskset: Linux only');
  }
  for (const name of ['taskset', 'getconf']) {
    if (!hasCommand(name)) throw new BenchError(`"${name}" is missing; it comes with util-linux / libc-bin`);
  }
  const packages = { wrk: 'wrk', nginx: 'nginx-light' };
  const missing = Object.keys(packages).filter((name) => !hasCommand(name));
  if (missing.length === 0) return;
  const install = `apt-get update && apt-get install -y ${missing.map((name) => packages[name]).join(' ')}`;
  if (process.getuid?.() !== 0) {
    throw new BenchError(`${missing.join(' and ')} not found; install with: sudo ${install}`);
  }
  process.stdout.write(`${missing.join(' and ')} not found; running: ${install}\n`);
  const result = spawnSync('sh', ['-c', install], { stdio: 'inherit' });
  if (result.status !== 0 || missing.some((name) => !hasCommand(name))) {
    throw new BenchError(`could not install ${missing.join(' and ')} (${install} exited ${result.status})`);
  }
}

function firstLine(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.split('\n')[0].trim();
}

function describeMachine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? 'unknown',
    // All CPUs, not availableParallelism(): that follows this process's own pinning.
    cores: os.cpus().length,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    // "nginx version: nginx/1.22.1" → "nginx/1.22.1"
    nginx: firstLine('nginx', ['-v']).replace(/^nginx version:\s*/, ''),
    // "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer" → "wrk debian/4.1.0-3+b2"
    wrk: firstLine('wrk', ['--version']).replace(/\s*\[.*$/, ''),
    clockTicksPerSecond: clockTicksPerSecond(),
  };
}

// ---------------------------------------------------------------------------------------------
// Runs of short-lived, pinned tools

async function runToCompletion({ name, command, args, env, logPath }) {
  const handle = startPinned({ name, cpu: loadCpu, command, args, env, logPath, pipeStdout: true });
  let stdout = '';
  handle.child.stdout.setEncoding('utf8');
  handle.child.stdout.on('data', (text) => {
    stdout += text;
  });
  // The process can exit before the last of its stdout has been read.
  await Promise.all([handle.exited, finished(handle.child.stdout).catch(() => {})]);
  const { code, signal, error } = await stopProcess(handle);
  if (error !== undefined || code !== 0) {
    throw new BenchError(
      `${name} failed (${error?.message ?? signal ?? `exit ${code}`}):\n${stdout}\n${logTail(handle)}`,
    );
  }
  return stdout;
}

async function runWrk({ url, connections, seconds, body, logPath }) {
  const stdout = await runToCompletion({
    name: 'wrk',
    command: 'wrk',
    args: [
      '-t1',
      `-c${connections}`,
      `-d${seconds}s`,
      '--latency',
      '-s',
      path.join(here, 'wrk-post.lua'),
      `${url}/v1/chat/completions`,
    ],
    env: { BENCH_BODY: body },
    logPath,
  });
  const line = stdout.split('\n').find((text) => text.startsWith('BENCH_RESULT '));
  if (line === undefined) throw new BenchError(`wrk printed no BENCH_RESULT line:\n${stdout}`);
  return JSON.parse(line.slice('BENCH_RESULT '.length));
}

async function runStreamClient({ url, body, requests, logPath }) {
  const stdout = await runToCompletion({
    name: 'stream client',
    command: process.execPath,
    args: [
      path.join(here, 'stream-client.mjs'),
      JSON.stringify({ url: `${url}/v1/chat/completions`, body, warmup: streamWarmupRequests, requests }),
    ],
    logPath,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

// ---------------------------------------------------------------------------------------------
// Targets: each start function resolves to { url, handle?, model }

async function startMock(temporary) {
  const handle = startPinned({
    name: 'mock upstream',
    cpu: loadCpu,
    command: process.execPath,
    args: [path.join(here, 'mock-upstream.mjs')],
    logPath: path.join(temporary, 'mock-upstream.log'),
    pipeStdout: true,
  });
  const port = await new Promise((resolve, reject) => {
    let buffered = '';
    handle.child.stdout.setEncoding('utf8');
    handle.child.stdout.on('data', (text) => {
      buffered += text;
      const newline = buffered.indexOf('\n');
      if (newline !== -1) resolve(JSON.parse(buffered.slice(0, newline)).port);
    });
    handle.exited.then(({ code, signal, error }) =>
      reject(
        new BenchError(
          `mock upstream exited early (${error?.message ?? signal ?? code}):\n${logTail(handle)}`,
        ),
      ),
    );
  });
  return { handle, url: `http://127.0.0.1:${port}` };
}

/** Waits for a proxy to be ready; one that never is gets stopped rather than left running. */
async function readyOrStopped(url, handle) {
  try {
    await waitUntilReady(url, handle);
  } catch (error) {
    await stopProcess(handle, { graceMs: 2_000 });
    throw error;
  }
}

async function startNginx(temporary, mockUrl) {
  const directory = path.join(temporary, 'nginx');
  mkdirSync(directory, { recursive: true });
  const port = await freePort();
  const configPath = path.join(directory, 'nginx.conf');
  // Every path nginx would write is inside the temporary prefix, so nothing under /etc or /var
  // is read or touched. keepalive_requests is raised on both sides because its default (1000)
  // would make nginx reconnect every 1000 requests, a cost neither Node nor Switchyard pays.
  writeFileSync(
    configPath,
    `worker_processes 1;
pid ${directory}/nginx.pid;
error_log ${directory}/error.log notice;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${directory}/client-body;
  proxy_temp_path ${directory}/proxy;
  fastcgi_temp_path ${directory}/fastcgi;
  uwsgi_temp_path ${directory}/uwsgi;
  scgi_temp_path ${directory}/scgi;
  keepalive_requests 100000000;
  upstream mock {
    server ${new URL(mockUrl).host};
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${port};
    location = /readyz { return 200 "ready\\n"; }
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const handle = startPinned({
    name: 'nginx',
    cpu: proxyCpu,
    command: 'nginx',
    args: ['-p', directory, '-c', configPath, '-e', `${directory}/error.log`, '-g', 'daemon off;'],
    // The error log at notice level names the sender of any signal nginx receives.
    logPath: path.join(directory, 'error.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await readyOrStopped(`${url}/readyz`, handle);
  return { handle, url, model: upstreamModel };
}

async function startNodeFloor(temporary, mockUrl) {
  const port = await freePort();
  const handle = startPinned({
    name: 'node-floor',
    cpu: proxyCpu,
    command: process.execPath,
    args: [...gatewayNodeFlags(), path.join(here, 'node-floor-proxy.mjs'), String(port), mockUrl],
    logPath: path.join(temporary, 'node-floor.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await readyOrStopped(`${url}/readyz`, handle);
  return { handle, url, model: upstreamModel };
}

async function startSwitchyard(temporary, mockUrl, { name, alias, nodeOptions = [] }) {
  const directory = path.join(temporary, name);
  mkdirSync(directory, { recursive: true });
  const port = await freePort();
  const model = alias ? 'bench-alias' : upstreamModel;
  const configPath = path.join(directory, 'switchyard.yaml');
  writeFileSync(
    configPath,
    `# Written by bench/overhead/run.mjs
log:
  level: warn  # request lines are at info; warn keeps the benchmark quiet
store:
  path: ${directory}/bench.db
models:
  - name: ${model}
    targets:
      - url: ${mockUrl}/v1
        api_key: bench-key
        model: ${upstreamModel}
`,
  );
  const handle = startPinned({
    name,
    cpu: proxyCpu,
    command: process.execPath,
    args: [
      ...gatewayNodeFlags(),
      ...nodeOptions,
      gatewayEntry,
      'serve',
      '--config',
      configPath,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
    ],
    env: { NODE_ENV: 'production' },
    logPath: path.join(directory, 'output.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await readyOrStopped(`${url}/readyz`, handle);
  return { handle, url, model };
}

function targetStarter(name, temporary, mockUrl) {
  switch (name) {
    case 'direct':
      return async () => ({ url: mockUrl, model: upstreamModel });
    case 'nginx':
      return () => startNginx(temporary, mockUrl);
    case 'node-floor':
      return () => startNodeFloor(temporary, mockUrl);
    case 'switchyard':
      return () => startSwitchyard(temporary, mockUrl, { name, alias: false });
    case 'switchyard-rewrite':
      return () => startSwitchyard(temporary, mockUrl, { name, alias: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** One request of each kind, checked, so that no run measures an error path by mistake. */
async function preflight(label, url, bodies) {
  const headers = { 'content-type': 'application/json', authorization: 'Bearer bench-client-key' };
  const plain = await httpRequest(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: bodies.nonStreaming,
  });
  let parsed;
  try {
    parsed = JSON.parse(plain.body);
  } catch {
    // reported below
  }
  if (
    plain.status !== 200 ||
    !Array.isArray(parsed?.choices) ||
    typeof parsed?.usage?.total_tokens !== 'number'
  ) {
    throw new BenchError(
      `${label}: non-streaming preflight got ${plain.status}: ${plain.body.slice(0, 500)}`,
    );
  }
  const stream = await httpRequest(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: bodies.streaming,
  });
  const events = stream.body.split('\n\n').filter((event) => event.startsWith('data: '));
  if (
    stream.status !== 200 ||
    !String(stream.headers['content-type']).startsWith('text/event-stream') ||
    events.at(-1) !== 'data: [DONE]'
  ) {
    throw new BenchError(`${label}: streaming preflight got ${stream.status}: ${stream.body.slice(0, 500)}`);
  }
  return {
    responseModel: parsed.model,
    nonStreamingResponseBytes: Buffer.byteLength(plain.body),
    streamingEvents: events.length,
    streamingResponseBytes: Buffer.byteLength(stream.body),
    streamingUsageChunk: events.some(
      (event) => event.includes('"choices":[]') && event.includes('"usage":{'),
    ),
  };
}

/**
 * CPU counters taken around each measured run: the proxy's own, everything this benchmark started
 * (this process's tree, which holds the proxy, the mock and reaped wrk runs), and each pinned CPU
 * as a whole. The difference shows load from outside the benchmark, which spoils the figures.
 */
function snapshot(proxyPid) {
  return {
    proxy: proxyPid === undefined ? undefined : treeUsage(proxyPid),
    ourTicks: treeUsage(process.pid).cpuTicks,
    loadCpu: cpuTimes(loadCpu),
    proxyCpu: cpuTimes(proxyCpu),
  };
}

function cpuMicrosecondsPerRequest(before, after, requests) {
  if (before.proxy === undefined || requests === 0) return undefined;
  return ((after.proxy.cpuTicks - before.proxy.cpuTicks) / clockTicksPerSecond() / requests) * 1e6;
}

/** Shares (0-1) of each pinned CPU's time used by processes outside the benchmark, or stolen. */
function foreignLoad(before, after) {
  const delta = (cpu, field) => after[cpu][field] - before[cpu][field];
  const proxyTicks = before.proxy === undefined ? 0 : after.proxy.cpuTicks - before.proxy.cpuTicks;
  const loadTicks = after.ourTicks - before.ourTicks - proxyTicks;
  return {
    loadCpu: Math.max(0, delta('loadCpu', 'busy') - loadTicks) / delta('loadCpu', 'total'),
    proxyCpu: Math.max(0, delta('proxyCpu', 'busy') - proxyTicks) / delta('proxyCpu', 'total'),
    stolen:
      (delta('loadCpu', 'steal') + delta('proxyCpu', 'steal')) /
      (delta('loadCpu', 'total') + delta('proxyCpu', 'total')),
  };
}

// Tick-based accounting (usually 100 Hz) makes a few percent noise; more than this is real load.
const foreignLoadWarningShare = 0.05;

function foreignLoadWarnings(what, load) {
  const parts = [];
  if (load.loadCpu > foreignLoadWarningShare) {
    parts.push(`${(load.loadCpu * 100).toFixed(0)}% of CPU ${loadCpu}`);
  }
  if (load.proxyCpu > foreignLoadWarningShare) {
    parts.push(`${(load.proxyCpu * 100).toFixed(0)}% of CPU ${proxyCpu}`);
  }
  if (load.stolen > foreignLoadWarningShare) {
    parts.push(`${(load.stolen * 100).toFixed(0)}% stolen by the hypervisor`);
  }
  return parts.length === 0
    ? []
    : [`${what}: other processes used ${parts.join(' and ')}; figures are noisy`];
}

const connectionsText = (count) => `${count} connection${count === 1 ? '' : 's'}`;

function wrkWarnings(label, connections, wrk) {
  const { connect, read, write, status, timeout } = wrk.errors;
  if (connect + read + write + status + timeout === 0) return [];
  return [
    `${label}, ${connectionsText(connections)}: wrk errors connect ${connect}, read ${read}, write ${write}, ` +
      `non-2xx ${status}, timeout ${timeout}`,
  ];
}

/** Fails the benchmark, naming the culprit, if a process it relies on has gone away. */
function assertAlive(handles) {
  for (const handle of handles) {
    if (handle === undefined) continue;
    const { exitCode, signalCode } = handle.child;
    if (exitCode === null && signalCode === null) continue;
    throw new BenchError(
      `${handle.name} exited during the benchmark (${signalCode ?? `code ${exitCode}`}); ` +
        `was it stopped from outside? Its log ends:\n${logTail(handle)}`,
    );
  }
}

async function measureTarget({ name, start, mock, options, temporary, warnings }) {
  const label = targetLabels[name];
  const logPath = path.join(temporary, `${name}-load.log`);
  process.stdout.write(`\n== ${label}\n`);
  const proxy = await start();
  try {
    const bodies = requestBodies(proxy.model);
    const check = await preflight(label, proxy.url, bodies);
    if (!check.streamingUsageChunk) warnings.push(`${label}: the stream carried no usage chunk`);
    const usage = () => snapshot(proxy.handle?.pid);
    const memoryBefore = usage().proxy;

    process.stdout.write(`warm-up ${options.warmupSeconds} s at 16 connections\n`);
    await runWrk({
      url: proxy.url,
      connections: 16,
      seconds: options.warmupSeconds,
      body: bodies.nonStreaming,
      logPath,
    });

    const nonStreaming = [];
    for (const connections of connectionCounts) {
      const before = usage();
      const wrk = await runWrk({
        url: proxy.url,
        connections,
        seconds: options.durationSeconds,
        body: bodies.nonStreaming,
        logPath,
      });
      const after = usage();
      assertAlive([proxy.handle, mock.handle]);
      const load = foreignLoad(before, after);
      warnings.push(...wrkWarnings(label, connections, wrk));
      warnings.push(...foreignLoadWarnings(`${label}, ${connectionsText(connections)}`, load));
      const run = {
        connections,
        requests: wrk.requests,
        requestsPerSecond: wrk.requests / (wrk.duration_us / 1e6),
        latencyMicroseconds: wrk.latency_us,
        errors: wrk.errors,
        proxyCpuMicrosecondsPerRequest: cpuMicrosecondsPerRequest(before, after, wrk.requests),
        foreignLoad: load,
      };
      nonStreaming.push(run);
      process.stdout.write(
        `${connectionsText(connections).padStart(14)}: ${Math.round(run.requestsPerSecond)} req/s, ` +
          `p50 ${wrk.latency_us.p50} µs, p99 ${wrk.latency_us.p99} µs` +
          (run.proxyCpuMicrosecondsPerRequest === undefined
            ? '\n'
            : `, proxy CPU ${run.proxyCpuMicrosecondsPerRequest.toFixed(1)} µs/request\n`),
      );
    }

    const before = usage();
    const client = await runStreamClient({
      url: proxy.url,
      body: bodies.streaming,
      requests: options.streamRequests,
      logPath,
    });
    const after = usage();
    assertAlive([proxy.handle, mock.handle]);
    const load = foreignLoad(before, after);
    warnings.push(...foreignLoadWarnings(`${label}, streaming`, load));
    if (client.requests === 0) {
      throw new BenchError(`${label}: every streaming request failed; the first: ${client.firstError}`);
    }
    if (client.errors > 0) {
      warnings.push(`${label}: ${client.errors} streaming errors, first: ${client.firstError}`);
    }
    const streaming = {
      ...client,
      // Warm-up requests ran inside the same CPU window, so they count in the divisor too.
      proxyCpuMicrosecondsPerRequest: cpuMicrosecondsPerRequest(
        before,
        after,
        client.requests + client.errors + streamWarmupRequests,
      ),
      foreignLoad: load,
    };
    process.stdout.write(
      `streaming: TTFB p50 ${streaming.ttfbMicroseconds.p50.toFixed(1)} µs, ` +
        `p99 ${streaming.ttfbMicroseconds.p99.toFixed(1)} µs over ${client.requests} requests\n`,
    );

    const memoryAfter = usage().proxy;
    return {
      name,
      label,
      preflight: check,
      pids: memoryAfter?.pids,
      nonStreaming,
      streaming,
      memory:
        memoryBefore === undefined
          ? undefined
          : {
              rssBeforeBytes: memoryBefore.rssBytes,
              rssAfterBytes: memoryAfter.rssBytes,
              peakRssBytes: memoryAfter.peakRssBytes,
            },
    };
  } finally {
    if (proxy.handle !== undefined) {
      const outcome = await stopProcess(proxy.handle);
      if (outcome.code !== 0 && outcome.signal !== 'SIGTERM') {
        warnings.push(`${label} exited with ${outcome.signal ?? `code ${outcome.code}`} on SIGTERM`);
      }
    }
  }
}

async function profileSwitchyard({ name, temporary, mockUrl, options, stamp }) {
  const profileName = `${name}-c16-${stamp}.cpuprofile`;
  process.stdout.write(`\n== profiling ${targetLabels[name]} (--cpu-prof, 16 connections)\n`);
  const proxy = await startSwitchyard(temporary, mockUrl, {
    name: `${name}-profile`,
    alias: name === 'switchyard-rewrite',
    nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${outputDirectory}`, `--cpu-prof-name=${profileName}`],
  });
  try {
    const body = requestBodies(proxy.model).nonStreaming;
    const logPath = path.join(temporary, `${name}-profile-load.log`);
    await runWrk({ url: proxy.url, connections: 16, seconds: options.warmupSeconds, body, logPath });
    await runWrk({ url: proxy.url, connections: 16, seconds: options.durationSeconds, body, logPath });
  } finally {
    await stopProcess(proxy.handle);
  }
  const profilePath = path.join(outputDirectory, profileName);
  if (!existsSync(profilePath)) {
    throw new BenchError(
      `no profile at ${profilePath}: Node writes it only when the process exits normally, ` +
        'so Switchyard must exit (not be killed) on SIGTERM',
    );
  }
  return path.relative(repositoryRoot, profilePath);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = readOptions();
  const wantsSwitchyard = options.targets.some((name) => name.startsWith('switchyard'));
  if ((wantsSwitchyard || options.profile) && !existsSync(gatewayEntry)) {
    throw new BenchError(
      `${path.relative(repositoryRoot, gatewayEntry)} is missing: run "npm run build" first ` +
        '(npm run bench:overhead does), or leave Switchyard out with BENCH_TARGETS=direct,nginx',
    );
  }
  ensureTools();
  if (os.availableParallelism() < 2) {
    throw new BenchError('needs at least 2 CPUs: load on CPU 0, proxy on CPU 1');
  }
  // Keep this orchestrator, idle during runs but not free, off the proxy's CPU.
  spawnSync('taskset', ['-a', '-p', '-c', String(loadCpu), String(process.pid)], { stdio: 'ignore' });

  mkdirSync(outputDirectory, { recursive: true });
  const temporary = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-'));
  process.on('exit', () => rmSync(temporary, { recursive: true, force: true }));

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const results = {
    command: 'npm run bench:overhead',
    startedAt: startedAt.toISOString(),
    options: { ...options, connectionCounts, streamWarmupRequests },
    machine: describeMachine(),
    pinning: { loadGeneratorAndUpstream: loadCpu, proxy: proxyCpu },
    requestBodies: requestBodies(upstreamModel),
    targets: [],
    warnings: [],
    profiles: [],
  };
  process.stdout.write(
    `Overhead benchmark: ${options.targets.join(', ')}; ${options.durationSeconds} s per run\n` +
      `${results.machine.cpuModel}, ${results.machine.cores} CPUs, Node ${results.machine.node}, ` +
      `${results.machine.nginx}, ${results.machine.wrk}\n`,
  );

  const mock = await startMock(temporary);
  try {
    for (const name of options.targets) {
      results.targets.push(
        await measureTarget({
          name,
          start: targetStarter(name, temporary, mock.url),
          mock,
          options,
          temporary,
          warnings: results.warnings,
        }),
      );
    }
    if (options.profile) {
      for (const name of options.targets.filter((target) => target.startsWith('switchyard'))) {
        results.profiles.push(
          await profileSwitchyard({ name, temporary, mockUrl: mock.url, options, stamp }),
        );
      }
    }
  } finally {
    await stopProcess(mock.handle);
  }
  results.finishedAt = new Date().toISOString();

  const jsonPath = path.join(outputDirectory, `overhead-${stamp}.json`);
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = renderMarkdown(results);
  process.stdout.write(`\n${markdown}\n`);
  process.stdout.write(`raw results: ${path.relative(repositoryRoot, jsonPath)}\n`);
  for (const profile of results.profiles) process.stdout.write(`CPU profile: ${profile}\n`);
  if (options.write) {
    const benchmarksPath = path.join(repositoryRoot, 'BENCHMARKS.md');
    writeBenchmarksSection(benchmarksPath, markdown);
    process.stdout.write(`updated ${path.relative(repositoryRoot, benchmarksPath)}\n`);
  }
}

// Children must not outlive the benchmark, whichever way it ends.
process.on('exit', killAllNow);
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping\n`);
    process.exit(code);
  });
}

try {
  await main();
} catch (error) {
  // Expected failures carry a message that says what to do; anything else is a bug here.
  const expected = error instanceof BenchError || error.constructor === Error;
  process.stderr.write(`\nbench:overhead failed: ${expected ? error.message : error.stack}\n`);
  process.exitCode = 1;
} finally {
  // A child stuck after a failure would keep the event loop, and so this process, alive.
  killAllNow();
}
