import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { registerAdminApi } from '../../src/control/admin-api.js';
import { AuditLog } from '../../src/control/audit-log.js';
import { createDemoModel } from '../../src/runner/gguf/index.js';
import { inspectGguf } from '../../src/runner/model-inspector.js';
import { ModelStore } from '../../src/runner/store/index.js';
import { openStore, type Store } from '../../src/store/database.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { adminApiOptions } from '../support/admin.js';

const adminKey = 'test-admin-key-audit-9c41e07b';
const wrongKey = 'test-admin-key-wrong-audit-1111';

let directory: string;
let modelFile: string;
let store: Store;
let audit: AuditLog;
/** The admin API with a key and the audit log. */
let app: FastifyInstance;
/** The admin API with no key (closed), same audit log. */
let closed: FastifyInstance;
let reloadFails = false;

function adminApp(key: string | undefined, models: ModelStore): FastifyInstance {
  const instance = Fastify();
  registerAdminApi(instance, {
    key,
    modelStore: async () => models,
    runner: undefined,
    routing: {
      deployments: () => [],
      reload: async () => {
        if (reloadFails)
          throw new ConfigError([{ path: 'models', message: 'is wrong' }] as never, 'switchyard.yaml');
        return { models: 1 };
      },
    },
    logger: createLogger('silent'),
    audit,
  });
  return instance;
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-audit-'));
  modelFile = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 7, path: modelFile });
  store = await openStore(join(directory, 'switchyard.db'));
  audit = new AuditLog(store.db);
  const models = new ModelStore({ root: join(directory, 'models'), inspect: inspectGguf });
  app = adminApp(adminKey, models);
  closed = adminApp(undefined, models);
  await app.ready();
  await closed.ready();
});

afterAll(async () => {
  await app?.close();
  await closed?.close();
  await store?.close();
  await rm(directory, { recursive: true, force: true });
});

