import { createHash, type Hash } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { formatDigest, hashFilePrefix } from './digest.js';
import { isModelStoreError, ModelStoreError, systemErrorCode } from './errors.js';
import {
  diskFullError,
  ensureFreeSpace,
  isDiskFullError,
  type StoreFileSystem,
  type WritableFile,
  writeJsonAtomically,
} from './file-system.js';
import {
  type FollowedResponse,
  headerValue,
  httpStatusError,
  parseLength,
  type RequestPlan,
  requestFollowingRedirects,
} from './http.js';
import { withPartialLock } from './partial-lock.js';
import { formatBytes, type ProgressListener, ProgressMeter } from './progress.js';
import { redactUrl } from './pull-ref.js';

/** What to download, and the world to do it in. */
export interface DownloadRequest {
  /** A URL that names the file across attempts (the hub's resolve URL, not the CDN's signed one). */
  readonly url: string;
  readonly expectedSha256: string | undefined;
  /** Where the expected digest came from, for the mismatch message (`--sha256`, the hub …). */
  readonly expectedFrom: string | undefined;
  /** Size announced before the GET (the hub's X-Linked-Size): lets a full disk be refused first. */
  readonly expectedSize: number | undefined;
  readonly partialDirectory: string;
  /** The directory disk-full messages name: the store's root, which the user configured. */
  readonly storeDirectory: string;
  readonly credentials: RequestPlan['credentials'];
  /** Whether the URL is the hub's, for advice on 401/403/404. */
  readonly hub: boolean;
  readonly tokenSet: boolean;
  readonly dispatcher: Dispatcher | undefined;
  readonly fileSystem: StoreFileSystem;
  readonly now: () => number;
  readonly signal: AbortSignal;
  readonly onProgress: ProgressListener | undefined;
  /** Further attempts after a retryable failure (a cut connection, a 503); each resumes. */
  readonly retries: number;
  /** Delay before the first retry, doubled for each after. */
  readonly retryDelayMs: number;
}

/** A complete partial file whose digest has been checked; the caller moves it into the blobs. */
export interface DownloadedFile {
  readonly path: string;
  readonly sidecarPath: string;
  readonly sha256: string;
  readonly size: number;
  /** Bytes that were already on disk from an earlier attempt when the last attempt started. */
  readonly resumedFrom: number;
}

/**
 * What `partial/<key>.json` records beside a partial file: enough to tell on the next attempt
 * whether the bytes on disk still belong to the file the server would send.
 */
interface PartialRecord {
  readonly url: string;
  readonly sha256: string | undefined;
  /** A strong entity tag, the validator If-Range prefers (RFC 9110 §13.1.5). */
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly size: number | undefined;
}

/**
 * The partial file's name: derived from the URL and the expected digest, so a pull of the same
 * file finds what an earlier one left, and a pull expecting different bytes never does.
 */
