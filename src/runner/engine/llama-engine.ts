import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  type LLamaChatGenerateResponseOptions,
  type Llama,
  LlamaChat,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaGrammar,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
} from 'node-llama-cpp';
import type {
  EngineChatRequest,
  EngineChatResult,
  EngineEmbedRequest,
  EngineEmbedResult,
  EngineMessage,
  EngineModelSettings,
  EngineModelStats,
  EngineProcessor,
  EngineResponseFormat,
  FinishReason,
} from './chat-types.js';
import {
  autoMemoryBudget,
  estimateMemory,
  formatBytes,
  type MemoryEstimate,
  type MemorySplit,
  planRoom,
  type RoomBudget,
  totalMemory,
  type VramState,
} from './memory-budget.js';
import { ModelOverloadedError, SlotQueue } from './slot-queue.js';
import { type Arrangement, type QueuedDecodes, StepGate } from './step-gate.js';
import { defaultThreadCount } from './threads.js';

export interface LlamaEngineOptions {
  /** `false` (default) runs on the CPU; 'auto' uses CUDA, Vulkan or Metal when their prebuilt binary loads. */
  readonly gpu?: false | 'auto';
  /** Generation threads. Default: `defaultThreadCount()`, one on machines with two cores or fewer. */
  readonly threads?: number;
  /** llama.cpp's own log level. Default 'error': its info lines would flood the runner's log. */
  readonly logLevel?: LlamaLogLevel;
  /** A monotonic clock in milliseconds; injectable for tests. Default `performance.now`. */
  readonly now?: () => number;
  /**
   * Models kept loaded at once. Loading one more first unloads the least recently used idle
   * model; with none idle the request fails with `ModelBudgetError` rather than running out of
   * memory. Default 3.
   */
  readonly maxLoadedModels?: number;
  /**
   * RAM the loaded models may take together, in bytes, by the estimate made from each model's
   * GGUF header before loading it (`estimateMemory`), plus that of each embedding context, counted
   * before it is made. Loading one more (or making an embedding context) first unloads the least
   * recently used idle models until it fits; with too few idle the request fails with
   * `ModelBudgetError`, and a model bigger than the whole budget with `ModelTooLargeError`.
   * Default 'auto': `autoMemoryBudget()`, three quarters of the machine's RAM.
   */
  readonly maxMemoryBytes?: number | 'auto';
  /**
   * Reads the GPU's memory, free and total. With a GPU, a model's layers go to it as far as they
   * fit in what was free before the first model loaded, and a load must fit in what is free now
   * plus what the other models hold, as it must fit `maxMemoryBytes`: idle ones are unloaded for
   * it, least recently used first. Injectable for tests. Default: node-llama-cpp's
   * `getVramState()` less its VRAM padding when a GPU backend loaded; none (no GPU) otherwise.
   */
  readonly vramState?: () => Promise<VramState>;
  /**
   * How a decode step of several sequences is laid out (see `StepGate`): 'timed' (default) times
   * one decode of them all against one decode each, for each number of sequences, and keeps the
   * faster; 'joined' or 'apart' fixes the layout, for tests whose expectations depend on it (it
   * is an engine option, not a runner setting).
   */
  readonly stepArrangement?: Arrangement | 'timed';
}

