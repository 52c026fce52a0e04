import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import { chmod, link, mkdir, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { formatDigest, hashFile, parseSha256 } from './digest.js';
import { isModelStoreError, ModelStoreError, systemErrorCode } from './errors.js';
import {
  diskFullError,
  ensureFreeSpace,
  isDiskFullError,
  nodeFileSystem,
  type StoreFileSystem,
  type WritableFile,
  writeJsonAtomically,
} from './file-system.js';
import { KeyedLock } from './in-flight.js';
import { formatModelName, type ModelName, parseModelName } from './model-name.js';
import { type ProgressListener, ProgressMeter } from './progress.js';
import { type PullOptions, type PullResult, pullModel } from './pull.js';

/** Reads a new blob and returns what the manifest's `metadata` should hold (GGUF header fields). */
export type BlobInspector = (blobPath: string) => Promise<Record<string, unknown>>;

/** One model as `manifests/<name>/<tag>.json` records it. */
export interface ModelManifest {
  readonly name: string;
  readonly tag: string;
  readonly digest: `sha256:${string}`;
  readonly size: number;
  readonly format: 'gguf';
  /** The ref it was pulled from, or the absolute path it was imported from. */
  readonly source: string;
  /** ISO 8601. */
  readonly created_at: string;
  /** Whatever the store's inspector returned for the blob; `{}` without one. */
  readonly metadata: Record<string, unknown>;
}

export interface ModelStoreOptions {
  /** The store's directory; the server passes `<data dir>/models`. */
  readonly root: string;
  /** Called once for each new blob, before it becomes visible; a throw rejects the file. */
  readonly inspect?: BlobInspector | undefined;
  readonly fileSystem?: Partial<StoreFileSystem> | undefined;
  /** Milliseconds since the epoch; for `created_at` and progress speeds. */
  readonly now?: (() => number) | undefined;
}

export interface ImportOptions {
  /** Expected digest (64 hex digits, `sha256:` prefix optional); a mismatch imports nothing. */
  readonly sha256?: string | undefined;
  /**
   * Hard-link instead of copying when the file is on the store's file system (the default), which
   * is instant and takes no space. The blob then shares the file's bytes: editing the original
   * in place would change the blob, so pass `false` for files that may be rewritten.
   */
  readonly link?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ProgressListener | undefined;
}

export interface RemoveResult {
  readonly manifest: ModelManifest;
  /** False when another model still uses the same blob. */
  readonly blobRemoved: boolean;
}

/** A verified file ready to become a blob, or nothing when the blob is already there. */
export interface CommitRequest {
  readonly model: ModelName;
  readonly sha256: string;
  readonly source: string;
  /** A file inside the store (a finished partial, an import) that is moved into place. */
  readonly file?: string | undefined;
  /** The file is a hard link to the user's own file: do not change its permissions. */
  readonly linked?: boolean | undefined;
}

// Shared by every ModelStore in this process, keyed by root, so two stores on one directory
// cannot interleave a remove with a commit.
const mutations = new KeyedLock();

/**
 * A content-addressed store of GGUF models on disk:
 *
 * ```
 * <root>/blobs/sha256-<hex>              the model files, named by their digest
 * <root>/manifests/<name>/<tag>.json     name:tag → digest, size, source, metadata
 * <root>/partial/<key>, <key>.json       resumable downloads and their records
 * ```
 *
 * A model is visible only once its manifest exists, and a manifest is written (atomically) only
 * after its blob is in place and verified, so readers never see half a model.
 *
 * @example
 * const store = new ModelStore({ root: join(dataDirectory, 'models'), inspect: readGgufMetadata });
 * await store.pull('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf', 'qwen:0.5b');
 */
export class ModelStore {
  readonly root: string;
  readonly fileSystem: StoreFileSystem;
  readonly now: () => number;
  readonly #inspect: BlobInspector | undefined;

  constructor(options: ModelStoreOptions) {
    this.root = resolve(options.root);
    this.#inspect = options.inspect;
    this.fileSystem = { ...nodeFileSystem, ...options.fileSystem };
    this.now = options.now ?? Date.now;
  }

  get blobDirectory(): string {
    return join(this.root, 'blobs');
  }

  get manifestDirectory(): string {
    return join(this.root, 'manifests');
  }

  get partialDirectory(): string {
    return join(this.root, 'partial');
  }

  /** `blobs/sha256-<hex>` for a digest given as hex or `sha256:<hex>`. */
  blobPath(digest: string): string {
    return join(this.blobDirectory, `sha256-${parseSha256(digest)}`);
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await sizeOf(this.blobPath(digest))) !== undefined;
  }

  /** Every model, sorted by name and tag. */
  async list(): Promise<ModelManifest[]> {
    const files = await manifestFiles(this.manifestDirectory);
    const manifests = await Promise.all(files.map((file) => this.#readManifestFile(file)));
    return manifests
      .filter((manifest): manifest is ModelManifest => manifest !== undefined)
      .sort((left, right) => left.name.localeCompare(right.name) || left.tag.localeCompare(right.tag));
  }

  /** The manifest of `name[:tag]`; throws `not_found` when there is none. */
  async get(nameTag: string): Promise<ModelManifest> {
    const model = parseModelName(nameTag);
    const manifest = await this.#readManifestFile(this.#manifestPath(model));
    if (manifest === undefined) throw notFound(model);
    return manifest;
  }

  /** Removes the manifest, and the blob when no other manifest refers to it. */
  async remove(nameTag: string): Promise<RemoveResult> {
    const model = parseModelName(nameTag);
    return mutations.run(this.root, async () => {
      const path = this.#manifestPath(model);
      const manifest = await this.#readManifestFile(path);
      if (manifest === undefined) throw notFound(model);
      await rm(path);
      await this.#pruneEmptyDirectories(dirname(path));
      const blobRemoved = await this.#removeBlobIfUnused(manifest.digest);
      return { manifest, blobRemoved };
    });
  }

  /**
   * Adds a local GGUF file as `name[:tag]`: hard-linked into the blobs when on the same file
   * system (unless `link: false`), otherwise copied, and hashed either way.
   */
  async importFile(path: string, nameTag: string, options: ImportOptions = {}): Promise<ModelManifest> {
    const model = parseModelName(nameTag);
    const expected = options.sha256 === undefined ? undefined : parseSha256(options.sha256);
    const source = resolve(path);
    const size = await sizeOf(source);
    if (size === undefined) {
      throw new ModelStoreError(
        'not_found',
        `There is no file at ${source}. Check the path of the .gguf file.`,
      );
    }
    await mkdir(this.partialDirectory, { recursive: true });
    const temporary = join(this.partialDirectory, `import-${randomUUID()}`);
    try {
      const linked = options.link !== false && (await tryLink(source, temporary));
      const sha256 = linked
        ? await this.#hashWithProgress(temporary, size, options)
        : await this.#copyAndHash(source, temporary, size, options);
      if (expected !== undefined && sha256 !== expected) {
        throw new ModelStoreError(
          'checksum_mismatch',
          `${source} has digest ${formatDigest(sha256)}, but ${formatDigest(expected)} was expected. ` +
            'Nothing was imported; check that this is the file you meant.',
        );
      }
      return await this.commit({ model, sha256, source, file: temporary, linked });
    } finally {
      await rm(temporary, { force: true });
    }
  }

  /**
   * Downloads (or imports) a model; see `pullModel` for refs and options.
   *
   * @example await store.pull('https://example.com/tiny.gguf', 'tiny:latest', { onProgress })
   */
  pull(ref: string, nameTag?: string, options: PullOptions = {}): Promise<PullResult> {
    return pullModel(this, ref, nameTag, options);
  }

  /**
   * Makes a verified file a model: moves it into the blobs (or drops it when the blob already
   * exists), inspects it if the blob is new, then writes the manifest atomically. A manifest it
   * replaces loses its blob if nothing else uses it. Used by `importFile` and by pulls.
   */
  async commit(request: CommitRequest): Promise<ModelManifest> {
    return mutations.run(this.root, async () => {
      const blobPath = this.blobPath(request.sha256);
      const digest = formatDigest(request.sha256);
      let metadata: Record<string, unknown>;
      if ((await sizeOf(blobPath)) !== undefined) {
        if (request.file !== undefined) await rm(request.file, { force: true });
        metadata = (await this.#metadataOf(digest)) ?? (await this.#inspectFile(blobPath, request));
      } else {
        if (request.file === undefined) {
          throw new ModelStoreError(
            'not_found',
            `The blob ${digest} disappeared before it could be used; pull again.`,
          );
        }
        // Inspected before it is moved, so a file the inspector rejects never sits among the blobs.
        metadata = await this.#inspectFile(request.file, request);
        // Blobs are named by their content; read-only guards them against a stray write. A hard
        // link shares its mode with the user's file, which is theirs to keep writable.
        if (!request.linked) await chmod(request.file, 0o444);
        await mkdir(this.blobDirectory, { recursive: true });
        await rename(request.file, blobPath);
      }
      const size = (await sizeOf(blobPath)) ?? 0;

      const path = this.#manifestPath(request.model);
      const previous = await this.#readManifestFile(path);
      if (previous?.digest === digest && previous.source === request.source) return previous;
      const manifest: ModelManifest = {
        name: request.model.name,
        tag: request.model.tag,
        digest,
        size,
        format: 'gguf',
        source: request.source,
        created_at: new Date(this.now()).toISOString(),
        metadata,
      };
      try {
        await writeJsonAtomically(path, manifest);
      } catch (error) {
        if (isDiskFullError(error)) throw diskFullError(this.root, undefined, undefined, error);
        throw error;
      }
      if (previous !== undefined && previous.digest !== digest)
        await this.#removeBlobIfUnused(previous.digest);
      return manifest;
    });
  }

  #manifestPath(model: ModelName): string {
    // Names were validated by parseModelName: no "..", no empty segments, so this stays inside.
    return join(this.manifestDirectory, ...model.name.split('/'), `${model.tag}.json`);
  }

  async #readManifestFile(path: string): Promise<ModelManifest | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    const manifest = parseManifest(text);
    const expectedPath = manifest === undefined ? undefined : this.#manifestPath(manifest);
    if (manifest === undefined || expectedPath !== path) {
      throw new ModelStoreError(
        'corrupt_manifest',
        `${path} is not a valid model manifest. Delete it (the model disappears; pull it again) or restore it.`,
      );
    }
    return manifest;
  }

  async #metadataOf(digest: string): Promise<Record<string, unknown> | undefined> {
    try {
      return (await this.list()).find((manifest) => manifest.digest === digest)?.metadata;
    } catch (error) {
      // An unrelated broken manifest must not block this model; inspecting again is the fallback.
      if (isModelStoreError(error, 'corrupt_manifest')) return undefined;
      throw error;
    }
  }

  async #inspectFile(path: string, request: CommitRequest): Promise<Record<string, unknown>> {
    if (this.#inspect === undefined) return {};
    let metadata: Record<string, unknown>;
    try {
      metadata = await this.#inspect(path);
    } catch (error) {
      if (request.file !== undefined) await rm(request.file, { force: true });
      const reason = error instanceof Error ? error.message : String(error);
      throw new ModelStoreError(
        'invalid_model',
        `${request.source} is not a usable GGUF model: ${reason}. Nothing was added to the store.`,
        { cause: error },
      );
    }
    // Checked before the blob moves, so a faulty inspector cannot leave a blob without a manifest.
    // GGUF readers return 64-bit values as bigints, which JSON cannot hold: convert them first.
    try {
      JSON.stringify(metadata);
    } catch (error) {
      throw new TypeError(`The model inspector returned metadata that is not JSON: ${String(error)}`, {
        cause: error,
      });
    }
    return metadata;
  }

  async #removeBlobIfUnused(digest: string): Promise<boolean> {
    let manifests: ModelManifest[];
    try {
      manifests = await this.list();
    } catch (error) {
      // A manifest we cannot read might refer to this blob; keeping a blob is the safe mistake.
      if (isModelStoreError(error, 'corrupt_manifest')) return false;
      throw error;
    }
    if (manifests.some((manifest) => manifest.digest === digest)) return false;
    await rm(this.blobPath(digest), { force: true });
    return true;
  }

  async #pruneEmptyDirectories(directory: string): Promise<void> {
    let current = directory;
    while (current !== this.manifestDirectory && current.startsWith(this.manifestDirectory + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (another tag or a nested name) or already gone
      }
      current = dirname(current);
    }
  }

  async #hashWithProgress(path: string, size: number, options: ImportOptions): Promise<string> {
    const meter = new ProgressMeter({ phase: 'hashing', total: size, now: this.now });
    return hashFile(path, size, {
      ...(options.signal ? { signal: options.signal } : {}),
      onBytes: (bytes) => {
        const progress = meter.advance(bytes);
        if (progress) options.onProgress?.(progress);
      },
    });
  }

  /** Copies through the store's writable-file seam, so a full disk reads the same as in a download. */
  async #copyAndHash(source: string, target: string, size: number, options: ImportOptions): Promise<string> {
    await ensureFreeSpace(this.fileSystem, this.partialDirectory, size, this.root);
    const hash = createHash('sha256');
    const meter = new ProgressMeter({ phase: 'copying', total: size, now: this.now });
    let file: WritableFile | undefined;
    let written = 0;
    try {
      file = await this.fileSystem.openWritableFile(target, 'truncate');
      const stream = createReadStream(source, {
        highWaterMark: 1024 * 1024,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        await file.write(chunk);
        hash.update(chunk);
        written += chunk.length;
        const progress = meter.advance(chunk.length);
        if (progress) options.onProgress?.(progress);
      }
      await file.sync();
    } catch (error) {
      if (isModelStoreError(error)) throw error;
      if (isDiskFullError(error)) {
        const available = await this.fileSystem.freeBytes(this.partialDirectory).catch(() => undefined);
        throw diskFullError(this.root, size - written, available, error);
      }
      if (options.signal?.aborted) {
        throw new ModelStoreError('aborted', `The import of ${source} was cancelled; nothing was added.`, {
          cause: error,
        });
      }
      throw error;
    } finally {
      await file?.close();
    }
    return hash.digest('hex');
  }
}

