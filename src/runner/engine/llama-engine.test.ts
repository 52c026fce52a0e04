import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufInsights, getLlama, LlamaChat, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDemoModel } from '../gguf/index.js';
import type { EngineModelStats } from './chat-types.js';
import {
  EngineRequestError,
  LlamaEngine,
  ModelBudgetError,
  ModelReplacingError,
  ModelTooLargeError,
} from './llama-engine.js';
import { ModelOverloadedError } from './slot-queue.js';

let directory: string;
let path: string;
let engine: LlamaEngine;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-engine-'));
  path = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 1, path });
  // Joined steps always: timing both layouts on a machine busy with the rest of the suite could
  // keep either, and the batching test counts how full the steps are.
  engine = new LlamaEngine({ threads: 1, stepArrangement: 'joined' });
});

afterAll(async () => {
  await engine?.close();
  await rm(directory, { recursive: true, force: true });
});

// At temperature 0 the tiny demo model answers "Count" with thousands of tokens and no end token.
const count = [{ role: 'user' as const, content: 'Count' }];
const stats = (name: string) => engine.stats().find((model) => model.name === name)!;
/** node-llama-cpp on the CPU as the engine sets it up, for what a test checks beside the engine. */
const cpuLlama = () => getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });

describe('LlamaEngine', () => {
  it('loads a model on request and reports its load time, memory and context, capped by the model', async () => {
    await engine.load('capped', { path, contextSize: 100_000, parallel: 2 });
    expect(stats('capped')).toMatchObject({
      loaded: true,
      running: 0,
      waiting: 0,
      parallel: 2,
      contextSize: 2048,
    });
    expect(stats('capped').loadSeconds).toBeGreaterThan(0);
    expect(stats('capped').memoryBytes!.ram).toBeGreaterThan(1_000_000);
    // Estimated before loading from the GGUF header, for the same weights and context.
    expect(stats('capped').estimatedBytes).toBeGreaterThan(1_000_000);
  });

  it('streams text through onToken that adds up to the answer, and times the first token', async () => {
    const pieces: string[] = [];
    let startedBeforeFirstToken = false;
    let started = false;
    const result = await engine.chat({
      model: 'one',
      settings: { path, contextSize: 512 },
      messages: count,
      maxTokens: 10,
      temperature: 0,
      onStart: () => {
        started = true;
      },
      onToken: (text) => {
        if (pieces.length === 0) startedBeforeFirstToken = started;
        pieces.push(text);
      },
    });
    expect(startedBeforeFirstToken).toBe(true);
    expect(pieces.join('')).toBe(result.text);
    expect(result).toMatchObject({ finishReason: 'length', usage: { completionTokens: 10 } });
    expect(result.timings.firstTokenMs).toBeGreaterThanOrEqual(0);
    expect(result.timings.totalMs).toBeGreaterThanOrEqual(result.timings.firstTokenMs!);
  });

  it('decodes every generating sequence in each step, and counts the steps and how full they were', async () => {
    const settings = { path, contextSize: 512, parallel: 4 };
    await engine.load('batched', settings);
    const before = stats('batched');
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        engine.chat({ model: 'batched', settings, messages: count, maxTokens: 32, temperature: 0 }),
      ),
    );
    expect(results.map((result) => result.usage.completionTokens)).toEqual([32, 32, 32, 32]);
    const steps = stats('batched').decodeSteps - before.decodeSteps;
    const sequences = stats('batched').decodeStepSequences - before.decodeStepSequences;
    // 4 prompts and 4 × 31 later tokens: left to node-llama-cpp, each step held 3 of the 4.
    expect(sequences).toBe(4 + 4 * 31);
    expect(sequences / steps).toBeGreaterThan(3.5);
  });

  it('applies OpenAI frequency and presence penalties when asked, and no penalty otherwise', async () => {
    const settings = { path, contextSize: 512 };
    const ask = async (penalties: { frequencyPenalty?: number; presencePenalty?: number }) =>
      (
        await engine.chat({
          model: 'penalties',
          settings,
          messages: count,
          maxTokens: 200,
          temperature: 0,
          ...penalties,
        })
      ).text;
    // node-llama-cpp's LlamaChat by itself, with no penalty.
    const llama = await cpuLlama();
    const model = await llama.loadModel({ modelPath: path });
    let plain: string;
    try {
      const context = await model.createContext({ contextSize: 512, threads: 1 });
      const chat = new LlamaChat({ contextSequence: context.getSequence() });
      const history = [
        { type: 'user' as const, text: 'Count' },
        { type: 'model' as const, response: [] },
      ];
      plain = (await chat.generateResponse(history, { maxTokens: 200, temperature: 0, repeatPenalty: false }))
        .response;
    } finally {
      await model.dispose();
    }
    expect(await ask({})).toBe(plain);
    expect(await ask({ frequencyPenalty: 0, presencePenalty: 0 })).toBe(plain);
    // The tiny model repeats tokens within 200, so either penalty changes even a temperature-0 answer.
    expect(await ask({ frequencyPenalty: 1.5 })).not.toBe(plain);
    expect(await ask({ presencePenalty: 1.5 })).not.toBe(plain);
    // Negative values favour repeating, as OpenAI's do; they are applied, not refused.
    expect(await ask({ presencePenalty: -2 })).not.toBe(plain);
  });

  it("relies on node-llama-cpp still keeping its queued decodes' sequence ids, in the strategy's order", async () => {
    // StepGate reads LlamaContext._queuedDecodes (internal) to order each step by sequence id.
    const llama = await cpuLlama();
    try {
      const model = await llama.loadModel({ modelPath: path });
      const seen: { items: number; ids: unknown[]; sameOrder: boolean }[] = [];
      let context: { _queuedDecodes?: unknown } | undefined;
      const created = await model.createContext({
        contextSize: 256,
        sequences: 2,
        threads: 1,
        batching: {
          itemPrioritizationStrategy: ({ items }) => {
            const queued = context?._queuedDecodes;
            const list = Array.isArray(queued) ? queued : [];
            seen.push({
              items: items.length,
              ids: list.map((q) => q.sequenceId),
              // The item at each place holds the very tokens of the queued decode at that place.
              sameOrder: items.every((item, index) => list[index]?.tokens === item.tokens),
            });
            return items.map((item) => ({ item, processAmount: item.tokens.length }));
          },
        },
      });
      context = created as unknown as { _queuedDecodes?: unknown };
      const [first, second] = [created.getSequence(), created.getSequence()];
      const tokens = model.tokenize('Count to ten');
      await Promise.all([
        first.evaluateWithoutGeneratingNewTokens(tokens),
        second.evaluateWithoutGeneratingNewTokens(tokens),
      ]);
      expect(seen.length).toBeGreaterThan(0);
      for (const step of seen) {
        expect(step.ids).toHaveLength(step.items);
        expect(step.ids.every((id) => id === 0 || id === 1)).toBe(true);
        expect(step.sameOrder).toBe(true);
      }
      expect(new Set(seen.flatMap((step) => step.ids))).toEqual(new Set([0, 1]));
    } finally {
      await llama.dispose();
    }
  });

  it('rejects with the abort reason mid-generation and frees the sequence at once', async () => {
    const controller = new AbortController();
    let tokens = 0;
    const aborted = engine.chat({
      model: 'one',
      settings: { path, contextSize: 512 },
      messages: count,
      temperature: 0,
      signal: controller.signal,
      onToken: () => {
        if (++tokens === 3) controller.abort(new Error('caller gave up'));
      },
    });
    await expect(aborted).rejects.toThrow('caller gave up');
    expect(stats('one')).toMatchObject({ running: 0, waiting: 0 });
    const next = await engine.chat({ model: 'one', settings: { path }, messages: count, maxTokens: 2 });
    expect(next.usage.completionTokens).toBe(2);
  });

  it('lets a waiting request leave the queue when aborted, without taking the slot', async () => {
    const holder = new AbortController();
    const holding = engine.chat({
      model: 'one',
      settings: { path },
      messages: count,
      temperature: 0,
      signal: holder.signal,
    });
    const waiter = new AbortController();
    const waiting = engine.chat({ model: 'one', settings: { path }, messages: count, signal: waiter.signal });
    expect(stats('one')).toMatchObject({ running: 1, waiting: 1 });
    waiter.abort(new Error('not waiting any more'));
    await expect(waiting).rejects.toThrow('not waiting any more');
    expect(stats('one')).toMatchObject({ running: 1, waiting: 0 });
    holder.abort(new Error('done'));
    await expect(holding).rejects.toThrow('done');
    expect(stats('one').running).toBe(0);
  });

  it('refuses messages longer than the context, naming the field', async () => {
    const long = [{ role: 'user' as const, content: 'the people '.repeat(200) }];
    const error = await engine
      .chat({ model: 'short', settings: { path, contextSize: 128 }, messages: long })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EngineRequestError);
    expect(error).toMatchObject({ param: 'messages', message: /more than the 128 tokens of context/ });
    expect(stats('short').running).toBe(0);
  });
});

