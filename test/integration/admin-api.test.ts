import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoModel } from '../../src/runner/gguf/index.js';
import { inspectGguf } from '../../src/runner/model-inspector.js';
import { ModelStore } from '../../src/runner/store/index.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const adminKey = 'test-admin-key-5f0c2a9e71d4b8';
const wrongKey = 'test-admin-key-wrong-00000000';

let directory: string;
let store: ModelStore;
/** A tiny GGUF model on disk, its bytes and their sha256. */
let modelFile: string;
let modelBytes: Buffer;
let modelSha256: string;
let files: Server;
let filesUrl: string;
/** Holds /slow.gguf after its first half until released. */
let releaseSlow: () => void = () => {};
let slowReleased: Promise<void>;
/** With an admin key. */
let open: TestGateway;
/** With none: the admin API is closed. */
let closed: TestGateway;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-'));
  store = new ModelStore({ root: join(directory, 'models'), inspect: inspectGguf });
  modelFile = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 7, path: modelFile });
  modelBytes = await readFile(modelFile);
  modelSha256 = createHash('sha256').update(modelBytes).digest('hex');
  slowReleased = new Promise((resolve) => {
    releaseSlow = resolve;
  });

  files = createServer((request, response) => {
    if (request.url === '/tiny.gguf') {
      response.writeHead(200, { 'content-length': modelBytes.length }).end(modelBytes);
    } else if (request.url === '/slow.gguf') {
      const half = Math.floor(modelBytes.length / 2);
      response.writeHead(200, { 'content-length': modelBytes.length });
      response.write(modelBytes.subarray(0, half));
      void slowReleased.then(() => response.end(modelBytes.subarray(half)));
    } else {
      response.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;

  const dataPlane = 'models:\n  - name: public\n    targets:\n      - url: http://127.0.0.1:9/v1\n';
  const gateway = { modelStore: async () => store };
  open = await startTestGateway(`admin:\n  key: \${ADMIN_KEY}\n${dataPlane}`, {
    env: { ADMIN_KEY: adminKey },
    gateway,
  });
  closed = await startTestGateway(dataPlane, { env: {}, gateway });
  await store.importFile(modelFile, 'matrix/keep:v1', { link: false });
});

afterAll(async () => {
  releaseSlow();
  await open?.close();
  await closed?.close();
  await new Promise((resolve) => files?.close(resolve));
  await rm(directory, { recursive: true, force: true });
});

interface Call {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
}

async function send(call: Call, options: { gateway?: TestGateway; key?: string | null } = {}) {
  const key = options.key === undefined ? adminKey : options.key;
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (call.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${(options.gateway ?? open).url}${call.path}`, {
    method: call.method,
    headers,
    ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
  });
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, body, text };
}

const pull = (body: Record<string, unknown>) => send({ method: 'POST', path: '/admin/models/pull', body });
const importing = (body: Record<string, unknown>) =>
  send({ method: 'POST', path: '/admin/models/import', body });
const ndjson = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));

describe('every /admin route is authorised', () => {
  const routes: (Call & { name: string; status: number; before?: () => Promise<unknown> })[] = [
    { name: 'GET /admin/models', method: 'GET', path: '/admin/models', status: 200 },
    { name: 'GET /admin/models/{name}', method: 'GET', path: '/admin/models/matrix/keep:v1', status: 200 },
    {
      name: 'DELETE /admin/models/{name}',
      method: 'DELETE',
      path: '/admin/models/matrix/drop:v1',
      status: 200,
      before: () => store.importFile(modelFile, 'matrix/drop:v1', { link: false }),
    },
    {
      name: 'POST /admin/models/pull',
      method: 'POST',
      path: '/admin/models/pull',
      get body() {
        return { ref: `${filesUrl}/tiny.gguf`, name: 'matrix/pulled:v1' };
      },
      status: 201,
    },
    {
      name: 'POST /admin/models/import',
      method: 'POST',
      path: '/admin/models/import',
      get body() {
        return { path: modelFile, name: 'matrix/imported:v1' };
      },
      status: 201,
    },
    // This gateway runs no runner, so authorised it gets 503; test/e2e/admin-api.test.ts sees 200.
    { name: 'GET /admin/ps', method: 'GET', path: '/admin/ps', status: 503 },
    { name: 'GET /admin/deployments', method: 'GET', path: '/admin/deployments', status: 200 },
    // Started from YAML text, not a file: there is nothing to reload.
    { name: 'POST /admin/config/reload', method: 'POST', path: '/admin/config/reload', status: 409 },
    { name: 'GET /admin/audit', method: 'GET', path: '/admin/audit', status: 200 },
    { name: 'GET /admin/audit/verify', method: 'GET', path: '/admin/audit/verify', status: 200 },
  ];

  describe.each(routes)('$name', (route) => {
    it('answers 403 admin_disabled when no admin key is configured, whatever is sent', async () => {
      for (const key of [null, adminKey]) {
        const response = await send(route, { gateway: closed, key });
        expect(response.status).toBe(403);
        expect(response.body.error.code).toBe('admin_disabled');
        expect(response.body.error.message).toMatch(/Set SWITCHYARD_ADMIN_KEY \(or admin\.key/);
      }
    });

    it('answers 401 unauthorized without an Authorization header', async () => {
      const response = await send(route, { key: null });
      expect(response.status).toBe(401);
      expect(response.body.error).toMatchObject({ code: 'unauthorized', type: 'authentication_error' });
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="switchyard-admin"');
    });

    it('answers the same 401 to a wrong key', async () => {
      const missing = await send(route, { key: null });
      const wrong = await send(route, { key: wrongKey });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toEqual(missing.body);
    });

    it(`with the right key reaches the route (${route.status})`, async () => {
      await route.before?.();
      const response = await send(route);
      expect(response.status, response.text).toBe(route.status);
      if (route.status === 503) expect(response.body.error.code).toBe('runner_unavailable');
    });
  });

  it('leaves the data plane open: /v1/models needs no admin key', async () => {
    const response = await send({ method: 'GET', path: '/v1/models' }, { key: null });
    expect(response.status).toBe(200);
    expect(response.body.data.map((model: { id: string }) => model.id)).toEqual(['public']);
  });
});

describe('GET /admin/models', () => {
  it('lists every manifest in the store, as `switchyard models ls` does', async () => {
    const response = await send({ method: 'GET', path: '/admin/models' });
    expect(response.status).toBe(200);
    const names = response.body.models.map((model: any) => `${model.name}:${model.tag}`);
    expect(names).toEqual(expect.arrayContaining(['matrix/keep:v1']));
    expect(response.body.models[0]).toHaveProperty('digest');
  });

  it('gives one manifest by a name holding slashes, encoded or not', async () => {
    for (const path of ['/admin/models/matrix/keep:v1', '/admin/models/matrix%2Fkeep%3Av1']) {
      const response = await send({ method: 'GET', path });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({
        name: 'matrix/keep',
        tag: 'v1',
        digest: `sha256:${modelSha256}`,
        metadata: { architecture: 'llama', demo: true },
      });
    }
  });

  it('answers 404 naming a model that is not there, and 400 for a name that cannot be one', async () => {
    const missing = await send({ method: 'GET', path: '/admin/models/nobody/here:v9' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'model_not_found', param: 'name' });
    expect(missing.body.error.message).toContain('There is no model "nobody/here:v9"');

    const invalid = await send({ method: 'GET', path: '/admin/models/Not%20A%20Name' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toMatchObject({ code: 'invalid_field', param: 'name' });
  });
});

describe('POST /admin/models/pull', () => {
  it('pulls over HTTP and answers 201 with the manifest once it is stored', async () => {
    const response = await pull({
      ref: `${filesUrl}/tiny.gguf`,
      name: 'pulled/plain:v1',
      sha256: modelSha256,
    });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({
      name: 'pulled/plain',
      tag: 'v1',
      digest: `sha256:${modelSha256}`,
      size: modelBytes.length,
      source: `${filesUrl}/tiny.gguf`,
    });
    expect((await store.get('pulled/plain:v1')).digest).toBe(`sha256:${modelSha256}`);
  });

  it('with "stream": true answers NDJSON progress lines ending with the manifest', async () => {
    const response = await pull({ ref: `${filesUrl}/tiny.gguf`, name: 'pulled/streamed:v1', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    const lines = ndjson(response.text);
    expect(lines[0]).toEqual({ status: 'pulling' });
    const progress = lines.slice(1, -1);
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) {
      expect(line).toEqual({
        status: expect.stringMatching(/^(downloading|hashing|copying)$/),
        completed: expect.any(Number),
        total: modelBytes.length,
      });
    }
    expect(lines.at(-1)).toMatchObject({
      status: 'success',
      model: { name: 'pulled/streamed', tag: 'v1', digest: `sha256:${modelSha256}` },
    });
  });

  it('refuses a file whose sha256 differs with 422 and the store’s message, storing nothing', async () => {
    const wrong = 'a'.repeat(64);
    const plain = await pull({ ref: `${filesUrl}/tiny.gguf`, name: 'pulled/bad:v1', sha256: wrong });
    expect(plain.status).toBe(422);
    expect(plain.body.error.code).toBe('checksum_mismatch');
    expect(plain.body.error.message).toContain(modelSha256);

    const streamed = await pull({
      ref: `${filesUrl}/tiny.gguf`,
      name: 'pulled/bad:v1',
      sha256: wrong,
      stream: true,
    });
    expect(streamed.status).toBe(200);
    const last = ndjson(streamed.text).at(-1);
    expect(last.error).toMatchObject({ code: 'checksum_mismatch', type: 'invalid_request_error' });
    expect((await send({ method: 'GET', path: '/admin/models/pulled/bad:v1' })).status).toBe(404);
  });

  it('answers 502 pull_failed when the source answers an error', async () => {
    const response = await pull({ ref: `${filesUrl}/absent.gguf`, name: 'pulled/absent:v1' });
    expect(response.status).toBe(502);
    expect(response.body.error.code).toBe('pull_failed');
    expect(response.body.error.message).toContain('404');
  });

  it.each([
    ['no ref', { name: 'x:v1' }, 'ref', 'missing_field'],
    ['an empty ref', { ref: ' ' }, 'ref', 'invalid_field'],
    ['an unsupported scheme', { ref: 'ftp://example.com/x.gguf' }, 'ref', 'invalid_field'],
    ['a relative path', { ref: 'models/x.gguf' }, 'ref', 'invalid_field'],
    ['an invalid name', { ref: 'https://example.com/x.gguf', name: 'Bad Name' }, 'name', 'invalid_field'],
    ['an invalid sha256', { ref: 'https://example.com/x.gguf', sha256: 'abc' }, 'sha256', 'invalid_field'],
    [
      'a stream that is not a boolean',
      { ref: 'https://example.com/x.gguf', stream: 'yes' },
      'stream',
      'invalid_field',
    ],
    ['an unknown field', { ref: 'https://example.com/x.gguf', sha: 'abc' }, 'sha', 'invalid_field'],
  ])('answers 400 naming the field for %s', async (_case, body, param, code) => {
    const response = await pull({ ...body, stream: (body as { stream?: unknown }).stream ?? true });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code, param, type: 'invalid_request_error' });
  });

  it('finishes a pull whose client went away, so the model still arrives', async () => {
    const controller = new AbortController();
    const response = await fetch(`${open.url}/admin/models/pull`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ref: `${filesUrl}/slow.gguf`, name: 'pulled/orphan:v1', stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"status":"pulling"');
    controller.abort();
    releaseSlow();
    await expect
      .poll(async () => (await send({ method: 'GET', path: '/admin/models/pulled/orphan:v1' })).status, {
        timeout: 5_000,
      })
      .toBe(200);
    expect(
      open.logs.some((line) => line.msg === 'admin: model pulled' && line.model === 'pulled/orphan:v1'),
    ).toBe(true);
  });
});

describe('POST /admin/models/import', () => {
  it('imports a GGUF file on the server’s disk and answers 201 with the manifest', async () => {
    const response = await importing({ path: modelFile, name: 'imported/one:v1', sha256: modelSha256 });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ name: 'imported/one', tag: 'v1', source: modelFile });
  });

  it('answers 400 naming path for a relative or missing file, and name when it is missing', async () => {
    const relative = await importing({ path: 'tiny.gguf', name: 'imported/two:v1' });
    expect(relative.status).toBe(400);
    expect(relative.body.error).toMatchObject({ code: 'invalid_field', param: 'path' });
    expect(relative.body.error.message).toContain('absolute path');

    const missing = await importing({ path: join(directory, 'nothing.gguf'), name: 'imported/two:v1' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({ code: 'invalid_field', param: 'path' });
    expect(missing.body.error.message).toContain('There is no file at');

    const unnamed = await importing({ path: modelFile });
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.error).toMatchObject({ code: 'missing_field', param: 'name' });
  });

  it('answers 422 for a file that is not a GGUF model', async () => {
    const text = join(directory, 'notes.gguf');
    await writeFile(text, 'not a model');
    const refused = await importing({ path: text, name: 'imported/text:v1' });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('invalid_model');
  });
});

describe('DELETE /admin/models/{name}', () => {
  it('removes a model, then answers 404 for it', async () => {
    await store.importFile(modelFile, 'doomed/model:v1', { link: false });
    const removed = await send({ method: 'DELETE', path: '/admin/models/doomed/model:v1' });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({
      deleted: 'doomed/model:v1',
      digest: `sha256:${modelSha256}`,
      // Other names in this store hold the same file.
      blob_removed: false,
    });
    expect((await send({ method: 'GET', path: '/admin/models/doomed/model:v1' })).status).toBe(404);
    const again = await send({ method: 'DELETE', path: '/admin/models/doomed/model:v1' });
    expect(again.status).toBe(404);
    expect(again.body.error.message).toContain('"doomed/model:v1"');
  });
});

describe('admin request bodies', () => {
  const raw = (method: string, path: string, body?: string) =>
    fetch(`${open.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });

  it('reads Content-Type: application/json with no body as no body, as clients send on DELETE', async () => {
    await store.importFile(modelFile, 'bodiless/model:v1', { link: false });
    expect((await raw('DELETE', '/admin/models/bodiless/model:v1')).status).toBe(200);
    expect((await raw('GET', '/admin/models')).status).toBe(200);
  });

  it('answers 400 to a body that is not JSON, or not an object', async () => {
    const broken = await raw('POST', '/admin/models/pull', '{"ref":');
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as any).error.code).toBe('invalid_json');
    const empty = await raw('POST', '/admin/models/pull');
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as any).error.code).toBe('invalid_body');
  });
});

