import { GatewayError } from '../errors/index.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../spec/openai-chat.js';
import type { EmbeddingsResponse } from '../spec/openai-embeddings.js';
import type { ChatAdapter, ChatStreamDecoder, TranslationContext } from './adapter.js';
import { parseJsonObject, unreadableAnswer } from './json-answer.js';
import { openAIHeaders, upstreamFailure } from './openai-compatible.js';
import { parseSseEvent, SseSplitter } from './sse.js';

/**
 * The OpenAI-compatible schema as an adapter, for the paths that translate: a client of the
 * Anthropic surface reaching OpenAI, vLLM or the local runner. (An OpenAI client reaching them
 * never comes here: its bytes are forwarded untouched, see gateway/proxy.ts.) Canonical is
 * OpenAI's own shape, so translating is parsing and re-serialising.
 */
export const openAICompatibleAdapter: ChatAdapter = {
  kind: 'openai-compatible',
  prepareHeaders: openAIHeaders,
  openAIPath: (config, endpoint) => `${config.basePath}/${endpoint}`,
  unsupportedParams: () => [],
  chatRequest(request, target, upstreamModel) {
    const body: ChatRequest = { ...request, model: upstreamModel };
    if (request.stream === true && target.config.streamUsage) {
      // The gateway accounts every stream's tokens, so it asks for usage whether or not the
      // client did; the proxy hides the usage chunk from a client that did not ask.
      body.stream_options = { ...(request.stream_options ?? {}), include_usage: true };
    }
    return {
      path: `${target.config.basePath}/chat/completions`,
      headers: target.headers,
      body: JSON.stringify(body),
    };
  },
  chatResponse(body, context) {
    const completion = parseJsonObject(body, context.targetName) as unknown as ChatCompletion;
    if (!Array.isArray(completion.choices)) throw unreadableAnswer(context.targetName, 'it has no "choices"');
    return completion;
  },
  chatStream: (context) => new OpenAIStreamDecoder(context),
  isStreamContentType: (contentType) => contentType?.startsWith('text/event-stream') === true,
  failure: upstreamFailure,
  embeddings: {
    request(request, target, upstreamModel) {
      return {
        path: `${target.config.basePath}/embeddings`,
        headers: target.headers,
        body: JSON.stringify({ ...request, model: upstreamModel }),
      };
    },
    response: (body, context) => parseJsonObject(body, context.targetName) as unknown as EmbeddingsResponse,
  },
};

/** Parses each SSE event's JSON; `data: [DONE]` ends the stream, an `error` object fails it. */
class OpenAIStreamDecoder implements ChatStreamDecoder {
  readonly #splitter = new SseSplitter();
  readonly #context: TranslationContext;
  #done = false;
  /** A failure found by the last push, thrown by the next call (see ChatStreamDecoder). */
  #failure: GatewayError | undefined;

  constructor(context: TranslationContext) {
    this.#context = context;
  }

  push(chunk: Buffer): ChatCompletionChunk[] {
    if (this.#failure) throw this.#failure;
    return this.#decode(this.#splitter.push(chunk));
  }

  end(): ChatCompletionChunk[] {
    if (this.#failure) throw this.#failure;
    const rest = this.#splitter.flush();
    const chunks = rest.trim() === '' ? [] : this.#decode([rest]);
    if (this.#failure) throw this.#failure;
    if (!this.#done) {
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" ended before [DONE].`,
      );
    }
    return chunks;
  }

  #decode(events: string[]): ChatCompletionChunk[] {
    const chunks: ChatCompletionChunk[] = [];
    try {
      for (const text of events) {
        const { data } = parseSseEvent(text);
        if (data === '') continue;
        if (data === '[DONE]') {
          this.#done = true;
          continue;
        }
        const value = parseJsonObject(data, this.#context.targetName);
        if (typeof value.error === 'object' && value.error !== null) {
          const message = (value.error as { message?: unknown }).message;
          throw new GatewayError(
            'upstream_stream_failed',
            `The stream from "${this.#context.targetName}" failed: ${typeof message === 'string' ? message : 'an error event'}.`,
          );
        }
        chunks.push(value as unknown as ChatCompletionChunk);
      }
    } catch (error) {
      this.#failure = error as GatewayError;
    }
    return chunks;
  }
}
