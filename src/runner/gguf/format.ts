/**
 * The constants of the GGUF container format and of the ggml tensor types it carries, as ggml's
 * specification defines them (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) and as
 * llama.cpp numbers them. Both the writer and the reader work from these tables, so the two can
 * never disagree about a type's size.
 */

/** "GGUF" in ASCII; the file's first four bytes. */
export const ggufMagic = Buffer.from('GGUF', 'ascii');

/** The version this module writes. Version 2 has the same layout and is read too. */
export const ggufVersion = 3;

/** Tensor data alignment when the file does not set `general.alignment`. */
export const defaultAlignment = 32;

/** llama.cpp rejects longer tensor names (GGML_MAX_NAME is 64, including the terminating NUL). */
export const maximumTensorNameLength = 63;

/** ggml tensors have at most four dimensions (GGML_MAX_DIMS). */
export const maximumTensorDimensions = 4;

/** Metadata value types, by their on-disk id. */
export const valueTypeIds = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufValueType = keyof typeof valueTypeIds;

const valueTypesById = new Map<number, GgufValueType>(
  Object.entries(valueTypeIds).map(([name, id]) => [id, name as GgufValueType]),
);

/** The value type with this on-disk id, or undefined for an id the format does not define. */
export function valueTypeFromId(id: number): GgufValueType | undefined {
  return valueTypesById.get(id);
}

/** Bytes one value of a fixed-size type occupies; strings and arrays have no fixed size. */
export const fixedValueSizes: Partial<Record<GgufValueType, number>> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
};

type NumberValueType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
type BigIntValueType = 'uint64' | 'int64';

/** One element of a metadata array: a scalar, or a nested array (the format allows arrays of arrays). */
export type GgufArrayItem = number | bigint | boolean | string | GgufArrayValue;

/**
 * A metadata array. `items` is undefined when the reader was asked to skip arrays this long
 * (a 150 000-token vocabulary is megabytes that a manifest does not need); `length` is always set.
 */
export interface GgufArrayValue {
  readonly type: 'array';
  readonly itemType: GgufValueType;
  readonly length: number;
  readonly items: readonly GgufArrayItem[] | undefined;
}

/**
 * One typed metadata value. 64-bit integers are bigints when read, so that no value is silently
 * rounded; the writer also accepts plain numbers for them.
 */
