import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyTable } from '../../src/auth/api-keys.js';
import { KeyStore } from '../../src/auth/key-store.js';
import { registerAdminApi } from '../../src/control/admin-api.js';
import type { AdminPrincipal } from '../../src/control/admin-auth.js';
import { AuditLog } from '../../src/control/audit-log.js';
import { openStore, type Store } from '../../src/store/database.js';
import { adminApiOptions } from '../support/admin.js';

const adminKey = 'test-admin-key-keys-4be1c0d97a';

/**
 * The control plane as the gateway runs it: the admin API on a loopback listener over the store
 * file, with the audit log and the key routes, recompiling the data plane's key table after each
 * change as `changed` asks. Stopped and started again on the same file, it is a restart.
 */
interface ControlPlane {
  readonly url: string;
  readonly store: Store;
  /** How many times `changed` was called. */
  readonly changes: () => number;
  /** The key table as last recompiled. */
  readonly table: () => Promise<KeyTable>;
  stop(): Promise<void>;
}

/**
 * Who the admin API takes the caller for, when a test says: set after the authorisation stage,
 * as a single-sign-on token's subject would be.
 */
let principal: AdminPrincipal | undefined;

async function startControlPlane(path: string): Promise<ControlPlane> {
  const store = await openStore(path);
  const keys = new KeyStore(store.db);
  let compiled = keys.table();
  let changes = 0;
  const app: FastifyInstance = Fastify();
  registerAdminApi(
    app,
    adminApiOptions({
      key: adminKey,
      audit: new AuditLog(store.db),
      keys: {
        store: keys,
        changed: () => {
          changes++;
          compiled = keys.table();
        },
      },
    }),
  );
  app.addHook('preHandler', (request, _reply, done) => {
    if (principal !== undefined) request.adminPrincipal = principal;
    done();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    store,
    changes: () => changes,
    table: () => compiled,
    async stop() {
      await app.close();
      await store.close();
    },
  };
}

let directory: string;
let storePath: string;
let plane: ControlPlane;
/** Every key text handed out in this file, to look for in the database. */
const issued: string[] = [];
/** A key left live to the end, to find again after the restart. */
let liveKey: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-keys-'));
  storePath = join(directory, 'switchyard.db');
  plane = await startControlPlane(storePath);
});

afterAll(async () => {
  await plane?.stop();
  await rm(directory, { recursive: true, force: true });
});

async function send(method: string, path: string, body?: unknown, key: string | null = adminKey) {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${plane.url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as any, text };
}

async function auditEntries(): Promise<any[]> {
  return (await send('GET', '/admin/audit?limit=1000')).body.data;
}