function notFound(model: ModelName): ModelStoreError {
  return new ModelStoreError(
    'not_found',
    `There is no model "${formatModelName(model)}". Run \`switchyard models ls\` to see the models, or pull it.`,
  );
}

/** Hard-links when the file system allows it; false means "copy instead". */
async function tryLink(source: string, target: string): Promise<boolean> {
  try {
    await link(source, target);
    return true;
  } catch (error) {
    // EXDEV: another file system. EPERM/ENOTSUP/EMLINK/EACCES: links refused or exhausted.
    if (
      ['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'EACCES'].includes(systemErrorCode(error) ?? '')
    ) {
      return false;
    }
    throw error;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const stats = await stat(path);
    return stats.isFile() ? stats.size : undefined;
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT' || systemErrorCode(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

/** Every `*.json` under `manifests/`, skipping the dot-named temporaries of atomic writes. */
async function manifestFiles(directory: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return [];
    throw error;
  }
  const nested = await Promise.all(
    entries
      .filter((entry) => !entry.name.startsWith('.'))
      .map(async (entry) => {
        const path = join(directory, entry.name);
        if (entry.isDirectory()) return manifestFiles(path);
        return entry.isFile() && entry.name.endsWith('.json') ? [path] : [];
      }),
  );
  return nested.flat();
}

function parseManifest(text: string): ModelManifest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const { name, tag, digest, size, format, source, created_at: createdAt, metadata } = record;
  if (typeof name !== 'string' || typeof tag !== 'string') return undefined;
  try {
    parseModelName(`${name}:${tag}`);
  } catch {
    return undefined;
  }
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  if (format !== 'gguf' || typeof source !== 'string' || typeof createdAt !== 'string') return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return undefined;
  return {
    name,
    tag,
    digest: digest as `sha256:${string}`,
    size,
    format,
    source,
    created_at: createdAt,
    metadata: metadata as Record<string, unknown>,
  };
}
