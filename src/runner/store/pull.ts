import type { Dispatcher } from 'undici';
import { asSha256, parseSha256 } from './digest.js';
import { downloadToPartial } from './download.js';
import { isModelStoreError, ModelStoreError, systemErrorCode } from './errors.js';
import {
  headerValue,
  httpStatusError,
  parseLength,
  type RequestPlan,
  requestFollowingRedirects,
} from './http.js';
import { SharedTasks } from './in-flight.js';
import { formatModelName, type ModelName, parseModelName } from './model-name.js';
import type { ModelManifest, ModelStore } from './model-store.js';
import type { ProgressListener, PullProgress } from './progress.js';
import {
  defaultModelName,
  huggingFaceEndpoint,
  type PullEnvironment,
  type PullSource,
  parsePullRef,
  redactUrl,
} from './pull-ref.js';

export interface PullOptions {
  /** Expected digest (64 hex digits, `sha256:` prefix optional); overrides the hub's. */
  readonly sha256?: string | undefined;
  readonly onProgress?: ProgressListener | undefined;
  /** Cancels this caller's pull; the download stops when no other caller is waiting on it. */
  readonly signal?: AbortSignal | undefined;
  /** Reads `HF_TOKEN` and `SWITCHYARD_HF_ENDPOINT`; defaults to `process.env`. */
  readonly env?: PullEnvironment | undefined;
  /** undici dispatcher for every request (proxy, timeouts, tests); defaults to undici's global one. */
  readonly dispatcher?: Dispatcher | undefined;
  /** Further attempts after a cut connection or a 5xx, each resuming; default 3. */
  readonly retries?: number | undefined;
  /** Delay before the first retry, doubled each time; default 1000 ms. */
  readonly retryDelayMs?: number | undefined;
  /** Directory that relative local paths are resolved against; defaults to `process.cwd()`. */
  readonly cwd?: string | undefined;
}

export interface PullResult {
  readonly manifest: ModelManifest;
  /**
   * `downloaded`: fetched from the first byte; `resumed`: continued an earlier partial download;
   * `present`: the blob was already in the store, so nothing was downloaded; `imported`: a local file.
   */
  readonly outcome: 'downloaded' | 'resumed' | 'present' | 'imported';
}

// One per process, keyed by store root, source and name, so that a second pull of the same model
// joins the first instead of racing it for the same partial file.
const sharedPulls = new SharedTasks<PullResult, PullProgress>();

/**
 * Pulls a model into the store and names it `nameTag` (by default one derived from the ref).
 * `ref` is `hf:<org>/<repo>[@<revision>]/<file>.gguf`, an http(s) URL, or a local path; see
 * `parsePullRef`. The file's sha256 is checked against `options.sha256`, else the hub's, else
 * recorded as computed. Concurrent pulls of the same model share one download.
 *
 * @example
 * const { manifest } = await pullModel(store, 'hf:org/repo/model.Q4_K_M.gguf', undefined, {
 *   onProgress: (progress) => process.stderr.write(`\r${formatProgress(progress)}`),
 * });
 */