async function send(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { body?: unknown; key?: string | null; on?: FastifyInstance } = {},
) {
  const key = options.key === undefined ? adminKey : options.key;
  const response = await (options.on ?? app).inject({
    method,
    url,
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
  return { status: response.statusCode, body: response.json() as any };
}

async function lastEntry() {
  const { body } = await send('GET', '/admin/audit?limit=1000');
  return body.data.at(-1);
}

describe('the audit log records admin actions', () => {
  it('records an import, a pull and a delete with actor, action, target, source and outcome', async () => {
    expect(
      (await send('POST', '/admin/models/import', { body: { path: modelFile, name: 'audit/imported:v1' } }))
        .status,
    ).toBe(201);
    expect(await lastEntry()).toMatchObject({
      actor: 'admin',
      action: 'model.import',
      target: 'audit/imported:v1',
      after: { digest: expect.stringMatching(/^sha256:/), source: modelFile },
      source: '127.0.0.1',
      request_id: expect.any(String),
      outcome: 'ok',
    });

    expect(
      (await send('POST', '/admin/models/pull', { body: { ref: modelFile, name: 'audit/pulled:v1' } }))
        .status,
    ).toBe(201);
    expect(await lastEntry()).toMatchObject({
      action: 'model.pull',
      target: 'audit/pulled:v1',
      outcome: 'ok',
    });

    expect((await send('DELETE', '/admin/models/audit/pulled:v1')).status).toBe(200);
    expect(await lastEntry()).toMatchObject({
      action: 'model.delete',
      target: 'audit/pulled:v1',
      before: { digest: expect.stringMatching(/^sha256:/) },
      after: { blob_removed: false },
      outcome: 'ok',
    });
  });

  it('records a failed action as failed, with its error code', async () => {
    expect((await send('DELETE', '/admin/models/audit/absent:v1')).status).toBe(404);
    expect(await lastEntry()).toMatchObject({
      action: 'model.delete',
      target: 'audit/absent:v1',
      after: { error: 'model_not_found' },
      outcome: 'failed',
    });
  });

  it('records config reloads, good and bad', async () => {
    reloadFails = false;
    expect((await send('POST', '/admin/config/reload')).status).toBe(200);
    expect(await lastEntry()).toMatchObject({
      action: 'config.reload',
      before: { models: [] },
      after: { models: [] },
      outcome: 'ok',
    });
    reloadFails = true;
    expect((await send('POST', '/admin/config/reload')).status).toBe(422);
    expect(await lastEntry()).toMatchObject({
      action: 'config.reload',
      after: { error: 'invalid_config' },
      outcome: 'failed',
    });
    reloadFails = false;
  });

  it('records refused requests as denied auth failures, without the key that was sent', async () => {
    expect((await send('DELETE', '/admin/models/audit/imported:v1', { key: wrongKey })).status).toBe(401);
    expect(await lastEntry()).toMatchObject({
      actor: 'anonymous',
      action: 'auth.failure',
      target: '/admin/models/audit/imported:v1',
      after: { method: 'DELETE', reason: 'wrong key' },
      source: '127.0.0.1',
      outcome: 'denied',
    });
    expect((await send('GET', '/admin/audit', { key: null })).status).toBe(401);
    expect(await lastEntry()).toMatchObject({ action: 'auth.failure', after: { reason: 'no bearer key' } });
    expect((await send('GET', '/admin/models', { key: null, on: closed })).status).toBe(403);
    expect(await lastEntry()).toMatchObject({
      action: 'auth.failure',
      after: { reason: 'admin disabled' },
      outcome: 'denied',
    });
  });

  it('never stores a key in any row', async () => {
    const rows = await store.db.selectFrom('audit_log').selectAll().execute();
    expect(rows.length).toBeGreaterThan(5);
    const text = JSON.stringify(rows);
    expect(text).not.toContain(adminKey);
    expect(text).not.toContain(wrongKey);
  });

  it('does not record reads', async () => {
    const before = (await send('GET', '/admin/audit?limit=1000')).body.data.length;
    await send('GET', '/admin/models');
    await send('GET', '/admin/audit/verify');
    expect((await send('GET', '/admin/audit?limit=1000')).body.data.length).toBe(before);
  });
});

describe('GET /admin/audit', () => {
  it('pages by seq', async () => {
    const all = (await send('GET', '/admin/audit?limit=1000')).body;
    expect(all).toMatchObject({ object: 'list', has_more: false });
    const page = (await send('GET', '/admin/audit?since=1&limit=2')).body;
    expect(page.data.map((entry: { seq: number }) => entry.seq)).toEqual([2, 3]);
    expect(page.has_more).toBe(true);
  });

  it('refuses a bad since or limit, naming it', async () => {
    expect(await send('GET', '/admin/audit?since=-1')).toMatchObject({
      status: 400,
      body: { error: { param: 'since' } },
    });
    expect(await send('GET', '/admin/audit?limit=0')).toMatchObject({
      status: 400,
      body: { error: { param: 'limit' } },
    });
  });

  it('verifies the chain, and reports an edited entry with 200', async () => {
    const { body } = await send('GET', '/admin/audit/verify');
    expect(body).toMatchObject({ ok: true, entries: expect.any(Number) });
    await store.db.updateTable('audit_log').set({ actor: 'nobody' }).where('seq', '=', 2).execute();
    expect(await send('GET', '/admin/audit/verify')).toMatchObject({
      status: 200,
      body: { ok: false, seq: 2, problem: expect.stringContaining('edited') },
    });
  });
});

describe('without an audit log', () => {
  it('serves the admin API and has no /admin/audit', async () => {
    const bare = Fastify();
    registerAdminApi(
      bare,
      adminApiOptions({
        key: adminKey,
        modelStore: async () => new ModelStore({ root: join(directory, 'models') }),
      }),
    );
    expect((await send('GET', '/admin/models', { on: bare })).status).toBe(200);
    expect((await send('GET', '/admin/models', { on: bare, key: wrongKey })).status).toBe(401);
    expect((await send('GET', '/admin/audit', { on: bare })).status).toBe(404);
    await bare.close();
  });
});
