/** A chat message as the engine takes it: OpenAI's roles, text content only. */
export interface EngineMessage {
  readonly role: 'system' | 'developer' | 'user' | 'assistant';
  readonly content: string;
}

/** OpenAI's `response_format`, narrowed to what llama.cpp grammars can enforce. */
export type EngineResponseFormat =
  | { readonly type: 'text' }
  | { readonly type: 'json_object' }
  | { readonly type: 'json_schema'; readonly schema: Readonly<Record<string, unknown>> };

/** How one model is served. */
export interface EngineModelSettings {
  /** The GGUF file. */
  readonly path: string;
  /**
   * Tokens of context each request gets (node-llama-cpp gives every sequence its own cells, so the
   * KV cache holds `contextSize × parallel`). Default 4096, capped by the model's training context.
   */
  readonly contextSize?: number;
  /** Sequences decoded together in one context (continuous batching), and so requests run at once. Default 1. */
  readonly parallel?: number;
  /** Requests allowed to wait for a sequence; more are refused with `ModelOverloadedError`. Default 16. */
  readonly maxQueue?: number;
  /**
   * Milliseconds the model stays loaded once idle (no request running or waiting); 0 unloads it
   * as soon as it is idle, `Infinity` never. Default 5 minutes, as in Ollama.
   */
  readonly keepAliveMs?: number;
}

export interface EngineChatRequest {
  /** The name the model is served under, and its settings (the first request's settings load it). */
  readonly model: string;
  readonly settings: EngineModelSettings;
  readonly messages: readonly EngineMessage[];
  readonly maxTokens?: number | undefined;
  readonly temperature?: number | undefined;
  readonly topP?: number | undefined;
  readonly topK?: number | undefined;
  readonly seed?: number | undefined;
  /**
   * OpenAI's penalties, from -2 to 2, on tokens by how often (frequency) or whether (presence)
   * they appear among the last 64 generated, as llama.cpp's server counts them. Without either,
   * no penalty at all, as OpenAI and llama.cpp's server default to.
   */
  readonly frequencyPenalty?: number | undefined;
  readonly presencePenalty?: number | undefined;
  readonly stop?: readonly string[] | undefined;
  readonly responseFormat?: EngineResponseFormat | undefined;
  /** Overrides the model's `keepAliveMs` for the idle period after this request. */
  readonly keepAliveMs?: number | undefined;
  /** Aborting frees the queue place or the sequence at once; `chat` then rejects with the reason. */
  readonly signal?: AbortSignal | undefined;
  /** Called once the request holds a sequence of a loaded model, before its prompt is evaluated. */
  readonly onStart?: (() => void) | undefined;
  /** Each piece of generated text as it is decoded; stop sequences are never passed on. */
  readonly onToken?: ((text: string) => void) | undefined;
}

export type FinishReason = 'stop' | 'length';

export interface EngineChatResult {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number };
  readonly timings: {
    /** From the call to holding a sequence of a loaded model (queue wait plus any load). */
    readonly queueMs: number;
    /** From holding a sequence to the first generated text; null when nothing was generated. */
    readonly firstTokenMs: number | null;
    /** From holding a sequence to the end of generation. */
    readonly totalMs: number;
  };
}

/** One input to embed: a text, or token ids of the model's own vocabulary. */
export type EngineEmbeddingInput = string | readonly number[];

export interface EngineEmbedRequest {
  /** The name the model is served under, and its settings (the first request's settings load it). */
  readonly model: string;
  readonly settings: EngineModelSettings;
  /** Embedded one at a time, in order; each must fit in the model's context. */
  readonly inputs: readonly EngineEmbeddingInput[];
  /** The vector length the caller asked for; a model makes vectors of its own size only. */
  readonly dimensions?: number | undefined;
  /** Overrides the model's `keepAliveMs` for the idle period after this request. */
  readonly keepAliveMs?: number | undefined;
  /** Aborting frees the queue place at once, or stops before the next input; `embed` rejects with the reason. */
  readonly signal?: AbortSignal | undefined;
}

export interface EngineEmbedResult {
  /** One unit-length (L2-normalised) vector per input, in input order. */
  readonly embeddings: readonly Float32Array[];
  /** Tokens evaluated over all inputs, the model's start and end tokens included. */
  readonly promptTokens: number;
}

export interface EngineModelStats {
  readonly name: string;
  readonly loaded: boolean;
  readonly running: number;
  readonly waiting: number;
  readonly parallel: number;
  readonly contextSize: number | null;
  readonly loadSeconds: number | null;
  /**
   * RAM (and VRAM) estimated by node-llama-cpp from the GGUF for the weights plus the context,
   * and plus the embedding context once an embeddings request has made one.
   */
  readonly memoryBytes: { readonly ram: number; readonly vram: number } | null;
  /**
   * RAM the model counts against the runner's memory budget: weights plus context, estimated
   * from the GGUF header before its first load and kept, plus the embedding context while the
   * loaded model has one. Null until the first estimate.
   */
  readonly estimatedBytes: number | null;
  /**
   * GPU memory the model counts against what the GPU has for the runner's models, estimated as
   * `estimatedBytes` is: the offloaded layers and their share of the contexts. 0 on the CPU; null
   * until the first estimate.
   */
  readonly estimatedVramBytes: number | null;
  /** How long the model stays loaded once idle, after its last request; `Infinity` for forever. */
  readonly keepAliveMs: number;
  /** Times the model was unloaded, because its keep-alive expired or to make room for another. */
  readonly unloads: number;
  /**
   * Milliseconds since the model's last request (or preload) ended; null while one is running
   * or waiting, since the model is then not idle.
   */
  readonly idleMs: number | null;
  /**
   * Milliseconds until the keep-alive unloads the model; null when it is not loaded, while a
   * request is running or waiting (the countdown starts when the last one ends), or when it is
   * kept forever. A model may also be unloaded sooner, to make room for another.
   */
  readonly unloadInMs: number | null;
  /** Where the loaded model runs; null when it is not loaded. */
  readonly processor: EngineProcessor | null;
  /** Decode steps of the model's chat context, over every load. */
  readonly decodeSteps: number;
  /** Sequences those steps held, summed: over `decodeSteps`, how full a step was on average. */
  readonly decodeStepSequences: number;
}

/**
 * The hardware a loaded model runs on: llama.cpp offloads whole layers to the GPU, so the share
 * of layers offloaded says how much of each token's work the GPU does.
 *
 * @example { gpu: 'cuda', gpuLayers: 33, layers: 33 } // all on the GPU
 * @example { gpu: null, gpuLayers: 0, layers: 22 } // all on the CPU
 */
export interface EngineProcessor {
  /** The GPU backend llama.cpp runs with; null on the CPU alone. */
  readonly gpu: 'cuda' | 'vulkan' | 'metal' | null;
  /** Layers offloaded to the GPU; the rest run on the CPU. */
  readonly gpuLayers: number;
  /** The model's layers in all. */
  readonly layers: number;
}
