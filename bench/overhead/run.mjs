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
//   BENCH_TARGETS          comma list, subset of direct,nginx,node-floor,switchyard,switchyard-rewrite,
//                          switchyard-routed,switchyard-keyed,switchyard-to-anthropic,
//                          switchyard-from-anthropic
//                          (default: all)
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
  logTail,
  runBenchmark,
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

/**
 * The API surfaces a client can speak: the path it posts to, the headers its SDK sends, the body
 * (the same question in each format) and the text a complete stream ends with.
 */
const surfaces = {
  openai: {
    path: '/v1/chat/completions',
    headers: { authorization: 'Bearer bench-client-key' },
    streamEnd: 'data: [DONE]',
    bodies(model) {
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
    },
  },
  anthropic: {
    path: '/v1/messages',
    headers: { 'x-api-key': 'bench-client-key', 'anthropic-version': '2023-06-01' },
    streamEnd: 'event: message_stop\ndata: {"type":"message_stop"}',
    bodies(model) {
      const base = {
        model,
        max_tokens: 16,
        system: 'You are helpful.',
        messages: [{ role: 'user', content: 'Say hello in three words.' }],
      };
      return { nonStreaming: JSON.stringify(base), streaming: JSON.stringify({ ...base, stream: true }) };
    },
  },
};

/**
 * Every target, in the order they run (direct first, as every other target is compared with it,
 * and passthrough Switchyard before the translated ones, which are compared with it). `surface`
 * is what the client speaks; `switchyard` says how that Switchyard is configured: `upstream` is
 * its target's kind, `alias` gives the model a client-side name that differs from the upstream's,
 * `routed` spreads the model over two deployments with the latency strategy, retries and breakers.
 * `translation` marks a target whose client and upstream speak different schemas.
 */
const targets = {
  direct: { label: 'direct', surface: 'openai' },
  nginx: { label: 'nginx', surface: 'openai' },
  'node-floor': { label: 'node floor (bare node:http + undici)', surface: 'openai' },
  switchyard: {
    label: 'switchyard',
    surface: 'openai',
    switchyard: { upstream: 'openai-compatible', alias: false },
  },
  'switchyard-rewrite': {
    label: 'switchyard (model rewrite)',
    surface: 'openai',
    switchyard: { upstream: 'openai-compatible', alias: true },
  },
  'switchyard-routed': {
    label: 'switchyard (routed: 2 deployments, latency strategy)',
    surface: 'openai',
    switchyard: { upstream: 'openai-compatible', alias: false, routed: true },
  },
  'switchyard-keyed': {
    label: 'switchyard (virtual key, rate limit, budget)',
    surface: 'openai',
    switchyard: { upstream: 'openai-compatible', alias: false, keyed: true },
  },
  'switchyard-to-anthropic': {
    label: 'switchyard (OpenAI in, Anthropic out)',
    surface: 'openai',
    switchyard: { upstream: 'anthropic', alias: false },
    translation: 'openai → anthropic',
  },
  'switchyard-from-anthropic': {
    label: 'switchyard (Anthropic in, OpenAI out)',
    surface: 'anthropic',
    switchyard: { upstream: 'openai-compatible', alias: false },
    translation: 'anthropic → openai',
  },
};
const allTargets = Object.keys(targets);

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
  const chosen = (process.env.BENCH_TARGETS ?? allTargets.join(','))
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = chosen.filter((name) => !allTargets.includes(name));
  if (unknown.length > 0 || chosen.length === 0) {
    throw new BenchError(
      `BENCH_TARGETS: unknown "${unknown.join(', ')}"; choose from ${allTargets.join(', ')}`,
    );
  }
  return {
    durationSeconds: positiveInteger('BENCH_DURATION', 10),
    warmupSeconds: positiveInteger('BENCH_WARMUP', 2),
    streamRequests: positiveInteger('BENCH_STREAM_REQUESTS', 2000),
    // Keep the order of allTargets: direct first, as every other target is compared with it.
    targets: allTargets.filter((name) => chosen.includes(name)),
    write: process.env.BENCH_NO_WRITE !== '1',
    profile: process.env.BENCH_PROFILE === '1',
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

async function runWrk({ url, surface, connections, seconds, body, logPath }) {
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
      url,
    ],
    env: {
      BENCH_PATH: surface.path,
      BENCH_BODY: body,
      BENCH_HEADERS: Object.entries(surface.headers)
        .map(([name, value]) => `${name}: ${value}`)
        .join('\n'),
    },
    logPath,
  });
  const line = stdout.split('\n').find((text) => text.startsWith('BENCH_RESULT '));
  if (line === undefined) throw new BenchError(`wrk printed no BENCH_RESULT line:\n${stdout}`);
  return JSON.parse(line.slice('BENCH_RESULT '.length));
}

