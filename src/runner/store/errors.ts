/**
 * Failures of the model store and of pulls. Each has a stable `code` that the CLI and the admin
 * API switch on, and a message written for the person who typed the command: it says what went
 * wrong and what to do next. `retryable` says whether the same pull may succeed if run again
 * (a cut connection, a 503), which is also what the pull's own retry loop consults.
 */
export const modelStoreErrorCodes = {
  /** A model name, tag or pull ref that cannot be used as written. */
  invalid_ref: { retryable: false },
  /** An expected sha256 that is not 64 hexadecimal digits. */
  invalid_sha256: { retryable: false },
  /** No such model in the store, or no such local file to import. */
  not_found: { retryable: false },
  /** The bytes received do not hash to the expected sha256. */
  checksum_mismatch: { retryable: false },
  /** The transfer broke off (connection cut, short body, too many redirects). */
  download_failed: { retryable: true },
  /** The server answered with a status other than success; see `status`. */
  http_error: { retryable: false },
  /** The disk (or quota) under the store has no room for the file. */
  disk_full: { retryable: false },
  /** The caller's AbortSignal fired; the partial download is kept for a later resume. */
  aborted: { retryable: false },
  /** Another process holds the lock on the same partial download. */
  pull_in_progress: { retryable: true },
  /** The injected inspector rejected the file (not a usable GGUF model). */
  invalid_model: { retryable: false },
  /** A manifest on disk could not be read as one; someone edited or truncated it. */
  corrupt_manifest: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

export type ModelStoreErrorCode = keyof typeof modelStoreErrorCodes;

export interface ModelStoreErrorOptions {
  cause?: unknown;
  /** HTTP status for `http_error`. */
  status?: number;
  /** Overrides the code's default, e.g. a 503 is worth retrying where a 404 is not. */
  retryable?: boolean;
}

/**
 * @example
 * throw new ModelStoreError('not_found', 'No model "llama:latest". Run `switchyard models ls`.');
 */
export class ModelStoreError extends Error {
  override readonly name = 'ModelStoreError';
  readonly code: ModelStoreErrorCode;
  readonly retryable: boolean;
  readonly status: number | undefined;

  constructor(code: ModelStoreErrorCode, message: string, options: ModelStoreErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? modelStoreErrorCodes[code].retryable;
    this.status = options.status;
  }
}

export function isModelStoreError(value: unknown, code?: ModelStoreErrorCode): value is ModelStoreError {
  return value instanceof ModelStoreError && (code === undefined || value.code === code);
}

/** The `code` of a Node system error (`ENOSPC`, `EXDEV` …), if it has one. */
export function systemErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
