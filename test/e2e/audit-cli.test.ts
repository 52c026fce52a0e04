import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/control/audit-log.js';
import { openStore } from '../../src/store/database.js';
import { runCli } from '../support/cli.js';

let directory: string;
let path: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-audit-cli-'));
  path = join(directory, 'switchyard.db');
  const store = await openStore(path);
  const audit = new AuditLog(store.db);
  for (const target of ['a:latest', 'b:latest', 'c:latest']) {
    await audit.append({ actor: 'admin', action: 'model.delete', target, outcome: 'ok' });
  }
  await store.close();
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function tamper(statement: string) {
  const store = await openStore(path);
  await sql.raw(statement).execute(store.db);
  await store.close();
}

describe('switchyard audit verify', () => {
  it('exits 0 and counts the entries of an intact log', async () => {
    expect(await runCli(['audit', 'verify', '--store', path])).toMatchObject({
      code: 0,
      stdout: 'audit log verified: 3 entries\n',
    });
  });

  it('finds the store under SWITCHYARD_DATA_DIR by default', async () => {
    expect(await runCli(['audit', 'verify'], { SWITCHYARD_DATA_DIR: directory })).toMatchObject({ code: 0 });
  });

  it('exits 1 naming the first broken entry', async () => {
    await tamper("update audit_log set target = 'z:latest' where seq = 2");
    expect(await runCli(['audit', 'verify', '--store', path])).toMatchObject({
      code: 1,
      stdout: 'audit log broken at entry 2: its contents do not match its hash: it was edited or moved\n',
    });
  });

  it('exits 1 when there is no store at the path, rather than creating one', async () => {
    const result = await runCli(['audit', 'verify', '--store', join(directory, 'absent.db')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('there is no store at');
  });

  it('exits 2 on an unknown subcommand', async () => {
    expect((await runCli(['audit', 'list'])).code).toBe(2);
  });
});
