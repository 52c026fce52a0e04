import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, rm, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ModelStoreError, systemErrorCode } from './errors.js';
import { formatBytes } from './progress.js';

/** A file being written by a download or a copy. */
export interface WritableFile {
  /** Writes every byte of `chunk` (looping over short writes) or throws. */
  write(chunk: Uint8Array): Promise<void>;
  /** Flushes to stable storage, so that a rename after it never exposes a short file after a crash. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The few disk operations the store lets tests replace: a test that needs a full disk wraps
 * `openWritableFile` to throw ENOSPC, and the error then travels the same path a real one would.
 */
export interface StoreFileSystem {
  /** Bytes available to this (unprivileged) process in the file system holding `directory`. */
  freeBytes(directory: string): Promise<number>;
  /** `append` continues a partial file; `truncate` starts it over. */
  openWritableFile(path: string, mode: 'append' | 'truncate'): Promise<WritableFile>;
}

export const nodeFileSystem: StoreFileSystem = {
  async freeBytes(directory) {
    const stats = await statfs(directory);
    // bavail, not bfree: blocks reserved for root are not ours to fill.
    return stats.bavail * stats.bsize;
  },
  async openWritableFile(path, mode) {
    const handle = await open(path, mode === 'append' ? 'a' : 'w');
    return {
      async write(chunk) {
        // A write may take fewer bytes than offered (most often just before the disk fills).
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
};

/** ENOSPC (device full) or EDQUOT (quota exceeded). */
export function isDiskFullError(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The one message for a full disk, whether found by the up-front check or by a failed write.
 * `needed` is what the rest of the file needs; undefined when the server did not say.
 */
export function diskFullError(
  directory: string,
  needed: number | undefined,
  available: number | undefined,
  cause?: unknown,
): ModelStoreError {
  const need =
    needed === undefined ? 'need more space than is free' : `need ${needed} bytes (${formatBytes(needed)})`;
  const have = available === undefined ? '' : `, ${available} bytes (${formatBytes(available)}) free`;
  return new ModelStoreError(
    'disk_full',
    `not enough disk space in ${directory}: ${need}${have}. Free some space or point the model store ` +
      'at a larger disk, then pull again; the bytes already downloaded are kept and the download resumes.',
    { cause },
  );
}

/** Refuses early when the file system cannot hold `needed` more bytes, before any are written. */
export async function ensureFreeSpace(
  fileSystem: StoreFileSystem,
  directory: string,
  needed: number,
  reportedDirectory = directory,
): Promise<void> {
  const available = await fileSystem.freeBytes(directory);
  if (available < needed) throw diskFullError(reportedDirectory, needed, available);
}

/**
 * Writes JSON so that readers see the old file or the new one, never a mix: a temporary file in
 * the same directory (rename is atomic only within one file system), flushed, then renamed over
 * the target. Temporary names start with a dot, which no manifest name can.
 */
export async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true });
  const temporary = join(directory, `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
