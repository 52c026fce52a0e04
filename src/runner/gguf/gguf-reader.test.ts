import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GgufMetadataValue, gguf } from './format.js';
import { GgufFormatError } from './gguf-format-error.js';
import { readGgufInfo } from './gguf-reader.js';
import { type GgufTensorSource, writeGguf } from './gguf-writer.js';

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-gguf-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

const everyValueType: Record<string, GgufMetadataValue> = {
  'general.architecture': gguf.string('llama'),
  'test.uint8': gguf.uint8(255),
  'test.int8': gguf.int8(-128),
  'test.uint16': gguf.uint16(65535),
  'test.int16': gguf.int16(-32768),
  'test.uint32': gguf.uint32(4294967295),
  'test.int32': gguf.int32(-2147483648),
  'test.uint64': gguf.uint64(2n ** 64n - 1n),
  'test.int64': gguf.int64(-(2n ** 63n)),
  'test.float32': gguf.float32(1.5),
  'test.float64': gguf.float64(Math.PI),
  'test.bool': gguf.bool(true),
  'test.string': gguf.string('héllo ▁wörld 🙂'),
  'test.strings': gguf.array('string', ['<s>', '', '▁the']),
  'test.numbers': gguf.array('int32', [1, -2, 3]),
  'test.nested': gguf.array('array', [gguf.array('uint8', [1, 2]), gguf.array('uint8', [3])]),
  'llama.context_length': gguf.uint32(4096),
  'llama.embedding_length': gguf.uint32(64),
  'llama.block_count': gguf.uint32(1),
};

function tensor(name: string, dimensions: number[], type: GgufTensorSource['type']): GgufTensorSource {
  const count = dimensions.reduce((product, dimension) => product * dimension, 1);
  return {
    name,
    dimensions,
    type,
    values: () => [Float32Array.from({ length: count }, (_, index) => index)],
  };
}

const tensors = [
  tensor('a.weight', [4, 2], 'F32'),
  tensor('b.weight', [32], 'F16'),
  tensor('c.weight', [32, 2], 'Q8_0'),
];

async function readError(path: string): Promise<GgufFormatError> {
  const error = await readGgufInfo(path).catch((caught: unknown) => caught);
  if (!(error instanceof GgufFormatError))
    throw new Error(`expected a GgufFormatError, got ${String(error)}`);
  return error;
}