describe("a key's lifecycle", () => {
  let team: any;
  let created: any;
  let rotated: any;

  it('creates a team and a key in it, showing the key once with its record but never its hash', async () => {
    const teamAnswer = await send('POST', '/admin/teams', {
      name: 'search',
      models: ['openai/*', 'local/*'],
    });
    expect(teamAnswer.status, teamAnswer.text).toBe(201);
    team = teamAnswer.body;
    expect(team).toMatchObject({ object: 'team', id: expect.stringMatching(/^team_/), name: 'search' });

    const before = Date.now();
    const answer = await send('POST', '/admin/keys', {
      name: 'ci',
      team: 'search',
      models: ['local/*'],
      rpm: 60,
      tpm: 100000,
      budget: { amount: 50, period: 'month', soft: 40 },
      priority: 'high',
      metadata: { owner: 'search-infra' },
      tags: ['ci'],
      expires_in: '30d',
    });
    expect(answer.status, answer.text).toBe(201);
    created = answer.body;
    issued.push(created.key);
    expect(created).toMatchObject({
      object: 'api_key',
      key: expect.stringMatching(/^sk-sy-[A-Za-z0-9_-]{43}$/),
      id: expect.stringMatching(/^key_/),
      name: 'ci',
      status: 'active',
      team_id: team.id,
      user_id: null,
      models: ['local/*'],
      rpm: 60,
      tpm: 100000,
      budget: { amount: 50, period: 'month', soft: 40 },
      priority: 'high',
      metadata: { owner: 'search-infra' },
      tags: ['ci'],
      revoked_at: null,
      rotated_from: null,
    });
    expect(created.prefix).toBe(created.key.slice(0, 12));
    expect(created).not.toHaveProperty('hash');
    const expires = Date.parse(created.expires_at) - before;
    expect(expires).toBeGreaterThanOrEqual(30 * 86_400_000 - 5000);
    expect(expires).toBeLessThanOrEqual(30 * 86_400_000 + 5000);
  });

  it('recompiles the key table, which then knows the key and its team', async () => {
    const result = (await plane.table()).authenticate(created.key, Date.now());
    expect(result).toMatchObject({ key: { id: created.id, priority: 'high' }, team: { name: 'search' } });
  });

  it('lists and shows the key without the key itself, by team too', async () => {
    const list = await send('GET', '/admin/keys');
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ object: 'list', data: [{ id: created.id, prefix: created.prefix }] });
    expect(list.text).not.toContain(created.key);
    for (const field of ['key', 'hash']) expect(list.body.data[0]).not.toHaveProperty(field);

    expect((await send('GET', '/admin/keys?team=search')).body.data).toHaveLength(1);
    expect((await send('GET', `/admin/keys?team=${team.id}`)).body.data).toHaveLength(1);
    await send('POST', '/admin/teams', { name: 'ads' });
    expect((await send('GET', '/admin/keys?team=ads')).body.data).toEqual([]);

    const shown = await send('GET', `/admin/keys/${created.id}`);
    const { key: _key, ...record } = created;
    expect(shown).toMatchObject({ status: 200, body: record });
  });

  it('updates limits, budget and name; null clears', async () => {
    const answer = await send('PATCH', `/admin/keys/${created.id}`, {
      rpm: 120,
      budget: null,
      name: 'ci-main',
    });
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body).toMatchObject({
      id: created.id,
      rpm: 120,
      tpm: 100000,
      budget: null,
      name: 'ci-main',
    });
  });

  it('rotates with a grace period: both keys work, the old one only until the grace ends', async () => {
    const answer = await send('POST', `/admin/keys/${created.id}/rotate`, { grace: '1h' });
    expect(answer.status, answer.text).toBe(201);
    rotated = answer.body;
    issued.push(rotated.key);
    expect(rotated.key).not.toBe(created.key);
    expect(rotated).toMatchObject({
      object: 'api_key',
      status: 'active',
      name: 'ci-main',
      rpm: 120,
      models: ['local/*'],
      team_id: team.id,
      rotated_from: created.id,
      expires_at: created.expires_at,
      previous: { id: created.id, status: 'rotating' },
    });
    const graceEnds = Date.parse(rotated.previous.revoked_at);
    expect(graceEnds - Date.now()).toBeGreaterThan(3_590_000);
    expect(graceEnds - Date.now()).toBeLessThanOrEqual(3_600_000);

    const table = await plane.table();
    expect(table.authenticate(rotated.key, Date.now())).toMatchObject({ key: { id: rotated.id } });
    expect(table.authenticate(created.key, Date.now())).toMatchObject({ key: { id: created.id } });
    expect(table.authenticate(created.key, graceEnds)).toBe('revoked');
  });

  it('revokes with DELETE, answering the record; the key is refused from then on', async () => {
    const answer = await send('DELETE', `/admin/keys/${rotated.id}`);
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body).toMatchObject({ id: rotated.id, status: 'revoked', revoked_at: expect.any(String) });
    expect((await plane.table()).authenticate(rotated.key, Date.now())).toBe('revoked');
    expect((await send('POST', `/admin/keys/${rotated.id}/rotate`)).body.error).toMatchObject({
      code: 'invalid_field',
      param: 'id',
    });
  });

  it('audits every change, with the prefix but never the key or its hash, and the chain verifies', async () => {
    const entries = await auditEntries();
    const actions = entries.filter((entry) => entry.outcome === 'ok').map((entry) => entry.action);
    expect(actions).toEqual([
      'team.create',
      'key.create',
      'team.create',
      'key.update',
      'key.rotate',
      'key.revoke',
    ]);
    expect(entries.find((entry) => entry.action === 'key.create')).toMatchObject({
      actor: 'admin',
      target: created.id,
      after: { prefix: created.prefix, team_id: team.id },
    });
    expect(entries.find((entry) => entry.action === 'key.rotate')).toMatchObject({
      target: created.id,
      before: { status: 'active' },
      after: { previous: { status: 'rotating' }, new: { id: rotated.id }, grace_seconds: 3600 },
    });
    const text = JSON.stringify(entries);
    for (const key of issued) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(createHash('sha256').update(key).digest('hex'));
    }
    expect((await send('GET', '/admin/audit/verify')).body).toMatchObject({ ok: true });
  });

  it('records a refused change as failed, and does not recompile for it', async () => {
    const changes = plane.changes();
    expect((await send('DELETE', '/admin/keys/key_absent')).status).toBe(404);
    expect((await auditEntries()).at(-1)).toMatchObject({
      action: 'key.revoke',
      target: 'key_absent',
      after: { error: 'not_found' },
      outcome: 'failed',
    });
    await send('GET', '/admin/keys');
    expect(plane.changes()).toBe(changes);
  });
});