async function runStreamClient({ url, surface, body, requests, logPath }) {
  const stdout = await runToCompletion({
    name: 'stream client',
    command: process.execPath,
    args: [
      path.join(here, 'stream-client.mjs'),
      JSON.stringify({
        url: `${url}${surface.path}`,
        body,
        headers: surface.headers,
        endMarker: surface.streamEnd,
        warmup: streamWarmupRequests,
        requests,
      }),
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

async function startSwitchyard(
  temporary,
  mockUrl,
  { name, upstream, alias, routed, keyed, nodeOptions = [] },
) {
  const directory = path.join(temporary, name);
  mkdirSync(directory, { recursive: true });
  const port = await freePort();
  const model = alias ? 'bench-alias' : upstreamModel;
  // Anthropic's url is the origin (the adapter adds /v1/messages); an OpenAI-compatible one ends in /v1.
  const target =
    upstream === 'anthropic' ? `- kind: anthropic\n        url: ${mockUrl}` : `- url: ${mockUrl}/v1`;
  // Both deployments reach the one mock upstream: the cost measured is the routing, not a second server.
  const deployments = routed
    ? `${target}\n        name: a\n        api_key: bench-key\n        model: ${upstreamModel}\n      ${target}\n        name: b`
    : target;
  const configPath = path.join(directory, 'switchyard.yaml');
  writeFileSync(
    configPath,
    `# Written by bench/overhead/run.mjs
log:
  level: warn  # request lines are at info; warn keeps the benchmark quiet
store:
  path: ${directory}/bench.db
${keyed ? `admin:\n  key: ${benchAdminKey}\npricing:\n  ${upstreamModel}: { input: 2.5, output: 10 }\n` : ''}models:
  - name: ${model}${routed ? '\n    strategy: latency' : ''}
    targets:
      ${deployments}
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
  if (!keyed) return { handle, url, model };
  // A virtual key whose limit and budget every request checks, reserves and settles, set far
  // above what the run sends so that none is refused: the cost measured is the accounting.
  const created = await fetch(`${url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${benchAdminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'bench',
      rpm: 1_000_000_000,
      tpm: 1_000_000_000_000,
      budget: { amount: 1_000_000_000, period: 'month' },
    }),
  });
  if (created.status !== 201) throw new BenchError(`creating the bench key failed: ${await created.text()}`);
  const { key } = await created.json();
  return { handle, url, model, headers: { authorization: `Bearer ${key}` } };
}

const benchAdminKey = 'bench-admin-key-0123456789abcdef';

function targetStarter(name, temporary, mockUrl) {
  switch (name) {
    case 'direct':
      return async () => ({ url: mockUrl, model: upstreamModel });
    case 'nginx':
      return () => startNginx(temporary, mockUrl);
    case 'node-floor':
      return () => startNodeFloor(temporary, mockUrl);
    default:
      return () => startSwitchyard(temporary, mockUrl, { name, ...targets[name].switchyard });
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** A body's JSON, or undefined when it is not JSON (the caller reports the body itself). */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * What preflight reads from each surface's answers: whether a whole answer is well formed, and a
 * stream's events, text and usage. An answer that is not in the client's own format (an error
 * envelope, the upstream's format passed through untranslated) fails here.
 */
const answerReaders = {
  openai: {
    answer: (parsed) => ({
      ok: Array.isArray(parsed?.choices) && typeof parsed?.usage?.total_tokens === 'number',
      text: parsed?.choices?.[0]?.message?.content,
    }),
    stream(body) {
      const events = body.split('\n\n').filter((event) => event.startsWith('data: '));
      const chunks = events
        .filter((event) => event !== 'data: [DONE]')
        .map((event) => parseJson(event.slice('data: '.length)));
      return {
        events: events.length,
        ended: events.at(-1) === surfaces.openai.streamEnd,
        wellFormed: chunks.every((chunk) => Array.isArray(chunk?.choices)),
        text: chunks.map((chunk) => chunk?.choices?.[0]?.delta?.content ?? '').join(''),
        usage: chunks.some(
          (chunk) => chunk?.choices?.length === 0 && typeof chunk?.usage?.total_tokens === 'number',
        ),
      };
    },
  },
  anthropic: {
    answer: (parsed) => ({
      ok:
        parsed?.type === 'message' &&
        Array.isArray(parsed?.content) &&
        typeof parsed?.usage?.input_tokens === 'number' &&
        typeof parsed?.usage?.output_tokens === 'number',
      text: parsed?.content
        ?.filter?.((block) => block?.type === 'text')
        .map((block) => block.text)
        .join(''),
    }),
    stream(body) {
      const events = body.split('\n\n').filter((event) => event.trim() !== '');
      // Each event is "event: <type>" then "data: <json>" whose type repeats the event's.
      const parsed = events.map((event) => {
        const name = event.match(/^event: (.+)$/m)?.[1];
        const data = parseJson(event.match(/^data: (.+)$/m)?.[1] ?? '');
        return data?.type === name ? data : undefined;
      });
      const types = parsed.map((data) => data?.type);
      return {
        events: events.length,
        ended: types[0] === 'message_start' && events.at(-1) === surfaces.anthropic.streamEnd,
        wellFormed: !types.includes(undefined),
        text: parsed
          .filter((data) => data?.type === 'content_block_delta' && data.delta?.type === 'text_delta')
          .map((data) => data.delta.text)
          .join(''),
        usage: parsed.some(
          (data) => data?.type === 'message_delta' && typeof data.usage?.output_tokens === 'number',
        ),
      };
    },
  },
};

/** One request of each kind, checked, so that no run measures an error path by mistake. */
async function preflight(label, url, surfaceName, bodies, surface = surfaces[surfaceName]) {
  const reader = answerReaders[surfaceName];
  const headers = { 'content-type': 'application/json', ...surface.headers };
  const plain = await httpRequest(`${url}${surface.path}`, {
    method: 'POST',
    headers,
    body: bodies.nonStreaming,
  });
  const parsed = parseJson(plain.body);
  const answer = reader.answer(parsed);
  if (plain.status !== 200 || !answer.ok || typeof answer.text !== 'string' || answer.text === '') {
    throw new BenchError(
      `${label}: non-streaming preflight got ${plain.status}: ${plain.body.slice(0, 500)}`,
    );
  }
  const stream = await httpRequest(`${url}${surface.path}`, {
    method: 'POST',
    headers,
    body: bodies.streaming,
  });
  const streamed = reader.stream(stream.body);
  if (
    stream.status !== 200 ||
    !String(stream.headers['content-type']).startsWith('text/event-stream') ||
    !streamed.ended ||
    !streamed.wellFormed ||
    streamed.text === ''
  ) {
    throw new BenchError(`${label}: streaming preflight got ${stream.status}: ${stream.body.slice(0, 500)}`);
  }
  return {
    responseModel: parsed.model,
    answerText: answer.text,
    nonStreamingResponseBytes: Buffer.byteLength(plain.body),
    streamingEvents: streamed.events,
    streamingText: streamed.text,
    streamingResponseBytes: Buffer.byteLength(stream.body),
    streamingUsage: streamed.usage,
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
  const { label, surface: surfaceName, translation } = targets[name];
  const logPath = path.join(temporary, `${name}-load.log`);
  process.stdout.write(`\n== ${label}\n`);
  const proxy = await start();
  // A target may need its own credentials (a virtual key) in place of the surface's.
  const surface =
    proxy.headers === undefined
      ? surfaces[surfaceName]
      : { ...surfaces[surfaceName], headers: { ...surfaces[surfaceName].headers, ...proxy.headers } };
  try {
    const bodies = surface.bodies(proxy.model);
    const check = await preflight(label, proxy.url, surfaceName, bodies, surface);
    if (!check.streamingUsage) warnings.push(`${label}: the stream carried no usage`);
    const usage = () => snapshot(proxy.handle?.pid);
    const memoryBefore = usage().proxy;

    process.stdout.write(`warm-up ${options.warmupSeconds} s at 16 connections\n`);
    await runWrk({
      url: proxy.url,
      surface,
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
        surface,
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
      surface,
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
      surface: surfaceName,
      translation,
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
  const { label, surface: surfaceName, switchyard } = targets[name];
  process.stdout.write(`\n== profiling ${label} (--cpu-prof, 16 connections)\n`);
  const proxy = await startSwitchyard(temporary, mockUrl, {
    name: `${name}-profile`,
    ...switchyard,
    nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${outputDirectory}`, `--cpu-prof-name=${profileName}`],
  });
  const surface =
    proxy.headers === undefined
      ? surfaces[surfaceName]
      : { ...surfaces[surfaceName], headers: { ...surfaces[surfaceName].headers, ...proxy.headers } };
  try {
    const body = surface.bodies(proxy.model).nonStreaming;
    const logPath = path.join(temporary, `${name}-profile-load.log`);
    const run = { url: proxy.url, surface, connections: 16, body, logPath };
    await runWrk({ ...run, seconds: options.warmupSeconds });
    await runWrk({ ...run, seconds: options.durationSeconds });
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
  const wantsSwitchyard = options.targets.some((name) => targets[name].switchyard !== undefined);
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
    requestBodies: Object.fromEntries(
      Object.entries(surfaces).map(([name, surface]) => [
        name,
        { path: surface.path, ...surface.bodies(upstreamModel) },
      ]),
    ),
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
      for (const name of options.targets.filter((target) => targets[target].switchyard !== undefined)) {
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

// Expected failures carry a message that says what to do; anything else is a bug here.
await runBenchmark('bench:overhead', main, (error) =>
  error instanceof BenchError || error.constructor === Error ? error.message : error.stack,
);
