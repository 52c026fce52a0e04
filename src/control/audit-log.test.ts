import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../store/database.js';
import { AuditLog, genesisHash, verifyAuditChain, withoutSecrets } from './audit-log.js';

let directory: string;
let path: string;
let store: Store;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-audit-'));
  path = join(directory, 'switchyard.db');
  store = await openStore(path);
});

afterEach(async () => {
  await store.close();
  await rm(directory, { recursive: true, force: true });
});

const action = (n: number) => ({
  actor: 'admin',
  action: 'model.delete',
  target: `model-${n}:latest`,
  before: { digest: `sha256:${n}` },
  source: '127.0.0.1',
  requestId: `request-${n}`,
  outcome: 'ok' as const,
});

async function appendMany(log: AuditLog, count: number) {
  for (let n = 1; n <= count; n++) await log.append(action(n));
}

describe('the audit log', () => {
  it('chains each entry to the one before, starting from 64 zeros', async () => {
    const log = new AuditLog(store.db, { now: () => 1_700_000_000_000 });
    const first = await log.append(action(1));
    const second = await log.append(action(2));
    expect(first).toMatchObject({ seq: 1, at: 1_700_000_000_000, prev_hash: genesisHash });
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toMatchObject({ seq: 2, prev_hash: first.hash, before: { digest: 'sha256:2' } });
    expect(await log.list()).toEqual([first, second]);
    expect(await log.list({ since: 1 })).toEqual([second]);
    expect(await verifyAuditChain(store.db)).toEqual({ ok: true, entries: 2 });
  });

  it('continues the chain after the store is closed and opened again', async () => {
    await appendMany(new AuditLog(store.db), 2);
    await store.close();
    store = await openStore(path);
    const third = await new AuditLog(store.db).append(action(3));
    expect(third.seq).toBe(3);
    expect(await verifyAuditChain(store.db)).toEqual({ ok: true, entries: 3 });
  });

  it('keeps one chain when appends are made concurrently', async () => {
    const log = new AuditLog(store.db);
    const entries = await Promise.all(Array.from({ length: 25 }, (_, n) => log.append(action(n + 1))));
    expect(entries.map((entry) => entry.seq)).toEqual(Array.from({ length: 25 }, (_, n) => n + 1));
    expect(await verifyAuditChain(store.db)).toEqual({ ok: true, entries: 25 });
  });

  it('verifies an empty log', async () => {
    expect(await verifyAuditChain(store.db)).toEqual({ ok: true, entries: 0 });
  });

  it('removes keys, tokens and URL credentials from before and after', async () => {
    const entry = await new AuditLog(store.db).append({
      ...action(1),
      after: {
        api_key: 'sk-upstream-secret',
        nested: { authorization: 'Bearer admin-secret', kept: 1 },
        source: 'https://user:pass-secret@example.com/m.gguf?token=tok-secret&rev=main',
      },
    });
    expect(entry.after).toEqual({ nested: { kept: 1 }, source: 'https://example.com/m.gguf?rev=main' });
    const stored = await store.db.selectFrom('audit_log').select('after').executeTakeFirstOrThrow();
    expect(stored.after).not.toMatch(/secret/);
    expect(withoutSecrets('not a url: user:pass@host')).toBe('not a url: user:pass@host');
  });
});

describe('verifyAuditChain finds tampering', () => {
  beforeEach(async () => {
    await appendMany(new AuditLog(store.db), 5);
  });

  it('reports an edited entry', async () => {
    await sql`update audit_log set target = 'someone-else:latest' where seq = 3`.execute(store.db);
    expect(await verifyAuditChain(store.db)).toEqual({
      ok: false,
      seq: 3,
      problem: 'its contents do not match its hash: it was edited or moved',
    });
  });

  it('reports a deleted entry', async () => {
    await sql`delete from audit_log where seq = 2`.execute(store.db);
    expect(await verifyAuditChain(store.db)).toEqual({
      ok: false,
      seq: 3,
      problem: 'entry 2 is missing (deleted)',
    });
  });

  it('reports a deleted entry whose successors were renumbered to close the gap', async () => {
    await sql`delete from audit_log where seq = 2`.execute(store.db);
    await sql`update audit_log set seq = seq - 1 where seq > 2`.execute(store.db);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: false, seq: 2 });
  });

  it('reports the first entry deleted', async () => {
    await sql`delete from audit_log where seq = 1`.execute(store.db);
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      seq: 2,
      problem: 'entry 1 is missing (deleted)',
    });
  });

  it('reports two entries swapped', async () => {
    // Every column but seq exchanged between entries 2 and 4, hashes included.
    await sql`update audit_log set seq = 0 where seq = 2`.execute(store.db);
    await sql`update audit_log set seq = 2 where seq = 4`.execute(store.db);
    await sql`update audit_log set seq = 4 where seq = 0`.execute(store.db);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: false, seq: 2 });
  });
});
