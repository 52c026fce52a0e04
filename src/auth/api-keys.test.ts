import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  allowsModel,
  generateApiKey,
  hashApiKey,
  KeyTable,
  keyPrefix,
  matchesAny,
  matchesPattern,
} from './api-keys.js';
import type { ApiKey, Team } from './types.js';

const now = Date.parse('2030-01-01T00:00:00Z');

function fixedRandom(byte: number) {
  return (size: number) => Buffer.alloc(size, byte);
}

function storedKey(key: string, fields: Partial<ApiKey> = {}): ApiKey {
  const id = fields.id ?? `key_${key.slice(-4)}`;
  return {
    id,
    lineage: id,
    name: '',
    prefix: keyPrefix(key),
    hash: hashApiKey(key),
    teamId: undefined,
    userId: undefined,
    models: [],
    limits: {},
    budget: undefined,
    priority: 'normal',
    metadata: {},
    tags: [],
    createdAt: now - 1000,
    expiresAt: undefined,
    revokedAt: undefined,
    ...fields,
  };
}

function team(id: string, models: string[]): Team {
  return { id, name: id, models, limits: {}, budget: undefined, metadata: {}, createdAt: now - 1000 };
}

describe('generating a key', () => {
  it('is sk-sy- and 32 random bytes in base64url', () => {
    const { key } = generateApiKey();
    expect(key).toMatch(/^sk-sy-[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.slice(6), 'base64url')).toHaveLength(32);
  });

  it('takes its bytes from the random source it is given', () => {
    expect(generateApiKey(fixedRandom(0xff)).key).toBe(
      `sk-sy-${Buffer.alloc(32, 0xff).toString('base64url')}`,
    );
  });

  it('never gives the same key twice', () => {
    const keys = new Set(Array.from({ length: 100 }, () => generateApiKey().key));
    expect(keys.size).toBe(100);
  });

  it('stores the sha256 of the whole key in lowercase hex, and its first 12 characters', () => {
    const { key, hash, prefix } = generateApiKey();
    expect(hash).toBe(createHash('sha256').update(key).digest('hex'));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(prefix).toBe(key.slice(0, 12));
    expect(prefix.startsWith('sk-sy-')).toBe(true);
  });
});

describe('model patterns', () => {
  it.each([
    ['gpt-4o', 'gpt-4o', true],
    ['gpt-4o', 'gpt-4o-mini', false],
    ['gpt-4o', 'gpt-4', false],
    ['openai/*', 'openai/gpt-4o', true],
    ['openai/*', 'openai/ft:gpt-4o:org/custom', true],
    ['openai/*', 'anthropic/claude', false],
    ['openai/*', 'openai', false],
    ['local/*', 'local/qwen:0.5b', true],
    ['local/*', 'local/', true],
    ['*', 'anything/at:all', true],
    ['*', '', true],
    ['*-mini', 'gpt-4o-mini', true],
    ['*-mini', 'gpt-4o-mini-2024', false],
    ['gpt-*-mini', 'gpt-4o-mini', true],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'aXXbYY', false],
    ['a*b', 'ab', true],
    ['a*b', 'abab', true],
    ['a*b', 'abc', false],
    ['a**', 'a', true],
  ])('"%s" against "%s" is %s', (pattern, model, expected) => {
    expect(matchesPattern(pattern, model)).toBe(expected);
  });

  it('an empty list allows every model; otherwise one pattern must match', () => {
    expect(matchesAny([], 'whatever')).toBe(true);
    expect(matchesAny(['gpt-4o', 'local/*'], 'local/demo')).toBe(true);
    expect(matchesAny(['gpt-4o', 'local/*'], 'claude')).toBe(false);
  });
});