describe('LlamaEngine model lifecycle', () => {
  const hello = [{ role: 'user' as const, content: 'Hello' }];
  let otherPath: string;

  beforeAll(async () => {
    // A second model, different weights, for the memory budget.
    otherPath = join(directory, 'other.gguf');
    await createDemoModel({ size: 'tiny', seed: 2, path: otherPath });
  });

  /** A fresh engine per test, closed after it, so one test's loaded models never count in another's. */
  async function withEngine(
    options: ConstructorParameters<typeof LlamaEngine>[0],
    test: (engine: LlamaEngine, stats: (name: string) => EngineModelStats) => Promise<void>,
  ): Promise<void> {
    const lifecycle = new LlamaEngine({ threads: 1, ...options });
    try {
      await test(lifecycle, (name) => lifecycle.stats().find((model) => model.name === name)!);
    } finally {
      await lifecycle.close();
    }
  }

  it('unloads a model once idle for its keep-alive, and loads it again on the next request', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      const settings = { path, keepAliveMs: 200 };
      await lifecycle.chat({ model: 'brief', settings, messages: hello, maxTokens: 1 });
      expect(stats('brief')).toMatchObject({ loaded: true, keepAliveMs: 200, unloads: 0 });
      await vi.waitFor(() => expect(stats('brief')).toMatchObject({ loaded: false, unloads: 1 }), {
        timeout: 2_000,
      });
      const again = await lifecycle.chat({ model: 'brief', settings, messages: hello, maxTokens: 1 });
      expect(again.usage.completionTokens).toBe(1);
      expect(stats('brief')).toMatchObject({ loaded: true, unloads: 1 });
    });
  });

  it('keeps a model loaded while a request runs, however short its keep-alive', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      const result = await lifecycle.chat({
        model: 'brief',
        settings: { path, keepAliveMs: 1 },
        messages: count,
        temperature: 0,
        maxTokens: 20,
        onToken: () => expect(stats('brief').loaded).toBe(true),
      });
      expect(result.usage.completionTokens).toBe(20);
    });
  });

  it('unloads at once after a request with keep-alive 0, and never with forever', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      await lifecycle.chat({
        model: 'kept',
        settings: { path, keepAliveMs: 200 },
        messages: hello,
        maxTokens: 1,
      });
      // A request's own keep-alive overrides the model's for the idle period after it.
      await lifecycle.chat({
        model: 'kept',
        settings: { path, keepAliveMs: 200 },
        messages: hello,
        maxTokens: 1,
        keepAliveMs: Number.POSITIVE_INFINITY,
      });
      expect(stats('kept').keepAliveMs).toBe(Number.POSITIVE_INFINITY);
      await lifecycle.chat({
        model: 'once',
        settings: { path },
        messages: hello,
        maxTokens: 1,
        keepAliveMs: 0,
      });
      expect(stats('once')).toMatchObject({ loaded: false, unloads: 1 });
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(stats('kept')).toMatchObject({ loaded: true, unloads: 0 });
    });
  });

  it('unloads the least recently used idle model to stay within max loaded models', async () => {
    await withEngine({ maxLoadedModels: 2 }, async (lifecycle, stats) => {
      await lifecycle.chat({ model: 'first', settings: { path }, messages: hello, maxTokens: 1 });
      await lifecycle.chat({ model: 'second', settings: { path: otherPath }, messages: hello, maxTokens: 1 });
      // Used again, the first model is now the more recently used of the two.
      await lifecycle.chat({ model: 'first', settings: { path }, messages: hello, maxTokens: 1 });
      await lifecycle.chat({ model: 'third', settings: { path }, messages: hello, maxTokens: 1 });
      expect(stats('second')).toMatchObject({ loaded: false, unloads: 1 });
      expect(stats('first')).toMatchObject({ loaded: true, unloads: 0 });
      expect(stats('third')).toMatchObject({ loaded: true, unloads: 0 });
    });
  });

  it('refuses to load beyond max loaded models while every loaded model is in use, naming the budget', async () => {
    await withEngine({ maxLoadedModels: 1 }, async (lifecycle, stats) => {
      const holder = new AbortController();
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const holding = lifecycle.chat({
        model: 'first',
        settings: { path },
        messages: count,
        temperature: 0,
        signal: holder.signal,
        onStart: started,
      });
      await running;
      const error = await lifecycle
        .chat({ model: 'second', settings: { path: otherPath }, messages: hello, maxTokens: 1 })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ModelBudgetError);
      expect(error).toMatchObject({
        code: 'model_overloaded',
        budget: 'max_loaded_models',
        message: /at most 1 loaded \(max_loaded_models\), and first is serving requests/,
      });
      expect(stats('first')).toMatchObject({ loaded: true, running: 1 });
      holder.abort(new Error('done'));
      await expect(holding).rejects.toThrow('done');
      // Once the first model is idle it makes room.
      await lifecycle.chat({ model: 'second', settings: { path: otherPath }, messages: hello, maxTokens: 1 });
      expect(stats('second').loaded).toBe(true);
    });
  });

  it('reports idle time and the time left before the keep-alive unloads, by its clock, and neither while busy', async () => {
    let clock = 1_000_000;
    await withEngine({ now: () => clock }, async (lifecycle, stats) => {
      const settings = { path, keepAliveMs: 60_000 };
      let whileBusy: EngineModelStats | undefined;
      await lifecycle.chat({
        model: 'timed',
        settings,
        messages: hello,
        maxTokens: 1,
        onStart: () => {
          whileBusy = stats('timed');
        },
      });
      expect(whileBusy).toMatchObject({ running: 1, idleMs: null, unloadInMs: null });
      expect(stats('timed')).toMatchObject({ idleMs: 0, unloadInMs: 60_000 });
      clock += 12_000;
      expect(stats('timed')).toMatchObject({ idleMs: 12_000, unloadInMs: 48_000 });

      // Kept forever: still idle for a while, but no unload is coming.
      await lifecycle.chat({
        model: 'timed',
        settings,
        messages: hello,
        maxTokens: 1,
        keepAliveMs: Number.POSITIVE_INFINITY,
      });
      clock += 5_000;
      expect(stats('timed')).toMatchObject({ idleMs: 5_000, unloadInMs: null });
    });
  });

  it('serves a name from its new file once the old copy is idle, unloading the old copy', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      const ask = (model: string, modelPath: string) =>
        lifecycle.chat({
          model,
          settings: { path: modelPath },
          messages: count,
          temperature: 0,
          maxTokens: 8,
        });
      const fromNewFile = (await ask('reference', otherPath)).text;
      // The two files hold different weights, and answer differently.
      expect((await ask('repulled', path)).text).not.toBe(fromNewFile);
      // The catalog now gives the name a new file, as after a pull with new content.
      expect((await ask('repulled', otherPath)).text).toBe(fromNewFile);
      expect(stats('repulled')).toMatchObject({ loaded: true, running: 0, unloads: 1 });
    });
  });

  it('refuses to switch a name to a new file while its old copy serves a request, asking to retry shortly', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      const holder = new AbortController();
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const holding = lifecycle
        .chat({
          model: 'repulled',
          settings: { path },
          messages: count,
          temperature: 0,
          signal: holder.signal,
          onStart: started,
        })
        .catch((error: unknown) => error);
      await running;
      const error = await lifecycle
        .chat({ model: 'repulled', settings: { path: otherPath }, messages: hello, maxTokens: 1 })
        .catch((caught: unknown) => caught);
      // An overload, so the runner answers 503 model_overloaded with Retry-After.
      expect(error).toBeInstanceOf(ModelReplacingError);
      expect(error).toBeInstanceOf(ModelOverloadedError);
      expect(error).toMatchObject({
        code: 'model_overloaded',
        model: 'repulled',
        running: 1,
        waiting: 0,
        retryAfterSeconds: 1,
        message:
          'Model repulled is being replaced: its file changed, and the copy loaded from the old file is still in use by 1 request. Retry shortly: the new file loads once they end.',
      });
      // The request on the old copy goes on undisturbed.
      expect(stats('repulled')).toMatchObject({ loaded: true, running: 1, unloads: 0 });
      holder.abort(new Error('done'));
      expect(await holding).toMatchObject({ message: 'done' });
      const next = await lifecycle.chat({
        model: 'repulled',
        settings: { path: otherPath },
        messages: hello,
        maxTokens: 1,
      });
      expect(next.usage.completionTokens).toBe(1);
      expect(stats('repulled')).toMatchObject({ loaded: true, unloads: 1 });
    });
  });

  it('says a loaded model runs on the CPU, every layer of it, and says nothing of one not loaded', async () => {
    await withEngine({}, async (lifecycle, stats) => {
      await lifecycle.load('placed', { path });
      // The tiny demo model has three layers; without `gpu: 'auto'` none is offloaded.
      expect(stats('placed').processor).toEqual({ gpu: null, gpuLayers: 0, layers: 3 });
      await lifecycle.chat({
        model: 'gone',
        settings: { path },
        messages: hello,
        maxTokens: 1,
        keepAliveMs: 0,
      });
      expect(stats('gone')).toMatchObject({ loaded: false, processor: null, unloadInMs: null });
    });
  });
});