/** Raised for a request the engine cannot serve as asked (a schema llama.cpp grammars cannot express). */
export class EngineRequestError extends Error {
  override readonly name = 'EngineRequestError';
  constructor(
    message: string,
    readonly param: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Thrown when loading a model, or making its embedding context, would exceed a budget,
 * `maxLoadedModels` or `maxMemoryBytes`, and the loaded models that would have to be unloaded
 * are serving requests. It passes: a busy model becomes idle, and so unloadable, when its
 * requests end.
 */
export class ModelBudgetError extends Error {
  override readonly name = 'ModelBudgetError';
  readonly code = 'model_overloaded';
  /** A hint for Retry-After: a loaded model frees up when its requests end. */
  readonly retryAfterSeconds = 1;
  constructor(
    readonly model: string,
    /** The config key of the budget in the way, or `vram` for the GPU's memory. */
    readonly budget: RoomBudget,
    readonly busy: readonly string[],
    message: string,
  ) {
    super(message);
  }
}

/**
 * Thrown for a model whose estimated RAM exceeds the whole memory budget: it could not load even
 * with every other model unloaded, so retrying cannot help; a smaller context, fewer parallel
 * sequences or a bigger budget can. (Its layers go to a GPU only as far as they fit there, so no
 * model is too large for the GPU: the rest stay in RAM.)
 */
export class ModelTooLargeError extends Error {
  override readonly name = 'ModelTooLargeError';
  readonly code = 'model_too_large';
  constructor(
    readonly model: string,
    readonly need: MemoryEstimate,
    readonly maxMemoryBytes: number,
    /** RAM of the embedding context it was about to make, when that is what tipped it over. */
    readonly embeddingContextBytes?: number,
  ) {
    const sequences = `${need.sequences} parallel ${need.sequences === 1 ? 'sequence' : 'sequences'}`;
    const total = formatBytes(totalMemory(need).ram + (embeddingContextBytes ?? 0));
    const parts = `${describeParts(need, 'ram')} for ${need.contextSize} tokens × ${sequences}${describeOffload(need)}`;
    const memory = memoryWord(need);
    super(
      embeddingContextBytes === undefined
        ? `Model ${model} needs about ${total} of ${memory} (${parts}), more than the runner's whole memory budget of ${formatBytes(maxMemoryBytes)} (runner.max_memory), so it cannot load even with no other model loaded. Lower runner.context_size or runner.parallel, or raise runner.max_memory.`
        : `Model ${model} needs about ${total} of ${memory} to compute embeddings (${parts} + embedding context ${formatBytes(embeddingContextBytes)}), more than the runner's whole memory budget of ${formatBytes(maxMemoryBytes)} (runner.max_memory), so it cannot embed even with no other model loaded. Lower runner.context_size or runner.parallel, or raise runner.max_memory.`,
    );
  }
}

/** "weights 1.2 GiB + context 96 MiB": a model's need in RAM or in VRAM. */
function describeParts(need: MemoryEstimate, where: keyof MemorySplit): string {
  return `weights ${formatBytes(need.weights[where])} + context ${formatBytes(need.context[where])}`;
}

/** ", with 20 of 33 layers on the GPU", or nothing on the CPU. */
function describeOffload(need: MemoryEstimate): string {
  return need.gpuLayers === 0 ? '' : `, with ${need.gpuLayers} of ${need.layers} layers on the GPU`;
}

/** "memory" on the CPU, where RAM is all there is; "RAM" beside a GPU's memory. */
function memoryWord(need: MemoryEstimate): string {
  return need.gpuLayers === 0 ? 'memory' : 'RAM';
}

/**
 * Thrown for a request naming a model whose file changed (it was pulled again with new content)
 * while the old file's copy still serves requests. Unloading that copy under them would fail
 * them, so the request is refused instead; it passes once they end, when the next request
 * unloads the old copy and loads the new file. A `ModelOverloadedError`, so it reaches the client
 * as 503 `model_overloaded` with Retry-After.
 */
export class ModelReplacingError extends ModelOverloadedError {
  constructor(model: string, running: number, waiting: number, inUse: number) {
    super(model, running, waiting, 1);
    this.message = `Model ${model} is being replaced: its file changed, and the copy loaded from the old file is still in use by ${inUse} ${inUse === 1 ? 'request' : 'requests'}. Retry shortly: the new file loads once they end.`;
  }
}

const defaultContextSize = 4096;
const defaultParallel = 1;
const defaultMaxQueue = 16;
const defaultKeepAliveMs = 5 * 60_000;
const defaultMaxLoadedModels = 3;
/** setTimeout fires at once for longer delays; a keep-alive past about 24.8 days is as good as forever. */
const longestTimerMs = 2 ** 31 - 1;
/** Distinct JSON schemas whose compiled grammar is kept; clients tend to reuse a few. */
const grammarCacheSize = 32;

interface LoadedModel {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  /**
   * Resolved once per load: resolving it from the GGUF's chat template (what LlamaChat does when
   * given none) took 140–230 ms of every request before its first token.
   */
  readonly chatWrapper: ChatWrapper;
  /**
   * Sequences that finished a request, cleared and ready for the next. Reused rather than
   * disposed: a disposed sequence returns to the context only later, so a request arriving at
   * once found "No sequences left" whenever every slot had been busy (seen at 8 concurrent
   * requests on 8 slots). The slot queue keeps at most `parallel` in use.
   */
  readonly idleSequences: LlamaContextSequence[];
  /**
   * Every sequence made, in the order made, which is the order of their ids in llama.cpp (they are
   * never disposed while the model is loaded). The lowest idle one serves the next request, so the
   * sequences in use stay a run of consecutive ids that llama.cpp decodes in one step (StepGate).
   */
  readonly sequences: LlamaContextSequence[];
  /**
   * Made by the first embedding request and kept until the model unloads: llama.cpp computes
   * embeddings only in a context created for them, so the chat context cannot serve them.
   */
  embeddingContext?: Promise<LlamaEmbeddingContext>;
  /**
   * The embedding context's estimated memory, set once it has room in the budget (just before it
   * is made) and kept until the model unloads; the model's share of the budget includes it.
   */
  embeddingMemoryBytes?: MemorySplit;
  readonly loadSeconds: number;
  /** The weights and the chat context, estimated for where they were placed. */
  readonly memoryBytes: MemorySplit;
}

interface ModelEntry {
  readonly settings: EngineModelSettings;
  readonly parallel: number;
  readonly queue: SlotQueue;
  /** Embedding requests: one at a time (the embedding context has one sequence), the rest queued. */
  readonly embeddingQueue: SlotQueue;
  loading: Promise<LoadedModel> | undefined;
  loaded: LoadedModel | undefined;
  /**
   * The model's memory need, estimated before its first load and kept: the entry's file and
   * settings never change (a name whose file changes gets a new entry, see `#entry`), nor does the
   * GPU memory its layers are planned for, and the estimate takes tens of milliseconds.
   */
  estimate: Promise<MemoryEstimate> | undefined;
  /** The estimate once known, for the budget's arithmetic, which must not wait. */
  estimated: MemoryEstimate | undefined;
  /**
   * Disposal of the previous load, awaited before loading again so two copies never coexist; for
   * a new entry replacing one whose file changed, the old file's copy.
   */
  unloading: Promise<void> | undefined;
  /** Requests (and preloads) in progress, queued ones included; the model is idle at 0. */
  active: number;
  /** When the last request started or ended, by `now`, for least-recently-used eviction. */
  lastUsed: number;
  /** The keep-alive for the current idle period: the last request's own, or the model's. */
  keepAliveMs: number;
  idleTimer: NodeJS.Timeout | undefined;
  unloads: number;
  /** Holds each decode step of the model's chat context until every generating sequence is in it. */
  readonly gate: StepGate;
}

/**
 * Runs GGUF models in-process with node-llama-cpp (llama.cpp). A model loads on its first
 * request and stays loaded until it has been idle for its keep-alive, or until room is needed
 * for another model, or another model's embedding context, under `maxLoadedModels` and
 * `maxMemoryBytes` (least recently used idle model first, by memory estimated from the GGUF before
 * loading). Each request gets its own context sequence, so up to `parallel` requests are decoded
 * together in one batch, and the sequence is freed the moment the request ends, fails or is
 * aborted. More requests wait in a bounded queue (see `SlotQueue`).
 *
 * @example
 * const engine = new LlamaEngine({ threads: 1 });
 * const result = await engine.chat({
 *   model: 'demo', settings: { path: '/models/demo.gguf', parallel: 2 },
 *   messages: [{ role: 'user', content: 'Hello' }], maxTokens: 16,
 * });
 */
export class LlamaEngine {
  readonly threads: number;
  readonly #gpu: false | 'auto';
  readonly #logLevel: LlamaLogLevel;
  readonly #now: () => number;
  readonly #maxLoadedModels: number;
  /** RAM budget in bytes for every loaded model together, by their estimates. */
  readonly maxMemoryBytes: number;
  readonly #vramState: (() => Promise<VramState>) | undefined;
  readonly #stepArrangement: Arrangement | undefined;
  /** GPU memory free before any model loaded (see `#gpuCapacity`); undefined without a GPU. */
  #gpuCapacityRead: Promise<number | undefined> | undefined;
  readonly #models = new Map<string, ModelEntry>();
  readonly #grammars = new Map<string, Promise<LlamaGrammar>>();
  #llama: Promise<Llama> | undefined;
  #closed = false;

  constructor(options: LlamaEngineOptions = {}) {
    const threads = options.threads ?? defaultThreadCount();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`threads must be a positive integer, not ${threads}`);
    }
    this.threads = threads;
    this.#gpu = options.gpu ?? false;
    this.#logLevel = options.logLevel ?? LlamaLogLevel.error;
    this.#now = options.now ?? (() => performance.now());
    const maxLoadedModels = options.maxLoadedModels ?? defaultMaxLoadedModels;
    if (!Number.isInteger(maxLoadedModels) || maxLoadedModels < 1) {
      throw new RangeError(`maxLoadedModels must be a positive integer, not ${maxLoadedModels}`);
    }
    this.#maxLoadedModels = maxLoadedModels;
    const maxMemoryBytes = options.maxMemoryBytes ?? 'auto';
    this.maxMemoryBytes = maxMemoryBytes === 'auto' ? autoMemoryBudget() : maxMemoryBytes;
    this.#vramState = options.vramState;
    this.#stepArrangement = options.stepArrangement === 'timed' ? undefined : options.stepArrangement;
    if (!Number.isInteger(this.maxMemoryBytes) || this.maxMemoryBytes < 1) {
      throw new RangeError(`maxMemoryBytes must be a positive whole number of bytes, not ${maxMemoryBytes}`);
    }
  }