describe('which models a key may call', () => {
  const key = (models: string[], teamId?: string) => storedKey(generateApiKey().key, { models, teamId });

  it('a key with no patterns and no team may call every model', () => {
    expect(allowsModel(key([]), undefined, 'gpt-4o')).toBe(true);
  });

  it('a key may call only what its own patterns name', () => {
    expect(allowsModel(key(['gpt-4o', 'local/*']), undefined, 'local/qwen')).toBe(true);
    expect(allowsModel(key(['gpt-4o', 'local/*']), undefined, 'gpt-4o-mini')).toBe(false);
  });

  it("a key with no patterns gets exactly its team's models", () => {
    const search = team('search', ['openai/*']);
    expect(allowsModel(key([], 'search'), search, 'openai/gpt-4o')).toBe(true);
    expect(allowsModel(key([], 'search'), search, 'anthropic/claude')).toBe(false);
  });

  it('a key never gets a model its team lacks, however broad its own patterns', () => {
    const search = team('search', ['openai/gpt-4o-mini']);
    expect(allowsModel(key(['*'], 'search'), search, 'openai/gpt-4o')).toBe(false);
    expect(allowsModel(key(['openai/*'], 'search'), search, 'openai/gpt-4o-mini')).toBe(true);
  });

  it('a key narrower than its team gets only its own patterns', () => {
    const search = team('search', ['*']);
    expect(allowsModel(key(['local/*'], 'search'), search, 'gpt-4o')).toBe(false);
  });
});

describe('the key table', () => {
  const plain = generateApiKey().key;
  const expiring = generateApiKey().key;
  const rotating = generateApiKey().key;
  const revoked = generateApiKey().key;
  const orphan = generateApiKey().key;
  const teamed = generateApiKey().key;
  const search = team('team_search', ['openai/*']);
  const table = new KeyTable(
    [
      storedKey(plain),
      storedKey(expiring, { expiresAt: now + 60_000 }),
      storedKey(rotating, { revokedAt: now + 3_600_000 }),
      storedKey(revoked, { revokedAt: now - 1, expiresAt: now - 1 }),
      storedKey(orphan, { teamId: 'team_deleted' }),
      storedKey(teamed, { teamId: 'team_search' }),
    ],
    [search],
  );

  it('counts its keys', () => {
    expect(table.size).toBe(6);
    expect(KeyTable.empty.size).toBe(0);
  });

  it('finds a key by its text, with its team', () => {
    const result = table.authenticate(teamed, now);
    expect(result).toMatchObject({ key: { hash: hashApiKey(teamed), teamId: 'team_search' }, team: search });
    expect(table.authenticate(plain, now)).toMatchObject({
      key: { hash: hashApiKey(plain) },
      team: undefined,
    });
  });

  it('answers with the same frozen object every time: nothing allocated per request but the digest', () => {
    const first = table.authenticate(plain, now);
    expect(table.authenticate(plain, now)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it('refuses an unknown key, one that differs by a character, its prefix and its hash', () => {
    const altered = `${plain.slice(0, -1)}${plain.endsWith('A') ? 'B' : 'A'}`;
    for (const token of [
      generateApiKey().key,
      altered,
      keyPrefix(plain),
      hashApiKey(plain),
      '',
      'Bearer x',
    ]) {
      expect(table.authenticate(token, now)).toBe('unknown');
    }
    expect(KeyTable.empty.authenticate(plain, now)).toBe('unknown');
  });

  it('refuses a key from the instant it expires', () => {
    expect(typeof table.authenticate(expiring, now + 59_999)).toBe('object');
    expect(table.authenticate(expiring, now + 60_000)).toBe('expired');
  });

  it('accepts a rotated key until its grace period ends, then calls it revoked', () => {
    expect(typeof table.authenticate(rotating, now + 3_599_999)).toBe('object');
    expect(table.authenticate(rotating, now + 3_600_000)).toBe('revoked');
  });

  it('says revoked rather than expired for a key that is both', () => {
    expect(table.authenticate(revoked, now)).toBe('revoked');
  });

  it('refuses a key whose team is gone, rather than let it out of the team scope', () => {
    expect(table.authenticate(orphan, now)).toBe('revoked');
  });
});