describe('LlamaEngine memory budget', () => {
  const hello = [{ role: 'user' as const, content: 'Hello' }];
  /**
   * The tiny model's whole training context with one sequence, and with two. The context is long
   * so a request holding the model busy generates for a while: it stops only at the context's end.
   */
  const small = { contextSize: 2048 };
  const large = { contextSize: 2048, parallel: 2 };
  let otherPath: string;
  let smallBytes: number;
  let largeBytes: number;
  /** The embedding context of a `small` model, by node-llama-cpp's estimate, made apart from the engine. */
  let embeddingBytes: number;

  beforeAll(async () => {
    otherPath = join(directory, 'budget-other.gguf');
    await createDemoModel({ size: 'tiny', seed: 3, path: otherPath });
    const llama = await cpuLlama();
    try {
      const insights = await GgufInsights.from(await readGgufFileInfo(path, { logWarnings: false }), llama);
      // One sequence of the model's context, at node-llama-cpp's default batch: the tiny model is
      // a chat model, embedded by its last token, so it needs no whole-input batch.
      const memory = await insights.estimateContextResourceRequirementsV2({
        contextSize: small.contextSize,
        modelGpuLayers: 0,
        sequences: 1,
        isEmbeddingContext: true,
      });
      embeddingBytes = memory.cpuRam + memory.gpuVram;
    } finally {
      await llama.dispose();
    }
    expect(embeddingBytes).toBeGreaterThan(0);
    // The estimates themselves, so the budgets below sit between them whatever llama.cpp's figures.
    const probe = new LlamaEngine({ threads: 1 });
    try {
      await probe.load('small', { path, ...small });
      await probe.load('large', { path, ...large });
      const estimate = (name: string) => probe.stats().find((model) => model.name === name)!.estimatedBytes!;
      smallBytes = estimate('small');
      largeBytes = estimate('large');
    } finally {
      await probe.close();
    }
    expect(largeBytes).toBeGreaterThan(smallBytes);
  });

  async function withBudget(
    maxMemoryBytes: number,
    test: (engine: LlamaEngine, stats: (name: string) => EngineModelStats) => Promise<void>,
  ): Promise<void> {
    const budgeted = new LlamaEngine({ threads: 1, maxMemoryBytes });
    try {
      await test(budgeted, (name) => budgeted.stats().find((model) => model.name === name)!);
    } finally {
      await budgeted.close();
    }
  }

  /**
   * Starts a long generation and resolves once it holds a sequence of its loaded model, with the
   * generation's own settling (wrapped: an async function would wait for a promise it returns).
   */
  async function occupy(
    engine: LlamaEngine,
    model: string,
    signal: AbortSignal,
  ): Promise<{ holding: Promise<unknown> }> {
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const holding = engine
      .chat({
        model,
        settings: { path, ...small },
        messages: count,
        temperature: 0,
        signal,
        onStart: started,
      })
      .catch((error: unknown) => error);
    await running;
    return { holding };
  }

  it('unloads idle models least recently used first until a new model fits the memory budget', async () => {
    await withBudget(Math.floor(smallBytes * 2.5), async (budgeted, stats) => {
      await budgeted.chat({ model: 'first', settings: { path, ...small }, messages: hello, maxTokens: 1 });
      await budgeted.chat({
        model: 'second',
        settings: { path: otherPath, ...small },
        messages: hello,
        maxTokens: 1,
      });
      // Used again, the first model is now the more recently used of the two.
      await budgeted.chat({ model: 'first', settings: { path, ...small }, messages: hello, maxTokens: 1 });
      await budgeted.chat({ model: 'third', settings: { path, ...small }, messages: hello, maxTokens: 1 });
      expect(stats('second')).toMatchObject({ loaded: false, unloads: 1, estimatedBytes: smallBytes });
      expect(stats('first')).toMatchObject({ loaded: true, unloads: 0 });
      expect(stats('third')).toMatchObject({ loaded: true, unloads: 0 });
    });
  });

  it('never unloads a busy model to make room: the new one is refused, naming its need, the budget and what is held', async () => {
    await withBudget(Math.floor(smallBytes * 1.5), async (budgeted, stats) => {
      const holder = new AbortController();
      const { holding } = await occupy(budgeted, 'first', holder.signal);
      const error = await budgeted
        .chat({ model: 'second', settings: { path: otherPath, ...small }, messages: hello, maxTokens: 1 })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ModelBudgetError);
      expect(error).toMatchObject({
        code: 'model_overloaded',
        budget: 'max_memory',
        busy: ['first'],
        retryAfterSeconds: 1,
        message: expect.stringMatching(
          /^Model second needs about [\d.]+ MiB of memory \(weights [\d.]+ MiB \+ context [\d.]+ MiB\); the runner's memory budget is [\d.]+ MiB \(runner\.max_memory\), and [\d.]+ MiB of it is held by first, busy serving requests\. Retry shortly, or raise runner\.max_memory\.$/,
        ),
      });
      expect(stats('first')).toMatchObject({ loaded: true, running: 1 });
      expect(stats('second').loaded).toBe(false);
      holder.abort(new Error('done'));
      await holding;
      // Once the first model is idle it makes room.
      await budgeted.chat({
        model: 'second',
        settings: { path: otherPath, ...small },
        messages: hello,
        maxTokens: 1,
      });
      expect(stats('second').loaded).toBe(true);
      expect(stats('first')).toMatchObject({ loaded: false, unloads: 1 });
    });
  });

  it('refuses a model bigger than the whole memory budget, saying how to fix it and unloading nothing', async () => {
    await withBudget(Math.floor((smallBytes + largeBytes) / 2), async (budgeted, stats) => {
      await budgeted.chat({ model: 'fits', settings: { path, ...small }, messages: hello, maxTokens: 1 });
      const error = await budgeted
        .chat({ model: 'wide', settings: { path: otherPath, ...large }, messages: hello, maxTokens: 1 })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ModelTooLargeError);
      expect(error).toMatchObject({
        code: 'model_too_large',
        message: expect.stringMatching(
          /^Model wide needs about [\d.]+ MiB of memory \(weights [\d.]+ MiB \+ context [\d.]+ MiB for 2048 tokens × 2 parallel sequences\), more than the runner's whole memory budget of [\d.]+ MiB \(runner\.max_memory\), so it cannot load even with no other model loaded\. Lower runner\.context_size or runner\.parallel, or raise runner\.max_memory\.$/,
        ),
      });
      expect(error).not.toHaveProperty('retryAfterSeconds');
      expect(stats('fits')).toMatchObject({ loaded: true, unloads: 0 });
      expect(stats('wide')).toMatchObject({ loaded: false, estimatedBytes: largeBytes });
    });
  });

  it('counts an embedding context in the budget once the first embeddings request makes it, unloading the least recently used idle other model to fit it', async () => {
    // Three models fit, and half an embedding context more, not a whole one.
    await withBudget(3 * smallBytes + Math.floor(embeddingBytes / 2), async (budgeted, stats) => {
      for (const [model, modelPath] of [
        ['first', path],
        ['embedder', otherPath],
        ['third', path],
      ] as const) {
        await budgeted.chat({
          model,
          settings: { path: modelPath, ...small },
          messages: hello,
          maxTokens: 1,
        });
      }
      const before = stats('embedder');
      expect(before.estimatedBytes).toBe(smallBytes);
      const request = {
        model: 'embedder',
        settings: { path: otherPath, ...small },
        inputs: ['a quiet river'],
      };
      await budgeted.embed(request);
      expect(stats('first')).toMatchObject({ loaded: false, unloads: 1 });
      expect(stats('third')).toMatchObject({ loaded: true, unloads: 0 });
      expect(stats('embedder').estimatedBytes).toBe(smallBytes + embeddingBytes);
      expect(stats('embedder').memoryBytes!.ram).toBe(before.memoryBytes!.ram + embeddingBytes);
      // Counted once: the next request reuses the context and unloads nothing more.
      await budgeted.embed(request);
      expect(stats('third')).toMatchObject({ loaded: true, unloads: 0 });
      expect(stats('embedder').estimatedBytes).toBe(smallBytes + embeddingBytes);
    });
  });

  it('refuses an embeddings request whose embedding context needs room a busy model holds, and embeds once that model is idle', async () => {
    await withBudget(2 * smallBytes + Math.floor(embeddingBytes / 2), async (budgeted, stats) => {
      const request = {
        model: 'embedder',
        settings: { path: otherPath, ...small },
        inputs: ['a quiet river'],
      };
      await budgeted.load(request.model, request.settings);
      const holder = new AbortController();
      const { holding } = await occupy(budgeted, 'first', holder.signal);
      const error = await budgeted.embed(request).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ModelBudgetError);
      expect(error).toMatchObject({
        code: 'model_overloaded',
        budget: 'max_memory',
        busy: ['first'],
        retryAfterSeconds: 1,
        message: expect.stringMatching(
          /^Model embedder needs about [\d.]+ MiB of memory to compute embeddings \(weights [\d.]+ MiB \+ context [\d.]+ MiB \+ embedding context [\d.]+ MiB\); the runner's memory budget is [\d.]+ MiB \(runner\.max_memory\), and [\d.]+ MiB of it is held by first, busy serving requests\. Retry shortly, or raise runner\.max_memory\.$/,
        ),
      });
      // Nothing is held for the context it could not make.
      expect(stats('embedder')).toMatchObject({ loaded: true, estimatedBytes: smallBytes });
      expect(stats('first')).toMatchObject({ loaded: true, running: 1 });
      holder.abort(new Error('done'));
      await holding;
      const { embeddings } = await budgeted.embed(request);
      expect(embeddings).toHaveLength(1);
      expect(stats('first')).toMatchObject({ loaded: false, unloads: 1 });
      expect(stats('embedder').estimatedBytes).toBe(smallBytes + embeddingBytes);
    });
  });

  it('refuses an embedding context the whole budget cannot hold beside its model, leaving the model serving chat', async () => {
    await withBudget(smallBytes + Math.floor(embeddingBytes / 2), async (budgeted, stats) => {
      const settings = { path, ...small };
      const error = await budgeted
        .embed({ model: 'alone', settings, inputs: ['a quiet river'] })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ModelTooLargeError);
      expect(error).toMatchObject({
        code: 'model_too_large',
        embeddingContextBytes: embeddingBytes,
        message: expect.stringMatching(
          /^Model alone needs about [\d.]+ MiB of memory to compute embeddings \(weights [\d.]+ MiB \+ context [\d.]+ MiB for 2048 tokens × 1 parallel sequence \+ embedding context [\d.]+ MiB\), more than the runner's whole memory budget of [\d.]+ MiB \(runner\.max_memory\), so it cannot embed even with no other model loaded\. Lower runner\.context_size or runner\.parallel, or raise runner\.max_memory\.$/,
        ),
      });
      expect(stats('alone')).toMatchObject({ loaded: true, estimatedBytes: smallBytes });
      const chat = await budgeted.chat({ model: 'alone', settings, messages: hello, maxTokens: 1 });
      expect(chat.usage.completionTokens).toBe(1);
    });
  });

  describe('with a GPU', () => {
    // A fake GPU: the CPU build here loads every layer on the CPU, but the engine plans, budgets
    // and reports as on a GPU of `total` bytes that only its own models and `otherPrograms` use.
    let fullOffloadVram: number;
    let fullOffloadRam: number;

    async function withGpu(
      total: number,
      otherPrograms: number,
      test: (engine: LlamaEngine, stats: (name: string) => EngineModelStats) => Promise<void>,
    ): Promise<void> {
      const gpuEngine: LlamaEngine = new LlamaEngine({
        threads: 1,
        vramState: async () => {
          const ours = gpuEngine
            .stats()
            .filter((model) => model.loaded)
            .reduce((sum, model) => sum + (model.estimatedVramBytes ?? 0), 0);
          return { total, free: total - otherPrograms - ours };
        },
      });
      try {
        await test(gpuEngine, (name) => gpuEngine.stats().find((model) => model.name === name)!);
      } finally {
        await gpuEngine.close();
      }
    }

    beforeAll(async () => {
      await withGpu(2 ** 40, 0, async (gpuEngine, stats) => {
        await gpuEngine.load('small', { path, ...small });
        fullOffloadVram = stats('small').estimatedVramBytes!;
        fullOffloadRam = stats('small').estimatedBytes!;
      });
    });

    it('counts the layers it places on the GPU in VRAM, not RAM', () => {
      expect(fullOffloadVram).toBeGreaterThan(0);
      expect(fullOffloadRam).toBeLessThan(smallBytes);
    });

    it('places only the layers that fit beside what other programs hold, the rest in RAM', async () => {
      const total = 4 * fullOffloadVram;
      await withGpu(total, total - Math.floor(fullOffloadVram / 2), async (gpuEngine, stats) => {
        await gpuEngine.chat({
          model: 'partly',
          settings: { path, ...small },
          messages: hello,
          maxTokens: 1,
        });
        expect(stats('partly').estimatedVramBytes).toBeGreaterThan(0);
        expect(stats('partly').estimatedVramBytes).toBeLessThanOrEqual(fullOffloadVram / 2);
        expect(stats('partly').estimatedBytes).toBeGreaterThan(fullOffloadRam);
      });
    });

    it('unloads the least recently used idle model to make room on the GPU, though RAM has room to spare', async () => {
      await withGpu(Math.floor(fullOffloadVram * 1.5), 0, async (gpuEngine, stats) => {
        await gpuEngine.chat({ model: 'first', settings: { path, ...small }, messages: hello, maxTokens: 1 });
        await gpuEngine.chat({
          model: 'second',
          settings: { path: otherPath, ...small },
          messages: hello,
          maxTokens: 1,
        });
        expect(stats('first')).toMatchObject({ loaded: false, unloads: 1 });
        expect(stats('second')).toMatchObject({ loaded: true, estimatedVramBytes: fullOffloadVram });
      });
    });

    it('refuses a model whose GPU memory busy models hold, naming the GPU budget, and loads it once they are idle', async () => {
      await withGpu(Math.floor(fullOffloadVram * 1.5), 0, async (gpuEngine, stats) => {
        const holder = new AbortController();
        const { holding } = await occupy(gpuEngine, 'first', holder.signal);
        const error = await gpuEngine
          .chat({ model: 'second', settings: { path: otherPath, ...small }, messages: hello, maxTokens: 1 })
          .catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(ModelBudgetError);
        expect(error).toMatchObject({
          code: 'model_overloaded',
          budget: 'vram',
          busy: ['first'],
          retryAfterSeconds: 1,
          message: expect.stringMatching(
            /^Model second needs about [\d.]+ [KM]iB of GPU memory \(weights [\d.]+ [KM]iB \+ context 0 bytes, with (\d+) of \1 layers on the GPU\); the runner's models may have [\d.]+ [KM]iB of the GPU's memory, and [\d.]+ [KM]iB of it is held by first, busy serving requests\. Retry shortly\.$/,
          ),
        });
        holder.abort(new Error('done'));
        await holding;
        await gpuEngine.chat({
          model: 'second',
          settings: { path: otherPath, ...small },
          messages: hello,
          maxTokens: 1,
        });
        expect(stats('second').loaded).toBe(true);
        expect(stats('first')).toMatchObject({ loaded: false, unloads: 1 });
      });
    });
  });

  it('refuses a budget that is not a positive whole number of bytes', () => {
    expect(() => new LlamaEngine({ maxMemoryBytes: 0 })).toThrow(
      /maxMemoryBytes must be a positive whole number/,
    );
    expect(() => new LlamaEngine({ maxMemoryBytes: 1.5 })).toThrow(RangeError);
  });
});