describe('only hashes in the database', () => {
  it('stores no key text in any column of api_keys, only its sha256 and prefix', async () => {
    const extra = await send('POST', '/admin/keys', { name: 'plain' });
    issued.push(extra.body.key);
    liveKey = extra.body.key;
    const { rows } = await sql<Record<string, unknown>>`select * from api_keys`.execute(plane.store.db);
    expect(rows.length).toBe(3);
    for (const key of issued) {
      const row = rows.find((candidate) => candidate.prefix === key.slice(0, 12))!;
      expect(row.hash).toBe(createHash('sha256').update(key).digest('hex'));
      for (const [column, value] of Object.entries(row)) {
        // The prefix holds the key's first 12 characters; no column holds more of it.
        expect(String(value), column).not.toContain(key);
        expect(String(value), column).not.toContain(key.slice(6, 20));
        expect(String(value), column).not.toContain(key.slice(-16));
      }
    }
  });
});

describe('teams', () => {
  it('creates, shows by id or name, renames and deletes a team, with unique names', async () => {
    const created = await send('POST', '/admin/teams', {
      name: 'research',
      models: ['gpt-4o'],
      rpm: 600,
      budget: { amount: 500, period: 'week' },
      metadata: { cost_centre: '42' },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ name: 'research', rpm: 600, tpm: null, budget: { amount: 500 } });
    expect((await send('GET', '/admin/teams/research')).body.id).toBe(created.body.id);
    expect((await send('GET', `/admin/teams/${created.body.id}`)).body.name).toBe('research');
    expect((await send('GET', '/admin/teams')).body.data.map((team: any) => team.name)).toContain('research');

    expect(await send('POST', '/admin/teams', { name: 'research' })).toMatchObject({
      status: 400,
      body: { error: { code: 'invalid_field', param: 'name' } },
    });
    const renamed = await send('PATCH', '/admin/teams/research', { name: 'research-2', tpm: 5000 });
    expect(renamed.body).toMatchObject({ id: created.body.id, name: 'research-2', rpm: 600, tpm: 5000 });

    const deleted = await send('DELETE', `/admin/teams/${created.body.id}`);
    expect(deleted).toMatchObject({ status: 200, body: { id: created.body.id, deleted: true } });
    expect((await send('GET', `/admin/teams/${created.body.id}`)).status).toBe(404);
  });

  it('will not delete a team that still has an unrevoked key', async () => {
    const answer = await send('DELETE', '/admin/teams/search');
    expect(answer).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', param: 'id' } } });
    expect(answer.body.error.message).toContain('unrevoked key');
  });
});