describe('writeGguf and readGgufInfo', () => {
  it('read back every metadata type exactly as written', async () => {
    const path = join(directory, 'types.gguf');
    await writeGguf(path, { metadata: everyValueType, tensors });
    const info = await readGgufInfo(path);
    expect(info.version).toBe(3);
    expect(Object.fromEntries(info.metadata)).toEqual(everyValueType);
    expect([...info.metadata.keys()]).toEqual(Object.keys(everyValueType));
  });

  it('describe each tensor with its shape, type, size and an aligned offset holding its data', async () => {
    const path = join(directory, 'tensors.gguf');
    const written = await writeGguf(path, { metadata: everyValueType, tensors });
    const info = await readGgufInfo(path);
    expect(
      info.tensors.map(({ name, dimensions, typeName, elementCount, byteSize }) => ({
        name,
        dimensions,
        typeName,
        elementCount,
        byteSize,
      })),
    ).toEqual([
      { name: 'a.weight', dimensions: [4, 2], typeName: 'F32', elementCount: 8, byteSize: 32 },
      { name: 'b.weight', dimensions: [32], typeName: 'F16', elementCount: 32, byteSize: 64 },
      { name: 'c.weight', dimensions: [32, 2], typeName: 'Q8_0', elementCount: 64, byteSize: 68 },
    ]);
    expect(info.tensorDataOffset % 32).toBe(0);
    for (const { offset } of info.tensors) expect(offset % 32).toBe(0);
    const bytes = await readFile(path);
    expect(bytes.length).toBe(written.bytes);
    const first = info.tensors[0]!;
    const values = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset + first.offset, bytes.byteOffset + first.offset + 32),
    );
    expect([...values]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(info.parameterCount).toBe(8 + 32 + 64);
  });

  it('derive the manifest facts from the metadata', async () => {
    const path = join(directory, 'facts.gguf');
    await writeGguf(path, { metadata: everyValueType, tensors });
    const info = await readGgufInfo(path);
    expect(info).toMatchObject({
      architecture: 'llama',
      contextLength: 4096,
      embeddingLength: 64,
      blockCount: 1,
      fileType: undefined,
      // Without general.file_type, the type holding most matrix elements names the quantisation.
      quantization: 'Q8_0',
      chatTemplate: undefined,
    });
  });

  it('honour general.alignment for the data section and every tensor', async () => {
    const path = join(directory, 'aligned.gguf');
    await writeGguf(path, { metadata: { 'general.alignment': gguf.uint32(256) }, tensors });
    const info = await readGgufInfo(path);
    expect(info.alignment).toBe(256);
    expect(info.tensorDataOffset % 256).toBe(0);
    expect(info.tensors.map((tensor) => tensor.offset - info.tensorDataOffset)).toEqual([0, 256, 512]);
  });

  it('return long arrays without their items when asked, keeping their length', async () => {
    const path = join(directory, 'skipped.gguf');
    const tokens = Array.from({ length: 5000 }, (_, index) => `token${index}`);
    await writeGguf(path, {
      metadata: {
        'tokenizer.ggml.tokens': gguf.array('string', tokens),
        'tokenizer.ggml.scores': gguf.array('float32', new Array(5000).fill(0)),
        'after.arrays': gguf.string('still read'),
      },
      tensors: [],
    });
    const info = await readGgufInfo(path, { maximumArrayItems: 100 });
    expect(info.metadata.get('tokenizer.ggml.tokens')).toEqual({
      type: 'array',
      itemType: 'string',
      length: 5000,
      items: undefined,
    });
    expect(info.vocabularySize).toBe(5000);
    expect(info.metadata.get('after.arrays')).toEqual(gguf.string('still read'));
  });

  it('read a 150 000-token vocabulary quickly, and faster still when items are skipped', async () => {
    const path = join(directory, 'vocabulary.gguf');
    const tokens = Array.from({ length: 150_000 }, (_, index) => `▁piece${index}`);
    const merges = Array.from({ length: 150_000 }, (_, index) => `▁p iece${index}`);
    await writeGguf(path, {
      metadata: {
        'tokenizer.ggml.tokens': gguf.array('string', tokens),
        'tokenizer.ggml.merges': gguf.array('string', merges),
      },
      tensors: [],
    });
    let started = performance.now();
    const full = await readGgufInfo(path);
    const fullMilliseconds = performance.now() - started;
    started = performance.now();
    await readGgufInfo(path, { maximumArrayItems: 0 });
    const skippedMilliseconds = performance.now() - started;
    expect(full.vocabularySize).toBe(150_000);
    expect(fullMilliseconds).toBeLessThan(2000);
    expect(skippedMilliseconds).toBeLessThan(1000);
  });

  it('read only the header of a multi-gigabyte file', async () => {
    const path = join(directory, 'large.gguf');
    await writeGguf(path, { metadata: everyValueType, tensors });
    // A sparse 8 GiB tail: reading it would take seconds, reading the header takes milliseconds.
    await truncate(path, 8 * 1024 ** 3);
    const started = performance.now();
    const info = await readGgufInfo(path);
    expect(performance.now() - started).toBeLessThan(500);
    expect(info.fileSize).toBe(8 * 1024 ** 3);
    expect(info.architecture).toBe('llama');
  });

  it('leave no file behind when a tensor source fails', async () => {
    await mkdir(join(directory, 'failed'));
    const target = join(directory, 'failed', 'model.gguf');
    const short: GgufTensorSource = {
      name: 'short',
      dimensions: [64],
      type: 'F32',
      values: () => [new Float32Array(32)],
    };
    await expect(writeGguf(target, { metadata: {}, tensors: [short] })).rejects.toThrow(/needs 64 values/);
    expect(await readdir(join(directory, 'failed'))).toEqual([]);
  });

  it('refuse tensors ggml cannot store', async () => {
    const path = join(directory, 'refused.gguf');
    await expect(writeGguf(path, { metadata: {}, tensors: [tensor('q', [48], 'Q8_0')] })).rejects.toThrow(
      /multiple of 32/,
    );
    await expect(
      writeGguf(path, { metadata: {}, tensors: [tensor('same', [1], 'F32'), tensor('same', [1], 'F32')] }),
    ).rejects.toThrow(/appears twice/);
    await expect(writeGguf(path, { metadata: { bad: gguf.uint8(256) }, tensors: [] })).rejects.toThrow(
      /not a valid uint8/,
    );
  });
});

