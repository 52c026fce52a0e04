/**
 * Ollama's native API wire shapes (/api/chat, /api/embed), for the `ollama` adapter. Only what a
 * translation reads or writes is typed. https://github.com/ollama/ollama/blob/main/docs/api.md
 *
 * Ollama decodes requests with Go's encoding/json, which ignores fields it does not know, so a
 * field added in a later version (tool call ids, logprobs) is harmless to an older server.
 */

export interface OllamaToolCall {
  /** Newer versions (0.12 onwards) give each call an id; older ones give none. */
  id?: string;
  function: {
    /** Newer versions number parallel calls; read but not relied on. */
    index?: number;
    name: string;
    /** An object, not a JSON text as in OpenAI's shape. */
    arguments: Record<string, unknown>;
  };
}

export interface OllamaMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** Base64 without the data-URL prefix: Ollama fetches no URLs. */
  images?: string[];
  /** A thinking model's reasoning, kept apart from `content` when `think` is set. */
  thinking?: string;
  tool_calls?: OllamaToolCall[];
  /** On a tool result: the function whose result this is. */
  tool_name?: string;
  /** On a tool result: the call it answers, for servers that give calls ids. */
  tool_call_id?: string;
}

export interface OllamaTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

/** Sampling and runtime options; Ollama's Modelfile parameter names. */
export interface OllamaOptions {
  num_predict?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  [option: string]: unknown;
}

export interface OllamaChatRequest {
  model: string;
  messages: OllamaMessage[];
  /** Ollama streams unless told otherwise, so it is always sent. */
  stream: boolean;
  /** "json", or a JSON Schema object the output is constrained to. */
  format?: 'json' | Record<string, unknown>;
  tools?: OllamaTool[];
  options?: OllamaOptions;
  /** How long the model stays loaded after this request: "5m", seconds, or 0 to unload. */
  keep_alive?: string | number;
  /** Thinking models: on or off, or a level ("low" | "medium" | "high") for those that take one. */
  think?: boolean | 'low' | 'medium' | 'high';
  logprobs?: boolean;
  top_logprobs?: number;
}

export interface OllamaTokenLogprob {
  token: string;
  logprob: number;
  bytes?: number[] | null;
}

/** Ollama 0.12.11 onwards, when the request asked for logprobs. */
export interface OllamaLogprob extends OllamaTokenLogprob {
  top_logprobs?: OllamaTokenLogprob[] | null;
}

/**
 * A whole answer, or one line of a stream: every line carries a piece of `message`; the last has
 * `done: true`, the reason and the counts.
 */
export interface OllamaChatResponse {
  model?: string;
  created_at?: string;
  message?: Partial<OllamaMessage>;
  done?: boolean;
  /** "stop", "length", "load", "unload" … */
  done_reason?: string;
  /** Tokens read from the prompt. Older versions omit it when the whole prompt was cached. */
  prompt_eval_count?: number;
  /** Tokens generated, thinking included. */
  eval_count?: number;
  total_duration?: number;
  logprobs?: OllamaLogprob[] | null;
  /** A failure after the 200 was sent, as a stream line of its own. */
  error?: string;
}

export interface OllamaEmbedRequest {
  model: string;
  input: string | string[];
  truncate?: boolean;
  dimensions?: number;
  keep_alive?: string | number;
  options?: Record<string, unknown>;
}

export interface OllamaEmbedResponse {
  model?: string;
  embeddings: number[][];
  prompt_eval_count?: number;
}
