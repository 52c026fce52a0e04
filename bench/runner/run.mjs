// npm run bench:runner — local model throughput through Switchyard versus node-llama-cpp driven
// directly, on the ~25 M-parameter demo model, with the same settings (1 thread, 8 sequences,
// 2048 tokens of context each, temperature 0, 128 tokens a request).
//
// Measures, for 1, 2, 4 and 8 concurrent requests: aggregate generated tokens/s, the median
// time to first token, and (on Linux, from /proc) the CPU time each process spends per generated
// token. Direct and Switchyard runs alternate in ABBA order, so both sides see the
// same moments of a noisy shared machine and neither always runs second; the ratio is the median
// of the paired rounds' ratios. Then the first request's time to first token on a cold runner,
// on a preloaded one, and a warm request's. Writes its section of BENCHMARKS.md.
//
// Each side runs in a process of its own (side.mjs): the direct script, as a user would run it,
// and the HTTP client of Switchyard, as a user's client would be. This process only directs them
// and is idle while they measure, so neither side shares a process, its event loop or its
// garbage collector with the other.
//
// Options (environment): BENCH_ROUNDS (default 8; even, so each side runs first equally often),
// BENCH_REQUESTS (default 3: requests a client makes per side per round), BENCH_MAX_TOKENS
// (default 128: tokens a request generates), BENCH_NO_WRITE=1 (print only), BENCH_GPU=1 (both
// sides offload every layer to the GPU; writes the "Local runner on a GPU" section instead),
// BENCH_MODEL_SIZE=large (the ~1 B-parameter demo model instead of the ~25 M one, which does not
// fit in a CPU's cache and whose GPU steps are not bound by kernel launches, so batching can pay;
// writes a section of its own; on a CPU, fewer rounds, requests and tokens keep it to minutes),
// BENCH_MODEL_TYPE=q8_0 (the demo model's weights in another type than its size's default, Q4_0
// for small and Q8_0 for large; writes a section of its own),
// BENCH_OUT=FILE (also write the section to FILE, for a machine whose BENCHMARKS.md is a copy).
// Every round's pairs are printed as well, for pooling across runs.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicksPerSecond, processTree, threadTicks } from '../overhead/proc-stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { readNvidiaGpus } = await import(path.join(root, 'dist/runner/gpu-metrics.js'));
const { currentPoolThreads, runnerPoolThreads } = await import(
  path.join(root, 'dist/runner/engine/threads.js')
);
// libuv pool sizes: the direct side's (it inherits this process's environment) and the one serve
// gives its runner.
const pools = {
  direct: currentPoolThreads(),
  runner: runnerPoolThreads(undefined, process.env.UV_THREADPOOL_SIZE),
};
const cli = path.join(root, 'dist/cli/main.js');
const rounds = Number(process.env.BENCH_ROUNDS ?? 8);
const requestsPerRound = Number(process.env.BENCH_REQUESTS ?? 3);
const concurrencies = [1, 2, 4, 8];
const settings = {
  threads: 1,
  parallel: 8,
  contextSize: 2048,
  maxTokens: Number(process.env.BENCH_MAX_TOKENS ?? 128),
};
const gpu = process.env.BENCH_GPU === '1';
const size = process.env.BENCH_MODEL_SIZE ?? 'small';
if (size !== 'small' && size !== 'large') throw new Error('BENCH_MODEL_SIZE must be small or large');
const type = process.env.BENCH_MODEL_TYPE?.toLowerCase();
const demo = `demo:${size}`;
const marker = `${gpu ? 'runner-gpu' : 'runner'}${size === 'small' ? '' : `-${size}`}${type ? `-${type}` : ''}`;
const prompt = [{ role: 'user', content: 'Tell me a long story about a family and their animal.' }];
const temporary = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-runner-'));
const children = new Set();

