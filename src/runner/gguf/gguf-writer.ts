import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import {
  defaultAlignment,
  type GgufArrayItem,
  type GgufMetadataValue,
  type GgufValueType,
  ggmlTypeByName,
  ggufMagic,
  ggufVersion,
  maximumTensorDimensions,
  maximumTensorNameLength,
  tensorByteSize,
  valueTypeIds,
} from './format.js';
import { encodeTensorValues, type WritableTensorType } from './tensor-encoding.js';

/**
 * A tensor to write. Its values are pulled chunk by chunk when the writer reaches it, so a model
 * never sits in memory whole.
 */
export interface GgufTensorSource {
  /** ggml's tensor name, such as "blk.0.attn_q.weight". */
  readonly name: string;
  /** ggml order: dimension 0 varies fastest (for a weight matrix, it is the input width). */
  readonly dimensions: readonly number[];
  readonly type: WritableTensorType;
  /**
   * The tensor's values in storage order. Each chunk's length must be a multiple of the type's
   * block size (32 for Q8_0); together the chunks must hold exactly the tensor's element count.
   */
  values(): Iterable<Float32Array>;
}

export interface GgufWriteRequest {
  /** Metadata in the order it is written. `general.alignment`, when present, sets the alignment. */
  readonly metadata: Readonly<Record<string, GgufMetadataValue>>;
  readonly tensors: readonly GgufTensorSource[];
}

export interface GgufWriteResult {
  readonly path: string;
  readonly bytes: number;
  /** Hex sha256 of the file, computed while writing it, for content-addressed stores. */
  readonly sha256: string;
}

/**
 * Writes a GGUF v3 file. The file appears at `path` only once it is complete (it is written
 * beside it and renamed), so a crash or a failed tensor never leaves a half model that a reader
 * could mistake for a whole one.
 *
 * @example
 * await writeGguf('/tmp/m.gguf', {
 *   metadata: { 'general.architecture': gguf.string('llama') },
 *   tensors: [{ name: 'output_norm.weight', dimensions: [64], type: 'F32', values: () => [new Float32Array(64).fill(1)] }],
 * });
 */
export async function writeGguf(path: string, request: GgufWriteRequest): Promise<GgufWriteResult> {
  const alignment = alignmentOf(request.metadata);
  const layout = planTensors(request.tensors, alignment);
  const header = encodeHeader(request.metadata, layout);

  const partialPath = `${path}.partial-${process.pid}-${++partialCounter}`;
  const handle = await open(partialPath, 'w');
  try {
    const output = new HashingFileWriter(handle);
    await output.write(header);
    await output.write(new Uint8Array(padding(header.length, alignment)));
    for (const [index, tensor] of request.tensors.entries()) {
      await writeTensorData(output, tensor, layout[index]!.elementCount);
      await output.write(new Uint8Array(padding(output.bytesWritten, alignment)));
    }
    await output.flush();
    await handle.close();
    await rename(partialPath, path);
    return { path, bytes: output.bytesWritten, sha256: output.digest() };
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(partialPath, { force: true });
    throw error;
  }
}

/** Distinguishes concurrent writes from one process to the same target. */
let partialCounter = 0;

interface PlannedTensor {
  readonly source: GgufTensorSource;
  readonly elementCount: number;
  /** Offset from the start of the tensor data section. */
  readonly offset: number;
}

function alignmentOf(metadata: GgufWriteRequest['metadata']): number {
  const declared = metadata['general.alignment'];
  if (declared === undefined) return defaultAlignment;
  if (declared.type !== 'uint32') throw new TypeError('general.alignment must be a uint32');
  const alignment = Number(declared.value);
  // ggml requires a power of two; a multiple of 8 keeps every tensor's float data aligned.
  if (alignment < 8 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`general.alignment must be a power of two of at least 8, not ${alignment}`);
  }
  return alignment;
}

