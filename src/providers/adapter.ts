import type { IncomingHttpHeaders } from 'node:http';
import type { TargetConfig } from '../config/types.js';
import type { GatewayError } from '../errors/index.js';
import type { Endpoint } from '../spec/openai.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../spec/openai-chat.js';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../spec/openai-embeddings.js';

/**
 * What a wire-schema adapter does: translate Switchyard's canonical request (OpenAI's chat
 * completions shape) into one upstream request, and the upstream's answer, stream and errors
 * back into canonical shapes. One adapter per wire schema (anthropic, gemini, ollama …), never
 * per vendor: an OpenAI-compatible vendor is configuration (STYLE.md, habit 2).
 *
 * Adapters are pure translators: they never do I/O. The gateway's proxy sends the request they
 * build through undici, feeds them the bytes that come back, and encodes their canonical output
 * for the client's own surface (OpenAI or Anthropic). Translation functions live beside each
 * adapter, named for the direction (`openai_anthropic`: canonical → Anthropic).
 *
 * @example
 * const call = anthropicAdapter.chatRequest(request, target, 'claude-sonnet-4-5');
 * // … send call.body to target.config.origin + call.path with call.headers …
 * const decoder = anthropicAdapter.chatStream({ id, created, model: request.model, targetName });
 * for (const chunk of decoder.push(bytes)) client.write(encode(chunk));
 */
export interface ChatAdapter {
  readonly kind: string;
  /**
   * Headers sent with every request to this target (credentials, version headers), built once
   * per config as undici's flat [name, value, …] list. Content-Type is included.
   */
  prepareHeaders(config: TargetConfig): string[];
  /**
   * The canonical request parameters this schema cannot carry, each with the reason, e.g.
   * `{ param: 'logprobs', reason: 'Anthropic's Messages API returns no log probabilities' }`.
   * The gateway answers 400 naming them, or drops them when the model says
   * `drop_unsupported_params`; an adapter never silently mistranslates one.
   */
  unsupportedParams(request: ChatRequest): readonly UnsupportedParam[];
  /**
   * The upstream request. `request` has had unsupported params removed when dropping applies;
   * `upstreamModel` is the model name to send (the target's, or the client's).
   */
  chatRequest(request: ChatRequest, target: PreparedAdapterTarget, upstreamModel: string): UpstreamCall;
  /** A whole 2xx answer to a non-streamed request, as canonical. Throws GatewayError if unreadable. */
  chatResponse(body: string, context: TranslationContext): ChatCompletion;
  /** A decoder for one streamed answer. */
  chatStream(context: TranslationContext): ChatStreamDecoder;
  /** Whether a 2xx answer with this Content-Type is the stream (otherwise it is read whole). */
  isStreamContentType(contentType: string | undefined): boolean;
  /** A non-2xx answer as the catalogue error the client should see; never leaks our credential. */
  failure(status: number, headers: IncomingHttpHeaders, body: string, targetName: string): GatewayError;
  /** Embeddings, for schemas that have them; absent means the target cannot embed. */
  readonly embeddings?: EmbeddingsAdapter;
  /**
   * Present only for upstreams that speak OpenAI's own schema (OpenAI-compatible servers, Azure
   * OpenAI, the local runner): the path for an OpenAI endpoint, so an OpenAI client's request
   * can be forwarded as its own bytes, untranslated.
   */
  openAIPath?(config: TargetConfig, endpoint: Endpoint, upstreamModel: string): string;
}

export interface EmbeddingsAdapter {
  request(request: EmbeddingsRequest, target: PreparedAdapterTarget, upstreamModel: string): UpstreamCall;
  response(body: string, context: TranslationContext): EmbeddingsResponse;
}

export interface UnsupportedParam {
  readonly param: string;
  readonly reason: string;
}

/** A target with what its adapter computed once per config. */
export interface PreparedAdapterTarget {
  readonly config: TargetConfig;
  readonly headers: readonly string[];
}

export interface UpstreamCall {
  /** Path and query, joined to the target's origin (the basePath already included). */
  readonly path: string;
  /** undici's flat header list: the prepared headers plus any per-request ones (a signature). */
  readonly headers: readonly string[];
  readonly body: string | Buffer;
}

/** What canonical objects need that the upstream may not say the same way. */
export interface TranslationContext {
  /** "chatcmpl-…": the id the client sees, unless the adapter keeps the upstream's own. */
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  /** The model name the client asked for; canonical objects carry it. */
  readonly model: string;
  /** For error messages: which target said it. */
  readonly targetName: string;
  /** Whether the client asked for a usage chunk at the end (stream_options.include_usage). */
  readonly includeUsage: boolean;
}

/**
 * Turns one upstream stream into canonical chunks. It keeps the state a vendor's event sequence
 * needs (tool-call indexes, the usage that arrives at the start and the end), and must produce:
 * a first chunk with `delta.role = 'assistant'`; content and tool-call deltas (each tool call's
 * first delta with `id`, `type` and `function.name`, later ones `function.arguments`, all with a
 * stable `index`); a chunk with the finish_reason; and, when it learnt the usage, a last chunk
 * with `choices: []` and `usage` (the proxy drops it when the client did not ask for it).
 */
export interface ChatStreamDecoder {
  /**
   * Upstream bytes in, canonical chunks out (often none). A failure found in these bytes (an
   * error event, unreadable JSON) is thrown as a GatewayError by the NEXT call, push or end, so
   * the chunks decoded before it still reach the client however the bytes were cut.
   */
  push(chunk: Buffer): ChatCompletionChunk[];
  /**
   * The upstream closed the stream: returns the last chunks, or throws GatewayError
   * `upstream_stream_failed` when it ended before the schema's end marker (message_stop, a
   * finishReason, done: true …), so a cut is never mistaken for a finished answer.
   */
  end(): ChatCompletionChunk[];
}
