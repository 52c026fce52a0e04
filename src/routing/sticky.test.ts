import { describe, expect, test } from 'vitest';
import { stickyBucket, stickyBucketCount } from './sticky.js';

/** The documented algorithm, written the plain way: FNV-1a over TextEncoder's bytes, then fmix32. */
function reference(key: string, salt: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(`${salt}\0${key}`)) {
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return Math.floor(((hash >>> 0) * 10_000) / 2 ** 32);
}

describe('stickyBucket', () => {
  test('gives the same key the same bucket every time', () => {
    const first = stickyBucket('user-8812', 'summariser-v2');
    for (let attempt = 0; attempt < 5; attempt++)
      expect(stickyBucket('user-8812', 'summariser-v2')).toBe(first);
  });

  test('keeps the buckets it gave before, so callers stay on their side of a split across releases', () => {
    // Changing these values moves every caller of every running experiment to another bucket.
    expect([
      stickyBucket('user-1', 'split'),
      stickyBucket('user-2', 'split'),
      stickyBucket('', ''),
      stickyBucket('alice@example.com', 'chat-ab'),
    ]).toMatchInlineSnapshot(`
      [
        2984,
        2935,
        213,
        8464,
      ]
    `);
  });

  test('hashes the UTF-8 bytes of salt, a NUL and the key, as documented', () => {
    const keys = [
      '',
      'a',
      'user-42',
      'é',
      'Zoë',
      '日本語',
      '😀 emoji',
      'lone \ud800 surrogate',
      'tail \udc00',
      'x'.repeat(300),
    ];
    for (const key of keys) {
      for (const salt of ['', 'exp-1', 'ß'])
        expect(stickyBucket(key, salt), `${salt}/${key}`).toBe(reference(key, salt));
    }
  });

  test('spreads 100,000 sequential ids evenly: each tenth of the range gets 10 % within ±3 %', () => {
    const deciles = new Array<number>(10).fill(0);
    let outside = 0;
    for (let id = 0; id < 100_000; id++) {
      const bucket = stickyBucket(`user-${id}`, 'rollout');
      if (!Number.isInteger(bucket) || bucket < 0 || bucket >= stickyBucketCount) outside++;
      else deciles[Math.floor(bucket / 1_000)]!++;
    }
    expect(outside).toBe(0);
    for (const count of deciles) {
      expect(count).toBeGreaterThanOrEqual(9_700);
      expect(count).toBeLessThanOrEqual(10_300);
    }
  });

  test('assigns independently under different salts: half of one split is half of each side of another', () => {
    let both = 0;
    let first = 0;
    for (let id = 0; id < 100_000; id++) {
      const inFirst = stickyBucket(`user-${id}`, 'experiment-a') < 5_000;
      const inSecond = stickyBucket(`user-${id}`, 'experiment-b') < 5_000;
      if (inFirst) first++;
      if (inFirst && inSecond) both++;
    }
    // Independent halves overlap on a quarter of the keys.
    expect(both / first).toBeGreaterThan(0.48);
    expect(both / first).toBeLessThan(0.52);
  });

  test('does not let the salt and key run together: ("ab", "c") and ("a", "bc") differ', () => {
    expect(stickyBucket('c', 'ab')).not.toBe(stickyBucket('bc', 'a'));
  });
});
