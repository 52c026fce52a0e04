import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/auth/key-store.js';
import { registerAdminApi } from '../../src/control/admin-api.js';
import { AuditLog } from '../../src/control/audit-log.js';
import { openStore, type Store } from '../../src/store/database.js';
import { adminApiOptions } from '../support/admin.js';
import { runCli } from '../support/cli.js';

const adminKey = 'test-admin-key-keys-cli-71f3a2';

let directory: string;
let store: Store;
let keys: KeyStore;
let app: FastifyInstance;
let env: NodeJS.ProcessEnv;

// The admin API with keys, as a gateway serves it, on a loopback port the built CLI talks to.
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-keys-cli-'));
  store = await openStore(join(directory, 'switchyard.db'));
  keys = new KeyStore(store.db);
  app = Fastify();
  registerAdminApi(
    app,
    adminApiOptions({
      key: adminKey,
      audit: new AuditLog(store.db),
      keys: { store: keys, changed: () => {} },
    }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  env = {
    SWITCHYARD_URL: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    SWITCHYARD_ADMIN_KEY: adminKey,
  };
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('switchyard keys, teams and users', () => {
  let key: string;

  it('creates a team, then a key in it, printing the key once', async () => {
    expect(await runCli(['teams', 'create', 'search', '--models', 'gpt-4o,local/*'], env)).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^created team search \(team_/),
    });
    const created = await runCli(
      [
        'keys',
        'create',
        '--team',
        'search',
        '--models',
        'gpt-4o,local/*',
        '--rpm',
        '60',
        '--tpm',
        '100000',
        '--budget',
        '50/month',
        '--soft-budget',
        '40',
        '--expires',
        '30d',
        '--name',
        'ci',
      ],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('will not be shown again');
    key = /^\s+(sk-sy-[A-Za-z0-9_-]{43})$/m.exec(created.stdout)![1]!;
    const table = await keys.table();
    expect(table.authenticate(key, Date.now())).toMatchObject({
      key: {
        name: 'ci',
        limits: { rpm: 60, tpm: 100000 },
        budget: { amount: 50, period: 'month', soft: 40 },
      },
      team: { name: 'search' },
    });
  });

  it('lists the key by its prefix and team, never the key itself', async () => {
    const listed = await runCli(['keys', 'ls'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, row] = listed.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+PREFIX\s+TEAM\s+MODELS\s+LIMITS\s+BUDGET\s+EXPIRES\s+STATUS$/);
    expect(row).toContain(`${key.slice(0, 12)}…`);
    expect(row).toMatch(
      /ci\s+.*search\s+gpt-4o,local\/\*\s+60 rpm, 100000 tpm\s+\$50\/month \(alert at \$40\)/,
    );
    expect(row).toMatch(/active$/);
    expect(listed.stdout).not.toContain(key);

    const json = await runCli(['keys', 'ls', '--team', 'search', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject([
      { name: 'ci', prefix: key.slice(0, 12), status: 'active' },
    ]);
  });

  it('adds and lists a user', async () => {
    expect(
      (await runCli(['users', 'create', 'ana@example.com', '--role', 'developer', '--team', 'search'], env))
        .code,
    ).toBe(0);
    expect((await runCli(['users', 'ls'], env)).stdout).toMatch(/ana@example\.com\s+developer\s+search/);
  });

  it('says what the gateway refused, and exits 1', async () => {
    const refused = await runCli(['keys', 'create', '--team', 'nobody'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('There is no team "nobody"');
    const wrongKey = await runCli(['keys', 'ls'], { ...env, SWITCHYARD_ADMIN_KEY: 'not-the-key' });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain('401');
  });

  it('exits 2 on a bad command line or without an admin key', async () => {
    expect((await runCli(['keys'], env)).code).toBe(2);
    expect((await runCli(['keys', 'create', '--budget', 'lots'], env)).code).toBe(2);
    const keyless = await runCli(['keys', 'ls'], { SWITCHYARD_URL: env.SWITCHYARD_URL });
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toContain('SWITCHYARD_ADMIN_KEY');
  });
});
