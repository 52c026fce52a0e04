import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufInsights, getLlama, type Llama, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoModel } from '../gguf/index.js';
import {
  autoMemoryBudget,
  type BudgetedModel,
  estimateMemory,
  formatBytes,
  planRoom,
  totalMemory,
} from './memory-budget.js';

const gibibyte = 1024 ** 3;

describe('autoMemoryBudget', () => {
  it('gives the loaded models three quarters of the machine’s RAM', () => {
    expect(autoMemoryBudget({ totalMemory: 16 * gibibyte, constrainedMemory: 0 })).toBe(12 * gibibyte);
  });

  it('takes three quarters of a container’s memory limit instead, when it is below the machine’s RAM', () => {
    expect(autoMemoryBudget({ totalMemory: 64 * gibibyte, constrainedMemory: 8 * gibibyte })).toBe(
      6 * gibibyte,
    );
    // cgroup v2 without a limit reads as a huge number: the machine's RAM is then the bound.
    expect(autoMemoryBudget({ totalMemory: 16 * gibibyte, constrainedMemory: 2 ** 62 })).toBe(12 * gibibyte);
  });

  it('reads this machine when given nothing', () => {
    expect(autoMemoryBudget()).toBeGreaterThan(0);
    expect(Number.isInteger(autoMemoryBudget())).toBe(true);
  });
});

describe('formatBytes', () => {
  it('writes sizes in binary units with at most one decimal, as the budget messages show them', () => {
    expect(formatBytes(512)).toBe('512 bytes');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(7.44 * 1024 ** 2)).toBe('7.4 MiB');
    expect(formatBytes(gibibyte)).toBe('1 GiB');
    expect(formatBytes(1.25 * gibibyte)).toBe('1.3 GiB');
    expect(formatBytes(3 * 1024 ** 4)).toBe('3 TiB');
  });
});

describe('planRoom', () => {
  /** A loaded model holding `ram` and `vram` GiB, last used at `lastUsed`. */
  const model = (name: string, ram: number, vram: number, lastUsed: number, busy = false): BudgetedModel => ({
    name,
    memory: { ram: ram * gibibyte, vram: vram * gibibyte },
    busy,
    lastUsed,
  });
  const need = (ram: number, vram: number) => ({ ram: ram * gibibyte, vram: vram * gibibyte });
  const names = (models: readonly BudgetedModel[]) => models.map((each) => each.name);
  const cpu = { maxLoadedModels: 3, maxMemoryBytes: 12 * gibibyte };
  const gpu = { ...cpu, vramBytes: 24 * gibibyte };

  it('unloads nothing when the model fits beside the others', () => {
    expect(planRoom(need(4, 0), [model('a', 4, 0, 1)], cpu)).toEqual({ fits: true, evict: [] });
    expect(planRoom(need(1, 16), [model('a', 1, 8, 1)], gpu)).toEqual({ fits: true, evict: [] });
  });

  it('unloads idle models least recently used first until the RAM fits', () => {
    const plan = planRoom(need(6, 0), [model('new', 4, 0, 3), model('old', 4, 0, 1), model('mid', 2, 0, 2)], {
      ...cpu,
      maxLoadedModels: 5,
    });
    expect(plan.fits && names(plan.evict)).toEqual(['old']);
  });

  it('unloads idle models holding GPU memory until the VRAM fits, though RAM has room, passing over models on the CPU', () => {
    const others = [model('on-cpu', 2, 0, 1), model('gpu-old', 1, 12, 2), model('gpu-new', 1, 8, 3)];
    const plan = planRoom(need(1, 12), others, { ...gpu, maxLoadedModels: 5 });
    expect(plan.fits && names(plan.evict)).toEqual(['gpu-old']);
  });

  it('says the GPU budget is in the way when busy models hold the VRAM, with what they hold, and unloads nothing', () => {
    const others = [model('idle', 1, 4, 1), model('busy', 1, 16, 2, true)];
    expect(planRoom(need(1, 12), others, gpu)).toEqual({
      fits: false,
      budget: 'vram',
      busy: [others[1]],
      held: need(1, 16),
    });
  });

  it('says the GPU budget is in the way, with no busy model to wait for, when other programs hold the VRAM', () => {
    const plan = planRoom(need(1, 12), [model('idle', 1, 4, 1)], { ...gpu, vramBytes: 8 * gibibyte });
    expect(plan).toEqual({ fits: false, budget: 'vram', busy: [], held: need(0, 0) });
  });

  it('checks the model count first, then RAM, then VRAM', () => {
    const busy = [model('a', 6, 12, 1, true), model('b', 6, 12, 2, true)];
    expect(planRoom(need(1, 1), busy, { ...gpu, maxLoadedModels: 2 })).toMatchObject({
      budget: 'max_loaded_models',
    });
    expect(planRoom(need(1, 1), busy, gpu)).toMatchObject({ budget: 'max_memory' });
    expect(planRoom(need(0, 1), busy, { ...gpu, maxMemoryBytes: 24 * gibibyte })).toMatchObject({
      budget: 'vram',
    });
  });

  it('ignores GPU memory without a GPU', () => {
    expect(planRoom(need(1, 99), [model('a', 1, 99, 1, true)], cpu)).toEqual({ fits: true, evict: [] });
  });
});

describe('estimateMemory', () => {
  let directory: string;
  let path: string;
  let llama: Llama;
  const options = { contextSize: 512, sequences: 2 };

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'switchyard-estimate-'));
    path = join(directory, 'tiny.gguf');
    await createDemoModel({ size: 'tiny', seed: 1, path });
    llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
  });

  afterAll(async () => {
    await llama?.dispose();
    await rm(directory, { recursive: true, force: true });
  });

  it('counts every layer in RAM without GPU memory to place them in', async () => {
    const need = await estimateMemory(llama, path, options);
    expect(need).toMatchObject({ gpuLayers: 0, contextSize: 512, sequences: 2 });
    expect(totalMemory(need).vram).toBe(0);
    expect(need.weights.ram).toBeGreaterThan(0);
    expect(need.context.ram).toBeGreaterThan(0);
  });

  it('places every layer on the GPU when they fit, and as many as fit when not all do', async () => {
    const onCpu = await estimateMemory(llama, path, options);
    const all = await estimateMemory(llama, path, { ...options, vramBytes: 2 ** 40 });
    expect(all.gpuLayers).toBe(all.layers);
    expect(all.weights.vram).toBeGreaterThan(0);
    expect(all.weights.ram).toBeLessThan(onCpu.weights.ram);

    const room = Math.floor(totalMemory(all).vram / 2);
    const some = await estimateMemory(llama, path, { ...options, vramBytes: room });
    expect(some.gpuLayers).toBeGreaterThan(0);
    expect(some.gpuLayers).toBeLessThan(all.layers);
    expect(totalMemory(some).vram).toBeLessThanOrEqual(room);
    // One layer more would not have fit.
    const insights = await GgufInsights.from(await readGgufFileInfo(path), llama);
    const layers = some.gpuLayers + 1;
    const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers: layers });
    const context = await insights.estimateContextResourceRequirementsV2({
      ...options,
      modelGpuLayers: layers,
    });
    expect(weights.gpuVram + context.gpuVram).toBeGreaterThan(room);
  });
});