function planTensors(tensors: readonly GgufTensorSource[], alignment: number): PlannedTensor[] {
  const names = new Set<string>();
  let offset = 0;
  return tensors.map((source) => {
    const { name, dimensions, type } = source;
    if (names.has(name)) throw new Error(`Tensor "${name}" appears twice`);
    names.add(name);
    if (name.length === 0 || Buffer.byteLength(name) > maximumTensorNameLength) {
      throw new RangeError(`Tensor name "${name}" must be 1–${maximumTensorNameLength} bytes`);
    }
    if (dimensions.length === 0 || dimensions.length > maximumTensorDimensions) {
      throw new RangeError(`Tensor "${name}" must have 1–${maximumTensorDimensions} dimensions`);
    }
    for (const dimension of dimensions) {
      if (!Number.isSafeInteger(dimension) || dimension < 1) {
        throw new RangeError(`Tensor "${name}" has an invalid dimension ${dimension}`);
      }
    }
    const typeLayout = ggmlTypeByName(type);
    // ggml quantises row by row, so every row (dimension 0) must be whole blocks.
    if (dimensions[0]! % typeLayout.blockSize !== 0) {
      throw new RangeError(
        `Tensor "${name}" is ${type}, whose rows must be a multiple of ${typeLayout.blockSize} wide; dimension 0 is ${dimensions[0]}`,
      );
    }
    const elementCount = dimensions.reduce((product, dimension) => product * dimension, 1);
    const planned = { source, elementCount, offset };
    offset += tensorByteSize(typeLayout, elementCount);
    offset += padding(offset, alignment);
    return planned;
  });
}

function encodeHeader(metadata: GgufWriteRequest['metadata'], tensors: readonly PlannedTensor[]): Uint8Array {
  const output = new GrowableBuffer();
  output.bytes(ggufMagic);
  output.uint32(ggufVersion);
  output.uint64(tensors.length);
  const entries = Object.entries(metadata);
  output.uint64(entries.length);
  for (const [key, value] of entries) {
    // The specification limits keys to ASCII, at most 65 535 bytes.
    if (!/^[\x20-\x7e]{1,65535}$/.test(key)) throw new RangeError(`Invalid metadata key "${key}"`);
    output.string(key);
    output.uint32(valueTypeIds[value.type]);
    writeValue(output, key, value.type, value.type === 'array' ? value : value.value);
  }
  for (const { source, offset } of tensors) {
    output.string(source.name);
    output.uint32(source.dimensions.length);
    for (const dimension of source.dimensions) output.uint64(dimension);
    output.uint32(ggmlTypeByName(source.type).id);
    output.uint64(offset);
  }
  return output.contents();
}