  /**
   * Loads a model now (a preload), so no request pays for it. Returns once it is loaded; it then
   * stays loaded for its keep-alive like a model a request loaded.
   */
  async load(name: string, settings: EngineModelSettings): Promise<void> {
    const entry = this.#entry(name, settings);
    this.#hold(entry);
    try {
      await this.#ensureLoaded(name, entry);
    } finally {
      this.#letGo(entry, undefined);
    }
  }

  /**
   * The tokens `messages` take as a chat request's prompt: rendered by the model's chat template
   * and tokenised by its tokenizer exactly as `chat` counts them, so the count equals the
   * `promptTokens` a chat of the same messages reports. Loads the model when it is not loaded,
   * and counts as a request for its keep-alive. It takes no sequence (tokenising needs none), so
   * it never waits behind generations nor meets a full queue.
   *
   * @example
   * const tokens = await engine.countPromptTokens({
   *   model: 'demo', settings: { path: '/models/demo.gguf' }, messages: [{ role: 'user', content: 'Hello' }],
   * });
   */
  async countPromptTokens(
    request: Pick<EngineChatRequest, 'model' | 'settings' | 'messages' | 'keepAliveMs'>,
  ): Promise<number> {
    const entry = this.#entry(request.model, request.settings);
    this.#hold(entry);
    try {
      const loaded = await this.#ensureLoaded(request.model, entry);
      // The wrapper LlamaChat is given in `#generate`, rendering the same history.
      return loaded.chatWrapper
        .generateContextState({ chatHistory: toChatHistory(request.messages) })
        .contextText.tokenize(loaded.model.tokenizer).length;
    } finally {
      this.#letGo(entry, request.keepAliveMs);
    }
  }

  async chat(request: EngineChatRequest): Promise<EngineChatResult> {
    const started = this.#now();
    const entry = this.#entry(request.model, request.settings);
    this.#hold(entry);
    try {
      const { signal } = request;
      // The grammar is compiled before queueing, so a schema it cannot express fails without waiting.
      // Without a response format nothing is awaited before queueing, so the queue place is taken
      // within this call, in call order.
      const format = request.responseFormat;
      const grammar =
        format === undefined || format.type === 'text' ? undefined : await this.#grammarFor(format);
      const release = await entry.queue.acquire(signal);
      try {
        const loaded = await this.#ensureLoaded(request.model, entry);
        signal?.throwIfAborted();
        return await this.#generate(loaded, entry.gate, request, grammar, started);
      } finally {
        release();
      }
    } finally {
      this.#letGo(entry, request.keepAliveMs);
    }
  }

  /**
   * Embeds each input with the model's embedding context. A model embeds for one request at a
   * time: its embedding context has a single sequence, and node-llama-cpp would queue further
   * callers behind a lock with no bound. Others wait in a queue as long as the chat one
   * (`maxQueue`); beyond it they are refused with `ModelOverloadedError`.
   *
   * @example
   * const { embeddings, promptTokens } = await engine.embed({
   *   model: 'demo', settings: { path: '/models/demo.gguf' }, inputs: ['first text', [15043, 3186]],
   * });
   */
  async embed(request: EngineEmbedRequest): Promise<EngineEmbedResult> {
    const entry = this.#entry(request.model, request.settings);
    this.#hold(entry);
    try {
      const { signal } = request;
      const release = await entry.embeddingQueue.acquire(signal);
      try {
        const loaded = await this.#ensureLoaded(request.model, entry);
        signal?.throwIfAborted();
        const size = loaded.model.embeddingVectorSize;
        if (request.dimensions !== undefined && request.dimensions !== size) {
          throw new EngineRequestError(
            `dimensions must be ${size}, the size of this model's embeddings, or be left out: a local model cannot shorten its vectors.`,
            'dimensions',
          );
        }
        const context = await this.#embeddingContext(request.model, entry, loaded);
        return await embedInputs(loaded, context, request);
      } finally {
        release();
      }
    } finally {
      this.#letGo(entry, request.keepAliveMs);
    }
  }

