// node bench/runner/neighbour.mjs — what a neighbouring process costs node-llama-cpp driven
// directly, with no Switchyard at all: the direct side of bench/runner/run.mjs (side.mjs), one
// request at a time on the ~25 M-parameter demo model, alone and beside a process that only
// burns CPU in short slices and sleeps between them.
//
// Switchyard at one request puts two processes beside the decoding thread that the direct script
// does not have (the gateway and the client, each woken by every token) and a busier main thread
// in the runner. This measures what such company costs by itself on the machine at hand, so that
// bench:runner's ratio at one request can be read against it.
//
// Each round measures every variant once, in rotating order; the ratio is the median of per-round
// ratios to the run alone. Options (environment): BENCH_ROUNDS (default 8), BENCH_REQUESTS
// (default 3 a measurement), BENCH_NEIGHBOURS (JSON: name → [busy µs, idle µs]). Prints only.
// Needs `npm run build` first (it creates the demo model with the CLI).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli/main.js');
const rounds = Number(process.env.BENCH_ROUNDS ?? 8);
const requests = Number(process.env.BENCH_REQUESTS ?? 3);
// Busy and idle slices in µs: about 8%, 20% and 33% of one CPU, woken every 1.2 or 0.3 ms.
const neighbours = JSON.parse(
  process.env.BENCH_NEIGHBOURS ??
    '{"8% every 1.2 ms":[100,1100],"20% every 0.25 ms":[50,200],"33% every 0.3 ms":[100,200]}',
);
const settings = {
  threads: 1,
  parallel: 8,
  contextSize: 2048,
  maxTokens: 128,
  gpu: false,
  prompt: [{ role: 'user', content: 'Tell me a long story about a family and their animal.' }],
};
const temporary = mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-neighbour-'));
const children = new Set();

function start(command, args, options) {
  const child = spawn(command, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function exited(child) {
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${child.spawnargs.join(' ')} exited ${code}`);
}

/** A process that spins for `busy` µs and sleeps for `idle` µs, over and over. */
function neighbour([busy, idle]) {
  const program = `const cell = new Int32Array(new SharedArrayBuffer(4));
for (;;) { const t = performance.now(); while (performance.now() - t < ${busy / 1000}); Atomics.wait(cell, 0, 0, ${idle / 1000}); }`;
  return start(process.execPath, ['-e', program], { stdio: 'ignore' });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function main() {
  const env = { ...process.env, SWITCHYARD_DATA_DIR: temporary };
  await exited(start(cli, ['models', 'create-demo', '--size', 'small'], { env, stdio: 'ignore' }));
  const inspect = start(cli, ['models', 'inspect', 'demo:small'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  inspect.stdout.on('data', (chunk) => (text += chunk));
  await exited(inspect);
  const modelPath = path.join(temporary, 'models', 'blobs', JSON.parse(text).digest.replace(':', '-'));

  const direct = start(
    process.execPath,
    [path.join(root, 'bench/runner/side.mjs'), 'direct', modelPath, JSON.stringify(settings)],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const reply = () =>
    new Promise((resolve, reject) =>
      direct.once('message', (message) =>
        message.error ? reject(new Error(message.error)) : resolve(message),
      ),
    );
  await reply();
  const measure = async () => {
    direct.send({ measure: { concurrency: 1, requests } });
    return (await reply()).tokensPerSecond;
  };

  const names = ['alone', ...Object.keys(neighbours)];
  const rates = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = names.map((_, index) => names[(index + round) % names.length]);
    for (const name of order) {
      const company = name === 'alone' ? undefined : neighbour(neighbours[name]);
      // Let it start spinning before the measurement begins.
      await new Promise((resolve) => setTimeout(resolve, 100));
      rates[name].push(await measure());
      company?.kill();
    }
  }
  process.stdout.write(
    `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} CPUs; node-llama-cpp directly, one request at a time, ${rounds} rounds\n\n`,
  );
  process.stdout.write(
    '| beside it | tokens/s (median) | ratio to alone (median of rounds) |\n| --- | --: | --: |\n',
  );
  for (const name of names) {
    const ratio = median(rates[name].map((rate, round) => rate / rates.alone[round]));
    process.stdout.write(`| ${name} | ${median(rates[name]).toFixed(0)} | ${ratio.toFixed(3)} |\n`);
  }
  direct.kill();
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(temporary, { recursive: true, force: true });
}
