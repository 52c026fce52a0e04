import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoModel } from '../gguf/index.js';
import { EngineRequestError, LlamaEngine } from './llama-engine.js';

let directory: string;
let path: string;
let engine: LlamaEngine;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-engine-'));
  path = join(directory, 'tiny.gguf');
  await createDemoModel({ size: 'tiny', seed: 1, path });
  engine = new LlamaEngine({ threads: 1 });
});

afterAll(async () => {
  await engine?.close();
  await rm(directory, { recursive: true, force: true });
});

// At temperature 0 the tiny demo model answers "Count" with thousands of tokens and no end token.
const count = [{ role: 'user' as const, content: 'Count' }];
const stats = (name: string) => engine.stats().find((model) => model.name === name)!;

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

  it('refuses to serve one name from two files', async () => {
    await expect(
      engine.chat({ model: 'one', settings: { path: `${path}.other` }, messages: count }),
    ).rejects.toThrow(/already served from/);
  });
});
