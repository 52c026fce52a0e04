import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors/index.js';
import { openStore, type Store } from '../store/database.js';
import { hashApiKey } from './api-keys.js';
import { KeyStore } from './key-store.js';

const start = Date.parse('2030-01-01T00:00:00Z');
let clock = start;
let store: Store;
let keys: KeyStore;

beforeEach(async () => {
  clock = start;
  store = await openStore(':memory:');
  keys = new KeyStore(store.db, { now: () => clock });
});

afterEach(async () => {
  await store.close();
});

async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(GatewayError);
  return error as GatewayError;
}

describe('keys in the store', () => {
  it('keeps the hash and prefix of a new key, and resolves its team by name', async () => {
    const search = await keys.createTeam({ name: 'search', models: ['openai/*'] });
    const { key, record } = await keys.createKey({
      team: 'search',
      models: ['openai/gpt-4o'],
      limits: { rpm: 60 },
      budget: { amount: 50, period: 'month', soft: 40 },
      expiresAt: start + 86_400_000,
    });
    expect(record).toMatchObject({
      hash: hashApiKey(key),
      prefix: key.slice(0, 12),
      teamId: search.id,
      priority: 'normal',
      createdAt: start,
      expiresAt: start + 86_400_000,
      revokedAt: undefined,
    });
    expect(await keys.getKey(record.id)).toEqual(record);
  });

  it('compiles a table that authenticates the key with its team', async () => {
    const search = await keys.createTeam({ name: 'search' });
    const { key } = await keys.createKey({ team: search.id });
    const table = await keys.table();
    expect(table.authenticate(key, clock)).toMatchObject({ team: { name: 'search' } });
  });

  it('rotates a key: the new one works at once, the old one until its grace period ends', async () => {
    const { key: old, record } = await keys.createKey({ name: 'ci', tags: ['ci'] });
    clock += 1000;
    const rotated = await keys.rotateKey(record.id, 3_600_000);
    expect(rotated.record).toMatchObject({
      name: 'ci',
      tags: ['ci'],
      rotatedFrom: record.id,
      createdAt: clock,
    });
    expect(rotated.previous.after.revokedAt).toBe(clock + 3_600_000);
    const table = await keys.table();
    expect(typeof table.authenticate(rotated.key, clock)).toBe('object');
    expect(typeof table.authenticate(old, clock + 3_599_999)).toBe('object');
    expect(table.authenticate(old, clock + 3_600_000)).toBe('revoked');
  });

  it('revokes at once, keeping the first revocation time', async () => {
    const { key, record } = await keys.createKey({});
    const { after } = await keys.revokeKey(record.id);
    expect(after.revokedAt).toBe(clock);
    clock += 5000;
    expect((await keys.revokeKey(record.id)).after.revokedAt).toBe(start);
    expect((await keys.table()).authenticate(key, clock)).toBe('revoked');
    expect((await failure(keys.rotateKey(record.id, 0))).param).toBe('id');
  });

  it('drops keys revoked more than a week ago from the table', async () => {
    const { key, record } = await keys.createKey({});
    await keys.revokeKey(record.id);
    clock += 8 * 86_400_000;
    const table = await keys.table();
    expect(table.size).toBe(0);
    expect(table.authenticate(key, clock)).toBe('unknown');
  });

  it('updates what PATCH may change: null clears, absent keeps', async () => {
    const { record } = await keys.createKey({
      limits: { rpm: 10, tpm: 1000 },
      budget: { amount: 5, period: 'day' },
    });
    const { before, after } = await keys.updateKey(record.id, {
      limits: { rpm: null },
      budget: null,
      priority: 'high',
    });
    expect(before.limits).toEqual({ rpm: 10, tpm: 1000 });
    expect(after).toMatchObject({ limits: { tpm: 1000 }, budget: undefined, priority: 'high' });
    expect(after.limits.rpm).toBeUndefined();
  });

  it('refuses bad values, naming the field', async () => {
    const cases: [Parameters<KeyStore['createKey']>[0], string][] = [
      [{ limits: { rpm: 0 } }, 'rpm'],
      [{ limits: { tpm: 1.5 } }, 'tpm'],
      [{ budget: { amount: 0, period: 'month' } }, 'budget.amount'],
      [{ budget: { amount: 10, period: 'year' as never } }, 'budget.period'],
      [{ budget: { amount: 10, period: 'month', soft: 10 } }, 'budget.soft'],
      [{ priority: 'urgent' as never }, 'priority'],
      [{ models: ['gpt 4o'] }, 'models'],
      [{ models: [''] }, 'models'],
      [{ expiresAt: start - 1 }, 'expires_at'],
      [{ team: 'nobody' }, 'team'],
      [{ user: 'nobody' }, 'user'],
    ];
    for (const [input, param] of cases) {
      const error = await failure(keys.createKey(input));
      expect({ code: error.code, param: error.param }).toEqual({ code: 'invalid_field', param });
    }
    expect(await keys.listKeys()).toEqual([]);
  });

  it('answers not_found for an unknown id', async () => {
    for (const attempt of [keys.getKey('key_x'), keys.revokeKey('key_x'), keys.updateKey('key_x', {})]) {
      expect((await failure(attempt)).code).toBe('not_found');
    }
  });
});

describe('teams and users in the store', () => {
  it('keeps team names unique', async () => {
    await keys.createTeam({ name: 'search' });
    const other = await keys.createTeam({ name: 'ads' });
    expect((await failure(keys.createTeam({ name: 'search' }))).param).toBe('name');
    expect((await failure(keys.updateTeam(other.id, { name: 'search' }))).param).toBe('name');
  });

  it('will not delete a team that still has a live key or a user', async () => {
    const search = await keys.createTeam({ name: 'search' });
    const { record } = await keys.createKey({ team: 'search' });
    const user = await keys.createUser({ name: 'ana@example.com', role: 'developer', team: 'search' });
    expect((await failure(keys.deleteTeam('search'))).message).toContain('1 unrevoked key(s) and 1 user(s)');
    await keys.revokeKey(record.id);
    await keys.updateUser(user.id, { team: null });
    expect(await keys.deleteTeam('search')).toEqual(search);
    expect((await failure(keys.getTeam(search.id))).code).toBe('not_found');
  });

  it('keeps users with a role and a team', async () => {
    await keys.createTeam({ name: 'search' });
    const user = await keys.createUser({ name: 'ana@example.com', role: 'viewer', team: 'search' });
    expect((await failure(keys.createUser({ name: 'bo', role: 'root' as never }))).param).toBe('role');
    expect((await failure(keys.createUser({ name: 'ana@example.com', role: 'admin' }))).param).toBe('name');
    const { after } = await keys.updateUser('ana@example.com', { role: 'operator' });
    expect(after).toMatchObject({ id: user.id, role: 'operator', teamId: user.teamId });
    expect(await keys.listUsers()).toEqual([after]);
    expect(await keys.findUser('ana@example.com')).toEqual(after);
    expect(await keys.findUser(user.id)).toBeUndefined();
    await keys.deleteUser(user.id);
    expect(await keys.listUsers()).toEqual([]);
  });
});
