import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor } from './supervisor.js';

// A stand-in child: an HTTP server whose /healthz answers 200, and which exits or hangs on
// request, like a runner that crashes or wedges. The supervisor's job is the same for any child.
const childSource = `
import http from 'node:http';
const port = Number(process.argv[2]);
const server = http.createServer((request, response) => {
  if (request.url === '/healthz') return response.end('ok');
  if (request.url === '/crash') { response.end('bye'); setImmediate(() => process.exit(3)); return; }
  if (request.url === '/hang') { response.end('hanging'); setImmediate(() => { const until = Date.now() + 60_000; while (Date.now() < until); }); return; }
  response.statusCode = 404; response.end();
});
setTimeout(() => server.listen(port, '127.0.0.1'), Number(process.argv[3] ?? 0));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

let directory: string;
let script: string;
const silent = pino({ level: 'silent' });

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-supervisor-'));
  script = join(directory, 'child.mjs');
  await writeFile(script, childSource);
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function supervised(extra: { startDelay?: number } = {}) {
  const port = await freePort();
  const supervisor = new Supervisor({
    name: 'runner',
    command: process.execPath,
    args: [script, String(port), String(extra.startDelay ?? 0)],
    healthUrl: `http://127.0.0.1:${port}/healthz`,
    logger: silent,
    healthInterval: 100,
    healthTimeout: 300,
    unhealthyAfter: 2,
    initialBackoff: 50,
    stopGrace: 2_000,
  });
  return { supervisor, url: `http://127.0.0.1:${port}` };
}

describe('Supervisor', () => {
  it('starts the child and reports ready only once its health check answers', async () => {
    const { supervisor } = await supervised({ startDelay: 300 });
    const states: string[] = [];
    supervisor.on('state', (state) => states.push(state));
    const started = performance.now();
    await supervisor.start();
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(supervisor.state).toBe('ready');
    expect(states).toEqual(['starting', 'ready']);
    await supervisor.stop();
    expect(supervisor.state).toBe('stopped');
  });

  it('restarts a child that crashes, and is ready again', async () => {
    const { supervisor, url } = await supervised();
    await supervisor.start();
    const firstPid = supervisor.pid;
    await fetch(`${url}/crash`).then((response) => response.text());
    await expect.poll(() => supervisor.state).not.toBe('ready');
    await supervisor.ready();
    expect(supervisor.restarts).toBe(1);
    expect(supervisor.pid).not.toBe(firstPid);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await supervisor.stop();
  });

  it('kills and restarts a child that stops answering its health check', async () => {
    const { supervisor, url } = await supervised();
    await supervisor.start();
    const firstPid = supervisor.pid;
    await fetch(`${url}/hang`).then((response) => response.text());
    await expect.poll(() => supervisor.restarts, { timeout: 10_000 }).toBe(1);
    await supervisor.ready();
    expect(supervisor.pid).not.toBe(firstPid);
    await supervisor.stop();
  });

  it('stops the child on stop() and does not restart it', async () => {
    const { supervisor, url } = await supervised();
    await supervisor.start();
    await supervisor.stop();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(supervisor.state).toBe('stopped');
    expect(supervisor.pid).toBeUndefined();
  });
});
