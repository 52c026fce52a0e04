import { describe, expect, it } from 'vitest';
import { float16BitsToNumber } from './float16.js';
import { encodeTensorValues } from './tensor-encoding.js';

/** Reads Q8_0 blocks back the way ggml dequantises them: scale × int8. */
function decodeQ8(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += 34) {
    const scale = float16BitsToNumber(view.getUint16(offset, true));
    for (let index = 0; index < 32; index++) values.push(scale * view.getInt8(offset + 2 + index));
  }
  return values;
}

/** Reads Q4_0 blocks back the way ggml dequantises them: scale × (nibble − 8). */
function decodeQ4(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += 18) {
    const scale = float16BitsToNumber(view.getUint16(offset, true));
    const low: number[] = [];
    const high: number[] = [];
    for (let index = 0; index < 16; index++) {
      low.push(scale * ((bytes[offset + 2 + index]! & 0x0f) - 8));
      high.push(scale * ((bytes[offset + 2 + index]! >> 4) - 8));
    }
    values.push(...low, ...high);
  }
  return values;
}

describe('encodeTensorValues', () => {
  it('writes F32 little-endian, four bytes a value', () => {
    const bytes = encodeTensorValues('F32', Float32Array.of(1, -2.5));
    expect([...bytes]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
  });

  it('writes F16 little-endian, two bytes a value', () => {
    const bytes = encodeTensorValues('F16', Float32Array.of(1, -2));
    expect([...bytes]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
  });

  it('writes Q8_0 as 34-byte blocks: a float16 scale of max|x|/127, then 32 int8 values', () => {
    const values = Float32Array.from({ length: 64 }, (_, index) => (index - 20) / 10);
    const bytes = encodeTensorValues('Q8_0', values);
    expect(bytes.length).toBe(68);
    const view = new DataView(bytes.buffer);
    expect(float16BitsToNumber(view.getUint16(0, true))).toBeCloseTo(2 / 127, 4);
    expect(view.getInt8(2)).toBe(-127);
    expect(view.getInt8(2 + 20)).toBe(0);
    const decoded = decodeQ8(bytes);
    for (const [index, value] of decoded.entries()) {
      expect(Math.abs(value - values[index]!)).toBeLessThan(0.03);
    }
  });

  it('writes an all-zero Q8_0 block with a zero scale', () => {
    expect([...encodeTensorValues('Q8_0', new Float32Array(32))]).toEqual(new Array(34).fill(0));
  });

  it('writes Q4_0 as 18-byte blocks: a float16 scale of m/-8 for the largest |m|, then 32 nibbles', () => {
    const values = Float32Array.from({ length: 64 }, (_, index) => (index - 20) / 10);
    const bytes = encodeTensorValues('Q4_0', values);
    expect(bytes.length).toBe(36);
    const view = new DataView(bytes.buffer);
    // The first block runs from -2.0 to 1.1: m = -2, d = 0.25, and -2 is stored as nibble 0.
    expect(float16BitsToNumber(view.getUint16(0, true))).toBe(0.25);
    expect(bytes[2]! & 0x0f).toBe(0);
    // Value 16 of the block (-0.4) is the high nibble of its first byte: -0.4 / 0.25 + 8.5 → 6.
    expect(bytes[2]! >> 4).toBe(6);
    // The second block runs from 1.2 to 4.3: m = 4.3 is stored as nibble 0 of a negative scale.
    expect(float16BitsToNumber(view.getUint16(18, true))).toBeCloseTo(-4.3 / 8, 3);
    expect(bytes[18 + 2 + 15]! >> 4).toBe(0);
    const decoded = decodeQ4(bytes);
    for (const [index, value] of decoded.entries()) {
      // Within half a step (d / 2) of the value, except where the top nibble clamps at 15.
      expect(Math.abs(value - values[index]!)).toBeLessThanOrEqual(index < 32 ? 0.25 : 0.55);
    }
  });

  it('writes an all-zero Q4_0 block as ggml does: scale 0 / -8 = -0, every value at the midpoint 8', () => {
    const bytes = encodeTensorValues('Q4_0', new Float32Array(32));
    expect([...bytes]).toEqual([0x00, 0x80, ...new Array(16).fill(0x88)]);
  });

  it('refuses a Q8_0 chunk that is not whole blocks', () => {
    expect(() => encodeTensorValues('Q8_0', new Float32Array(40))).toThrow(/multiple of 32/);
  });
});