// The entry point itself, so its `#!/usr/bin/env -S node …` line gives serve (and the runner it
// starts) the node flags the `switchyard` command and `npm start` run with.
function run(args, env = {}) {
  const child = spawn(cli, args, {
    env: { ...process.env, SWITCHYARD_DATA_DIR: temporary, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function output(child) {
  let text = '';
  child.stdout.on('data', (chunk) => (text += chunk));
  child.stderr.on('data', (chunk) => (text += chunk));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`command failed (${code}):\n${text}`);
  return text;
}

/** The middle value, or the mean of the two middle values of an even count. */
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

// ---------------------------------------------------------------------------------------------
// CPU time per generated token, from /proc (Linux): steadier than throughput on a shared machine,
// and it says which process spends it. node-llama-cpp decodes on a libuv pool thread; its JS
// between two steps runs on the main thread, serial with the decode.

const procfs = existsSync('/proc/self/task');

/** CPU µs a process has used so far: its main thread's, and its other threads' together. */
function threadCpu(pid) {
  if (!procfs || pid === undefined) return { main: 0, others: 0 };
  const { main, others } = threadTicks(pid);
  const micros = 1e6 / clockTicksPerSecond();
  return { main: main * micros, others: others * micros };
}

/** serve's runner: the process under `serve` whose command line holds the word `runner`. */
function runnerOf(serve) {
  if (!procfs) return undefined;
  return processTree(serve).find((pid) => {
    try {
      return pid !== serve && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('runner');
    } catch {
      return false; // it exited
    }
  });
}

/**
 * Measures with `measure` while counting the CPU the `processes` (name → pid) use, added into
 * `totals` (name → { main, others }, plus tokens).
 */
async function counted(measure, job, processes, totals) {
  const before = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, threadCpu(pid)]));
  const result = await measure(job);
  for (const [name, pid] of Object.entries(processes)) {
    const after = threadCpu(pid);
    totals[name] ??= { main: 0, others: 0 };
    totals[name].main += after.main - before[name].main;
    totals[name].others += after.others - before[name].others;
  }
  totals.tokens = (totals.tokens ?? 0) + result.tokens;
  return result;
}

// ---------------------------------------------------------------------------------------------
// The sides: each in its own process (side.mjs), measuring its own requests.

const sideSettings = { ...settings, gpu, prompt };

/** Starts side.mjs as `direct` or `client`; `measure` runs one job there and returns its result. */
async function startSide(...args) {
  const child = spawn(process.execPath, [path.join(root, 'bench/runner/side.mjs'), ...args], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const next = () =>
    new Promise((resolve, reject) => {
      const onExit = (code) => reject(new Error(`bench side ${args[0]} exited (${code})`));
      child.once('exit', onExit);
      child.once('message', (message) => {
        child.off('exit', onExit);
        if (message.error) reject(new Error(`bench side ${args[0]}: ${message.error}`));
        else resolve(message);
      });
    });
  await next();
  return {
    pid: child.pid,
    measure: (job) => {
      child.send({ measure: job });
      return next();
    },
    close: () => stop(child),
  };
}

// ---------------------------------------------------------------------------------------------
// Through Switchyard: serve → supervised runner → the same model, streamed over HTTP.

function configFile(name, preload) {
  const file = path.join(temporary, `${name}.yaml`);
  writeFileSync(
    file,
    `log:
  level: warn
store:
  path: ${path.join(temporary, `${name}.db`)}
runner:
  gpu: ${gpu ? 'auto' : 'off'}
  threads: ${settings.threads}
  parallel: ${settings.parallel}
  context_size: ${settings.contextSize}
  max_queue: 64
  keep_alive: -1
  preload: [${preload ? demo : ''}]
models:
  - name: bench
    targets:
      - kind: local
        model: ${demo}
`,
  );
  return file;
}

async function startServe(name, preload) {
  const port = 18900 + Math.floor(Math.random() * 500);
  const child = run(['serve', '--config', configFile(name, preload), '--port', String(port)]);
  child.stdout.resume();
  child.stderr.resume();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error('serve did not become ready');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, child };
}

/**
 * Each round measures every concurrency, and at each one both sides back to back in ABBA order
 * (direct first in even rounds, Switchyard first in odd ones), so neither side always runs second
 * and drift between minutes reaches every figure alike. Throughput and time to first token are
 * each side's median over the rounds. Ratios are medians of per-round pairs measured seconds
 * apart: Switchyard / direct at each concurrency, and 4 concurrent / 1 for the batching gain.
 */
