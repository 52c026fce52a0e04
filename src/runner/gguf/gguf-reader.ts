import { type FileHandle, open } from 'node:fs/promises';
import {
  defaultAlignment,
  fileTypeName,
  fixedValueSizes,
  type GgufArrayItem,
  type GgufArrayValue,
  type GgufMetadataValue,
  type GgufValueType,
  ggmlTypeById,
  ggufMagic,
  maximumTensorDimensions,
  tensorByteSize,
  valueTypeFromId,
} from './format.js';
import { GgufFormatError } from './gguf-format-error.js';

/** Where one tensor's data lies, as the header describes it. */
export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: dimension 0 varies fastest. */
  readonly dimensions: readonly number[];
  /** The ggml type id, and its name ("Q8_0"), or "type N" for an id this module does not know. */
  readonly typeId: number;
  readonly typeName: string;
  readonly elementCount: number;
  /** Bytes of data, or undefined for a type whose block layout this module does not know. */
  readonly byteSize: number | undefined;
  /** Absolute offset of the data in the file. */
  readonly offset: number;
}

/** What a GGUF file's header says about the model in it. */
export interface GgufInfo {
  readonly version: number;
  readonly fileSize: number;
  readonly tensorCount: number;
  readonly metadata: ReadonlyMap<string, GgufMetadataValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset where tensor data starts; everything before it is the header region. */
  readonly tensorDataOffset: number;

  /** `general.architecture`, such as "llama". */
  readonly architecture: string | undefined;
  readonly name: string | undefined;
  readonly description: string | undefined;
  /** The sum of every tensor's element count. */
  readonly parameterCount: number;
  readonly contextLength: number | undefined;
  readonly embeddingLength: number | undefined;
  readonly blockCount: number | undefined;
  readonly headCount: number | undefined;
  readonly headCountKv: number | undefined;
  /** `general.file_type` as stored (llama.cpp's `llama_ftype`). */
  readonly fileType: number | undefined;
  /**
   * The quantisation people name the file by ("Q4_K_M", "Q8_0", "F16"): from `general.file_type`,
   * or, when a file lacks it, the type of the largest share of matrix elements.
   */
  readonly quantization: string | undefined;
  readonly chatTemplate: string | undefined;
  /** `tokenizer.ggml.model`, such as "llama" (SentencePiece) or "gpt2" (byte-level BPE). */
  readonly tokenizerModel: string | undefined;
  readonly vocabularySize: number | undefined;
}

export interface ReadGgufOptions {
  /**
   * Arrays longer than this are returned with their length but without their items, which saves
   * decoding hundreds of thousands of vocabulary strings when only the facts are wanted.
   * Default: every item is returned.
   */
  readonly maximumArrayItems?: number;
}

/**
 * Reads a GGUF file's header region (metadata and tensor descriptions), never its tensor data,
 * and derives the facts a model manifest needs. Rejects a file that is not GGUF, or whose header
 * or tensor data is cut short, with a {@link GgufFormatError}.
 *
 * @example
 * const info = await readGgufInfo('model.gguf', { maximumArrayItems: 0 });
 * console.log(info.architecture, info.parameterCount, info.quantization, info.contextLength);
 */
export async function readGgufInfo(path: string, options: ReadGgufOptions = {}): Promise<GgufInfo> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const cursor = new FileCursor(handle, path, size);
    return await parse(cursor, path, options.maximumArrayItems ?? Number.POSITIVE_INFINITY);
  } finally {
    await handle.close();
  }
}

