// A simulated OpenAI-compatible upstream for bench:routing, run as a child process: non-streamed
// chat completions after a seeded random delay, a seeded share of them answered 500, and a
// control port on which the benchmark reconfigures it, kills it (its port then refuses
// connections, as a crashed server's does) and brings it back.
//
// Environment: UPSTREAM_NAME, PORT, CONTROL_PORT, SEED, BASE_MS (default 20), JITTER_MS (default 5),
// EXTRA_MS (default 0), ERROR_RATE (default 0).
//
// Control (on CONTROL_PORT): POST /configure {seed, extraMs, errorRate} resets the random sequence
// and the counters; POST /die; POST /revive; GET /stats.

import { once } from 'node:events';
import http from 'node:http';

const name = process.env.UPSTREAM_NAME ?? 'upstream';
const port = Number(process.env.PORT);
const controlPort = Number(process.env.CONTROL_PORT);
const baseMs = Number(process.env.BASE_MS ?? 20);
const jitterMs = Number(process.env.JITTER_MS ?? 5);

const settings = {
  seed: Number(process.env.SEED ?? 1),
  extraMs: Number(process.env.EXTRA_MS ?? 0),
  errorRate: Number(process.env.ERROR_RATE ?? 0),
};
let random = mulberry32(settings.seed);
const counters = { requests: 0, errors: 0 };
let alive = true;

/** mulberry32: a small seeded PRNG, uniform in [0, 1); enough for reproducible delays. */
function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The n-th request's delay and fate are the n-th draws of the sequence, so two runs with the same
 * seed degrade the same share of requests by the same amounts. The added delay is uniform over
 * ±50% of extraMs, so its median is extraMs.
 */
function draw() {
  const base = baseMs + (random() * 2 - 1) * jitterMs;
  const extra = settings.extraMs === 0 ? 0 : settings.extraMs * (0.5 + random());
  const fails = random() < settings.errorRate;
  return { delay: base + extra, fails };
}

const completionBody = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'bench-model',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: `Hello from ${name}.` },
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 },
});
const errorBody = JSON.stringify({
  error: { message: `simulated failure in ${name}`, type: 'server_error', code: null },
});
const modelsBody = JSON.stringify({ object: 'list', data: [{ id: 'bench-model', object: 'model' }] });

function answer(response, status, body) {
  if (response.destroyed) return;
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

const server = http.createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/health') return answer(response, 200, '{"status":"ok"}');
  if (request.method === 'GET' && request.url === '/v1/models') return answer(response, 200, modelsBody);
  if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
    return answer(response, 404, '{"error":{"message":"not found"}}');
  }
  request.resume();
  request.on('end', () => {
    counters.requests++;
    const { delay, fails } = draw();
    if (fails) counters.errors++;
    setTimeout(() => answer(response, fails ? 500 : 200, fails ? errorBody : completionBody), delay);
  });
});
// Longer than any pause in the benchmark, so an idle pooled connection is never closed under the
// gateway's feet: such a race would show as errors that have nothing to do with routing.
server.keepAliveTimeout = 120_000;

async function die() {
  if (!alive) return;
  alive = false;
  const closed = once(server, 'close');
  server.close();
  // In-flight requests are cut off too, as when the process crashes.
  server.closeAllConnections();
  await closed;
}

async function revive() {
  if (alive) return;
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  alive = true;
}

async function readJson(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? {} : JSON.parse(text);
}

const control = http.createServer(async (request, response) => {
  try {
    if (request.method === 'GET' && request.url === '/stats') {
      return answer(response, 200, JSON.stringify({ ...counters, alive }));
    }
    if (request.method === 'POST' && request.url === '/configure') {
      const next = await readJson(request);
      Object.assign(settings, next);
      random = mulberry32(settings.seed);
      counters.requests = 0;
      counters.errors = 0;
      return answer(response, 200, JSON.stringify(settings));
    }
    if (request.method === 'POST' && request.url === '/die') {
      await die();
      return answer(response, 200, '{"alive":false}');
    }
    if (request.method === 'POST' && request.url === '/revive') {
      await revive();
      return answer(response, 200, '{"alive":true}');
    }
    answer(response, 404, '{}');
  } catch (error) {
    answer(response, 500, JSON.stringify({ error: error.message }));
  }
});

server.listen(port, '127.0.0.1');
control.listen(controlPort, '127.0.0.1');
await Promise.all([once(server, 'listening'), once(control, 'listening')]);
process.on('SIGTERM', () => process.exit(0));