async function compare(direct, switchyard) {
  const sides = { direct: {}, switchyard: {} };
  for (const side of Object.values(sides)) {
    for (const concurrency of concurrencies) side[concurrency] = { rates: [], ttfts: [], cpu: {} };
  }
  for (let round = 0; round < rounds; round++) {
    process.stdout.write(`   round ${round + 1} of ${rounds}\n`);
    for (const concurrency of concurrencies) {
      const order = [
        ['direct', direct],
        ['switchyard', switchyard],
      ];
      if (round % 2 === 1) order.reverse();
      for (const [name, { measure, processes }] of order) {
        const job = { concurrency, requests: requestsPerRound };
        const result = await counted(measure, job, processes, sides[name][concurrency].cpu);
        sides[name][concurrency].rates.push(result.tokensPerSecond);
        sides[name][concurrency].ttfts.push(...result.ttfts);
      }
    }
  }
  const pairs = (a, b) => a.rates.map((rate, round) => rate / b.rates[round]);
  const summary = (side) =>
    Object.fromEntries(
      concurrencies.map((c) => [
        c,
        { tokensPerSecond: median(side[c].rates), ttftMs: median(side[c].ttfts) },
      ]),
    );
  return {
    direct: summary(sides.direct),
    switchyard: summary(sides.switchyard),
    cpu: Object.fromEntries(
      concurrencies.map((c) => [c, { direct: sides.direct[c].cpu, switchyard: sides.switchyard[c].cpu }]),
    ),
    ratios: Object.fromEntries(concurrencies.map((c) => [c, pairs(sides.switchyard[c], sides.direct[c])])),
    batching: {
      direct: pairs(sides.direct[4], sides.direct[1]),
      switchyard: pairs(sides.switchyard[4], sides.switchyard[1]),
    },
  };
}

async function stop(child) {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  await output(run(['models', 'create-demo', '--size', size, ...(type ? ['--type', type] : [])]));
  const manifest = JSON.parse(await output(run(['models', 'inspect', demo])));
  const modelPath = path.join(temporary, 'models', 'blobs', manifest.digest.replace(':', '-'));

  process.stdout.write('== direct (node-llama-cpp) loaded in its own process\n');
  const direct = await startSide('direct', modelPath, JSON.stringify(sideSettings));
  const client = await startSide('client', JSON.stringify(sideSettings));
  /** One request's time to first token, from the client process. */
  const firstToken = async (url) => (await client.measure({ concurrency: 1, requests: 1, url })).ttfts[0];

  process.stdout.write('== switchyard (cold runner: first request loads the model)\n');
  const cold = await startServe('cold', false);
  const coldFirst = { ttft: await firstToken(cold.url) };
  // A warm request's time to first token: the median of a few, as one sample is noise here.
  const warmTtfts = [];
  for (let request = 0; request < 5; request++) warmTtfts.push(await firstToken(cold.url));
  const warm = { ttft: median(warmTtfts) };
  process.stdout.write(`   ${concurrencies.join(', ')} concurrent, direct and Switchyard alternating\n`);
  const compared = await compare(
    { measure: direct.measure, processes: { direct: direct.pid } },
    {
      measure: (job) => client.measure({ ...job, url: cold.url }),
      processes: { gateway: cold.child.pid, runner: runnerOf(cold.child.pid) },
    },
  );
  process.stdout.write(
    `   per-round pairs: ${JSON.stringify({ ratios: compared.ratios, batching: compared.batching })}\n`,
  );
  await stop(cold.child);
  await direct.close();

  process.stdout.write('== switchyard (preloaded runner)\n');
  // Each start gives one first request; the median of three starts.
  const preloadedTtfts = [];
  for (let start = 0; start < 3; start++) {
    const preloaded = await startServe(`preloaded-${start}`, true);
    preloadedTtfts.push(await firstToken(preloaded.url));
    await stop(preloaded.child);
  }
  await client.close();
  const preloadedFirst = { ttft: median(preloadedTtfts) };

  const range = (values) => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`;
  const rows = concurrencies.map((concurrency) => {
    const a = compared.direct[concurrency];
    const b = compared.switchyard[concurrency];
    const pairs = compared.ratios[concurrency];
    return `| ${concurrency} | ${a.tokensPerSecond.toFixed(0)} | ${b.tokensPerSecond.toFixed(0)} | ${median(pairs).toFixed(2)}× | ${range(pairs)} | ${a.ttftMs.toFixed(1)} | ${b.ttftMs.toFixed(1)} |`;
  });
  const ratios = concurrencies.map((c) => median(compared.ratios[c]));
  const perToken = (used, tokens) =>
    used === undefined ? '–' : Math.round(used / tokens).toLocaleString('en-US');
  const cpuRows = concurrencies.map((concurrency) => {
    const { direct: d, switchyard: s } = compared.cpu[concurrency];
    return `| ${concurrency} | ${perToken(d.direct?.main, d.tokens)} | ${perToken(d.direct?.others, d.tokens)} | ${perToken(s.gateway?.main === undefined ? undefined : s.gateway.main + s.gateway.others, s.tokens)} | ${perToken(s.runner?.main, s.tokens)} | ${perToken(s.runner?.others, s.tokens)} |`;
  });
  const cpuTable = procfs
    ? `
CPU time per generated token, µs, over every round (from /proc; user and system time). node-llama-cpp decodes on a pool thread ("other threads"); its JS between two steps runs on the main thread, serial with the decode, in the direct script as in the runner. The gateway's figure is all its threads.

| concurrent requests | direct: main thread | direct: other threads | Switchyard: gateway | runner: main thread | runner: other threads |
| --: | --: | --: | --: | --: | --: |
${cpuRows.join('\n')}
`
    : '';
  const batching = median(compared.batching.switchyard);
  const verdict = (ok) => (ok ? 'met' : '**not met**');
  const machine = gpu
    ? `${os.cpus().length} CPUs and ${(await readNvidiaGpus()).map((card) => card.name).join(', ') || 'an unnamed GPU'}; Node ${process.version}; node-llama-cpp with the CUDA binary, every layer on the GPU`
    : `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} CPUs; Node ${process.version}; node-llama-cpp with the CPU binary`;
  const section = `<!-- ${marker}:start -->