  #embeddingContext(name: string, entry: ModelEntry, loaded: LoadedModel): Promise<LlamaEmbeddingContext> {
    const { model } = loaded;
    if (model.fileInsights.hasEncoder && model.fileInsights.hasDecoder) {
      throw new EngineRequestError(
        `Model ${name} is an encoder-decoder model, for which llama.cpp computes no embeddings.`,
        'model',
      );
    }
    loaded.embeddingContext ??= this.#makeEmbeddingContext(name, entry, loaded).catch((error: unknown) => {
      // Retried by the next request rather than cached forever, as a failed load is; until then
      // the model holds no memory for it.
      loaded.embeddingContext = undefined;
      loaded.embeddingMemoryBytes = undefined;
      throw error;
    });
    return loaded.embeddingContext;
  }

  /**
   * Makes the embedding context once the budget has room for it. It is as large as a chat
   * context of one sequence (a KV cache of the model's context size, plus a compute buffer that
   * grows with the batch), so left uncounted it would let the loaded models outgrow
   * `maxMemoryBytes`. Room is made as for a load: idle other models unload, least recently used
   * first, or the request fails with `ModelBudgetError` or `ModelTooLargeError`.
   */
  async #makeEmbeddingContext(
    name: string,
    entry: ModelEntry,
    loaded: LoadedModel,
  ): Promise<LlamaEmbeddingContext> {
    const { model, context } = loaded;
    const batchSize = needsWholeInputBatch(model) ? context.contextSize : undefined;
    const [estimate, memory, vramBytes] = await Promise.all([
      this.#estimate(entry),
      model.fileInsights.estimateContextResourceRequirementsV2({
        contextSize: context.contextSize,
        modelGpuLayers: model.gpuLayers,
        sequences: 1,
        batchSize,
        isEmbeddingContext: true,
      }),
      this.#vramForModels(),
    ]);
    const embedding = { ram: memory.cpuRam, vram: memory.gpuVram };
    const room = this.#makeRoom(name, entry, estimate, vramBytes, embedding);
    // Held from the moment the room is granted, so a load starting meanwhile counts it.
    loaded.embeddingMemoryBytes = embedding;
    await room;
    return model.createEmbeddingContext({
      contextSize: context.contextSize,
      batchSize,
      threads: this.threads,
    });
  }

  /**
   * Whether a copy of `name` is loaded, loading, or about to load for a request in progress: a
   * request for it then runs on that copy, or waits for it, with the settings it already has. The
   * runner reads a model's manifest again only when this is false.
   */
  isLoaded(name: string): boolean {
    const entry = this.#models.get(name);
    return entry !== undefined && (entry.loading !== undefined || entry.active > 0);
  }

  stats(): EngineModelStats[] {
    return [...this.#models].map(([name, entry]) => ({
      name,
      loaded: entry.loaded !== undefined,
      running: entry.queue.running,
      waiting: entry.queue.waiting,
      parallel: entry.parallel,
      contextSize: entry.loaded?.context.contextSize ?? null,
      loadSeconds: entry.loaded?.loadSeconds ?? null,
      memoryBytes: entry.loaded === undefined ? null : memoryBytesOf(entry.loaded),
      estimatedBytes: entry.estimated === undefined ? null : budgetedMemory(entry).ram,
      estimatedVramBytes: entry.estimated === undefined ? null : budgetedMemory(entry).vram,
      keepAliveMs: entry.keepAliveMs,
      unloads: entry.unloads,
      idleMs: entry.active > 0 ? null : this.#now() - entry.lastUsed,
      unloadInMs: this.#unloadInMs(entry),
      processor: entry.loaded === undefined ? null : processorOf(entry.loaded.model),
      decodeSteps: entry.gate.counts.steps,
      decodeStepSequences: entry.gate.counts.sequences,
    }));
  }

  /** What the idle timer set by `#letGo` has left, by the same clock and keep-alive. */
  #unloadInMs(entry: ModelEntry): number | null {
    if (entry.loaded === undefined || entry.active > 0 || entry.keepAliveMs > longestTimerMs) return null;
    return Math.max(0, entry.lastUsed + entry.keepAliveMs - this.#now());
  }

  /** Frees every model and the llama.cpp backend. Requests still running fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#models.values()];
    this.#models.clear();
    for (const entry of entries) {
      clearTimeout(entry.idleTimer);
      await entry.unloading;
      const loaded = await entry.loading?.catch(() => undefined);
      await disposeEmbeddingContext(loaded);
      await loaded?.context.dispose();
      await loaded?.model.dispose();
    }
    const llama = await this.#llama?.catch(() => undefined);
    await llama?.dispose();
  }

  /**
   * The entry serving `name`, made on its first request. A name whose file changed (the runner's
   * catalog gives a new path after a pull with new content) gets a new entry from the new
   * settings, replacing the old one, once the old is idle: its copy unloads, and the new file
   * loads only after that disposal. While the old copy serves requests the request is refused
   * with `ModelReplacingError`, since a request never unloads a model another request is using.
   */
  #entry(name: string, settings: EngineModelSettings): ModelEntry {
    if (this.#closed) throw new Error('The engine is closed');
    const existing = this.#models.get(name);
    if (existing !== undefined && existing.settings.path === settings.path) return existing;
    if (existing !== undefined && existing.active > 0) {
      const { queue, embeddingQueue } = existing;
      throw new ModelReplacingError(
        name,
        queue.running + embeddingQueue.running,
        queue.waiting + embeddingQueue.waiting,
        existing.active,
      );
    }
    const replaced = existing === undefined ? undefined : this.#unload(existing);
    const parallel = settings.parallel ?? defaultParallel;
    const entry: ModelEntry = {
      settings,
      parallel,
      queue: new SlotQueue({ model: name, slots: parallel, maxQueue: settings.maxQueue ?? defaultMaxQueue }),
      embeddingQueue: new SlotQueue({
        model: name,
        slots: 1,
        maxQueue: settings.maxQueue ?? defaultMaxQueue,
      }),
      loading: undefined,
      loaded: undefined,
      estimate: undefined,
      estimated: undefined,
      unloading: undefined,
      active: 0,
      lastUsed: this.#now(),
      keepAliveMs: settings.keepAliveMs ?? defaultKeepAliveMs,
      idleTimer: undefined,
      // Carried over, so the unloads counter in metrics only ever grows for a name.
      unloads: existing?.unloads ?? 0,
      gate: new StepGate({ counted: existing?.gate.counts, arrangement: this.#stepArrangement }),
    };
    if (replaced !== undefined) {
      // `#makeRoom` waits for every entry's `unloading` before a load, this one's included.
      const unloading = replaced.finally(() => {
        if (entry.unloading === unloading) entry.unloading = undefined;
      });
      entry.unloading = unloading;
    }
    this.#models.set(name, entry);
    return entry;
  }

  #backend(): Promise<Llama> {
    this.#llama ??= getLlama({
      // Without its prebuilt binary node-llama-cpp would otherwise compile llama.cpp from source
      // for about 15 minutes; failing loudly is better than a runner that seems to hang.
      build: 'never',
      gpu: this.#gpu,
      maxThreads: this.threads,
      logLevel: this.#logLevel,
    }).catch((error: unknown) => {
      this.#llama = undefined;
      throw error;
    });
    return this.#llama;
  }

  /** A request or preload begins: the model is not idle, so no unload may happen meanwhile. */
  #hold(entry: ModelEntry): void {
    entry.active++;
    entry.lastUsed = this.#now();
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
  }

  /** A request or preload ends; the last one out starts the keep-alive, its own if it set one. */
  #letGo(entry: ModelEntry, keepAliveMs: number | undefined): void {
    entry.active--;
    entry.lastUsed = this.#now();
    entry.keepAliveMs = keepAliveMs ?? entry.settings.keepAliveMs ?? defaultKeepAliveMs;
    if (entry.active > 0 || entry.loading === undefined || this.#closed) return;
    const delay = entry.keepAliveMs;
    if (delay <= 0) {
      void this.#unload(entry);
    } else if (delay <= longestTimerMs) {
      entry.idleTimer = setTimeout(() => void this.#unload(entry), delay);
      // An idle model's timer must not keep the process alive on its own.
      entry.idleTimer.unref();
    }
  }

  /**
   * Frees an idle model's context and weights. It reads as unloaded at once, so the next request
   * loads it again, after this disposal ends.
   */
  #unload(entry: ModelEntry): Promise<void> {
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    const loading = entry.loading;
    if (loading === undefined || entry.active > 0) return entry.unloading ?? Promise.resolve();
    entry.loading = undefined;
    entry.loaded = undefined;
    entry.unloads++;
    const previous = entry.unloading;
    const unloading = (async () => {
      await previous;
      const loaded = await loading.catch(() => undefined);
      await disposeEmbeddingContext(loaded);
      await loaded?.context.dispose();
      await loaded?.model.dispose();
    })()
      // A failed disposal leaves nothing to retry; the next load must not fail because of it.
      .catch(() => undefined)
      .finally(() => {
        if (entry.unloading === unloading) entry.unloading = undefined;
      });
    entry.unloading = unloading;
    return unloading;
  }

  /**
   * Makes room for one more model under every budget, `maxLoadedModels`, `maxMemoryBytes` and,
   * with a GPU, `vramBytes` (see `#vramForModels`), by unloading the least recently used idle
   * models until it fits (`planRoom`). Unloads nothing unless that makes it fit: throws
   * `ModelTooLargeError` for a model bigger than the whole memory budget, and `ModelBudgetError`
   * when models serving requests (or, for the GPU, other programs) hold the room it needs.
   * Resolves once no disposal is in progress, so freed memory is really free before the next load.
   *
   * With `embedding`, the model is loaded already and the room is for its embedding context too:
   * the model's whole share, `need` plus that, must then fit beside the others.
   */
  #makeRoom(
    name: string,
    entry: ModelEntry,
    need: MemoryEstimate,
    vramBytes: number | undefined,
    embedding?: MemorySplit,
  ): Promise<unknown> {
    const model = totalMemory(need);
    const share = { ram: model.ram + (embedding?.ram ?? 0), vram: model.vram + (embedding?.vram ?? 0) };
    if (share.ram > this.maxMemoryBytes) {
      throw new ModelTooLargeError(name, need, this.maxMemoryBytes, embedding?.ram);
    }
    // A load in flight counts as loaded. One whose estimate is still pending counts as no memory,
    // which is safe: it checks against this one once its own estimate is known.
    const others = [...this.#models]
      .filter(([, other]) => other !== entry && other.loading !== undefined)
      .map(([otherName, other]) => ({
        name: otherName,
        entry: other,
        memory: budgetedMemory(other),
        busy: other.active > 0,
        lastUsed: other.lastUsed,
      }));
    const plan = planRoom(share, others, {
      maxLoadedModels: this.#maxLoadedModels,
      maxMemoryBytes: this.maxMemoryBytes,
      vramBytes,
    });
    if (!plan.fits) {
      const busy = plan.busy.map((other) => other.name);
      const held = plan.held;
      const purpose = embedding === undefined ? '' : ' to compute embeddings';
      const withEmbedding = (where: keyof MemorySplit) =>
        embedding === undefined ? '' : ` + embedding context ${formatBytes(embedding[where])}`;
      const holders = `${busy.join(', ')}, busy serving requests`;
      const message =
        plan.budget === 'max_loaded_models'
          ? `Model ${name} cannot be loaded: the runner keeps at most ${this.#maxLoadedModels} loaded (max_loaded_models), and ${busy.join(', ')} ${busy.length === 1 ? 'is' : 'are'} serving requests. Retry shortly, or raise runner.max_loaded_models.`
          : plan.budget === 'max_memory'
            ? `Model ${name} needs about ${formatBytes(share.ram)} of ${memoryWord(need)}${purpose} (${describeParts(need, 'ram')}${withEmbedding('ram')}${describeOffload(need)}); the runner's memory budget is ${formatBytes(this.maxMemoryBytes)} (runner.max_memory), and ${formatBytes(held.ram)} of it is held by ${holders}. Retry shortly, or raise runner.max_memory.`
            : `Model ${name} needs about ${formatBytes(share.vram)} of GPU memory${purpose} (${describeParts(need, 'vram')}${withEmbedding('vram')}${describeOffload(need)}); the runner's models may have ${formatBytes(vramBytes ?? 0)} of the GPU's memory, ${
                busy.length === 0
                  ? 'other programs using the rest. Retry once they free it, or set runner.gpu: off.'
                  : `and ${formatBytes(held.vram)} of it is held by ${holders}. Retry shortly.`
              }`;
      throw new ModelBudgetError(name, plan.budget, busy, message);
    }
    for (const candidate of plan.evict) void this.#unload(candidate.entry);
    return Promise.all([...this.#models.values()].map((other) => other.unloading));
  }

  /**
   * The GPU memory the runner's models may hold together now: what the GPU has free, plus what
   * they hold already (loaded, or still being freed), which unloading them would give back; what
   * other programs took since is not. Undefined without a GPU. Models are counted by their
   * estimates, and one partly allocated while it loads is counted twice, so the figure errs on
   * the side of refusing.
   */
  async #vramForModels(): Promise<number | undefined> {
    const state = await this.#gpuMemory();
    if (state === undefined) return undefined;
    let held = 0;
    for (const entry of this.#models.values()) {
      if (entry.loaded !== undefined || entry.unloading !== undefined) held += budgetedMemory(entry).vram;
    }
    return Math.max(0, state.free) + held;
  }

  /** The GPU's memory; undefined on the CPU. */
  async #gpuMemory(): Promise<VramState | undefined> {
    if (this.#vramState !== undefined) return this.#vramState();
    const llama = await this.#backend();
    if (llama.gpu === false) return undefined;
    const { total, free } = await llama.getVramState();
    // node-llama-cpp keeps this much back for its estimates' error, and refuses loads that eat into it.
    return { total, free: free - llama.vramPaddingSize };
  }

  /**
   * The GPU memory free before the engine loaded any model: what a model's layers are planned for,
   * as if it had the GPU to itself (others are unloaded for it as for RAM). Read once, so a plan
   * never depends on what happened to be loading, and every model is planned alike. Undefined
   * without a GPU.
   */
  #gpuCapacity(): Promise<number | undefined> {
    // Every load first awaits its estimate, which awaits this: the first read precedes any load.
    this.#gpuCapacityRead ??= this.#gpuMemory().then(
      (state) => (state === undefined ? undefined : Math.max(0, state.free)),
      (error: unknown) => {
        this.#gpuCapacityRead = undefined;
        throw error;
      },
    );
    return this.#gpuCapacityRead;
  }

  /** The model's memory need, estimated once per entry; a failed estimate is tried again next time. */
  #estimate(entry: ModelEntry): Promise<MemoryEstimate> {
    entry.estimate ??= Promise.all([this.#backend(), this.#gpuCapacity()])
      .then(([llama, vramBytes]) =>
        estimateMemory(llama, entry.settings.path, {
          contextSize: entry.settings.contextSize ?? defaultContextSize,
          sequences: entry.parallel,
          vramBytes,
        }),
      )
      .then(
        (estimate) => {
          entry.estimated = estimate;
          return estimate;
        },
        (error: unknown) => {
          entry.estimate = undefined;
          throw error;
        },
      );
    return entry.estimate;
  }

  #ensureLoaded(name: string, entry: ModelEntry): Promise<LoadedModel> {
    entry.loading ??= this.#estimate(entry)
      .then(async (need) => {
        await this.#makeRoom(name, entry, need, await this.#vramForModels());
        return this.#loadModel(entry, need);
      })
      .then(
        (loaded) => {
          entry.loaded = loaded;
          return loaded;
        },
        (error: unknown) => {
          // A failed load is retried by the next request rather than cached forever.
          entry.loading = undefined;
          if (error instanceof ModelBudgetError || error instanceof ModelTooLargeError) throw error;
          throw new Error(`Model ${name} failed to load from ${entry.settings.path}`, { cause: error });
        },
      );
    return entry.loading;
  }

  async #loadModel(entry: ModelEntry, need: MemoryEstimate): Promise<LoadedModel> {
    const started = this.#now();
    const llama = await this.#backend();
    // The layers the budget was checked for, not node-llama-cpp's own choice for the VRAM free now.
    const model = await llama.loadModel({ modelPath: entry.settings.path, gpuLayers: need.gpuLayers });
    try {
      const contextSize = Math.min(entry.settings.contextSize ?? defaultContextSize, model.trainContextSize);
      const context = await model.createContext({
        contextSize,
        sequences: entry.parallel,
        threads: this.threads,
        batching: { itemPrioritizationStrategy: entry.gate.strategy },
      });
      entry.gate.follow(() => (context as unknown as { _queuedDecodes?: QueuedDecodes })._queuedDecodes);
      const insights = model.fileInsights;
      const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers: model.gpuLayers });
      const cache = await insights.estimateContextResourceRequirementsV2({
        contextSize: context.contextSize,
        modelGpuLayers: model.gpuLayers,
        sequences: entry.parallel,
      });
      return {
        model,
        context,
        chatWrapper: resolveChatWrapper(model),
        idleSequences: [],
        sequences: [],
        loadSeconds: (this.#now() - started) / 1000,
        memoryBytes: { ram: weights.cpuRam + cache.cpuRam, vram: weights.gpuVram + cache.gpuVram },
      };
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  async #grammarFor(format: Exclude<EngineResponseFormat, { type: 'text' }>): Promise<LlamaGrammar> {
    const llama = await this.#backend();
    if (format.type === 'json_object') return llama.getGrammarFor('json');
    const key = JSON.stringify(format.schema);
    let grammar = this.#grammars.get(key);
    if (grammar === undefined) {
      // node-llama-cpp types schemas precisely; a client's schema is only known to be an object.
      grammar = llama.createGrammarForJsonSchema(format.schema as never).catch((error: unknown) => {
        this.#grammars.delete(key);
        throw new EngineRequestError(
          `response_format.json_schema.schema cannot be enforced by a llama.cpp grammar: ${(error as Error).message}`,
          'response_format',
          { cause: error },
        );
      });
      if (this.#grammars.size >= grammarCacheSize) {
        this.#grammars.delete(this.#grammars.keys().next().value!);
      }
      this.#grammars.set(key, grammar);
    }
    return grammar;
  }

  async #generate(
    loaded: LoadedModel,
    gate: StepGate,
    request: EngineChatRequest,
    grammar: LlamaGrammar | undefined,
    started: number,
  ): Promise<EngineChatResult> {
    const sequence = takeSequence(loaded);
    const chat = new LlamaChat({
      contextSequence: sequence,
      chatWrapper: loaded.chatWrapper,
      autoDisposeSequence: false,
    });
    try {
      const holding = this.#now();
      const history = toChatHistory(request.messages);
      // The same wrapper renders the same prompt LlamaChat evaluates, so this count is exact.
      // LlamaChat tokenises it again (about 10 ms for 2,700 tokens here, next to seconds of
      // evaluation): it takes a history, never tokens, and the count is needed before generating,
      // to refuse an over-long prompt before a stream's headers go out and to stop at the context's
      // end. The sequence's tokenMeter cannot stand in for it: it counts only after evaluation, and
      // counts the prompt's last token as output and a context shift's tokens as input.
      const promptTokens = chat.chatWrapper
        .generateContextState({ chatHistory: history })
        .contextText.tokenize(loaded.model.tokenizer).length;
      const room = loaded.context.contextSize - promptTokens;
      if (room <= 0) {
        throw new EngineRequestError(
          `The messages take ${promptTokens} tokens, more than the ${loaded.context.contextSize} tokens of context this model is served with. Shorten them.`,
          'messages',
        );
      }
      request.onStart?.();
      // Never past the end of the context: node-llama-cpp would shift it and generate forever.
      const maxTokens = Math.min(request.maxTokens ?? room, room);
      let completionTokens = 0;
      let firstTokenAt: number | null = null;
      const { onToken } = request;
      gate.enter();
      const result = await chat
        .generateResponse(history, {
          maxTokens,
          temperature: request.temperature,
          topP: request.topP,
          topK: request.topK,
          seed: request.seed,
          repeatPenalty: repeatPenaltyOf(request),
          customStopTriggers: request.stop,
          grammar,
          signal: request.signal,
          onToken: (tokens) => {
            completionTokens += tokens.length;
          },
          onTextChunk: (text) => {
            firstTokenAt ??= this.#now();
            onToken?.(text);
          },
        })
        .finally(() => gate.leave());
      const finished = this.#now();
      const finishReason: FinishReason = result.metadata.stopReason === 'maxTokens' ? 'length' : 'stop';
      return {
        text: result.response,
        finishReason,
        usage: { promptTokens, completionTokens },
        timings: {
          queueMs: holding - started,
          firstTokenMs: firstTokenAt === null ? null : firstTokenAt - holding,
          totalMs: finished - holding,
        },
      };
    } finally {
      chat.dispose({ disposeSequence: false });
      try {
        await sequence.clearHistory();
        loaded.idleSequences.push(sequence);
      } catch {
        // The context is being disposed (the model unloads): the sequence goes with it.
        sequence.dispose();
      }
    }
  }
}