/** Integer ranges per type; a value outside its type's range would otherwise wrap silently. */
const integerRanges: Partial<Record<GgufValueType, readonly [bigint, bigint]>> = {
  uint8: [0n, 0xffn],
  int8: [-0x80n, 0x7fn],
  uint16: [0n, 0xffffn],
  int16: [-0x8000n, 0x7fffn],
  uint32: [0n, 0xffffffffn],
  int32: [-0x80000000n, 0x7fffffffn],
  uint64: [0n, 0xffffffffffffffffn],
  int64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

function writeValue(output: GrowableBuffer, key: string, type: GgufValueType, value: GgufArrayItem): void {
  const range = integerRanges[type];
  if (range !== undefined) {
    const isInteger = typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
    const integer = isInteger ? BigInt(value as number | bigint) : undefined;
    if (integer === undefined || integer < range[0] || integer > range[1]) {
      throw new RangeError(`Metadata "${key}": ${String(value)} is not a valid ${type}`);
    }
  }
  const mismatch = () => new TypeError(`Metadata "${key}": ${String(value)} is not a ${type}`);
  switch (type) {
    case 'uint8':
      output.view(1).setUint8(0, Number(value));
      break;
    case 'int8':
      output.view(1).setInt8(0, Number(value));
      break;
    case 'uint16':
      output.view(2).setUint16(0, Number(value), true);
      break;
    case 'int16':
      output.view(2).setInt16(0, Number(value), true);
      break;
    case 'uint32':
      output.view(4).setUint32(0, Number(value), true);
      break;
    case 'int32':
      output.view(4).setInt32(0, Number(value), true);
      break;
    case 'uint64':
      output.view(8).setBigUint64(0, BigInt(value as number | bigint), true);
      break;
    case 'int64':
      output.view(8).setBigInt64(0, BigInt(value as number | bigint), true);
      break;
    case 'float32':
      if (typeof value !== 'number') throw mismatch();
      output.view(4).setFloat32(0, value, true);
      break;
    case 'float64':
      if (typeof value !== 'number') throw mismatch();
      output.view(8).setFloat64(0, value, true);
      break;
    case 'bool':
      if (typeof value !== 'boolean') throw mismatch();
      output.view(1).setUint8(0, value ? 1 : 0);
      break;
    case 'string':
      if (typeof value !== 'string') throw mismatch();
      output.string(value);
      break;
    case 'array':
      if (typeof value !== 'object' || value.items === undefined) throw mismatch();
      if (value.items.length !== value.length) {
        throw new RangeError(
          `Metadata "${key}": array length ${value.length} but ${value.items.length} items`,
        );
      }
      output.uint32(valueTypeIds[value.itemType]);
      output.uint64(value.items.length);
      for (const item of value.items) writeValue(output, key, value.itemType, item);
      break;
  }
}

async function writeTensorData(
  output: HashingFileWriter,
  tensor: GgufTensorSource,
  elementCount: number,
): Promise<void> {
  let written = 0;
  for (const chunk of tensor.values()) {
    written += chunk.length;
    if (written > elementCount) break;
    await output.write(encodeTensorValues(tensor.type, chunk));
  }
  if (written !== elementCount) {
    throw new RangeError(`Tensor "${tensor.name}" needs ${elementCount} values; its source gave ${written}`);
  }
}

/** Bytes needed after `offset` to reach the next multiple of `alignment`. */
function padding(offset: number, alignment: number): number {
  return (alignment - (offset % alignment)) % alignment;
}

/** An append-only little-endian byte builder for the header, which is small enough to build whole. */
class GrowableBuffer {
  #buffer = new Uint8Array(64 * 1024);
  #length = 0;

  /** A DataView over the next `size` bytes, which count as written. */
  view(size: number): DataView {
    this.#reserve(size);
    const view = new DataView(this.#buffer.buffer, this.#length, size);
    this.#length += size;
    return view;
  }

  bytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  uint32(value: number): void {
    this.view(4).setUint32(0, value, true);
  }

  uint64(value: number): void {
    this.view(8).setBigUint64(0, BigInt(value), true);
  }

  /** A GGUF string: its UTF-8 byte length as uint64, then the bytes, with no terminator. */
  string(value: string): void {
    const encoded = Buffer.from(value, 'utf8');
    this.uint64(encoded.length);
    this.bytes(encoded);
  }

  contents(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }

  #reserve(size: number): void {
    if (this.#length + size <= this.#buffer.length) return;
    const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + size));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

/** Batches small writes into large ones and hashes everything that passes through. */
class HashingFileWriter {
  readonly #handle: FileHandle;
  readonly #hash: Hash = createHash('sha256');
  readonly #buffer = new Uint8Array(1024 * 1024);
  #buffered = 0;
  bytesWritten = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.#hash.update(bytes);
    this.bytesWritten += bytes.length;
    if (this.#buffered + bytes.length > this.#buffer.length) await this.flush();
    if (bytes.length >= this.#buffer.length) {
      await this.#writeFully(bytes);
      return;
    }
    this.#buffer.set(bytes, this.#buffered);
    this.#buffered += bytes.length;
  }

  async flush(): Promise<void> {
    if (this.#buffered === 0) return;
    await this.#writeFully(this.#buffer.subarray(0, this.#buffered));
    this.#buffered = 0;
  }

  digest(): string {
    return this.#hash.digest('hex');
  }

  async #writeFully(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.#handle.write(bytes, offset, bytes.length - offset);
      offset += bytesWritten;
    }
  }
}
