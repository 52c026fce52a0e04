import { describe, expect, it } from 'vitest';
import type { EngineModelStats } from '../engine/index.js';
import { describeProcessor, runningModels } from './running-models.js';

const now = Date.parse('2025-06-01T09:30:00.000Z');

/** A loaded, idle model on the CPU, as the engine reports it; `change` adjusts it. */
function stats(change: Partial<EngineModelStats> = {}): EngineModelStats {
  return {
    name: 'demo:small',
    loaded: true,
    running: 0,
    waiting: 0,
    parallel: 2,
    contextSize: 2048,
    loadSeconds: 0.25,
    memoryBytes: { ram: 20_000_000, vram: 0 },
    estimatedBytes: 20_000_000,
    estimatedVramBytes: 0,
    keepAliveMs: 300_000,
    unloads: 0,
    idleMs: 12_345,
    unloadInMs: 287_655,
    processor: { gpu: null, gpuLayers: 0, layers: 12 },
    decodeSteps: 0,
    decodeStepSequences: 0,
    ...change,
  };
}

describe('the loaded models GET /api/ps reports', () => {
  it('lists only loaded models, by name, under Ollama’s field names, with memory in bytes', () => {
    const response = runningModels(
      [
        stats({ name: 'zeta:1' }),
        stats({ name: 'cold:1', loaded: false, memoryBytes: null, contextSize: null, processor: null }),
        stats({ name: 'alpha:1', memoryBytes: { ram: 1_000, vram: 9_000 } }),
      ],
      now,
    );
    expect(response.models.map((model) => model.name)).toEqual(['alpha:1', 'zeta:1']);
    expect(response.models[1]).toEqual({
      name: 'zeta:1',
      model: 'zeta:1',
      size: 20_000_000,
      size_vram: 0,
      processor: '100% CPU',
      gpu: null,
      context_length: 2048,
      parallel: 2,
      slots_in_use: 0,
      requests_waiting: 0,
      idle_seconds: 12.345,
      keep_alive_seconds: 300,
      expires_at: '2025-06-01T09:34:47.655Z',
      load_seconds: 0.25,
    });
    expect(response.models[0]).toMatchObject({ size: 10_000, size_vram: 9_000 });
  });

  it('has no idle time or expiry while busy, and no expiry when kept forever', () => {
    const [busy, forever] = runningModels(
      [
        stats({ name: 'a:busy', running: 2, waiting: 3, idleMs: null, unloadInMs: null }),
        stats({ name: 'b:forever', keepAliveMs: Number.POSITIVE_INFINITY, unloadInMs: null }),
      ],
      now,
    ).models;
    expect(busy).toMatchObject({
      slots_in_use: 2,
      requests_waiting: 3,
      idle_seconds: null,
      expires_at: null,
    });
    expect(forever).toMatchObject({ idle_seconds: 12.345, keep_alive_seconds: null, expires_at: null });
  });

  it('describes the processor as `ollama ps` does: all on the CPU, all on the GPU, or a split by layers', () => {
    expect(describeProcessor({ gpu: null, gpuLayers: 0, layers: 32 })).toBe('100% CPU');
    expect(describeProcessor({ gpu: 'cuda', gpuLayers: 0, layers: 32 })).toBe('100% CPU');
    expect(describeProcessor({ gpu: 'cuda', gpuLayers: 32, layers: 32 })).toBe('100% GPU');
    expect(describeProcessor({ gpu: 'metal', gpuLayers: 24, layers: 32 })).toBe('25%/75% CPU/GPU');
    // One layer of many still shows as a split, never as all on one side.
    expect(describeProcessor({ gpu: 'vulkan', gpuLayers: 1, layers: 400 })).toBe('99%/1% CPU/GPU');
  });
});