## ${gpu ? 'Local runner on a GPU' : 'Local runner'}${size === 'small' && !type ? '' : `, ${size} demo model`}${type ? ` in ${manifest.metadata.quantization}` : ''}

Generated by \`npm run bench:runner\` (bench/runner/run.mjs) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; do not edit by hand.

- Machine: ${machine}.
- Model: the ${size} demo model (${(manifest.metadata.parameter_count / 1e6).toFixed(1)} M parameters, ${manifest.metadata.quantization}, random weights).
- Settings, the same for both: ${settings.threads} thread, ${settings.parallel} sequences of ${settings.contextSize} tokens, temperature 0, at most ${settings.maxTokens} tokens a request.
- Direct: node-llama-cpp's LlamaChat on one context, in a process of its own. Switchyard: \`serve\` → supervised runner, streamed over HTTP with usage, read by a node:http client in another process.
- libuv thread pool, where node-llama-cpp's decode and sampling steps run: direct ${pools.direct} (${process.env.UV_THREADPOOL_SIZE === undefined ? "Node's default" : 'UV_THREADPOOL_SIZE'}), runner ${pools.runner} (what serve gives it here, \`runner.pool_threads\` unset).
- ${rounds} rounds; each measures every concurrency, both sides back to back in ABBA order (${requestsPerRound} request${requestsPerRound === 1 ? '' : 's'} per client each time). Throughput and TTFT are each side's median over the rounds; ratios are medians of per-round pairs (their range beside them), so the machine's drift between minutes cancels out of them.

| concurrent requests | direct tok/s | Switchyard tok/s | ratio | ratio per round | direct TTFT p50 ms | Switchyard TTFT p50 ms |
| --: | --: | --: | --: | --: | --: | --: |
${rows.join('\n')}
${cpuTable}
| first request | TTFT ms |
| --- | --: |
| cold runner (load included) | ${coldFirst.ttft.toFixed(1)} |
| preloaded runner (median of 3 starts: ${preloadedTtfts.map((ttft) => ttft.toFixed(1)).join(', ')}) | ${preloadedFirst.ttft.toFixed(1)} |
| warm request (median of 5) | ${warm.ttft.toFixed(1)} |

| target | measured | result |
| --- | --: | --- |
| throughput through Switchyard ≥ 0.95× direct at every concurrency | ${ratios.map((r) => r.toFixed(2)).join(', ')} | ${verdict(ratios.every((r) => r >= 0.95))} |
| aggregate at 4 concurrent ≥ 1.1× a single request's (per-round range; direct's median) | ${batching.toFixed(2)}× (${range(compared.batching.switchyard)}; direct ${median(compared.batching.direct).toFixed(2)}×) | ${verdict(batching >= 1.1)} |
| preloaded first request TTFT ≤ 2× a warm request's | ${(preloadedFirst.ttft / warm.ttft).toFixed(2)}× | ${verdict(preloadedFirst.ttft <= 2 * warm.ttft)} |
<!-- ${marker}:end -->`;
  process.stdout.write(`\n${section}\n`);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${section}\n`);
  if (process.env.BENCH_NO_WRITE !== '1') {
    const file = path.join(root, 'BENCHMARKS.md');
    let text = readFileSync(file, 'utf8');
    const start = text.indexOf(`<!-- ${marker}:start -->`);
    const end = text.indexOf(`<!-- ${marker}:end -->`);
    if (start !== -1 && end !== -1)
      text = text.slice(0, start) + section + text.slice(end + `<!-- ${marker}:end -->`.length);
    else text = `${text.trimEnd()}\n\n${section}\n`;
    writeFileSync(file, text);
    process.stdout.write('updated BENCHMARKS.md\n');
  }
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(temporary, { recursive: true, force: true });
}