export type GgufMetadataValue =
  | { readonly type: NumberValueType; readonly value: number }
  | { readonly type: BigIntValueType; readonly value: bigint | number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | GgufArrayValue;

/**
 * Shorthands for building metadata, so a model definition reads like the key list it is.
 *
 * @example
 * const metadata = { 'general.architecture': gguf.string('llama'), 'llama.block_count': gguf.uint32(2) };
 */
export const gguf = {
  uint8: (value: number): GgufMetadataValue => ({ type: 'uint8', value }),
  int8: (value: number): GgufMetadataValue => ({ type: 'int8', value }),
  uint16: (value: number): GgufMetadataValue => ({ type: 'uint16', value }),
  int16: (value: number): GgufMetadataValue => ({ type: 'int16', value }),
  uint32: (value: number): GgufMetadataValue => ({ type: 'uint32', value }),
  int32: (value: number): GgufMetadataValue => ({ type: 'int32', value }),
  uint64: (value: bigint | number): GgufMetadataValue => ({ type: 'uint64', value }),
  int64: (value: bigint | number): GgufMetadataValue => ({ type: 'int64', value }),
  float32: (value: number): GgufMetadataValue => ({ type: 'float32', value }),
  float64: (value: number): GgufMetadataValue => ({ type: 'float64', value }),
  bool: (value: boolean): GgufMetadataValue => ({ type: 'bool', value }),
  string: (value: string): GgufMetadataValue => ({ type: 'string', value }),
  array: (itemType: GgufValueType, items: readonly GgufArrayItem[]): GgufArrayValue => ({
    type: 'array',
    itemType,
    length: items.length,
    items,
  }),
};

/** How a ggml tensor type packs its values: `blockSize` values take `blockBytes` bytes. */
export interface GgmlTypeLayout {
  readonly id: number;
  readonly name: string;
  readonly blockSize: number;
  readonly blockBytes: number;
}

/**
 * Every ggml tensor type a current llama.cpp can load, with its block layout (ggml's
 * `type_traits`; checked against the sizes the llama.cpp binary in node-llama-cpp 3.21.1 reports).
 * Ids missing here were removed from ggml (Q4_2, Q4_3, the Q4_0_4_4 family …) or are newer than
 * this table; the reader still reads such files but cannot size those tensors.
 */
const ggmlTypeLayouts: readonly GgmlTypeLayout[] = [
  { id: 0, name: 'F32', blockSize: 1, blockBytes: 4 },
  { id: 1, name: 'F16', blockSize: 1, blockBytes: 2 },
  { id: 2, name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  { id: 3, name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  { id: 6, name: 'Q5_0', blockSize: 32, blockBytes: 22 },
  { id: 7, name: 'Q5_1', blockSize: 32, blockBytes: 24 },
  { id: 8, name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  { id: 9, name: 'Q8_1', blockSize: 32, blockBytes: 36 },
  { id: 10, name: 'Q2_K', blockSize: 256, blockBytes: 84 },
  { id: 11, name: 'Q3_K', blockSize: 256, blockBytes: 110 },
  { id: 12, name: 'Q4_K', blockSize: 256, blockBytes: 144 },
  { id: 13, name: 'Q5_K', blockSize: 256, blockBytes: 176 },
  { id: 14, name: 'Q6_K', blockSize: 256, blockBytes: 210 },
  { id: 15, name: 'Q8_K', blockSize: 256, blockBytes: 292 },
  { id: 16, name: 'IQ2_XXS', blockSize: 256, blockBytes: 66 },
  { id: 17, name: 'IQ2_XS', blockSize: 256, blockBytes: 74 },
  { id: 18, name: 'IQ3_XXS', blockSize: 256, blockBytes: 98 },
  { id: 19, name: 'IQ1_S', blockSize: 256, blockBytes: 50 },
  { id: 20, name: 'IQ4_NL', blockSize: 32, blockBytes: 18 },
  { id: 21, name: 'IQ3_S', blockSize: 256, blockBytes: 110 },
  { id: 22, name: 'IQ2_S', blockSize: 256, blockBytes: 82 },
  { id: 23, name: 'IQ4_XS', blockSize: 256, blockBytes: 136 },
  { id: 24, name: 'I8', blockSize: 1, blockBytes: 1 },
  { id: 25, name: 'I16', blockSize: 1, blockBytes: 2 },
  { id: 26, name: 'I32', blockSize: 1, blockBytes: 4 },
  { id: 27, name: 'I64', blockSize: 1, blockBytes: 8 },
  { id: 28, name: 'F64', blockSize: 1, blockBytes: 8 },
  { id: 29, name: 'IQ1_M', blockSize: 256, blockBytes: 56 },
  { id: 30, name: 'BF16', blockSize: 1, blockBytes: 2 },
  { id: 34, name: 'TQ1_0', blockSize: 256, blockBytes: 54 },
  { id: 35, name: 'TQ2_0', blockSize: 256, blockBytes: 66 },
  { id: 39, name: 'MXFP4', blockSize: 32, blockBytes: 17 },
  { id: 40, name: 'NVFP4', blockSize: 64, blockBytes: 36 },
  { id: 41, name: 'Q1_0', blockSize: 128, blockBytes: 18 },
  { id: 42, name: 'Q2_0', blockSize: 64, blockBytes: 18 },
];

const layoutsById = new Map(ggmlTypeLayouts.map((layout) => [layout.id, layout]));
const layoutsByName = new Map(ggmlTypeLayouts.map((layout) => [layout.name, layout]));

/** The layout of the ggml type with this id, or undefined when this table does not know it. */
export function ggmlTypeById(id: number): GgmlTypeLayout | undefined {
  return layoutsById.get(id);
}

/** The layout of a ggml type by its name ("Q8_0"); throws for a name ggml does not define. */
export function ggmlTypeByName(name: string): GgmlTypeLayout {
  const layout = layoutsByName.get(name);
  if (layout === undefined) throw new TypeError(`Unknown ggml tensor type "${name}"`);
  return layout;
}

/** Bytes a tensor of `elementCount` values of this type occupies (whole blocks only). */
export function tensorByteSize(layout: GgmlTypeLayout, elementCount: number): number {
  return (elementCount / layout.blockSize) * layout.blockBytes;
}

/**
 * `general.file_type` values (llama.cpp's `llama_ftype`) and the quantisation names people know
 * them by. Ids 4–6 and 33–35 were retired upstream and are absent on purpose.
 */
const fileTypeNames = new Map<number, string>([
  [0, 'F32'],
  [1, 'F16'],
  [2, 'Q4_0'],
  [3, 'Q4_1'],
  [7, 'Q8_0'],
  [8, 'Q5_0'],
  [9, 'Q5_1'],
  [10, 'Q2_K'],
  [11, 'Q3_K_S'],
  [12, 'Q3_K_M'],
  [13, 'Q3_K_L'],
  [14, 'Q4_K_S'],
  [15, 'Q4_K_M'],
  [16, 'Q5_K_S'],
  [17, 'Q5_K_M'],
  [18, 'Q6_K'],
  [19, 'IQ2_XXS'],
  [20, 'IQ2_XS'],
  [21, 'Q2_K_S'],
  [22, 'IQ3_XS'],
  [23, 'IQ3_XXS'],
  [24, 'IQ1_S'],
  [25, 'IQ4_NL'],
  [26, 'IQ3_S'],
  [27, 'IQ3_M'],
  [28, 'IQ2_S'],
  [29, 'IQ2_M'],
  [30, 'IQ4_XS'],
  [31, 'IQ1_M'],
  [32, 'BF16'],
  [36, 'TQ1_0'],
  [37, 'TQ2_0'],
  [38, 'MXFP4_MOE'],
  [39, 'NVFP4'],
  [40, 'Q1_0'],
  [41, 'Q2_0'],
]);

/** The quantisation name of a `general.file_type` value, or undefined for one this table lacks. */
export function fileTypeName(fileType: number): string | undefined {
  return fileTypeNames.get(fileType);
}

/** `general.file_type` for a model whose large tensors are all of one ggml type. */
export const fileTypeByTensorType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 } as const;

/** llama.cpp's token attributes as stored in `tokenizer.ggml.token_type`. */
export const tokenTypes = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;
