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

export interface EngineModelStats {
  readonly name: string;
  readonly loaded: boolean;
  readonly running: number;
  readonly waiting: number;
  readonly parallel: number;
  readonly contextSize: number | null;
  readonly loadSeconds: number | null;
  /** RAM (and VRAM) estimated by node-llama-cpp from the GGUF for the weights plus the context. */
  readonly memoryBytes: { readonly ram: number; readonly vram: number } | null;
  /** How long the model stays loaded once idle, after its last request; `Infinity` for forever. */
  readonly keepAliveMs: number;
  /** Times the model was unloaded, because its keep-alive expired or to make room for another. */
  readonly unloads: number;
}
