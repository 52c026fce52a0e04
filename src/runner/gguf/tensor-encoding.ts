import { float32ToFloat16Bits } from './float16.js';
import { type GgmlTypeLayout, ggmlTypeByName, tensorByteSize } from './format.js';

/** The tensor types this module can write. Reading works for every type in the format tables. */
export type WritableTensorType = 'F32' | 'F16' | 'Q4_0' | 'Q8_0';

export const writableTensorTypes: readonly WritableTensorType[] = ['F32', 'F16', 'Q4_0', 'Q8_0'];

/** Values per Q4_0 or Q8_0 block: one float16 scale, then that many values. */
const quantBlockSize = 32;

/**
 * Encodes float32 values as the bytes of a ggml tensor of `type`. `values.length` must be a
 * multiple of the type's block size, so that chunks of one tensor can be encoded independently.
 */
export function encodeTensorValues(type: WritableTensorType, values: Float32Array): Uint8Array {
  const layout = ggmlTypeByName(type);
  if (values.length % layout.blockSize !== 0) {
    throw new RangeError(
      `A ${type} chunk must hold a multiple of ${layout.blockSize} values; this one holds ${values.length}`,
    );
  }
  switch (type) {
    case 'F32':
      return encodeFloat32(values);
    case 'F16':
      return encodeFloat16(values, layout);
    case 'Q4_0':
      return encodeQ4(values, layout);
    case 'Q8_0':
      return encodeQ8(values, layout);
  }
}

function encodeFloat32(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  // Explicit little-endian writes: GGUF is little-endian whatever the host is.
  for (let index = 0; index < values.length; index++) view.setFloat32(index * 4, values[index]!, true);
  return bytes;
}

function encodeFloat16(values: Float32Array, layout: GgmlTypeLayout): Uint8Array {
  const bytes = new Uint8Array(tensorByteSize(layout, values.length));
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index++) {
    view.setUint16(index * 2, float32ToFloat16Bits(values[index]!), true);
  }
  return bytes;
}

/**
 * Q8_0 as ggml defines it: per block of 32 values, the scale d = max|x| / 127 stored as float16,
 * then each value as round(x / d) in an int8 (rounding half away from zero, like C's roundf).
 */
function encodeQ8(values: Float32Array, layout: GgmlTypeLayout): Uint8Array {
  const blockCount = values.length / quantBlockSize;
  const bytes = new Uint8Array(tensorByteSize(layout, values.length));
  const view = new DataView(bytes.buffer);
  for (let block = 0; block < blockCount; block++) {
    const first = block * quantBlockSize;
    let maximum = 0;
    for (let index = first; index < first + quantBlockSize; index++) {
      maximum = Math.max(maximum, Math.abs(values[index]!));
    }
    const scale = Math.fround(maximum / 127);
    const inverse = scale === 0 ? 0 : 1 / scale;
    const offset = block * layout.blockBytes;
    view.setUint16(offset, float32ToFloat16Bits(scale), true);
    for (let index = 0; index < quantBlockSize; index++) {
      const scaled = values[first + index]! * inverse;
      const rounded = Math.sign(scaled) * Math.round(Math.abs(scaled));
      view.setInt8(offset + 2 + index, Math.max(-127, Math.min(127, rounded)));
    }
  }
  return bytes;
}

/**
 * Q4_0 as ggml defines it: per block of 32 values, the scale d = m / -8 as float16, where m is the
 * value of largest magnitude (sign kept), then each value as min(15, trunc(x / d + 8.5)) in a
 * nibble: the block's first 16 values in the low nibbles, its last 16 in the high ones.
 */
function encodeQ4(values: Float32Array, layout: GgmlTypeLayout): Uint8Array {
  const blockCount = values.length / quantBlockSize;
  const bytes = new Uint8Array(tensorByteSize(layout, values.length));
  const view = new DataView(bytes.buffer);
  const half = quantBlockSize / 2;
  // ggml truncates toward zero (a C cast); x / d + 8.5 is never negative, as |x / d| ≤ 8.
  for (let block = 0; block < blockCount; block++) {
    const first = block * quantBlockSize;
    let extreme = 0;
    for (let index = first; index < first + quantBlockSize; index++) {
      if (Math.abs(values[index]!) > Math.abs(extreme)) extreme = values[index]!;
    }
    const scale = Math.fround(extreme / -8);
    const inverse = scale === 0 ? 0 : 1 / scale;
    const offset = block * layout.blockBytes;
    view.setUint16(offset, float32ToFloat16Bits(scale), true);
    for (let index = 0; index < half; index++) {
      const low = Math.min(15, Math.trunc(values[first + index]! * inverse + 8.5));
      const high = Math.min(15, Math.trunc(values[first + half + index]! * inverse + 8.5));
      bytes[offset + 2 + index] = low | (high << 4);
    }
  }
  return bytes;
}