async function parse(cursor: FileCursor, path: string, maximumArrayItems: number): Promise<GgufInfo> {
  const fail = (code: 'GGUF_INVALID' | 'GGUF_UNSUPPORTED_VERSION', detail: string) =>
    new GgufFormatError(code, path, detail);

  await readMagic(cursor, path);
  await cursor.ensure(20, 'the header');
  const version = cursor.uint32();
  if (version === 1) {
    throw fail(
      'GGUF_UNSUPPORTED_VERSION',
      'GGUF version 1 (2023 drafts) is not supported; convert the model again',
    );
  }
  if (version !== 2 && version !== 3) {
    // A big-endian file stores 3 as 0x03000000; say so rather than "version 50331648".
    const hint = version === 0x03000000 || version === 0x02000000 ? ' (a big-endian GGUF)' : '';
    throw fail('GGUF_UNSUPPORTED_VERSION', `unsupported GGUF version ${version}${hint}`);
  }
  const tensorCount = cursor.count('the tensor count');
  const metadataCount = cursor.count('the metadata count');
  // The smallest metadata entry is 13 bytes and the smallest tensor description 24, so counts
  // that could not fit are refused now, not after reading a multi-gigabyte file to its end.
  cursor.expectRemaining(metadataCount * 13 + tensorCount * 24, 'the header');

  const metadata = new Map<string, GgufMetadataValue>();
  for (let index = 0; index < metadataCount; index++) {
    const key = await cursor.string(`metadata key ${index}`);
    await cursor.ensure(4, `the type of metadata "${key}"`);
    const type = readValueType(cursor.uint32(), key, path);
    if (metadata.has(key)) throw fail('GGUF_INVALID', `metadata key "${key}" appears twice`);
    metadata.set(key, await readValue(cursor, type, key, maximumArrayItems));
  }

  const alignmentValue = metadata.get('general.alignment');
  const alignment =
    alignmentValue === undefined ? defaultAlignment : Number(numberOf(alignmentValue) ?? Number.NaN);
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw fail('GGUF_INVALID', 'general.alignment is not a power of two');
  }

  const descriptions: { name: string; dimensions: number[]; typeId: number; relativeOffset: number }[] = [];
  for (let index = 0; index < tensorCount; index++) {
    const name = await cursor.string(`the name of tensor ${index}`);
    await cursor.ensure(4, `tensor "${name}"`);
    const dimensionCount = cursor.uint32();
    if (dimensionCount > maximumTensorDimensions) {
      throw fail('GGUF_INVALID', `tensor "${name}" has ${dimensionCount} dimensions`);
    }
    await cursor.ensure(dimensionCount * 8 + 12, `tensor "${name}"`);
    const dimensions: number[] = [];
    for (let dimension = 0; dimension < dimensionCount; dimension++) {
      dimensions.push(cursor.count(`a dimension of tensor "${name}"`));
    }
    const typeId = cursor.uint32();
    const relativeOffset = cursor.count(`the offset of tensor "${name}"`);
    descriptions.push({ name, dimensions, typeId, relativeOffset });
  }

  const tensorDataOffset = alignUp(cursor.position, alignment);
  let parameterCount = 0;
  let dataEnd = tensorDataOffset;
  const tensors = descriptions.map(({ name, dimensions, typeId, relativeOffset }): GgufTensorInfo => {
    const elementCount = dimensions.reduce((product, dimension) => product * dimension, 1);
    const layout = ggmlTypeById(typeId);
    const byteSize = layout === undefined ? undefined : tensorByteSize(layout, elementCount);
    const offset = tensorDataOffset + relativeOffset;
    if (relativeOffset % alignment !== 0) {
      throw fail('GGUF_INVALID', `tensor "${name}" is not aligned to ${alignment} bytes`);
    }
    parameterCount += elementCount;
    dataEnd = Math.max(dataEnd, offset + (byteSize ?? 0));
    const typeName = layout?.name ?? `type ${typeId}`;
    return { name, dimensions, typeId, typeName, elementCount, byteSize, offset };
  });
  // Checked from the header alone, so a partial download is caught without reading gigabytes.
  if (dataEnd > cursor.fileSize) {
    throw new GgufFormatError(
      'GGUF_TRUNCATED',
      path,
      `truncated: its tensors end at byte ${dataEnd} but the file has ${cursor.fileSize} bytes`,
    );
  }

  return {
    version,
    fileSize: cursor.fileSize,
    tensorCount,
    metadata,
    tensors,
    alignment,
    tensorDataOffset,
    parameterCount,
    ...deriveFacts(metadata, tensors),
  };
}

type DerivedFacts = Omit<
  GgufInfo,
  | 'version'
  | 'fileSize'
  | 'tensorCount'
  | 'metadata'
  | 'tensors'
  | 'alignment'
  | 'tensorDataOffset'
  | 'parameterCount'
>;

function deriveFacts(
  metadata: ReadonlyMap<string, GgufMetadataValue>,
  tensors: readonly GgufTensorInfo[],
): DerivedFacts {
  const text = (key: string) => {
    const value = metadata.get(key);
    return value?.type === 'string' ? value.value : undefined;
  };
  const number = (key: string) => {
    const value = metadata.get(key);
    return value === undefined ? undefined : numberOf(value);
  };
  const architecture = text('general.architecture');
  // Architecture-specific keys carry the architecture's name as their prefix ("llama.block_count").
  const architectureNumber = (suffix: string) =>
    architecture === undefined ? undefined : number(`${architecture}.${suffix}`);
  const fileType = number('general.file_type');
  const tokens = metadata.get('tokenizer.ggml.tokens');
  return {
    architecture,
    name: text('general.name'),
    description: text('general.description'),
    contextLength: architectureNumber('context_length'),
    embeddingLength: architectureNumber('embedding_length'),
    blockCount: architectureNumber('block_count'),
    headCount: architectureNumber('attention.head_count'),
    headCountKv: architectureNumber('attention.head_count_kv'),
    fileType,
    quantization:
      (fileType === undefined ? undefined : fileTypeName(fileType)) ?? dominantMatrixType(tensors),
    chatTemplate: text('tokenizer.chat_template'),
    tokenizerModel: text('tokenizer.ggml.model'),
    vocabularySize: tokens?.type === 'array' ? tokens.length : undefined,
  };
}