/**
 * What a model holds of the budgets once loaded, RAM and VRAM: its estimate, nothing while that
 * is unknown, plus its embedding context's once it has one.
 */
function budgetedMemory(entry: ModelEntry): MemorySplit {
  if (entry.estimated === undefined) return { ram: 0, vram: 0 };
  const { ram, vram } = totalMemory(entry.estimated);
  const embedding = entry.loaded?.embeddingMemoryBytes;
  return embedding === undefined ? { ram, vram } : { ram: ram + embedding.ram, vram: vram + embedding.vram };
}

/**
 * node-llama-cpp's repeat penalty for a request: OpenAI's frequency and presence penalties when
 * it asks for them, and otherwise none. Left to its default, LlamaChat hands the last 64 tokens to
 * the sampler every step only to apply a penalty of 1, that is none.
 */
function repeatPenaltyOf(request: EngineChatRequest): LLamaChatGenerateResponseOptions['repeatPenalty'] {
  const { frequencyPenalty = 0, presencePenalty = 0 } = request;
  if (frequencyPenalty === 0 && presencePenalty === 0) return false;
  return { penalty: 1, frequencyPenalty, presencePenalty, lastTokens: penaltyLastTokens };
}

/** Generated tokens the penalties look back over: llama.cpp's server default (`repeat_last_n`). */
const penaltyLastTokens = 64;

