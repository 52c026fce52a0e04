import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoModel } from '../gguf/index.js';
import { EngineRequestError, LlamaEngine } from './llama-engine.js';
import { ModelOverloadedError } from './slot-queue.js';

let directory: string;
let path: string;
let engine: LlamaEngine;
/** The same file loaded on its own, to tokenise as llama.cpp does, independently of the engine. */
let reference: LlamaModel;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-embed-'));
  path = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 1, path });
  engine = new LlamaEngine({ threads: 1 });
  const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
  reference = await llama.loadModel({ modelPath: path });
});

afterAll(async () => {
  await reference?.dispose();
  await engine?.close();
  await rm(directory, { recursive: true, force: true });
});

const settings = () => ({ path, contextSize: 256 });
const length = (vector: Float32Array) => Math.hypot(...vector);

describe('LlamaEngine embeddings', () => {
  it('embeds each input as a unit-length vector of the model’s embedding size, the same text always to the same vector', async () => {
    const { embeddings } = await engine.embed({
      model: 'embedder',
      settings: settings(),
      inputs: ['the people of the world', 'a quiet river', 'the people of the world'],
    });
    expect(embeddings).toHaveLength(3);
    for (const vector of embeddings) {
      expect(vector).toHaveLength(reference.embeddingVectorSize);
      expect(length(vector)).toBeCloseTo(1, 5);
    }
    expect(embeddings[2]).toEqual(embeddings[0]);
    expect(embeddings[1]).not.toEqual(embeddings[0]);
  });

  it('embeds token ids as it embeds their text, counting the start token once whether or not the ids include it', async () => {
    const text = 'the people of the world';
    const ids = reference.tokenize(text);
    const start = reference.tokens.bos!;
    const fromText = await engine.embed({ model: 'embedder', settings: settings(), inputs: [text] });
    const fromIds = await engine.embed({
      model: 'embedder',
      settings: settings(),
      inputs: [ids, [start, ...ids]],
    });
    expect(fromIds.embeddings[0]).toEqual(fromText.embeddings[0]);
    expect(fromIds.embeddings[1]).toEqual(fromText.embeddings[0]);
    expect(fromText.promptTokens).toBe(reference.tokenize(`<s>${text}`, true).length);
    expect(fromText.promptTokens).toBe(ids.length + 1);
    expect(fromIds.promptTokens).toBe(2 * fromText.promptTokens);
  });

  it('embeds an input longer than one 512-token batch of a chat model, evaluated over several', async () => {
    const long = 'the people '.repeat(300);
    const request = { model: 'wide', settings: { path, contextSize: 1024 }, inputs: [long] };
    const first = await engine.embed(request);
    expect(first.promptTokens).toBe(reference.tokenize(long).length + 1);
    expect(first.promptTokens).toBeGreaterThan(512);
    expect(length(first.embeddings[0]!)).toBeCloseTo(1, 5);
    expect((await engine.embed(request)).embeddings[0]).toEqual(first.embeddings[0]);
    // The direction llama.cpp gives with the whole input in one batch.
    const whole = await reference.createEmbeddingContext({ contextSize: 1024, batchSize: 1024, threads: 1 });
    try {
      const { vector } = await whole.getEmbeddingFor(long);
      const cosine = vector.reduce((sum, value, index) => sum + value * first.embeddings[0]![index]!, 0);
      expect(cosine / Math.hypot(...vector)).toBeCloseTo(1, 6);
    } finally {
      await whole.dispose();
    }
  });

  it('refuses an input longer than the context, naming input with its token count and the limit', async () => {
    const long = 'the people '.repeat(200);
    const tokens = reference.tokenize(long).length + 1;
    const error = await engine
      .embed({ model: 'embedder', settings: settings(), inputs: ['short', long] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineRequestError);
    expect(error).toMatchObject({ param: 'input' });
    expect((error as Error).message).toBe(
      `input[1] is ${tokens} tokens long, more than the 255 this model embeds at once (its context is 256 tokens). Shorten it or split it into several inputs.`,
    );
  });

  it('refuses dimensions other than the model’s own size, and token ids outside its vocabulary', async () => {
    const size = reference.embeddingVectorSize;
    await expect(
      engine.embed({ model: 'embedder', settings: settings(), inputs: ['a'], dimensions: size / 2 }),
    ).rejects.toMatchObject({ param: 'dimensions', message: new RegExp(`^dimensions must be ${size}`) });
    const same = await engine.embed({
      model: 'embedder',
      settings: settings(),
      inputs: ['a'],
      dimensions: size,
    });
    expect(same.embeddings[0]).toHaveLength(size);
    await expect(
      engine.embed({ model: 'embedder', settings: settings(), inputs: [[1, 10_000_000]] }),
    ).rejects.toMatchObject({
      param: 'input',
      message: /^input holds token id 10000000, outside this model's vocabulary of \d+ tokens/,
    });
  });

  it('keeps the model loaded for every queued embedding request, refuses one beyond the queue, then honours keep-alive 0', async () => {
    const modelSettings = { ...settings(), maxQueue: 1, keepAliveMs: 0 };
    const embed = () =>
      engine.embed({ model: 'bounded', settings: modelSettings, inputs: ['a quiet river'] });
    // The first holds the one embedding slot, the second waits, the third finds the queue full.
    const results = await Promise.allSettled([embed(), embed(), embed()]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(ModelOverloadedError);
    // One unload, after both: never between them while the second waited.
    expect(engine.stats().find((model) => model.name === 'bounded')).toMatchObject({
      loaded: false,
      unloads: 1,
    });
    // The next request loads the model again, with a new embedding context, and embeds as before.
    const again = await embed();
    const elsewhere = await engine.embed({
      model: 'embedder',
      settings: settings(),
      inputs: ['a quiet river'],
    });
    expect(again.embeddings[0]).toEqual(elsewhere.embeddings[0]);
  });
});
