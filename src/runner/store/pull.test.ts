import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { diskThatFillsAfter, rejection } from '../../../test/support/model-store.js';
import { partialKey } from './download.js';
import { ModelStore } from './model-store.js';
import type { PullProgress } from './progress.js';

/** A file the test server serves, with the faults a test wants. */
interface ServedFile {
  body: Buffer;
  /** Strong entity tag; set by default from the body. */
  etag?: string | undefined;
  lastModified?: string | undefined;
  /** Answer every Range request with the whole file, as some servers do. */
  ignoreRange?: boolean;
  /**
   * For the next response only: send `bytes` of the body, wait for `after` (the client has written
   * them; bytes still in flight when a socket closes are dropped), then close the connection.
   */
  cut?: { bytes: number; after: Promise<void> } | undefined;
  /** Send `bytes` of the body, then wait for `until` before sending the rest. */
  pause?: { bytes: number; until: Promise<void>; reached?: () => void };
  /** Answer with this status and no body. */
  status?: number;
  /** Answer with a 302 to this location. */
  redirectTo?: string;
  headers?: Record<string, string>;
}

interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/** An HTTP/1.1 file server on 127.0.0.1 that honours Range and If-Range (RFC 9110 §14, §13.1.5). */
class FileServer {
  readonly files = new Map<string, ServedFile>();
  readonly requests: SeenRequest[] = [];
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<FileServer> {
    const server = createServer();
    const fileServer = new FileServer(server);
    server.on('request', (request, response) => {
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      fileServer.requests.push({ method: request.method ?? 'GET', path, headers: request.headers });
      const file = fileServer.files.get(path);
      if (file === undefined) {
        response.writeHead(404).end('not found');
        return;
      }
      if (file.status !== undefined) {
        response.writeHead(file.status, file.headers).end();
        return;
      }
      if (file.redirectTo !== undefined) {
        response.writeHead(302, { location: file.redirectTo, ...file.headers }).end();
        return;
      }
      const length = file.body.length;
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
        ...file.headers,
      };
      if (file.etag !== undefined) headers.etag = file.etag;
      if (file.lastModified !== undefined) headers['last-modified'] = file.lastModified;
      let start = 0;
      let status = 200;
      const range = request.headers.range;
      const ifRange = request.headers['if-range'];
      const validatorMatches =
        ifRange === undefined || ifRange === file.etag || ifRange === file.lastModified;
      if (range !== undefined && !file.ignoreRange && validatorMatches) {
        start = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
        if (start >= length) {
          response.writeHead(416, { 'content-range': `bytes */${length}` }).end();
          return;
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${length - 1}/${length}`;
      }
      headers['content-length'] = length - start;
      response.writeHead(status, headers);
      if (request.method === 'HEAD') {
        response.end();
        return;
      }
      const rest = file.body.subarray(start);
      const cut = file.cut;
      if (cut !== undefined) {
        file.cut = undefined;
        response.write(rest.subarray(0, cut.bytes));
        void cut.after.then(() => response.socket?.destroy());
        return;
      }
      const pause = file.pause;
      if (pause !== undefined) {
        response.write(rest.subarray(0, pause.bytes), () => pause.reached?.());
        void pause.until.then(() => response.end(rest.subarray(pause.bytes)));
        return;
      }
      response.end(rest);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fileServer;
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Serves `body` at `path` with a strong ETag; returns the full URL. */
  serve(path: string, body: Buffer, options: Omit<ServedFile, 'body'> = {}): string {
    this.files.set(path, { etag: `"${sha256(body).slice(0, 16)}"`, ...options, body });
    return `${this.origin}${path}`;
  }

  get(path: string): ServedFile {
    const file = this.files.get(path);
    if (file === undefined) throw new Error(`nothing served at ${path}`);
    return file;
  }

  requestsFor(path: string, method = 'GET'): SeenRequest[] {
    return this.requests.filter((request) => request.path === path && request.method === method);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function ggufBytes(size: number): Buffer {
  const bytes = randomBytes(size);
  bytes.write('GGUF', 0, 'latin1');
  return bytes;
}

/**
 * A cut after `bytes`, and the progress listener that lets it happen once the client has written
 * them; use with a store whose clock makes every chunk report (`everyChunk`).
 */
function cutAfter(bytes: number): { cut: ServedFile['cut']; onProgress: (progress: PullProgress) => void } {
  const written = deferred();
  return {
    cut: { bytes, after: written.promise },
    onProgress: (progress) => {
      if (progress.phase === 'downloading' && progress.received >= bytes) written.resolve();
    },
  };
}

/** A clock that moves a second per reading, so that the progress meter reports every chunk. */
function everyChunk(): () => number {
  let now = 0;
  return () => {
    now += 1_000;
    return now;
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

let directory: string;
let root: string;
let server: FileServer;
let cdn: FileServer;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-pull-'));
  root = join(directory, 'models');
  server = await FileServer.start();
  cdn = await FileServer.start();
});

afterEach(async () => {
  await Promise.all([server.close(), cdn.close()]);
  await rm(directory, { recursive: true, force: true });
});

/** Files under a store directory, or [] when it does not exist. */
async function filesIn(path: string): Promise<string[]> {
  return readdir(path).catch(() => []);
}

/** What a user could see as a model: manifests and blobs. */
async function visibleModels(store: ModelStore): Promise<{ manifests: number; blobs: string[] }> {
  return { manifests: (await store.list()).length, blobs: await filesIn(store.blobDirectory) };
}

describe('pulling a URL', () => {
  test('downloads the file into a model named after it, recording the digest it computed', async () => {
    const body = ggufBytes(300_000);
    const url = server.serve('/files/Tiny-Model.gguf', body);
    const store = new ModelStore({ root });
    const reports: PullProgress[] = [];

    const result = await store.pull(url, undefined, { onProgress: (progress) => reports.push(progress) });

    expect(result.outcome).toBe('downloaded');
    expect(result.manifest).toMatchObject({
      name: 'tiny-model',
      tag: 'latest',
      digest: `sha256:${sha256(body)}`,
      size: body.length,
      source: url,
    });
    expect(await store.get('tiny-model')).toEqual(result.manifest);
    expect(reports.at(-1)).toMatchObject({ phase: 'downloading', received: body.length, total: body.length });
    // Nothing is left behind: no partial, no record, no lock.
    expect(await filesIn(store.partialDirectory)).toEqual([]);
  });

  test('a cut connection leaves only the partial, and the next pull resumes it with Range and If-Range', async () => {
    const body = ggufBytes(256 * 1024);
    const { cut, onProgress } = cutAfter(100_000);
    const url = server.serve('/model.gguf', body, { cut });
    const store = new ModelStore({ root, now: everyChunk() });

    const error = await rejection(store.pull(url, 'tiny', { retries: 0, onProgress }));

    expect(error.code).toBe('download_failed');
    expect(error.message).toContain('Run the pull again to resume');
    expect(await visibleModels(store)).toEqual({ manifests: 0, blobs: [] });
    const key = partialKey(url, undefined);
    expect((await filesIn(store.partialDirectory)).sort()).toEqual([key, `${key}.json`]);
    expect((await stat(join(store.partialDirectory, key))).size).toBe(100_000);

    const result = await store.pull(url, 'tiny', { retries: 0 });

    expect(result.outcome).toBe('resumed');
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
    const resumed = server.requestsFor('/model.gguf').at(-1)!;
    expect(resumed.headers.range).toBe('bytes=100000-');
    expect(resumed.headers['if-range']).toBe(server.get('/model.gguf').etag);
    expect(await filesIn(store.partialDirectory)).toEqual([]);
  });

  test('retries a cut connection by itself, resuming where it broke off', async () => {
    const body = ggufBytes(200_000);
    const { cut, onProgress } = cutAfter(50_000);
    const url = server.serve('/model.gguf', body, { cut });
    const store = new ModelStore({ root, now: everyChunk() });

    const result = await store.pull(url, 'tiny', { retries: 1, retryDelayMs: 0, onProgress });

    expect(result.outcome).toBe('resumed');
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
    expect(server.requestsFor('/model.gguf').map((request) => request.headers.range)).toEqual([
      undefined,
      'bytes=50000-',
    ]);
  });

  test('starts over from the first byte when the server ignores Range', async () => {
    const body = ggufBytes(200_000);
    const { cut, onProgress } = cutAfter(50_000);
    const url = server.serve('/model.gguf', body, { cut });
    const store = new ModelStore({ root, now: everyChunk() });
    await rejection(store.pull(url, 'tiny', { retries: 0, onProgress }));
    server.get('/model.gguf').ignoreRange = true;

    const result = await store.pull(url, 'tiny', { retries: 0 });

    expect(result.outcome).toBe('downloaded');
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
  });

  test('starts over when the file changed on the server, instead of splicing old and new bytes', async () => {
    const { cut, onProgress } = cutAfter(50_000);
    const url = server.serve('/model.gguf', ggufBytes(200_000), { cut });
    const store = new ModelStore({ root, now: everyChunk() });
    await rejection(store.pull(url, 'tiny', { retries: 0, onProgress }));
    const updated = ggufBytes(180_000);
    server.serve('/model.gguf', updated);

    const result = await store.pull(url, 'tiny', { retries: 0 });

    expect(server.requestsFor('/model.gguf').at(-1)!.headers.range).toBe('bytes=50000-');
    expect(result.outcome).toBe('downloaded');
    expect(result.manifest).toMatchObject({ digest: `sha256:${sha256(updated)}`, size: updated.length });
  });

  test('resumes with Last-Modified when the server sends no ETag', async () => {
    const body = ggufBytes(200_000);
    const lastModified = 'Tue, 01 Jul 2025 10:00:00 GMT';
    const { cut, onProgress } = cutAfter(70_000);
    const url = server.serve('/model.gguf', body, { etag: undefined, lastModified, cut });
    const store = new ModelStore({ root, now: everyChunk() });
    await rejection(store.pull(url, 'tiny', { retries: 0, onProgress }));

    const result = await store.pull(url, 'tiny', { retries: 0 });

    expect(result.outcome).toBe('resumed');
    expect(server.requestsFor('/model.gguf').at(-1)!.headers['if-range']).toBe(lastModified);
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
  });

  test('verifies and keeps a partial that is already complete, without downloading it again', async () => {
    const body = ggufBytes(80_000);
    const url = server.serve('/model.gguf', body);
    const store = new ModelStore({ root });
    // What a pull that died between its last byte and the rename leaves behind.
    const key = partialKey(url, undefined);
    await mkdir(store.partialDirectory, { recursive: true });
    await writeFile(join(store.partialDirectory, key), body);
    const record = { url, etag: server.get('/model.gguf').etag, size: body.length };
    await writeFile(join(store.partialDirectory, `${key}.json`), JSON.stringify(record));

    const result = await store.pull(url, 'tiny');

    expect(result).toMatchObject({ outcome: 'resumed', manifest: { digest: `sha256:${sha256(body)}` } });
    expect(server.requestsFor('/model.gguf').at(-1)!.headers.range).toBe(`bytes=${body.length}-`);
  });

  test('refuses bytes that do not match --sha256: names both digests, deletes the partial, adds nothing', async () => {
    const body = ggufBytes(100_000);
    const url = server.serve('/model.gguf', body);
    const store = new ModelStore({ root });
    const expected = 'a'.repeat(64);

    const error = await rejection(store.pull(url, 'tiny', { sha256: `sha256:${expected}` }));

    expect(error.code).toBe('checksum_mismatch');
    expect(error.message).toContain(`digest sha256:${sha256(body)}`);
    expect(error.message).toContain(`sha256:${expected} was expected (from --sha256)`);
    expect(await visibleModels(store)).toEqual({ manifests: 0, blobs: [] });
    expect(await filesIn(store.partialDirectory)).toEqual([]);
  });

  test('two concurrent pulls of the same model share one download and get the same result', async () => {
    const body = ggufBytes(300_000);
    const url = server.serve('/model.gguf', body);
    const store = new ModelStore({ root });

    const [first, second] = await Promise.all([store.pull(url, 'tiny'), store.pull(url, 'tiny')]);

    expect(second).toBe(first);
    expect(server.requestsFor('/model.gguf')).toHaveLength(1);
  });

  test('cancelling leaves no model and no blob, only a partial that the next pull resumes', async () => {
    const body = ggufBytes(400_000);
    const released = deferred();
    const url = server.serve('/model.gguf', body, { pause: { bytes: 150_000, until: released.promise } });
    const store = new ModelStore({ root });
    const controller = new AbortController();

    const error = await rejection(
      store.pull(url, 'tiny', { signal: controller.signal, onProgress: () => controller.abort() }),
    );

    expect(error.code).toBe('aborted');
    expect(error.message).toContain('the next pull of the same file resumes');
    expect(await visibleModels(store)).toEqual({ manifests: 0, blobs: [] });
    const key = partialKey(url, undefined);
    expect((await filesIn(store.partialDirectory)).sort()).toEqual([key, `${key}.json`]);
    const kept = (await stat(join(store.partialDirectory, key))).size;
    expect(kept).toBeGreaterThan(0);

    released.resolve();
    delete server.get('/model.gguf').pause;
    const result = await store.pull(url, 'tiny');

    expect(result.outcome).toBe('resumed');
    expect(server.requestsFor('/model.gguf').at(-1)!.headers.range).toBe(`bytes=${kept}-`);
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
  });

  test('a caller that cancels does not stop the download another caller is waiting for', async () => {
    const body = ggufBytes(300_000);
    const released = deferred();
    const reached = deferred();
    const url = server.serve('/model.gguf', body, {
      pause: { bytes: 100_000, until: released.promise, reached: reached.resolve },
    });
    const store = new ModelStore({ root });
    const controller = new AbortController();

    const impatient = rejection(store.pull(url, 'tiny', { signal: controller.signal }));
    const patient = store.pull(url, 'tiny');
    await reached.promise;
    controller.abort();
    expect((await impatient).code).toBe('aborted');
    released.resolve();

    expect((await patient).manifest.digest).toBe(`sha256:${sha256(body)}`);
    expect(server.requestsFor('/model.gguf')).toHaveLength(1);
  });

  test('a full disk mid-download is a disk_full error naming the store, and the partial is kept', async () => {
    const body = ggufBytes(256 * 1024);
    const url = server.serve('/model.gguf', body);
    const store = new ModelStore({ root, fileSystem: diskThatFillsAfter(100_000) });

    const error = await rejection(store.pull(url, 'tiny', { retries: 0 }));

    expect(error.code).toBe('disk_full');
    expect(error.message).toMatch(new RegExp(`^not enough disk space in ${root}: need \\d+ bytes`));
    expect(await visibleModels(store)).toEqual({ manifests: 0, blobs: [] });
    const partial = join(store.partialDirectory, partialKey(url, undefined));
    expect((await stat(partial)).size).toBeLessThanOrEqual(100_000);
  });

  test('refuses before writing anything when the disk has less free space than the file', async () => {
    const url = server.serve('/model.gguf', ggufBytes(50_000));
    const store = new ModelStore({ root, fileSystem: { freeBytes: async () => 1_000 } });

    const error = await rejection(store.pull(url, 'tiny'));

    expect(error.code).toBe('disk_full');
    expect(error.message).toContain(
      `not enough disk space in ${root}: need 50000 bytes (50.0 kB), 1000 bytes`,
    );
    expect(await filesIn(store.partialDirectory)).toEqual([]);
  });

  test.each([
    [404, 'Nothing found at', false],
    [401, 'download the file yourself', false],
    [503, '503 Service Unavailable. The server may be busy', true],
    [418, 'answered 418.', false],
  ])('explains an HTTP %i and says whether trying again may help', async (status, text, retryable) => {
    const url = server.serve('/model.gguf', Buffer.alloc(0), { status });
    const store = new ModelStore({ root });

    const error = await rejection(store.pull(url, 'tiny', { retries: 0 }));

    expect(error).toMatchObject({ code: 'http_error', status, retryable });
    expect(error.message).toContain(text);
    if (status === 404) expect(error.message).toContain(url);
  });

  test('follows redirects, but not forever', async () => {
    const body = ggufBytes(10_000);
    server.serve('/real.gguf', body);
    const url = server.serve('/moved.gguf', Buffer.alloc(0), { redirectTo: '/real.gguf' });
    server.serve('/loop.gguf', Buffer.alloc(0), { redirectTo: '/loop.gguf' });
    const store = new ModelStore({ root });

    expect((await store.pull(url, 'tiny')).manifest.digest).toBe(`sha256:${sha256(body)}`);
    const error = await rejection(store.pull(`${server.origin}/loop.gguf`, 'loop'));
    expect(error.code).toBe('download_failed');
    expect(error.message).toContain('redirected more than 10 times');
  });

  test('refuses while another live process holds the partial, and takes over a lock whose process is gone', async () => {
    const url = server.serve('/model.gguf', ggufBytes(10_000));
    const store = new ModelStore({ root });
    const lock = join(store.partialDirectory, `${partialKey(url, undefined)}.lock`);
    await mkdir(store.partialDirectory, { recursive: true });

    await writeFile(lock, `${process.ppid}\n`);
    const error = await rejection(store.pull(url, 'tiny'));
    expect(error.code).toBe('pull_in_progress');
    expect(error.message).toContain(`pid ${process.ppid}`);

    await writeFile(lock, '2147483646\n');
    expect((await store.pull(url, 'tiny')).outcome).toBe('downloaded');
  });
});

describe('pulling from Hugging Face', () => {
  /** The hub redirects to its CDN on another origin, announcing the LFS sha256 and size, as huggingface.co does. */
  function publish(body: Buffer, options: { announced?: string; served?: Buffer } = {}): void {
    const digest = options.announced ?? sha256(body);
    const location = cdn.serve(`/xet/${digest}`, options.served ?? body);
    server.serve('/org/repo/resolve/main/model.Q4_K_M.gguf', Buffer.alloc(0), {
      redirectTo: location,
      headers: { 'x-linked-etag': `"${digest}"`, 'x-linked-size': String(body.length), etag: `"${digest}"` },
    });
  }

  const hubPath = '/org/repo/resolve/main/model.Q4_K_M.gguf';

  test('checks the sha256 the hub announces and sends HF_TOKEN to the hub only, never to its CDN', async () => {
    const body = ggufBytes(120_000);
    publish(body);
    const store = new ModelStore({ root });
    const env = { SWITCHYARD_HF_ENDPOINT: server.origin, HF_TOKEN: 'hf_secret' };

    const result = await store.pull('hf:org/repo/model.Q4_K_M.gguf', undefined, { env });

    expect(result.manifest).toMatchObject({
      name: 'org/repo',
      tag: 'model.q4_k_m',
      digest: `sha256:${sha256(body)}`,
      source: 'hf:org/repo/model.Q4_K_M.gguf',
    });
    expect(server.requestsFor(hubPath, 'HEAD')).toHaveLength(1);
    for (const request of server.requestsFor(hubPath, 'HEAD').concat(server.requestsFor(hubPath))) {
      expect(request.headers.authorization).toBe('Bearer hf_secret');
    }
    expect(cdn.requests.length).toBeGreaterThan(0);
    for (const request of cdn.requests) expect(request.headers.authorization).toBeUndefined();
  });

  test('refuses CDN bytes that differ from what the hub announced', async () => {
    const body = ggufBytes(60_000);
    publish(body, { served: ggufBytes(60_000) });
    const store = new ModelStore({ root });

    const error = await rejection(
      store.pull('hf:org/repo/model.Q4_K_M.gguf', 'tiny', { env: { SWITCHYARD_HF_ENDPOINT: server.origin } }),
    );

    expect(error.code).toBe('checksum_mismatch');
    expect(error.message).toContain(`sha256:${sha256(body)} was expected (from the hub)`);
    expect(await visibleModels(store)).toEqual({ manifests: 0, blobs: [] });
  });

  test('downloads nothing when the announced blob is already in the store', async () => {
    const body = ggufBytes(60_000);
    publish(body);
    const local = join(directory, 'copy.gguf');
    await writeFile(local, body);
    const store = new ModelStore({ root });
    await store.pull(local, 'local-copy');

    const result = await store.pull('hf:org/repo/model.Q4_K_M.gguf', 'from-hub', {
      env: { SWITCHYARD_HF_ENDPOINT: server.origin },
    });

    expect(result.outcome).toBe('present');
    expect(result.manifest.digest).toBe(`sha256:${sha256(body)}`);
    expect(server.requestsFor(hubPath)).toHaveLength(0);
    expect(cdn.requestsFor(`/xet/${sha256(body)}`)).toHaveLength(0);
  });

  test('a second name for the same file waits for the first download instead of repeating it', async () => {
    const body = ggufBytes(120_000);
    publish(body);
    const store = new ModelStore({ root });
    const env = { SWITCHYARD_HF_ENDPOINT: server.origin };

    const [first, second] = await Promise.all([
      store.pull('hf:org/repo/model.Q4_K_M.gguf', 'one', { env }),
      store.pull('hf:org/repo/model.Q4_K_M.gguf', 'two', { env }),
    ]);

    expect([first.outcome, second.outcome].sort()).toEqual(['downloaded', 'present']);
    expect(cdn.requestsFor(`/xet/${sha256(body)}`)).toHaveLength(1);
    expect((await store.list()).map((manifest) => manifest.name)).toEqual(['one', 'two']);
  });

  test('refuses early when the announced size does not fit on the disk', async () => {
    publish(ggufBytes(60_000));
    const store = new ModelStore({ root, fileSystem: { freeBytes: async () => 10_000 } });

    const error = await rejection(
      store.pull('hf:org/repo/model.Q4_K_M.gguf', 'tiny', { env: { SWITCHYARD_HF_ENDPOINT: server.origin } }),
    );

    expect(error.code).toBe('disk_full');
    expect(error.message).toContain('need 60000 bytes');
    expect(server.requestsFor(hubPath)).toHaveLength(0);
  });

  test('suggests HF_TOKEN when the hub refuses a gated repository', async () => {
    server.serve(hubPath, Buffer.alloc(0), { status: 401 });
    const store = new ModelStore({ root });

    const error = await rejection(
      store.pull('hf:org/repo/model.Q4_K_M.gguf', 'tiny', { env: { SWITCHYARD_HF_ENDPOINT: server.origin } }),
    );

    expect(error).toMatchObject({ code: 'http_error', status: 401 });
    expect(error.message).toContain('set HF_TOKEN');
  });
});

describe('pulling a local path', () => {
  test('imports the file', async () => {
    const body = ggufBytes(10_000);
    await writeFile(join(directory, 'demo.gguf'), body);
    const store = new ModelStore({ root });

    const result = await store.pull('demo.gguf', undefined, { cwd: directory });

    expect(result.outcome).toBe('imported');
    expect(result.manifest).toMatchObject({ name: 'demo', digest: `sha256:${sha256(body)}` });
  });
});