/** The idle sequence made first, or a new one when none is idle. */
function takeSequence(loaded: LoadedModel): LlamaContextSequence {
  const { idleSequences: idle, sequences } = loaded;
  if (idle.length === 0) {
    const sequence = loaded.context.getSequence();
    sequences.push(sequence);
    return sequence;
  }
  let first = 0;
  for (let index = 1; index < idle.length; index++) {
    if (sequences.indexOf(idle[index]!) < sequences.indexOf(idle[first]!)) first = index;
  }
  return idle.splice(first, 1)[0]!;
}

/** A loaded model's memory by where it lies: weights and chat context, and any embedding context. */
function memoryBytesOf(loaded: LoadedModel): MemorySplit {
  const { memoryBytes, embeddingMemoryBytes: embedding } = loaded;
  if (embedding === undefined) return memoryBytes;
  return { ram: memoryBytes.ram + embedding.ram, vram: memoryBytes.vram + embedding.vram };
}

function processorOf(model: LlamaModel): EngineProcessor {
  return { gpu: model.llama.gpu || null, gpuLayers: model.gpuLayers, layers: model.fileInsights.totalLayers };
}

/** OpenAI roles onto node-llama-cpp's history; the trailing empty model turn asks for the answer. */
function toChatHistory(messages: readonly EngineMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message) =>
    message.role === 'assistant'
      ? { type: 'model', response: [message.content] }
      : { type: message.role === 'user' ? 'user' : 'system', text: message.content },
  );
  history.push({ type: 'model', response: [] });
  return history;
}