describe('readGgufInfo rejects', () => {
  it('a file that is not GGUF, naming what it found', async () => {
    const path = join(directory, 'notes.txt');
    await writeFile(path, 'hello, this is text');
    const error = await readError(path);
    expect(error.code).toBe('GGUF_NOT_GGUF');
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/not a GGUF file: it starts with "hell"/);
  });

  it('random bytes', async () => {
    const path = join(directory, 'garbage.bin');
    await writeFile(path, Buffer.from(Array.from({ length: 4096 }, (_, index) => (index * 131 + 7) % 256)));
    expect((await readError(path)).code).toBe('GGUF_NOT_GGUF');
  });

  it('a file cut short at any byte, header or tensor data', async () => {
    const whole = join(directory, 'whole.gguf');
    await writeGguf(whole, { metadata: everyValueType, tensors });
    const bytes = await readFile(whole);
    const info = await readGgufInfo(whole);
    const lastTensor = info.tensors.at(-1)!;
    const dataEnd = lastTensor.offset + lastTensor.byteSize!;
    const cut = join(directory, 'cut.gguf');
    for (let length = 0; length < dataEnd; length++) {
      await writeFile(cut, bytes.subarray(0, length));
      const error = await readError(cut);
      if (error.code !== 'GGUF_TRUNCATED')
        throw new Error(`cut at ${length}: ${error.code} ${error.message}`);
    }
    // Padding after the last tensor is optional, so a file ending right after its data is whole.
    await writeFile(cut, bytes.subarray(0, dataEnd));
    await expect(readGgufInfo(cut)).resolves.toMatchObject({ tensorCount: 3 });
  });

  it('GGUF version 1 and big-endian files, saying which', async () => {
    const path = join(directory, 'versions.gguf');
    await writeGguf(path, { metadata: everyValueType, tensors });
    const bytes = await readFile(path);
    bytes.writeUInt32LE(1, 4);
    await writeFile(path, bytes);
    expect(await readError(path)).toMatchObject({ code: 'GGUF_UNSUPPORTED_VERSION', message: /version 1/ });
    bytes.writeUInt32BE(3, 4);
    await writeFile(path, bytes);
    expect(await readError(path)).toMatchObject({ code: 'GGUF_UNSUPPORTED_VERSION', message: /big-endian/ });
  });

  it('an array claiming more items than the file could hold, without looping over them', async () => {
    const path = join(directory, 'huge-array.gguf');
    // One metadata entry "a": an array (9) of uint64 (10) claiming 2^50 items.
    await writeFile(
      path,
      rawHeader(0n, 1n, stringBytes('a'), uint32Bytes(9), uint32Bytes(10), uint64Bytes(2n ** 50n)),
    );
    const started = performance.now();
    expect((await readError(path)).code).toBe('GGUF_TRUNCATED');
    expect(performance.now() - started).toBeLessThan(100);
  });

  it('counts that could not fit in the file', async () => {
    const path = join(directory, 'huge-count.gguf');
    await writeFile(path, rawHeader(0n, 2n ** 40n, Buffer.alloc(1024)));
    expect(await readError(path)).toMatchObject({ code: 'GGUF_TRUNCATED', message: /the header runs past/ });
  });

  it('a string length no real model has, before buffering it', async () => {
    const path = join(directory, 'huge-string.gguf');
    await writeFile(path, rawHeader(0n, 1n, uint64Bytes(2n ** 31n)));
    // Sparse, so the claimed string would fit in the file.
    await truncate(path, 4 * 1024 ** 3);
    expect(await readError(path)).toMatchObject({ code: 'GGUF_INVALID', message: /2147483648-byte string/ });
  });
});

/** A GGUF v3 header with the given counts, followed by `parts` as they are. */
function rawHeader(tensorCount: bigint, metadataCount: bigint, ...parts: Buffer[]): Buffer {
  return Buffer.concat([
    Buffer.from('GGUF', 'ascii'),
    uint32Bytes(3),
    uint64Bytes(tensorCount),
    uint64Bytes(metadataCount),
    ...parts,
  ]);
}

function uint32Bytes(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}

function uint64Bytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(value);
  return bytes;
}

function stringBytes(text: string): Buffer {
  const encoded = Buffer.from(text, 'utf8');
  return Buffer.concat([uint64Bytes(BigInt(encoded.length)), encoded]);
}