/** A scalar's numeric value, or undefined for strings, booleans and arrays. */
function numberOf(value: GgufMetadataValue): number | undefined {
  if (value.type === 'array') return undefined;
  if (typeof value.value === 'number') return value.value;
  if (typeof value.value === 'bigint') return Number(value.value);
  return undefined;
}

/** The tensor type holding the most elements among matrices (vectors are norms, kept as F32). */
function dominantMatrixType(tensors: readonly GgufTensorInfo[]): string | undefined {
  const elementsByType = new Map<string, number>();
  for (const tensor of tensors) {
    if (tensor.dimensions.length < 2) continue;
    elementsByType.set(tensor.typeName, (elementsByType.get(tensor.typeName) ?? 0) + tensor.elementCount);
  }
  let dominant: string | undefined;
  let most = 0;
  for (const [typeName, count] of elementsByType) {
    if (count > most) [dominant, most] = [typeName, count];
  }
  return dominant;
}

async function readMagic(cursor: FileCursor, path: string): Promise<void> {
  const available = Math.min(4, cursor.fileSize);
  await cursor.ensure(available, 'the magic number');
  const start = cursor.bytes(available);
  if (Buffer.compare(start, ggufMagic.subarray(0, available)) !== 0) {
    const shown = JSON.stringify(start.toString('latin1'));
    throw new GgufFormatError('GGUF_NOT_GGUF', path, `not a GGUF file: it starts with ${shown}, not "GGUF"`);
  }
  if (available < 4) {
    throw new GgufFormatError(
      'GGUF_TRUNCATED',
      path,
      `truncated: the file has only ${cursor.fileSize} bytes`,
    );
  }
}

function readValueType(id: number, key: string, path: string): GgufValueType {
  const type = valueTypeFromId(id);
  if (type === undefined)
    throw new GgufFormatError('GGUF_INVALID', path, `metadata "${key}" has unknown type ${id}`);
  return type;
}

async function readValue(
  cursor: FileCursor,
  type: GgufValueType,
  key: string,
  maximumArrayItems: number,
): Promise<GgufMetadataValue> {
  if (type === 'array') return readArray(cursor, key, maximumArrayItems);
  if (type === 'string') return { type, value: await cursor.string(`metadata "${key}"`) };
  await cursor.ensure(fixedValueSizes[type]!, `metadata "${key}"`);
  const value = readScalar(cursor, type);
  return { type, value } as GgufMetadataValue;
}

async function readArray(
  cursor: FileCursor,
  key: string,
  maximumArrayItems: number,
): Promise<GgufArrayValue> {
  const what = `metadata "${key}"`;
  await cursor.ensure(12, what);
  const itemType = readValueType(cursor.uint32(), key, cursor.path);
  const length = cursor.count(what);
  // Every item takes at least its fixed size (8 bytes of length for a string or array), so an
  // absurd length is caught here rather than after looping over it.
  const smallestItem = fixedValueSizes[itemType] ?? (itemType === 'string' ? 8 : 12);
  cursor.expectRemaining(length * smallestItem, what);
  const keep = length <= maximumArrayItems;
  const items: GgufArrayItem[] | undefined = keep ? [] : undefined;

  const fixedSize = fixedValueSizes[itemType];
  if (fixedSize !== undefined && !keep) {
    cursor.skip(length * fixedSize);
  } else if (fixedSize !== undefined) {
    await cursor.ensure(length * fixedSize, what);
    for (let index = 0; index < length; index++) items!.push(readScalar(cursor, itemType));
  } else if (itemType === 'string') {
    for (let index = 0; index < length; index++) {
      // Awaits only when the window runs dry: a vocabulary is hundreds of thousands of strings.
      if (!cursor.has(8)) await cursor.ensure(8, what);
      const byteLength = cursor.stringLength(what);
      if (!cursor.has(byteLength)) await cursor.ensure(byteLength, what);
      if (keep) items!.push(cursor.text(byteLength));
      else cursor.skip(byteLength);
    }
  } else {
    for (let index = 0; index < length; index++) {
      const nested = await readArray(cursor, key, keep ? maximumArrayItems : -1);
      if (keep) items!.push(nested);
    }
  }
  return { type: 'array', itemType, length, items };
}