/**
 * Whether llama.cpp must see each input in one batch: it attends and pools batch by batch, so a
 * model that attends in both directions (BERT and most dedicated embedding models) or pools over
 * every token (mean, CLS) would get a wrong vector from a split input. Other models, chat models
 * among them, are embedded by their last token's state and keep the default batch (512 tokens):
 * a context-sized batch would multiply their compute buffer, by gigabytes for a 7B model.
 */
function needsWholeInputBatch(model: LlamaModel): boolean {
  const { pooling_type: pooling, attention } = model.fileInfo.architectureMetadata;
  // GGUF pooling types: -1 unspecified, 0 none, 3 last token; 1 mean, 2 CLS and 4 rank pool.
  const pools = pooling !== undefined && pooling !== -1 && pooling !== 0 && pooling !== 3;
  return pools || attention?.causal === false;
}

/** Before the model: node-llama-cpp frees a model only once every context made from it is disposed. */
async function disposeEmbeddingContext(loaded: LoadedModel | undefined): Promise<void> {
  const context = await loaded?.embeddingContext?.catch(() => undefined);
  await context?.dispose();
}

/**
 * Tokenises and checks every input before evaluating any, so a bad input late in a long list
 * fails the request at once instead of after the work on those before it.
 */
async function embedInputs(
  loaded: LoadedModel,
  context: LlamaEmbeddingContext,
  request: EngineEmbedRequest,
): Promise<EngineEmbedResult> {
  const { model } = loaded;
  // node-llama-cpp refuses an input of the whole context: one token is kept for its evaluation.
  const limit = loaded.context.contextSize - 1;
  const vocabularySize = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length;
  const { inputs, signal } = request;
  let promptTokens = 0;
  const tokenised = inputs.map((input, index) => {
    const name = inputs.length === 1 ? 'input' : `input[${index}]`;
    if (typeof input !== 'string' && vocabularySize !== undefined) {
      // An id past the vocabulary would fail llama.cpp's decode as a server error, not the caller's.
      const outside = input.find((token) => token >= vocabularySize);
      if (outside !== undefined) {
        throw new EngineRequestError(
          `${name} holds token id ${outside}, outside this model's vocabulary of ${vocabularySize} tokens (ids 0 to ${vocabularySize - 1}).`,
          'input',
        );
      }
    }
    const tokens = (typeof input === 'string' ? model.tokenize(input) : input) as Token[];
    // Counted as evaluated: the model's start and end tokens are added where it uses them.
    const length = context.calculateInputLength(tokens);
    if (length > limit) {
      throw new EngineRequestError(
        `${name} is ${length} tokens long, more than the ${limit} this model embeds at once (its context is ${loaded.context.contextSize} tokens). Shorten it or split it into several inputs.`,
        'input',
      );
    }
    if (length === 0) throw new EngineRequestError(`${name} has no tokens to embed.`, 'input');
    promptTokens += length;
    return tokens;
  });
  const embeddings: Float32Array[] = [];
  for (const tokens of tokenised) {
    signal?.throwIfAborted();
    const { vector } = await context.getEmbeddingFor(tokens);
    embeddings.push(unitLength(vector));
  }
  return { embeddings, promptTokens };
}

/**
 * Scaled to length 1, as OpenAI's embeddings are (so a dot product is the cosine similarity), and
 * as llama-server and Ollama return them. Float32: the precision llama.cpp computes in, at half
 * the memory of the doubles node-llama-cpp hands back.
 */
function unitLength(vector: readonly number[]): Float32Array {
  let squares = 0;
  for (const value of vector) squares += value * value;
  const scale = squares > 0 ? 1 / Math.sqrt(squares) : 1;
  const result = new Float32Array(vector.length);
  for (let index = 0; index < vector.length; index++) result[index] = vector[index]! * scale;
  return result;
}
