export {
  createDemoModel,
  type DemoModel,
  type DemoModelOptions,
  type DemoModelSize,
  demoModelSizes,
  demoTensorTypes,
} from './demo-model.js';
export {
  type GgufArrayItem,
  type GgufArrayValue,
  type GgufMetadataValue,
  type GgufValueType,
  gguf,
} from './format.js';
export { GgufFormatError, type GgufFormatErrorCode } from './gguf-format-error.js';
export { type GgufInfo, type GgufTensorInfo, type ReadGgufOptions, readGgufInfo } from './gguf-reader.js';
export {
  type GgufTensorSource,
  type GgufWriteRequest,
  type GgufWriteResult,
  writeGguf,
} from './gguf-writer.js';
export { type WritableTensorType, writableTensorTypes } from './tensor-encoding.js';
