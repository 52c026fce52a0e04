import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  getLlama,
  type Llama,
  LlamaChatSession,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
} from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatMlTemplate, createDemoModel, type DemoModel, demoParameterCount } from './demo-model.js';
import { GgufFormatError } from './gguf-format-error.js';
import { readGgufInfo } from './gguf-reader.js';
import type { WritableTensorType } from './tensor-encoding.js';

let directory: string;
let tiny: DemoModel;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-demo-model-'));
  tiny = await createDemoModel({ size: 'tiny', seed: 1, path: join(directory, 'tiny.gguf') });
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function sha256Of(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

describe('createDemoModel', () => {
  it('writes a byte-identical file for the same seed and a different one for another seed', async () => {
    const first = await createDemoModel({ size: 'tiny', seed: 7, path: join(directory, 'seed-7-a.gguf') });
    const second = await createDemoModel({ size: 'tiny', seed: 7, path: join(directory, 'seed-7-b.gguf') });
    const other = await createDemoModel({ size: 'tiny', seed: 8, path: join(directory, 'seed-8.gguf') });
    expect(await sha256Of(first.path)).toBe(first.sha256);
    expect(second.sha256).toBe(first.sha256);
    expect(other.sha256).not.toBe(first.sha256);
    expect(other.bytes).toBe(first.bytes);
  });

  it('makes the tiny model about 1 MB and the small one about 25 M parameters', async () => {
    expect(tiny.bytes).toBeGreaterThan(800_000);
    expect(tiny.bytes).toBeLessThan(1_500_000);
    const small = await createDemoModel({ size: 'small', path: join(directory, 'small.gguf') });
    expect(small.parameterCount).toBeGreaterThan(22_000_000);
    expect(small.parameterCount).toBeLessThan(28_000_000);
    const info = await readGgufInfo(small.path, { maximumArrayItems: 0 });
    expect(info).toMatchObject({
      parameterCount: small.parameterCount,
      blockCount: 8,
      contextLength: 4096,
      quantization: 'Q4_0',
    });
    // Four and a half bits a weight: about 14 MB.
    expect(small.bytes).toBeGreaterThan(12_000_000);
    expect(small.bytes).toBeLessThan(16_000_000);
    await rm(small.path);
    expect(demoParameterCount('small')).toBe(small.parameterCount);
  });

  it('counts about 1 B parameters for the large one, without writing its 1 GB', () => {
    expect(demoParameterCount('large')).toBeGreaterThan(900_000_000);
    expect(demoParameterCount('large')).toBeLessThan(1_200_000_000);
  });
});

describe('readGgufInfo on a demo model', () => {
  it('reports its architecture, size, context, quantisation, template and honest description', async () => {
    const info = await readGgufInfo(tiny.path);
    expect(info).toMatchObject({
      version: 3,
      architecture: 'llama',
      parameterCount: tiny.parameterCount,
      contextLength: 2048,
      embeddingLength: 128,
      blockCount: 2,
      fileType: 7,
      quantization: 'Q8_0',
      chatTemplate: chatMlTemplate,
      tokenizerModel: 'llama',
      fileSize: tiny.bytes,
    });
    expect(info.description).toMatch(/random weights.*gibberish/);
    expect(info.tensors.map((tensor) => tensor.name)).toContain('blk.1.ffn_down.weight');
  });

  it('finds all 256 byte-fallback tokens and the ChatML control tokens in its vocabulary', async () => {
    const info = await readGgufInfo(tiny.path);
    const tokens = info.metadata.get('tokenizer.ggml.tokens');
    const types = info.metadata.get('tokenizer.ggml.token_type');
    if (tokens?.type !== 'array' || types?.type !== 'array') throw new Error('no vocabulary');
    const typeOf = (token: string) => types.items![tokens.items!.indexOf(token)];
    for (let byte = 0; byte < 256; byte++) {
      expect(typeOf(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`)).toBe(6);
    }
    expect(typeOf('<|im_start|>')).toBe(3);
    expect(typeOf('<|im_end|>')).toBe(3);
    expect(typeOf('▁the')).toBe(1);
  });

  it('rejects the model cut short, as an interrupted download would leave it', async () => {
    const bytes = await readFile(tiny.path);
    const cut = join(directory, 'cut.gguf');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const error = await readGgufInfo(cut).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(GgufFormatError);
    expect(error).toMatchObject({ code: 'GGUF_TRUNCATED', message: /truncated: its tensors end at byte/ });
  });
});

describe('llama.cpp (node-llama-cpp) running a demo model', () => {
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;

  beforeAll(async () => {
    // Never build: without its prebuilt binary node-llama-cpp would spend 15 minutes compiling.
    // One thread: its default on this 2-vCPU machine is 4, which runs 30–150× slower.
    llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: tiny.path });
    context = await model.createContext({ contextSize: 256, threads: 1 });
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
  });

  it('tokenizes a sentence of common words one token a word, and detokenizes it back unchanged', () => {
    const sentence = 'The people said that they would like to work with you.';
    const tokens = model.tokenize(sentence);
    expect(tokens).toHaveLength(12);
    expect(model.detokenize(tokens)).toBe(sentence);
  });

  it('round-trips text outside its vocabulary through the byte tokens', () => {
    const text = 'Naïve café: 42 €, 🙂\tand\nnew lines';
    expect(model.detokenize(model.tokenize(text))).toBe(text);
  });

  it('generates exactly the tokens asked for from a raw sequence', async () => {
    const { vocabularySize } = await readGgufInfo(tiny.path, { maximumArrayItems: 0 });
    const sequence = context.getSequence();
    try {
      const generated: number[] = [];
      for await (const token of sequence.evaluate(model.tokenize('Once upon a time'), { temperature: 0 })) {
        generated.push(token);
        if (generated.length === 16) break;
      }
      expect(generated).toHaveLength(16);
      for (const token of generated) expect(token).toBeLessThan(vocabularySize!);
    } finally {
      sequence.dispose();
    }
  });

  it("chats through the model's own ChatML template", async () => {
    const sequence = context.getSequence();
    try {
      const session = new LlamaChatSession({ contextSequence: sequence });
      const answer = await session.prompt('Hello there', { maxTokens: 8, temperature: 0 });
      expect(typeof answer).toBe('string');
      const evaluated = model.detokenize(sequence.contextTokens, true);
      expect(evaluated).toContain('<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n');
    } finally {
      sequence.dispose();
    }
  });

  it.each<WritableTensorType>(['F16', 'F32', 'Q4_0'])(
    'loads and generates with %s weights too',
    async (tensorType) => {
      const path = join(directory, `tiny-${tensorType}.gguf`);
      await createDemoModel({ size: 'tiny', path, tensorType });
      const info = await readGgufInfo(path, { maximumArrayItems: 0 });
      expect(info.quantization).toBe(tensorType);
      const other = await llama.loadModel({ modelPath: path });
      try {
        const otherContext = await other.createContext({ contextSize: 64, threads: 1 });
        const sequence = otherContext.getSequence();
        let count = 0;
        for await (const _token of sequence.evaluate(other.tokenize('Hello'), { temperature: 0 })) {
          if (++count === 4) break;
        }
        expect(count).toBe(4);
        await otherContext.dispose();
      } finally {
        await other.dispose();
      }
    },
  );
});
