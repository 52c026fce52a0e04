/**
 * Why a file could not be read as GGUF, as a stable code callers can switch on (the model store
 * maps `GGUF_TRUNCATED` to "download incomplete" and the others to "not a model file").
 */
export type GgufFormatErrorCode =
  | 'GGUF_NOT_GGUF'
  | 'GGUF_UNSUPPORTED_VERSION'
  | 'GGUF_TRUNCATED'
  | 'GGUF_INVALID';

/** A file that is not a GGUF model this module can read; the message names the file and the fault. */
export class GgufFormatError extends Error {
  override readonly name = 'GgufFormatError';
  readonly code: GgufFormatErrorCode;
  readonly path: string;

  constructor(code: GgufFormatErrorCode, path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.code = code;
    this.path = path;
  }
}
