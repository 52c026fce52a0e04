export { formatDigest, parseSha256 } from './digest.js';
export { partialKey } from './download.js';
export {
  isModelStoreError,
  ModelStoreError,
  type ModelStoreErrorCode,
  modelStoreErrorCodes,
} from './errors.js';
export { nodeFileSystem, type StoreFileSystem, type WritableFile } from './file-system.js';
export { defaultTag, formatModelName, type ModelName, parseModelName } from './model-name.js';
export {
  type BlobInspector,
  type CommitRequest,
  type ImportOptions,
  type ModelManifest,
  ModelStore,
  type ModelStoreOptions,
  type RemoveResult,
} from './model-store.js';
export {
  formatBytes,
  formatDuration,
  formatProgress,
  formatProgressLine,
  formatSpeed,
  type ProgressListener,
  ProgressMeter,
  type PullProgress,
} from './progress.js';
export { type PullOptions, type PullResult, pullModel } from './pull.js';
export {
  defaultHuggingFaceEndpoint,
  defaultModelName,
  huggingFaceEndpoint,
  type PullEnvironment,
  type PullSource,
  parsePullRef,
  redactUrl,
} from './pull-ref.js';
