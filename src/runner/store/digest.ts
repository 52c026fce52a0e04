import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { ModelStoreError } from './errors.js';

const sha256HexPattern = /^[0-9a-f]{64}$/;

/**
 * Validates a user-supplied sha256 (`--sha256`), with or without the `sha256:` prefix, in either
 * case; returns the 64 lowercase hex digits.
 *
 * @example parseSha256('sha256:AB…') // 'ab…'
 */
export function parseSha256(text: string): string {
  const hex = text
    .trim()
    .replace(/^sha256:/i, '')
    .toLowerCase();
  if (!sha256HexPattern.test(hex)) {
    throw new ModelStoreError(
      'invalid_sha256',
      `"${text}" is not a sha256 digest: expected 64 hexadecimal digits, optionally prefixed with "sha256:".`,
    );
  }
  return hex;
}

/** The hex digits if `text` is exactly a sha256 in hex, else undefined; for values from servers. */
export function asSha256(text: string | undefined): string | undefined {
  const hex = text?.trim().toLowerCase();
  return hex !== undefined && sha256HexPattern.test(hex) ? hex : undefined;
}

export function formatDigest(hex: string): `sha256:${string}` {
  return `sha256:${hex}`;
}

/**
 * Feeds the first `length` bytes of a file into `hash`, streaming (a model is many gigabytes).
 * `onBytes` is told each chunk's size so a caller can show progress.
 */
export async function hashFilePrefix(
  path: string,
  length: number,
  hash: Hash,
  options: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {},
): Promise<void> {
  if (length === 0) return;
  const stream = createReadStream(path, {
    start: 0,
    end: length - 1,
    highWaterMark: 1024 * 1024,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    options.onBytes?.(chunk.length);
  }
}

/** sha256 of a whole file, streaming. */
export async function hashFile(
  path: string,
  size: number,
  options: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {},
): Promise<string> {
  const hash = createHash('sha256');
  await hashFilePrefix(path, size, hash, options);
  return hash.digest('hex');
}