describe('users', () => {
  it('creates, shows, changes and deletes a user with a role and a team', async () => {
    const created = await send('POST', '/admin/users', {
      name: 'ana@example.com',
      role: 'developer',
      team: 'ads',
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ object: 'user', name: 'ana@example.com', role: 'developer' });
    expect(created.body.team_id).toMatch(/^team_/);
    expect((await send('GET', '/admin/users/ana@example.com')).body.id).toBe(created.body.id);
    expect((await send('GET', '/admin/users')).body.data).toHaveLength(1);

    const changed = await send('PATCH', `/admin/users/${created.body.id}`, { role: 'operator', team: null });
    expect(changed.body).toMatchObject({ role: 'operator', team_id: null });

    expect((await send('DELETE', `/admin/users/${created.body.id}`)).status).toBe(200);
    expect((await send('GET', `/admin/users/${created.body.id}`)).status).toBe(404);
    expect((await auditEntries()).map((entry) => entry.action)).toEqual(
      expect.arrayContaining(['user.create', 'user.update', 'user.delete', 'team.update', 'team.delete']),
    );
  });

  it('refuses a role that is not one of the roles', async () => {
    expect(await send('POST', '/admin/users', { name: 'bo', role: 'root' })).toMatchObject({
      status: 400,
      body: { error: { code: 'invalid_field', param: 'role' } },
    });
    expect(await send('POST', '/admin/users', { name: 'bo' })).toMatchObject({
      status: 400,
      body: { error: { code: 'missing_field', param: 'role' } },
    });
  });
});

describe("a developer's reach", () => {
  const developer = (team: string | undefined): AdminPrincipal => ({
    actor: 'oidc:dev',
    role: 'developer',
    team,
    scope: 'team',
  });

  it("lists, shows, creates and revokes only the developer's own team's keys", async () => {
    const ads = (await send('POST', '/admin/keys', { team: 'ads', name: 'ads-key' })).body;
    issued.push(ads.key);
    try {
      principal = developer('search');
      const listed = (await send('GET', '/admin/keys')).body.data;
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.every((key: any) => key.team_id === listed[0].team_id && key.team_id !== null)).toBe(
        true,
      );
      expect(listed.map((key: any) => key.id)).not.toContain(ads.id);
      expect((await send('GET', '/admin/keys?team=ads')).body.error.code).toBe('forbidden');

      for (const [method, path] of [
        ['GET', `/admin/keys/${ads.id}`],
        ['DELETE', `/admin/keys/${ads.id}`],
        ['POST', `/admin/keys/${ads.id}/rotate`],
      ] as const) {
        expect((await send(method, path)).body.error.code).toBe('not_found');
      }

      const own = await send('POST', '/admin/keys', { name: 'dev-key' });
      expect(own.status, own.text).toBe(201);
      issued.push(own.body.key);
      expect(own.body.team_id).toBe(listed[0].team_id);
      expect((await send('DELETE', `/admin/keys/${own.body.id}`)).body.status).toBe('revoked');
      expect(await send('POST', '/admin/keys', { team: 'ads' })).toMatchObject({
        status: 403,
        body: { error: { code: 'forbidden', param: 'team' } },
      });

      principal = developer(undefined);
      expect((await send('GET', '/admin/keys')).body.error.code).toBe('forbidden');
    } finally {
      principal = undefined;
    }
    expect((await send('GET', `/admin/keys/${ads.id}`)).body.status).toBe('active');
  });
});