export async function pullModel(
  store: ModelStore,
  ref: string,
  nameTag: string | undefined,
  options: PullOptions = {},
): Promise<PullResult> {
  const env = options.env ?? process.env;
  const source = parsePullRef(ref, { env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
  const model = nameTag === undefined ? defaultModelName(source) : parseModelName(nameTag);
  const expected = options.sha256 === undefined ? undefined : parseSha256(options.sha256);

  if (source.kind === 'file') {
    const manifest = await store.importFile(source.path, formatModelName(model), {
      sha256: expected,
      signal: options.signal,
      onProgress: options.onProgress,
    });
    return { manifest, outcome: 'imported' };
  }
  const key = [store.root, source.url, formatModelName(model), expected ?? ''].join('\n');
  return sharedPulls.run(
    key,
    (signal, report) =>
      pullRemote(store, source, model, expected, { ...options, env, signal, onProgress: report }),
    { signal: options.signal, onProgress: options.onProgress },
  );
}

async function pullRemote(
  store: ModelStore,
  source: Extract<PullSource, { kind: 'huggingface' | 'url' }>,
  model: ModelName,
  expected: string | undefined,
  options: PullOptions & { env: PullEnvironment; signal: AbortSignal },
): Promise<PullResult> {
  const token = options.env.HF_TOKEN?.trim() || undefined;
  const hubOrigin =
    source.kind === 'huggingface' ? source.hubOrigin : new URL(huggingFaceEndpoint(options.env)).origin;
  // The token goes to the hub's origin only, whatever the ref; never to a CDN or another server.
  const credentials =
    token === undefined ? undefined : { origin: hubOrigin, authorization: `Bearer ${token}` };
  const hub = new URL(source.url).origin === hubOrigin;

  let expectedSha256 = expected;
  let expectedFrom = expected === undefined ? undefined : '--sha256';
  let expectedSize: number | undefined;
  if (source.kind === 'huggingface') {
    const announced = await probeHub(source.url, {
      credentials,
      signal: options.signal,
      dispatcher: options.dispatcher,
      tokenSet: token !== undefined,
    });
    if (expectedSha256 === undefined && announced.sha256 !== undefined) {
      expectedSha256 = announced.sha256;
      expectedFrom = 'the hub';
    }
    expectedSize = announced.size;
  }

  return downloadToPartial<PullResult>(
    {
      url: source.url,
      expectedSha256,
      expectedFrom,
      expectedSize,
      partialDirectory: store.partialDirectory,
      storeDirectory: store.root,
      credentials,
      hub,
      tokenSet: token !== undefined,
      dispatcher: options.dispatcher,
      fileSystem: store.fileSystem,
      now: store.now,
      signal: options.signal,
      onProgress: options.onProgress,
      retries: options.retries ?? 3,
      retryDelayMs: options.retryDelayMs ?? 1_000,
    },
    {
      async useExisting() {
        if (expectedSha256 === undefined || !(await store.hasBlob(expectedSha256))) return undefined;
        const manifest = await store.commit({ model, sha256: expectedSha256, source: source.ref });
        return { manifest, outcome: 'present' };
      },
      async useFile(file) {
        const manifest = await store.commit({
          model,
          sha256: file.sha256,
          source: source.ref,
          file: file.path,
        });
        return { manifest, outcome: file.resumedFrom > 0 ? 'resumed' : 'downloaded' };
      },
    },
  );
}

/**
 * Asks the hub about the file before downloading it. Hugging Face answers a resolve URL for an
 * LFS (or Xet) file with `X-Linked-Etag: "<sha256>"` and `X-Linked-Size` on its redirect to the
 * CDN; a file kept in git itself has a git object id (sha1) as ETag, which is no use here.
 */
async function probeHub(
  url: string,
  plan: Pick<RequestPlan, 'credentials' | 'signal' | 'dispatcher'> & {
    tokenSet: boolean;
    signal: AbortSignal;
  },
): Promise<{ sha256: string | undefined; size: number | undefined }> {
  let followed: Awaited<ReturnType<typeof requestFollowingRedirects>>;
  try {
    followed = await requestFollowingRedirects(url, {
      method: 'HEAD',
      headers: { 'accept-encoding': 'identity' },
      credentials: plan.credentials,
      signal: plan.signal,
      dispatcher: plan.dispatcher,
    });
  } catch (error) {
    throw probeError(url, error, plan.signal);
  }
  const { response, hops } = followed;
  await response.body.dump();
  const final = hops[hops.length - 1]!;
  if (response.statusCode < 200 || response.statusCode > 299) {
    throw httpStatusError(url, final, { hub: true, tokenSet: plan.tokenSet });
  }
  let sha256: string | undefined;
  let size: number | undefined;
  for (const hop of hops) {
    sha256 ??= asSha256(unquote(headerValue(hop.headers, 'x-linked-etag')));
    size ??= parseLength(headerValue(hop.headers, 'x-linked-size'));
  }
  sha256 ??= asSha256(unquote(headerValue(hops[0]!.headers, 'etag')));
  size ??= parseLength(headerValue(final.headers, 'content-length'));
  return { sha256, size };
}

function probeError(url: string, error: unknown, signal: AbortSignal): ModelStoreError {
  if (isModelStoreError(error)) return error;
  if (signal.aborted) {
    return new ModelStoreError('aborted', `The pull of ${redactUrl(url)} was cancelled before it started.`, {
      cause: error,
    });
  }
  const code = systemErrorCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  return new ModelStoreError(
    'download_failed',
    `Could not reach ${new URL(url).origin} (${code ? `${code}: ` : ''}${reason}). Check the network, or ` +
      'SWITCHYARD_HF_ENDPOINT if you use a mirror.',
    { cause: error, retryable: true },
  );
}

/** `"abc"` and `W/"abc"` → `abc`. */
function unquote(value: string | undefined): string | undefined {
  return value
    ?.trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
}