/** Reads a fixed-size scalar the cursor has already ensured. */
function readScalar(cursor: FileCursor, type: GgufValueType): number | bigint | boolean {
  switch (type) {
    case 'uint8':
      return cursor.view(1).getUint8(0);
    case 'int8':
      return cursor.view(1).getInt8(0);
    case 'bool':
      return cursor.view(1).getUint8(0) !== 0;
    case 'uint16':
      return cursor.view(2).getUint16(0, true);
    case 'int16':
      return cursor.view(2).getInt16(0, true);
    case 'uint32':
      return cursor.uint32();
    case 'int32':
      return cursor.view(4).getInt32(0, true);
    case 'float32':
      return cursor.view(4).getFloat32(0, true);
    case 'uint64':
      return cursor.view(8).getBigUint64(0, true);
    case 'int64':
      return cursor.view(8).getBigInt64(0, true);
    case 'float64':
      return cursor.view(8).getFloat64(0, true);
    default:
      throw new TypeError(`${type} is not a fixed-size type`);
  }
}

/** See {@link FileCursor.stringLength}. */
const maximumStringBytes = 256 * 1024 * 1024;

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

/**
 * Sequential reads over a file through a window that grows on demand. Callers `ensure` the bytes
 * they are about to decode, which awaits only when the window runs dry, so decoding a vocabulary
 * of 150 000 strings costs a few file reads rather than 150 000 awaits.
 */
class FileCursor {
  readonly #handle: FileHandle;
  readonly path: string;
  readonly fileSize: number;
  #window: Buffer = Buffer.alloc(0);
  /** File offset of the window's first byte. */
  #windowStart = 0;
  /** Absolute file offset of the next byte to decode. */
  position = 0;

  constructor(handle: FileHandle, path: string, fileSize: number) {
    this.#handle = handle;
    this.path = path;
    this.fileSize = fileSize;
  }

  /** Whether the next `size` bytes are already in the window. */
  has(size: number): boolean {
    return this.position + size <= this.#windowStart + this.#window.length;
  }

  /** Makes the next `size` bytes available, or rejects the file as truncated at `what`. */
  async ensure(size: number, what: string): Promise<void> {
    if (this.has(size)) return;
    this.expectRemaining(size, what);
    // Read generously ahead: headers are read front to back and are usually a few megabytes.
    const wanted = Math.min(Math.max(size, 1024 * 1024), this.fileSize - this.position);
    const window = Buffer.allocUnsafe(wanted);
    const kept = Math.max(0, this.#windowStart + this.#window.length - this.position);
    if (kept > 0) this.#window.copy(window, 0, this.position - this.#windowStart);
    let filled = kept;
    while (filled < wanted) {
      const { bytesRead } = await this.#handle.read(window, filled, wanted - filled, this.position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    this.#window = window.subarray(0, filled);
    this.#windowStart = this.position;
    // The file shrank while we read it: as truncated as a short file.
    if (filled < size) this.expectRemaining(Number.POSITIVE_INFINITY, what);
  }

  /** Rejects the file as truncated if fewer than `size` bytes remain after the cursor. */
  expectRemaining(size: number, what: string): void {
    if (this.position + size > this.fileSize) {
      throw new GgufFormatError(
        'GGUF_TRUNCATED',
        this.path,
        `truncated: ${what} runs past the end of the file (byte ${this.fileSize})`,
      );
    }
  }

  view(size: number): DataView {
    const start = this.position - this.#windowStart;
    this.position += size;
    return new DataView(this.#window.buffer, this.#window.byteOffset + start, size);
  }

  bytes(size: number): Buffer {
    const start = this.position - this.#windowStart;
    this.position += size;
    return this.#window.subarray(start, start + size);
  }

  skip(size: number): void {
    this.position += size;
  }

  uint32(): number {
    return this.view(4).getUint32(0, true);
  }

  /** A uint64 count or offset, which must fit a JavaScript number to be usable at all. */
  count(what: string): number {
    const value = this.view(8).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GgufFormatError('GGUF_INVALID', this.path, `${what} is impossibly large (${value})`);
    }
    return Number(value);
  }

  /** `byteLength` bytes of UTF-8 the cursor has already ensured. */
  text(byteLength: number): string {
    const start = this.position - this.#windowStart;
    this.position += byteLength;
    return this.#window.toString('utf8', start, start + byteLength);
  }

  /** A GGUF string: a uint64 byte length, then that many bytes of UTF-8. */
  async string(what: string): Promise<string> {
    await this.ensure(8, what);
    const byteLength = this.stringLength(what);
    await this.ensure(byteLength, what);
    return this.text(byteLength);
  }

  /**
   * A string's byte length, from 8 bytes the caller has ensured. The longest real metadata
   * strings (an embedded tokenizer.json) are a few megabytes; a corrupt length inside a large
   * file must not make the reader buffer gigabytes.
   */
  stringLength(what: string): number {
    const byteLength = this.count(what);
    if (byteLength > maximumStringBytes) {
      throw new GgufFormatError('GGUF_INVALID', this.path, `${what} claims a ${byteLength}-byte string`);
    }
    return byteLength;
  }
}
