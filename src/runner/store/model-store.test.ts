import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { diskThatFillsAfter, rejection } from '../../../test/support/model-store.js';
import { modelStoreErrorCodes } from './errors.js';
import { type BlobInspector, ModelStore } from './model-store.js';

/** A few bytes that start like a GGUF file: magic, version 3, then noise. */
function ggufBytes(size = 4096): Buffer {
  const bytes = randomBytes(size);
  bytes.write('GGUF', 0, 'latin1');
  bytes.writeUInt32LE(3, 4);
  return bytes;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A real inspector in miniature: reads the header and refuses anything that is not GGUF. */
function headerInspector(calls: string[] = []): BlobInspector {
  return async (path) => {
    calls.push(path);
    const handle = await open(path, 'r');
    try {
      const header = Buffer.alloc(8);
      await handle.read(header, 0, 8, 0);
      if (header.toString('latin1', 0, 4) !== 'GGUF')
        throw new Error('the file does not start with the GGUF magic');
      return { gguf_version: header.readUInt32LE(4) };
    } finally {
      await handle.close();
    }
  };
}

let directory: string;
let root: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-store-'));
  root = join(directory, 'models');
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function sourceFile(name: string, bytes: Buffer): Promise<string> {
  const path = join(directory, name);
  await writeFile(path, bytes);
  return path;
}

describe('ModelStore.importFile', () => {
  test('stores the file under its sha256 and writes a manifest with the inspected metadata', async () => {
    const bytes = ggufBytes();
    const path = await sourceFile('tiny.gguf', bytes);
    const store = new ModelStore({
      root,
      inspect: headerInspector(),
      now: () => Date.UTC(2025, 0, 2, 3, 4, 5),
    });

    const manifest = await store.importFile(path, 'demo/tiny:q8', { link: false });

    expect(manifest).toEqual({
      name: 'demo/tiny',
      tag: 'q8',
      digest: `sha256:${sha256(bytes)}`,
      size: bytes.length,
      format: 'gguf',
      source: path,
      created_at: '2025-01-02T03:04:05.000Z',
      metadata: { gguf_version: 3 },
    });
    expect(await readFile(join(root, 'blobs', `sha256-${sha256(bytes)}`))).toEqual(bytes);
    expect(JSON.parse(await readFile(join(root, 'manifests', 'demo', 'tiny', 'q8.json'), 'utf8'))).toEqual(
      manifest,
    );
    expect(await store.get('demo/tiny:q8')).toEqual(manifest);
    expect(await store.list()).toEqual([manifest]);
  });

  test('hard-links the file when it is on the same file system, and copies when asked not to', async () => {
    const path = await sourceFile('tiny.gguf', ggufBytes());
    const store = new ModelStore({ root });
    const linked = await store.importFile(path, 'linked');
    expect((await stat(store.blobPath(linked.digest))).ino).toBe((await stat(path)).ino);

    const other = await sourceFile('other.gguf', ggufBytes());
    const copied = await store.importFile(other, 'copied', { link: false });
    expect((await stat(store.blobPath(copied.digest))).ino).not.toBe((await stat(other)).ino);
    expect((await stat(store.blobPath(copied.digest))).mode & 0o222).toBe(0);
  });

  test('refuses a file whose sha256 differs from the expected one and adds nothing', async () => {
    const bytes = ggufBytes();
    const path = await sourceFile('tiny.gguf', bytes);
    const store = new ModelStore({ root });

    const error = await rejection(store.importFile(path, 'tiny', { sha256: 'f'.repeat(64), link: false }));

    expect(error.code).toBe('checksum_mismatch');
    expect(error.message).toContain(`sha256:${sha256(bytes)}`);
    expect(error.message).toContain(`sha256:${'f'.repeat(64)}`);
    expect(await store.list()).toEqual([]);
    expect(await readdir(root)).not.toContain('blobs');
    expect(await readdir(join(root, 'partial'))).toEqual([]);
  });

  test('refuses a file the inspector rejects, leaving no blob behind', async () => {
    const path = await sourceFile('notes.gguf', Buffer.from('plain text, not a model'));
    const store = new ModelStore({ root, inspect: headerInspector() });

    const error = await rejection(store.importFile(path, 'notes', { link: false }));

    expect(error.code).toBe('invalid_model');
    expect(error.message).toContain('GGUF magic');
    expect(await store.list()).toEqual([]);
    expect(await readdir(join(root, 'partial'))).toEqual([]);
  });

  test('refuses metadata that cannot be written as JSON before the blob becomes visible', async () => {
    const path = await sourceFile('tiny.gguf', ggufBytes());
    const store = new ModelStore({ root, inspect: async () => ({ parameters: 10n }) });

    await expect(store.importFile(path, 'tiny', { link: false })).rejects.toThrow('not JSON');
    expect(await store.list()).toEqual([]);
    expect(await readdir(root)).not.toContain('blobs');
  });

  test('inspects each blob once, even when two names share it', async () => {
    const path = await sourceFile('tiny.gguf', ggufBytes());
    const calls: string[] = [];
    const store = new ModelStore({ root, inspect: headerInspector(calls) });

    const first = await store.importFile(path, 'one');
    const second = await store.importFile(path, 'two');

    expect(calls).toHaveLength(1);
    expect(second.metadata).toEqual(first.metadata);
  });

  test('names a missing file and validates the model name before touching the disk', async () => {
    const store = new ModelStore({ root });
    const missing = await rejection(store.importFile(join(directory, 'absent.gguf'), 'absent'));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toContain('absent.gguf');

    const path = await sourceFile('tiny.gguf', ggufBytes());
    expect((await rejection(store.importFile(path, 'Bad Name'))).code).toBe('invalid_ref');
  });

  test('turns a full disk while copying into a disk_full error naming the store and the bytes needed', async () => {
    const bytes = ggufBytes(3 * 1024 * 1024);
    const path = await sourceFile('big.gguf', bytes);
    const store = new ModelStore({ root, fileSystem: diskThatFillsAfter(1024 * 1024) });

    const error = await rejection(store.importFile(path, 'big', { link: false }));

    expect(error.code).toBe('disk_full');
    expect(error.message).toContain(`not enough disk space in ${root}: need ${2 * 1024 * 1024} bytes`);
    expect(await store.list()).toEqual([]);
    expect(await readdir(join(root, 'partial'))).toEqual([]);
  });
});

describe('ModelStore.remove', () => {
  test('keeps a blob until the last manifest that uses it is removed', async () => {
    const path = await sourceFile('tiny.gguf', ggufBytes());
    const store = new ModelStore({ root });
    const manifest = await store.importFile(path, 'family/one', { link: false });
    await store.importFile(path, 'family/two', { link: false });

    expect(await store.remove('family/one')).toEqual({ manifest, blobRemoved: false });
    expect(await store.hasBlob(manifest.digest)).toBe(true);

    const result = await store.remove('family/two:latest');
    expect(result.blobRemoved).toBe(true);
    expect(await store.hasBlob(manifest.digest)).toBe(false);
    expect(await readdir(join(root, 'manifests'))).toEqual([]);
  });

  test('says how to find models when the name does not exist', async () => {
    const store = new ModelStore({ root });
    const error = await rejection(store.remove('ghost:v1'));
    expect(error.code).toBe('not_found');
    expect(error.message).toContain('switchyard models ls');
    expect((await rejection(store.get('ghost'))).code).toBe('not_found');
  });

  test('drops the old blob when a tag is pointed at new bytes', async () => {
    const store = new ModelStore({ root });
    const old = await store.importFile(await sourceFile('v1.gguf', ggufBytes()), 'tiny', { link: false });
    const fresh = await store.importFile(await sourceFile('v2.gguf', ggufBytes()), 'tiny', { link: false });

    expect(await store.hasBlob(old.digest)).toBe(false);
    expect(await store.hasBlob(fresh.digest)).toBe(true);
    expect((await store.list()).map((manifest) => manifest.digest)).toEqual([fresh.digest]);
  });
});

describe('ModelStore.list', () => {
  test('sorts by name and tag and ignores the temporary files of interrupted writes', async () => {
    const store = new ModelStore({ root });
    const path = await sourceFile('tiny.gguf', ggufBytes());
    await store.importFile(path, 'zeta');
    await store.importFile(path, 'alpha/beta:b');
    await store.importFile(path, 'alpha/beta:a');
    await writeFile(join(root, 'manifests', 'zeta', '.latest.json.123.tmp'), '{"half');

    expect((await store.list()).map((manifest) => `${manifest.name}:${manifest.tag}`)).toEqual([
      'alpha/beta:a',
      'alpha/beta:b',
      'zeta:latest',
    ]);
  });

  test('reports a manifest someone truncated, naming the file', async () => {
    const store = new ModelStore({ root });
    await mkdir(join(root, 'manifests', 'broken'), { recursive: true });
    await writeFile(join(root, 'manifests', 'broken', 'latest.json'), '{"name":');

    const error = await rejection(store.list());
    expect(error.code).toBe('corrupt_manifest');
    expect(error.message).toContain(join('broken', 'latest.json'));
  });
});

describe('ModelStoreError', () => {
  test('has a stable set of codes', () => {
    expect(Object.keys(modelStoreErrorCodes)).toHaveLength(11);
  });
});
