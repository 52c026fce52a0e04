/**
 * Stable assignment of a caller to a traffic split: the same key (a user, an API key, a session)
 * always lands in the same bucket, so an A/B split keeps each caller on one side for as long as
 * the split and its salt stay the same, on every replica, with no shared state.
 */

/** Buckets are numbered 0 … 9999: a split's share in basis points (0.01 %) maps onto them. */
export const stickyBucketCount = 10_000;

const fnvOffsetBasis = 0x811c9dc5;
const fnvPrime = 0x01000193;

/**
 * A stable, uniform number in [0, 10000) for `key` under `salt`. Each split uses its own salt,
 * so being in the first 10 % of one experiment says nothing about another.
 *
 * The hash is FNV-1a (32-bit) over the UTF-8 bytes of `salt + "\0" + key`, finished with
 * MurmurHash3's fmix32: FNV-1a alone is fast but its low bits barely change between keys such
 * as "user-1" and "user-2"; fmix32 spreads every input bit across the output, so buckets are
 * uniform even for sequential ids. Written out so that a data pipeline can recompute the
 * assignment in any language. Not cryptographic: a caller who picks keys can pick a bucket.
 *
 * @example
 * const inNewModel = stickyBucket(request.user, 'checkout-assistant-v2') < 2_000; // 20 %
 */
export function stickyBucket(key: string, salt: string): number {
  let hash = fnvUtf8(fnvOffsetBasis, salt);
  hash = Math.imul(hash, fnvPrime); // the "\0" separator: XOR with a zero byte is a no-op
  hash = fnvUtf8(hash, key);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  // Scale rather than take a remainder: (hash / 2^32) × 10000 is exact in a double and spreads
  // the 2^32 hashes over the buckets as evenly as they divide.
  return Math.floor(((hash >>> 0) * stickyBucketCount) / 0x1_0000_0000);
}

/**
 * Folds the UTF-8 encoding of `text` into an FNV-1a state without allocating the bytes. Lone
 * surrogates encode as U+FFFD, as TextEncoder does, so every string has one byte sequence.
 */
function fnvUtf8(hash: number, text: string): number {
  for (let index = 0; index < text.length; index++) {
    let code = text.charCodeAt(index);
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, fnvPrime);
      continue;
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), fnvPrime);
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), fnvPrime);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = index + 1 < text.length ? text.charCodeAt(index + 1) : 0;
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        index++;
        hash = Math.imul(hash ^ (0xf0 | (code >> 18)), fnvPrime);
        hash = Math.imul(hash ^ (0x80 | ((code >> 12) & 0x3f)), fnvPrime);
        hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), fnvPrime);
        hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), fnvPrime);
        continue;
      }
      code = 0xfffd;
    }
    hash = Math.imul(hash ^ (0xe0 | (code >> 12)), fnvPrime);
    hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), fnvPrime);
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), fnvPrime);
  }
  return hash;
}
