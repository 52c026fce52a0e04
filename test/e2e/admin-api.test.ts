import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningCli, runCli, startCli } from '../support/cli.js';

const adminKey = 'e2e-admin-key-9a7c31f0d2b64e85';

let directory: string;
let files: Server;
let modelUrl: string;
let server: RunningCli | undefined;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-e2e-'));
  // The model to pull, made in a store of its own and served over HTTP like any download.
  const source = { SWITCHYARD_DATA_DIR: join(directory, 'source') };
  expect(
    (await runCli(['models', 'create-demo', '--size', 'tiny', '--seed', '5', '--name', 'seed:tiny'], source))
      .code,
  ).toBe(0);
  const manifest = JSON.parse((await runCli(['models', 'inspect', 'seed:tiny'], source)).stdout);
  const bytes = await readFile(
    join(directory, 'source', 'models', 'blobs', manifest.digest.replace(':', '-')),
  );
  files = createServer((_request, response) => {
    response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  modelUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}/fresh.gguf`;
});

afterAll(async () => {
  await server?.stop();
  await new Promise((resolve) => files?.close(resolve));
  await rm(directory, { recursive: true, force: true });
});

it('with no config, pulls a model through /admin and serves it as local/<name:tag> without a restart', async () => {
  const env = { SWITCHYARD_DATA_DIR: join(directory, 'served'), SWITCHYARD_ADMIN_KEY: adminKey };
  // The demo model serve would otherwise generate (the small one); a tiny one starts faster.
  expect((await runCli(['models', 'create-demo', '--size', 'tiny', '--name', 'demo:small'], env)).code).toBe(
    0,
  );
  server = await startCli([], env);
  const url = server.url;
  await expect.poll(async () => (await fetch(`${url}/readyz`)).status, { timeout: 15_000 }).toBe(200);
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json', ...init.headers },
    });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const ask = () =>
    client.chat.completions.create({
      model: 'local/fresh/tiny:v1',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 3,
    });

  // Not in the store yet: the runner says so, through the gateway.
  await expect(ask()).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  expect((await fetch(`${url}/admin/models`)).status).toBe(401);

  const pulled = await admin('/admin/models/pull', {
    method: 'POST',
    body: JSON.stringify({ ref: modelUrl, name: 'fresh/tiny:v1', stream: true }),
  });
  expect(pulled.status).toBe(200);
  const lines = (await pulled.text())
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  expect(lines.at(-1)).toMatchObject({ status: 'success', model: { name: 'fresh/tiny', tag: 'v1' } });

  const completion = await ask();
  // Answers pass through unchanged, so they carry the runner's name for the model (ADR 0003).
  expect(completion.model).toBe('fresh/tiny:v1');
  expect(completion.usage!.completion_tokens).toBeGreaterThan(0);

  const ps = await admin('/admin/ps');
  expect(ps.status).toBe(200);
  const running = (await ps.json()) as { models: { name: string }[] };
  expect(running.models.map((model) => model.name)).toContain('fresh/tiny:v1');

  const listed = (await (await admin('/admin/models')).json()) as { models: { name: string; tag: string }[] };
  expect(listed.models.map((model) => `${model.name}:${model.tag}`)).toEqual(['demo:small', 'fresh/tiny:v1']);

  expect((await admin('/admin/models/fresh/tiny:v1', { method: 'DELETE' })).status).toBe(200);
  expect((await admin('/admin/models/fresh/tiny:v1')).status).toBe(404);

  expect(await server.stop()).toBe(0);
  expect(server.output.join('\n')).not.toContain(adminKey);
});
