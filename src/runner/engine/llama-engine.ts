import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  type Llama,
  LlamaChat,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
} from 'node-llama-cpp';
import type {
  EngineChatRequest,
  EngineChatResult,
  EngineMessage,
  EngineModelSettings,
  EngineModelStats,
  EngineResponseFormat,
  FinishReason,
} from './chat-types.js';
import { SlotQueue } from './slot-queue.js';
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

/** Thrown when loading a model would exceed `maxLoadedModels` and every loaded model is in use. */
export class ModelBudgetError extends Error {
  override readonly name = 'ModelBudgetError';
  readonly code = 'model_overloaded';
  /** A hint for Retry-After: a loaded model frees up when its requests end. */
  readonly retryAfterSeconds = 1;
  constructor(
    readonly model: string,
    readonly maxLoadedModels: number,
    readonly busy: readonly string[],
  ) {
    super(
      `Model ${model} cannot be loaded: the runner keeps at most ${maxLoadedModels} loaded (max_loaded_models), and ${busy.join(', ')} ${busy.length === 1 ? 'is' : 'are'} serving requests. Retry shortly, or raise runner.max_loaded_models.`,
    );
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
  readonly loadSeconds: number;
  readonly memoryBytes: { readonly ram: number; readonly vram: number };
}

interface ModelEntry {
  readonly settings: EngineModelSettings;
  readonly parallel: number;
  readonly queue: SlotQueue;
  loading: Promise<LoadedModel> | undefined;
  loaded: LoadedModel | undefined;
  /** Disposal of the previous load, awaited before loading again so two copies never coexist. */
  unloading: Promise<void> | undefined;
  /** Requests (and preloads) in progress, queued ones included; the model is idle at 0. */
  active: number;
  /** When the last request started or ended, by `now`, for least-recently-used eviction. */
  lastUsed: number;
  /** The keep-alive for the current idle period: the last request's own, or the model's. */
  keepAliveMs: number;
  idleTimer: NodeJS.Timeout | undefined;
  unloads: number;
}

/**
 * Runs GGUF models in-process with node-llama-cpp (llama.cpp). A model loads on its first
 * request and stays loaded until it has been idle for its keep-alive, or until room is needed
 * for another model beyond `maxLoadedModels` (least recently used idle model first); each request gets its own context sequence, so up to `parallel`
 * requests are decoded together in one batch, and the sequence is freed the moment the request
 * ends, fails or is aborted. More requests wait in a bounded queue (see `SlotQueue`).
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
        return await this.#generate(loaded, request, grammar, started);
      } finally {
        release();
      }
    } finally {
      this.#letGo(entry, request.keepAliveMs);
    }
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
      memoryBytes: entry.loaded?.memoryBytes ?? null,
      keepAliveMs: entry.keepAliveMs,
      unloads: entry.unloads,
    }));
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
      await loaded?.context.dispose();
      await loaded?.model.dispose();
    }
    const llama = await this.#llama?.catch(() => undefined);
    await llama?.dispose();
  }

  #entry(name: string, settings: EngineModelSettings): ModelEntry {
    if (this.#closed) throw new Error('The engine is closed');
    const existing = this.#models.get(name);
    if (existing !== undefined) {
      if (existing.settings.path !== settings.path) {
        throw new Error(
          `Model ${name} is already served from ${existing.settings.path}, not ${settings.path}`,
        );
      }
      return existing;
    }
    const parallel = settings.parallel ?? defaultParallel;
    const entry: ModelEntry = {
      settings,
      parallel,
      queue: new SlotQueue({ model: name, slots: parallel, maxQueue: settings.maxQueue ?? defaultMaxQueue }),
      loading: undefined,
      loaded: undefined,
      unloading: undefined,
      active: 0,
      lastUsed: this.#now(),
      keepAliveMs: settings.keepAliveMs ?? defaultKeepAliveMs,
      idleTimer: undefined,
      unloads: 0,
    };
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
   * Makes room under `maxLoadedModels` for one more model by unloading the least recently used
   * idle ones; throws `ModelBudgetError` when every loaded model is in use. Resolves once no
   * disposal is in progress, so freed memory is really free before the next load.
   */
  #makeRoom(name: string): Promise<unknown> {
    const loaded = [...this.#models].filter(([, entry]) => entry.loading !== undefined);
    const excess = loaded.length + 1 - this.#maxLoadedModels;
    if (excess > 0) {
      const idle = loaded
        .filter(([, entry]) => entry.active === 0)
        .sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
      if (idle.length < excess) {
        const busy = loaded.filter(([, entry]) => entry.active > 0).map(([busyName]) => busyName);
        throw new ModelBudgetError(name, this.#maxLoadedModels, busy);
      }
      for (const [, entry] of idle.slice(0, excess)) void this.#unload(entry);
    }
    return Promise.all([...this.#models.values()].map((entry) => entry.unloading));
  }

  #ensureLoaded(name: string, entry: ModelEntry): Promise<LoadedModel> {
    entry.loading ??= this.#makeRoom(name)
      .then(() => this.#loadModel(entry))
      .then(
        (loaded) => {
          entry.loaded = loaded;
          return loaded;
        },
        (error: unknown) => {
          // A failed load is retried by the next request rather than cached forever.
          entry.loading = undefined;
          throw new Error(`Model ${name} failed to load from ${entry.settings.path}`, { cause: error });
        },
      );
    return entry.loading;
  }

  async #loadModel(entry: ModelEntry): Promise<LoadedModel> {
    const started = this.#now();
    const llama = await this.#backend();
    const model = await llama.loadModel({ modelPath: entry.settings.path });
    try {
      const contextSize = Math.min(entry.settings.contextSize ?? defaultContextSize, model.trainContextSize);
      const context = await model.createContext({
        contextSize,
        sequences: entry.parallel,
        threads: this.threads,
      });
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
    request: EngineChatRequest,
    grammar: LlamaGrammar | undefined,
    started: number,
  ): Promise<EngineChatResult> {
    const sequence = loaded.idleSequences.pop() ?? loaded.context.getSequence();
    const chat = new LlamaChat({
      contextSequence: sequence,
      chatWrapper: loaded.chatWrapper,
      autoDisposeSequence: false,
    });
    try {
      const holding = this.#now();
      const history = toChatHistory(request.messages);
      // The same wrapper renders the same prompt LlamaChat evaluates, so this count is exact.
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
      const result = await chat.generateResponse(history, {
        maxTokens,
        temperature: request.temperature,
        topP: request.topP,
        topK: request.topK,
        seed: request.seed,
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
      });
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
