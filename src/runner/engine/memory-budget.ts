import { totalmem } from 'node:os';
import { GgufInsights, type Llama, readGgufFileInfo } from 'node-llama-cpp';

/** Bytes by where they lie: in RAM, and in the GPU's own memory (0 on the CPU). */
export interface MemorySplit {
  readonly ram: number;
  readonly vram: number;
}

/** The memory a model needs once loaded, estimated from its GGUF header before loading it. */
export interface MemoryEstimate {
  /** The weights: the offloaded layers' in VRAM, the rest in RAM. */
  readonly weights: MemorySplit;
  /** The context: a KV cache of `contextSize` cells per sequence, plus llama.cpp's compute buffers. */
  readonly context: MemorySplit;
  /** Layers the estimate places on the GPU, which the load then offloads: 0 on the CPU. */
  readonly gpuLayers: number;
  /** The model's layers in all. */
  readonly layers: number;
  /** Tokens of context per sequence the estimate is for, already capped by the model's training context. */
  readonly contextSize: number;
  readonly sequences: number;
}

/** Weights plus context, by where they lie. */
export function totalMemory(estimate: MemoryEstimate): MemorySplit {
  return {
    ram: estimate.weights.ram + estimate.context.ram,
    vram: estimate.weights.vram + estimate.context.vram,
  };
}

/**
 * Estimates the memory a model will take, weights and context, without loading it: node-llama-cpp
 * reads the GGUF header and has llama.cpp lay the model and a context out without allocating
 * their memory. With `vramBytes`, the GPU memory the model may have, as many layers go to the GPU
 * as fit there with their share of the context, and the estimate splits accordingly; without it
 * (on the CPU) every layer is in RAM.
 *
 * @example
 * const need = await estimateMemory(llama, '/models/qwen.gguf', { contextSize: 4096, sequences: 2 });
 * totalMemory(need).ram; // bytes
 */
