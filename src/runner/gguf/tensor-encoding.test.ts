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

  it('refuses a Q8_0 chunk that is not whole blocks', () => {
    expect(() => encodeTensorValues('Q8_0', new Float32Array(40))).toThrow(/multiple of 32/);
  });
});