describe('mistakes', () => {
  it.each([
    ['GET', '/admin/keys/key_nope'],
    ['PATCH', '/admin/keys/key_nope'],
    ['DELETE', '/admin/keys/key_nope'],
    ['POST', '/admin/keys/key_nope/rotate'],
    ['GET', '/admin/teams/nope'],
    ['PATCH', '/admin/teams/nope'],
    ['DELETE', '/admin/teams/nope'],
    ['GET', '/admin/users/nope'],
    ['PATCH', '/admin/users/nope'],
    ['DELETE', '/admin/users/nope'],
  ])('%s %s answers 404 not_found', async (method, path) => {
    const answer = await send(method, path, method === 'PATCH' ? {} : undefined);
    expect(answer).toMatchObject({
      status: 404,
      body: { error: { code: 'not_found', type: 'not_found_error' } },
    });
  });

  it.each([
    [{ rpm: '60' }, 'rpm'],
    [{ rpm: 0 }, 'rpm'],
    [{ models: 'gpt-4o' }, 'models'],
    [{ budget: { amount: -1, period: 'month' } }, 'budget.amount'],
    [{ budget: { amount: 10, period: 'year' } }, 'budget.period'],
    [{ budget: { amount: 10, period: 'day', soft: 20 } }, 'budget.soft'],
    [{ budget: { amount: 10, period: 'day', hard: true } }, 'budget.hard'],
    [{ priority: 'urgent' }, 'priority'],
    [{ expires_at: 'tomorrow' }, 'expires_at'],
    [{ expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
    [{ expires_in: 'soon' }, 'expires_in'],
    [{ expires_in: '1d', expires_at: '2100-01-01T00:00:00Z' }, 'expires_in'],
    [{ metadata: { owner: 7 } }, 'metadata'],
    [{ team: 'nobody' }, 'team'],
    [{ colour: 'blue' }, 'colour'],
  ])('POST /admin/keys %j answers 400 naming %s', async (body, param) => {
    const answer = await send('POST', '/admin/keys', body);
    expect(answer.status, answer.text).toBe(400);
    expect(answer.body.error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('refuses a bad grace and a team or user change on a key', async () => {
    const { body: key } = await send('GET', '/admin/keys');
    const id = key.data.at(-1).id;
    expect((await send('POST', `/admin/keys/${id}/rotate`, { grace: 'soon' })).body.error.param).toBe(
      'grace',
    );
    expect((await send('PATCH', `/admin/keys/${id}`, { team: 'ads' })).body.error.param).toBe('team');
  });

  it('needs the admin key', async () => {
    expect((await send('GET', '/admin/keys', undefined, null)).status).toBe(401);
    expect((await send('POST', '/admin/keys', {}, 'sk-sy-not-an-admin-key')).status).toBe(401);
  });
});

describe('a restart', () => {
  it('finds the keys, teams and users still there, and the live key still works', async () => {
    const before = (await send('GET', '/admin/keys')).body.data;
    const teams = (await send('GET', '/admin/teams')).body.data;
    await plane.stop();
    plane = await startControlPlane(storePath);
    expect((await send('GET', '/admin/keys')).body.data).toEqual(before);
    expect((await send('GET', '/admin/teams')).body.data).toEqual(teams);
    expect((await plane.table()).authenticate(liveKey, Date.now())).toMatchObject({ key: { name: 'plain' } });
    expect((await plane.table()).authenticate(issued[1]!, Date.now())).toBe('revoked');
    expect((await send('GET', '/admin/audit/verify')).body).toMatchObject({ ok: true });
  });
});

describe('without a key store', () => {
  it('has no key, team or user routes', async () => {
    const bare = Fastify();
    registerAdminApi(bare, adminApiOptions({ key: adminKey }));
    for (const url of ['/admin/keys', '/admin/teams', '/admin/users']) {
      const response = await bare.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${adminKey}` },
      });
      expect(response.statusCode).toBe(404);
    }
    await bare.close();
  });
});