export async function estimateMemory(
  llama: Llama,
  path: string,
  {
    contextSize,
    sequences,
    vramBytes,
  }: { contextSize: number; sequences: number; vramBytes?: number | undefined },
): Promise<MemoryEstimate> {
  const insights = await GgufInsights.from(await readGgufFileInfo(path, { logWarnings: false }), llama);
  const cappedContextSize = Math.min(contextSize, insights.trainContextSize ?? contextSize);
  const layout = async (gpuLayers: number): Promise<MemoryEstimate> => {
    const [weights, context] = await Promise.all([
      insights.estimateModelResourceRequirementsV2({ gpuLayers }),
      insights.estimateContextResourceRequirementsV2({
        contextSize: cappedContextSize,
        modelGpuLayers: gpuLayers,
        sequences,
      }),
    ]);
    return {
      weights: { ram: weights.cpuRam, vram: weights.gpuVram },
      context: { ram: context.cpuRam, vram: context.gpuVram },
      gpuLayers,
      layers: insights.totalLayers,
      contextSize: cappedContextSize,
      sequences,
    };
  };
  if (vramBytes === undefined || vramBytes <= 0) return layout(0);
  const fits = (estimate: MemoryEstimate) => totalMemory(estimate).vram <= vramBytes;
  // Usually the whole model fits: one layout. Otherwise the most layers that fit, by bisection
  // (a layout takes milliseconds, and a large model has over a hundred layers).
  let best = await layout(insights.totalLayers);
  if (fits(best)) return best;
  let low = 0;
  let high = insights.totalLayers - 1;
  best = await layout(0);
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    const candidate = await layout(middle);
    if (fits(candidate)) {
      best = candidate;
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return best;
}

/**
 * The GPU's memory as the runner budgets it: `free` is what llama.cpp reports free, less the
 * padding node-llama-cpp keeps back for its own estimates' error.
 */
export interface VramState {
  readonly total: number;
  readonly free: number;
}

/** A loaded (or loading) model as the budgets see it. */
export interface BudgetedModel {
  readonly name: string;
  /** Its estimated share of each budget: weights and contexts, an embedding context included. */
  readonly memory: MemorySplit;
  /** Serving or waiting for requests: never unloaded to make room. */
  readonly busy: boolean;
  /** When it was last used, by the engine's clock: the least recently used idle model goes first. */
  readonly lastUsed: number;
}

/** The budgets a model must fit beside the others. */
export interface RoomLimits {
  readonly maxLoadedModels: number;
  /** RAM for every loaded model together (runner.max_memory). */
  readonly maxMemoryBytes: number;
  /**
   * GPU memory the runner's models may hold together now: what the GPU has free plus what they
   * hold already (other programs keep the rest). Undefined without a GPU.
   */
  readonly vramBytes?: number | undefined;
}

/** The budget in the way: a config key, or `vram` for the GPU's memory. */
export type RoomBudget = 'max_loaded_models' | 'max_memory' | 'vram';

export type RoomPlan<Model extends BudgetedModel = BudgetedModel> =
  | {
      readonly fits: true;
      /** The idle models to unload first, least recently used first; none when it fits as is. */
      readonly evict: readonly Model[];
    }
  | {
      readonly fits: false;
      readonly budget: RoomBudget;
      /** The busy models holding the room; empty when other programs hold the GPU's memory. */
      readonly busy: readonly Model[];
      /** What the busy models hold together. */
      readonly held: MemorySplit;
    };

/**
 * Which idle models to unload, least recently used first, so that one more model needing `need`
 * fits every budget: how many are loaded, their RAM and, with a GPU, their VRAM. Unloads none
 * unless that makes it fit; when it cannot fit, says which budget is in the way and what the busy
 * models hold. A model bigger than a whole budget is the caller's to refuse first.
 *
 * @example
 * planRoom({ ram: 4e9, vram: 0 }, loaded, { maxLoadedModels: 3, maxMemoryBytes: 12e9 })
 * // { fits: true, evict: [] }, or { fits: true, evict: [oldest idle] }, or { fits: false, budget: 'max_memory', … }
 */
export function planRoom<Model extends BudgetedModel>(
  need: MemorySplit,
  others: readonly Model[],
  limits: RoomLimits,
): RoomPlan<Model> {
  const { maxLoadedModels, maxMemoryBytes, vramBytes } = limits;
  let count = others.length + 1;
  let ram = 0;
  let vram = 0;
  for (const other of others) {
    ram += other.memory.ram;
    vram += other.memory.vram;
  }
  const inTheWay = (): RoomBudget | undefined => {
    if (count > maxLoadedModels) return 'max_loaded_models';
    if (ram + need.ram > maxMemoryBytes) return 'max_memory';
    if (vramBytes !== undefined && vram + need.vram > vramBytes) return 'vram';
    return undefined;
  };
  const idle = others.filter((other) => !other.busy).sort((a, b) => a.lastUsed - b.lastUsed);
  const evict: Model[] = [];
  for (const candidate of idle) {
    const budget = inTheWay();
    if (budget === undefined) break;
    // A model on the CPU frees no GPU memory. The budgets are checked in order and each stays
    // met once met, so a model passed over here is never needed for an earlier one.
    if (budget === 'vram' && candidate.memory.vram === 0) continue;
    evict.push(candidate);
    count--;
    ram -= candidate.memory.ram;
    vram -= candidate.memory.vram;
  }
  const budget = inTheWay();
  if (budget === undefined) return { fits: true, evict };
  const busy = others.filter((other) => other.busy);
  const held = busy.reduce(
    (sum, other) => ({ ram: sum.ram + other.memory.ram, vram: sum.vram + other.memory.vram }),
    { ram: 0, vram: 0 },
  );
  return { fits: false, budget, busy, held };
}

/**
 * The memory budget 'auto' means: three quarters of the machine's RAM. The quarter left over is
 * for the OS, the gateway beside the runner, Node's own heap and the estimate's error (llama.cpp's
 * compute buffers vary with batch size), while one large model can still take most of the
 * machine. Inside a container the cgroup limit counts rather than the host's RAM that
 * `os.totalmem()` reports, since that limit is what the out-of-memory killer enforces.
 *
 * @example autoMemoryBudget({ totalMemory: 16 * 2 ** 30, constrainedMemory: 0 }) // 12 GiB
 */
export function autoMemoryBudget({
  totalMemory = totalmem(),
  constrainedMemory = process.constrainedMemory(),
}: {
  totalMemory?: number;
  constrainedMemory?: number;
} = {}): number {
  // Node reports 0 without a limit, and some cgroup setups report a limit above the machine's RAM.
  const usable = constrainedMemory > 0 ? Math.min(constrainedMemory, totalMemory) : totalMemory;
  return Math.floor(usable * autoMemoryFraction);
}

const autoMemoryFraction = 0.75;

/** Bytes for people: "512 bytes", "7.4 MiB", "1.2 GiB" (binary units, one decimal). */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (bytes < 1024) return `${bytes} bytes`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(1))} ${units[unit]}`;
}