describe('logs', () => {
  it('record refusals and changes, and never the admin key', () => {
    const text = JSON.stringify([...open.logs, ...closed.logs]);
    expect(text).not.toContain(adminKey);
    expect(text).not.toContain(wrongKey);
    expect(
      open.logs.some((line) => line.msg === 'admin request refused' && line.reason === 'wrong key'),
    ).toBe(true);
    expect(open.logs.some((line) => line.msg === 'admin: model removed')).toBe(true);
    expect(open.logs.some((line) => line.msg === 'admin: model imported')).toBe(true);
  });
});

describe('the audit log of a running gateway', () => {
  it('records admin actions and refused calls in an intact hash chain, with no key in it', async () => {
    await importing({ path: modelFile, name: 'audited/model:v1' });
    await send({ method: 'GET', path: '/admin/models' }, { key: wrongKey });
    const listed = await send({ method: 'GET', path: '/admin/audit?limit=1000' });
    expect(listed.status).toBe(200);
    const entries = listed.body.data as { action: string; target: string | null; outcome: string }[];
    expect(entries).toContainEqual(
      expect.objectContaining({ action: 'model.import', target: 'audited/model:v1', outcome: 'ok' }),
    );
    expect(entries).toContainEqual(
      expect.objectContaining({ action: 'auth.failure', target: '/admin/models', outcome: 'denied' }),
    );
    expect(listed.text).not.toContain(adminKey);
    expect(listed.text).not.toContain(wrongKey);
    const verified = await send({ method: 'GET', path: '/admin/audit/verify' });
    expect(verified.body).toMatchObject({ ok: true });
  });
});
