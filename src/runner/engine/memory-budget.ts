import { totalmem } from 'node:os';
import { GgufInsights, type Llama, readGgufFileInfo } from 'node-llama-cpp';

/** RAM a model needs once loaded, estimated from its GGUF header before loading it. */
export interface MemoryEstimate {
  /** The weights, all of them in RAM. */
  readonly weights: number;
  /** The context: a KV cache of `contextSize` cells per sequence, plus llama.cpp's compute buffers. */
  readonly context: number;
  /** Tokens of context per sequence the estimate is for, already capped by the model's training context. */
  readonly contextSize: number;
  readonly sequences: number;
}

/**
 * Estimates the RAM a model will take, weights and context, without loading it: node-llama-cpp
 * reads the GGUF header and has llama.cpp lay the model and a context out without allocating
 * their memory. Every layer is counted in RAM: exact on the CPU, where `switchyard runner` runs,
 * and an upper bound with a GPU, which takes offloaded layers out of RAM.
 *
 * @example
 * const need = await estimateMemory(llama, '/models/qwen.gguf', { contextSize: 4096, sequences: 2 });
 * need.weights + need.context; // bytes
 */
export async function estimateMemory(
  llama: Llama,
  path: string,
  { contextSize, sequences }: { contextSize: number; sequences: number },
): Promise<MemoryEstimate> {
  const insights = await GgufInsights.from(await readGgufFileInfo(path, { logWarnings: false }), llama);
  const cappedContextSize = Math.min(contextSize, insights.trainContextSize ?? contextSize);
  const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers: 0 });
  const context = await insights.estimateContextResourceRequirementsV2({
    contextSize: cappedContextSize,
    modelGpuLayers: 0,
    sequences,
  });
  return {
    weights: weights.cpuRam + weights.gpuVram,
    context: context.cpuRam + context.gpuVram,
    contextSize: cappedContextSize,
    sequences,
  };
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
