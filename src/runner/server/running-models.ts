import type { EngineModelStats, EngineProcessor } from '../engine/index.js';

/**
 * One loaded model, as GET /api/ps reports it and `switchyard ps` prints it. The fields Ollama's
 * /api/ps also has keep Ollama's names and meanings (`name`, `model`, `size`, `size_vram`,
 * `context_length`, `expires_at`), so tools written for it read them; the rest are Switchyard's.
 * The gateway serves the same JSON at GET /admin/ps: fields may be added, never renamed.
 *
 * @example
 * {
 *   "name": "demo:small", "model": "demo:small", "size": 110925824, "size_vram": 0,
 *   "processor": "100% CPU", "gpu": null, "context_length": 4096, "parallel": 2,
 *   "slots_in_use": 1, "requests_waiting": 0, "idle_seconds": null, "keep_alive_seconds": 300,
 *   "expires_at": null, "load_seconds": 1.145
 * }
 */
export interface RunningModel {
  /** The name the runner serves it under: `name:tag` from the model store. */
  readonly name: string;
  /** The same as `name`; Ollama repeats it under this key. */
  readonly model: string;
  /**
   * Bytes in memory, RAM and GPU memory together: node-llama-cpp's estimate for the weights plus
   * the context, and the embedding context once an embeddings request has made one.
   */
  readonly size: number;
  /** The part of `size` in GPU memory. */
  readonly size_vram: number;
  /**
   * Where it runs, as `ollama ps` prints it: "100% CPU", "100% GPU", or a split such as
   * "25%/75% CPU/GPU". The split is by layers, since llama.cpp offloads whole layers.
   */
  readonly processor: string;
  /** The GPU backend llama.cpp runs with, or null on the CPU alone. */
  readonly gpu: EngineProcessor['gpu'];
  /** Tokens of context each request gets. */
  readonly context_length: number;
  /** Requests it runs at once: its context sequences, or slots. */
  readonly parallel: number;
  /** Slots running a request now, at most `parallel`. */
  readonly slots_in_use: number;
  /** Requests queued for a slot. */
  readonly requests_waiting: number;
  /** Seconds since its last request ended; null while a request is running or waiting. */
  readonly idle_seconds: number | null;
  /** How long it stays loaded once idle; null for forever. */
  readonly keep_alive_seconds: number | null;
  /**
   * When its keep-alive will unload it, in ISO 8601 (UTC); null while a request is running or
   * waiting (the countdown starts when the last one ends) and when it is kept forever.
   */
  readonly expires_at: string | null;
  /** Seconds its last load took. */
  readonly load_seconds: number;
}

/** The body of GET /api/ps: the loaded models, by name. */
export interface RunningModelsResponse {
  readonly models: readonly RunningModel[];
}

/**
 * The loaded models among the engine's, for GET /api/ps. `now` is the wall clock in
 * milliseconds, to turn the engine's "unloads in" into a time.
 */
export function runningModels(stats: readonly EngineModelStats[], now: number): RunningModelsResponse {
  const models = stats.flatMap((model): RunningModel[] => {
    const { processor, memoryBytes, contextSize, loadSeconds } = model;
    // A model still loading has none of these yet; `ollama ps` lists it only once loaded too.
    if (!model.loaded || processor === null || memoryBytes === null || contextSize === null) return [];
    return [
      {
        name: model.name,
        model: model.name,
        size: memoryBytes.ram + memoryBytes.vram,
        size_vram: memoryBytes.vram,
        processor: describeProcessor(processor),
        gpu: processor.gpu,
        context_length: contextSize,
        parallel: model.parallel,
        slots_in_use: model.running,
        requests_waiting: model.waiting,
        idle_seconds: model.idleMs === null ? null : seconds(model.idleMs),
        keep_alive_seconds: Number.isFinite(model.keepAliveMs) ? seconds(model.keepAliveMs) : null,
        expires_at: model.unloadInMs === null ? null : new Date(now + model.unloadInMs).toISOString(),
        load_seconds: seconds((loadSeconds ?? 0) * 1000),
      },
    ];
  });
  models.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { models };
}

/** "100% CPU", "100% GPU" or "40%/60% CPU/GPU", the way `ollama ps` prints its PROCESSOR column. */
export function describeProcessor(processor: EngineProcessor): string {
  const { gpuLayers, layers } = processor;
  if (processor.gpu === null || gpuLayers <= 0) return '100% CPU';
  if (gpuLayers >= layers) return '100% GPU';
  // Kept within 1–99, so a split never reads as all on one side.
  const cpuPercent = Math.min(99, Math.max(1, Math.round(((layers - gpuLayers) / layers) * 100)));
  return `${cpuPercent}%/${100 - cpuPercent}% CPU/GPU`;
}

/** Milliseconds as seconds, to the millisecond. */
function seconds(milliseconds: number): number {
  return Math.round(milliseconds) / 1000;
}