export function partialKey(url: string, expectedSha256: string | undefined): string {
  return createHash('sha256')
    .update(`${url}\n${expectedSha256 ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}

/**
 * Downloads `request.url` into `partial/<key>`, resuming what an earlier attempt left, retrying
 * retryable failures, and checking the sha256 of the whole file, then hands the file to
 * `steps.useFile` (which moves it into the blobs). On failure the partial stays for the next
 * attempt, except after a checksum mismatch, which deletes it. Both steps run while the partial is
 * locked, so no other pull touches the file meanwhile.
 */
export async function downloadToPartial<Value>(
  request: DownloadRequest,
  steps: {
    /**
     * Runs first: a value means there is nothing to download (the blob arrived while this pull
     * waited for the lock behind another pull of the same file).
     */
    useExisting: () => Promise<Value | undefined>;
    useFile: (file: DownloadedFile) => Promise<Value>;
  },
): Promise<Value> {
  const path = join(request.partialDirectory, partialKey(request.url, request.expectedSha256));
  await mkdir(request.partialDirectory, { recursive: true });
  return withPartialLock(path, async () => {
    const existing = await steps.useExisting();
    if (existing !== undefined) return existing;
    for (let attempt = 0; ; attempt += 1) {
      let file: DownloadedFile;
      try {
        file = await transfer(request, path);
      } catch (error) {
        if (!isModelStoreError(error) || !error.retryable || attempt >= request.retries) throw error;
        try {
          await sleep(request.retryDelayMs * 2 ** attempt, undefined, { signal: request.signal });
        } catch {
          throw abortedError(request, await existingLength(path));
        }
        continue;
      }
      try {
        return await steps.useFile(file);
      } finally {
        // Once the file has moved into the blobs (or been rejected and deleted), its record is moot.
        if ((await existingLength(file.path)) === 0) await rm(file.sidecarPath, { force: true });
      }
    }
  });
}

/** One attempt: decide whether to resume, send the GET, append or restart, verify. */
async function transfer(request: DownloadRequest, path: string): Promise<DownloadedFile> {
  const sidecarPath = `${path}.json`;
  const record = await readPartialRecord(sidecarPath, request.url);
  const onDisk = await existingLength(path);
  const offset = onDisk > 0 && canResume(record, request, onDisk) ? onDisk : 0;
  if (request.expectedSize !== undefined && request.expectedSize > offset) {
    await ensureFreeSpace(
      request.fileSystem,
      request.partialDirectory,
      request.expectedSize - offset,
      request.storeDirectory,
    );
  }

  // The digest must cover the whole file, so bytes kept from an earlier attempt are read again
  // rather than trusted: they may have been written by a process that died mid-write.
  let hash = createHash('sha256');
  if (offset > 0) await rehash(request, path, offset, hash);

  let answer = await requestRange(request, offset, record);
  if (answer.kind === 'restart') answer = await requestRange(request, 0, undefined);
  let size: number;
  let resumedFrom: number;
  switch (answer.kind) {
    case 'restart':
      throw new ModelStoreError(
        'download_failed',
        `${redactUrl(request.url)} answered a request for the whole file with part of it; the server is misbehaving.`,
      );
    case 'complete':
      size = offset;
      resumedFrom = offset;
      break;
    case 'transfer':
      if (answer.start === 0) hash = createHash('sha256');
      await receive(request, path, sidecarPath, answer, hash);
      size = answer.start + answer.received;
      resumedFrom = answer.start;
      break;
  }
  const sha256 = hash.digest('hex');

  if (request.expectedSha256 !== undefined && sha256 !== request.expectedSha256) {
    await rm(path, { force: true });
    await rm(sidecarPath, { force: true });
    throw new ModelStoreError(
      'checksum_mismatch',
      `The file from ${redactUrl(request.url)} has digest ${formatDigest(sha256)}, but ` +
        `${formatDigest(request.expectedSha256)} was expected${request.expectedFrom ? ` (from ${request.expectedFrom})` : ''}. ` +
        'The download was deleted and nothing was added to the store. If the file was updated on purpose, ' +
        'pull it with the new --sha256; otherwise the server or something between sent corrupted or tampered bytes.',
    );
  }
  return { path, sidecarPath, sha256, size, resumedFrom };
}

type RangeAnswer =
  /** Bytes to write from `start`, appending when start > 0. */
  | {
      kind: 'transfer';
      start: number;
      total: number | undefined;
      followed: FollowedResponse;
      record: PartialRecord;
      received: number;
    }
  /** The partial already holds the whole file (a 416 naming exactly its length). */
  | { kind: 'complete' }
  /** The partial cannot be continued; ask again for the whole file. */
  | { kind: 'restart' };

/**
 * Sends the GET, with `Range: bytes=<offset>-` when there is something to continue. If-Range
 * (RFC 9110 §13.1.5) makes the server send the whole file instead of a range when its validator
 * no longer matches, so a file that changed on the server is never spliced onto old bytes.
 */
async function requestRange(
  request: DownloadRequest,
  offset: number,
  record: PartialRecord | undefined,
): Promise<RangeAnswer> {
  // Identity encoding: byte ranges of a compressed representation would not be ranges of the file.
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    const validator = record?.etag ?? record?.lastModified;
    if (validator !== undefined) headers['if-range'] = validator;
  }
  const followed = await requestFollowingRedirects(request.url, {
    method: 'GET',
    headers,
    credentials: request.credentials,
    signal: request.signal,
    dispatcher: request.dispatcher,
  }).catch((error: unknown) => {
    throw transportError(request, error, offset, undefined);
  });
  const { response, hops } = followed;
  const final = hops[hops.length - 1]!;
  const validators = responseRecord(request, final.headers);

  if (response.statusCode === 200) {
    const length = parseLength(headerValue(response.headers, 'content-length'));
    return {
      kind: 'transfer',
      start: 0,
      total: length,
      followed,
      record: { ...validators, size: length },
      received: 0,
    };
  }
  if (response.statusCode === 206 && offset > 0) {
    // RFC 9110 §14.4: a 206 to a single range carries Content-Range: bytes first-last/complete.
    const range = parseContentRange(headerValue(response.headers, 'content-range'));
    const sameLength =
      range?.total === undefined || record?.size === undefined || range.total === record.size;
    if (range !== undefined && range.start === offset && sameLength) {
      const total = range.total ?? record?.size;
      return {
        kind: 'transfer',
        start: offset,
        total,
        followed,
        record: { ...validators, etag: validators.etag ?? record?.etag, size: total },
        received: 0,
      };
    }
    await response.body.dump();
    return { kind: 'restart' };
  }
  if (response.statusCode === 416 && offset > 0) {
    // RFC 9110 §15.5.17: the server names the current length as `bytes */<length>`. Equal to ours,
    // and with If-Range having vouched for the validator, the partial is already complete.
    await response.body.dump();
    const total = parseUnsatisfiedRange(headerValue(response.headers, 'content-range'));
    return total === offset && record?.size === offset ? { kind: 'complete' } : { kind: 'restart' };
  }
  await response.body.dump();
  if (response.statusCode === 206) return { kind: 'restart' };
  throw httpStatusError(request.url, final, { hub: request.hub, tokenSet: request.tokenSet });
}

/** Streams the body into the partial file and the hash, reporting progress. */
async function receive(
  request: DownloadRequest,
  path: string,
  sidecarPath: string,
  answer: Extract<RangeAnswer, { kind: 'transfer' }>,
  hash: Hash,
): Promise<void> {
  const body = answer.followed.response.body;
  const meter = new ProgressMeter({
    phase: 'downloading',
    total: answer.total,
    start: answer.start,
    now: request.now,
  });
  let file: WritableFile | undefined;
  try {
    if (answer.total !== undefined) {
      await ensureFreeSpace(
        request.fileSystem,
        request.partialDirectory,
        answer.total - answer.start,
        request.storeDirectory,
      );
    }
    // The record goes down before the first byte, so any partial on disk has one describing it.
    await writeJsonAtomically(sidecarPath, answer.record);
    file = await request.fileSystem.openWritableFile(path, answer.start > 0 ? 'append' : 'truncate');
    for await (const chunk of body as AsyncIterable<Buffer>) {
      await file.write(chunk);
      hash.update(chunk);
      answer.received += chunk.length;
      const progress = meter.advance(chunk.length);
      if (progress) request.onProgress?.(progress);
    }
    const expected = answer.total;
    if (expected !== undefined && answer.start + answer.received !== expected) {
      throw new ModelStoreError(
        'download_failed',
        `The response from ${redactUrl(request.url)} ended after ${answer.start + answer.received} of ${expected} bytes. ` +
          'Run the pull again to resume.',
        { retryable: true },
      );
    }
    await file.sync();
    request.onProgress?.(meter.snapshot());
  } catch (error) {
    // Stop the transfer; the error it emits is already being reported.
    body.on('error', () => {});
    body.destroy();
    throw await writeOrTransportError(request, error, answer);
  } finally {
    await file?.close();
  }
}

async function writeOrTransportError(
  request: DownloadRequest,
  error: unknown,
  answer: Extract<RangeAnswer, { kind: 'transfer' }>,
): Promise<ModelStoreError> {
  if (isModelStoreError(error)) return error;
  if (isDiskFullError(error)) {
    const written = answer.start + answer.received;
    const needed = answer.total === undefined ? undefined : answer.total - written;
    const available = await request.fileSystem.freeBytes(request.partialDirectory).catch(() => undefined);
    return diskFullError(request.storeDirectory, needed, available, error);
  }
  return transportError(request, error, answer.start + answer.received, answer.total);
}

/** Maps a failure of the request or the body stream; the caller's abort comes first. */
function transportError(
  request: DownloadRequest,
  error: unknown,
  have: number,
  total: number | undefined,
): ModelStoreError {
  if (isModelStoreError(error)) return error;
  if (request.signal.aborted) return abortedError(request, have, error);
  const code = systemErrorCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  const progress = total === undefined ? `${have} bytes` : `${have} of ${total} bytes`;
  return new ModelStoreError(
    'download_failed',
    `The download from ${redactUrl(request.url)} failed after ${progress} (${code ? `${code}: ` : ''}${reason}). ` +
      'Run the pull again to resume from there.',
    { cause: error, retryable: true },
  );
}

function abortedError(request: DownloadRequest, have: number, cause?: unknown): ModelStoreError {
  return new ModelStoreError(
    'aborted',
    `The pull of ${redactUrl(request.url)} was cancelled. The ${formatBytes(have)} downloaded so far are kept; ` +
      'the next pull of the same file resumes from there.',
    { cause: cause ?? request.signal.reason },
  );
}

async function rehash(request: DownloadRequest, path: string, length: number, hash: Hash): Promise<void> {
  const meter = new ProgressMeter({ phase: 'hashing', total: length, now: request.now });
  try {
    await hashFilePrefix(path, length, hash, {
      signal: request.signal,
      onBytes: (bytes) => {
        const progress = meter.advance(bytes);
        if (progress) request.onProgress?.(progress);
      },
    });
  } catch (error) {
    if (request.signal.aborted) throw abortedError(request, length, error);
    throw error;
  }
}

/**
 * Whether the bytes on disk may be continued: the record must be for this URL and no longer than
 * the file, and something must guard the splice — a validator for If-Range, or an expected
 * digest that will catch a mismatch at the end.
 */
function canResume(record: PartialRecord | undefined, request: DownloadRequest, offset: number): boolean {
  if (record === undefined || record.url !== request.url) return false;
  if (record.size !== undefined && offset > record.size) return false;
  return (
    record.etag !== undefined || record.lastModified !== undefined || request.expectedSha256 !== undefined
  );
}

function responseRecord(
  request: DownloadRequest,
  headers: FollowedResponse['hops'][number]['headers'],
): Omit<PartialRecord, 'size'> {
  const etag = headerValue(headers, 'etag');
  return {
    url: request.url,
    sha256: request.expectedSha256,
    // A weak tag may not be used in If-Range (RFC 9110 §13.1.5), so it is not kept.
    etag: etag !== undefined && !etag.startsWith('W/') ? etag : undefined,
    lastModified: headerValue(headers, 'last-modified'),
  };
}

async function readPartialRecord(path: string, url: string): Promise<PartialRecord | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const value = parsed as Record<string, unknown>;
  if (value.url !== url) return undefined;
  const text = (field: unknown) => (typeof field === 'string' ? field : undefined);
  return {
    url,
    sha256: text(value.sha256),
    etag: text(value.etag),
    lastModified: text(value.lastModified),
    size: typeof value.size === 'number' && Number.isSafeInteger(value.size) ? value.size : undefined,
  };
}

async function existingLength(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return 0;
    throw error;
  }
}

/** `bytes 100-199/1000` → { start: 100, total: 1000 }; `/*` leaves the total unknown. */
function parseContentRange(
  text: string | undefined,
): { start: number; total: number | undefined } | undefined {
  const match = text === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(text.trim());
  if (match === null) return undefined;
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

/** `bytes *\/1000` → 1000. */
function parseUnsatisfiedRange(text: string | undefined): number | undefined {
  const match = text === undefined ? null : /^bytes \*\/(\d+)$/.exec(text.trim());
  return match === null ? undefined : Number(match[1]);
}
