import { asGatewayError, GatewayError } from '../errors/index.js';
import { isModelStoreError } from '../runner/store/errors.js';

/** Which request field a store failure is about, where the endpoint knows it. */
export interface StoreFailureFields {
  /** The field that named the model ("name"), or the pull ref ("ref") for an invalid ref. */
  readonly ref?: string;
  /** A `not_found` from a file to import or pull, rather than a model: a 400 on that field. */
  readonly file?: string;
}

/**
 * The catalogue error for a model store failure, keeping the store's own message, which says
 * what went wrong and what to do. Anything that is not a store failure is an internal error.
 */
export function storeFailure(error: unknown, fields: StoreFailureFields = {}): GatewayError {
  if (!isModelStoreError(error)) return asGatewayError(error);
  const options = { cause: error };
  switch (error.code) {
    case 'invalid_ref':
      return new GatewayError('invalid_field', error.message, { ...options, param: fields.ref ?? null });
    case 'invalid_sha256':
      return new GatewayError('invalid_field', error.message, { ...options, param: 'sha256' });
    case 'not_found':
      return fields.file === undefined
        ? new GatewayError('model_not_found', error.message, options)
        : new GatewayError('invalid_field', error.message, { ...options, param: fields.file });
    case 'checksum_mismatch':
      return new GatewayError('checksum_mismatch', error.message, options);
    case 'invalid_model':
      return new GatewayError('invalid_model', error.message, options);
    case 'download_failed':
    case 'http_error':
      return new GatewayError('pull_failed', error.message, options);
    case 'pull_in_progress':
      return new GatewayError('pull_in_progress', error.message, options);
    case 'disk_full':
      return new GatewayError('insufficient_storage', error.message, options);
    case 'aborted':
      // Only the gateway's shutdown aborts an admin pull; its partial file is kept for a resume.
      return new GatewayError(
        'shutting_down',
        'The gateway is shutting down, so the pull stopped. Pull again once it is back: the download resumes.',
        options,
      );
    case 'corrupt_manifest':
      // An operator's problem with a file on disk; the message names the file and the fix.
      return new GatewayError('internal_error', error.message, options);
  }
}
