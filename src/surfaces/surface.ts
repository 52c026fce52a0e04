import type { GatewayError } from '../errors/index.js';
import type { ChatCompletion, ChatCompletionChunk } from '../spec/openai-chat.js';

/**
 * An API surface clients call Switchyard through: OpenAI's (chat completions) or Anthropic's
 * (messages). Requests arrive in the surface's format and are translated to canonical before
 * routing; a surface turns canonical answers, streams and errors back into its own wire format.
 */
export interface ClientSurface {
  readonly name: 'openai' | 'anthropic';
  /** An error answered before any byte of the answer: the status to send and the JSON body. */
  errorResponse(error: GatewayError): { readonly status: number; readonly body: string };
  /** The text that ends a stream already under way with an error, never a silent cut. */
  streamError(error: GatewayError): string;
  /** A whole answer's JSON body; `model` is the name the client asked for. */
  completion(completion: ChatCompletion, model: string): string;
  /** An encoder for one streamed answer. */
  streamEncoder(options: StreamEncoderOptions): ChatStreamEncoder;
}

export interface StreamEncoderOptions {
  /** Whether the client asked for the usage chunk (OpenAI's stream_options.include_usage). */
  readonly includeUsage: boolean;
  /** The model name the client asked for. */
  readonly model: string;
  /** The answer's id ("chatcmpl-…"), from which a surface derives its own. */
  readonly id: string;
}

/** Canonical chunks in, the surface's stream text out. */
export interface ChatStreamEncoder {
  /** The text to write for this chunk; may be empty when the surface holds it back. */
  chunk(chunk: ChatCompletionChunk): string;
  /** The text that ends a complete stream ("data: [DONE]", message_stop …). */
  end(): string;
}
