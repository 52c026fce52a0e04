import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../errors/index.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatUsage,
  ChoiceLogprobs,
  FinishReason,
  TokenLogprob,
  ToolCall,
  ToolCallDelta,
} from '../../spec/openai-chat.js';
import type { EmbeddingsResponse } from '../../spec/openai-embeddings.js';
import type { ChatStreamDecoder, TranslationContext } from '../adapter.js';
import { assistantCompletion, parseJsonObject, unreadableAnswer } from '../json-answer.js';
import { NdjsonSplitter } from '../ndjson.js';
import { upstreamFailure } from '../openai-compatible.js';
import type {
  OllamaChatResponse,
  OllamaEmbedResponse,
  OllamaLogprob,
  OllamaToolCall,
} from './ollama-wire.js';

/**
 * Ollama's native answers → canonical (OpenAI) shapes.
 *
 * A thinking model's `thinking` text is left out: the canonical shape has no field for it, and
 * putting it in `content` would hand the client reasoning it did not ask to read. Its tokens are
 * still counted, since Ollama's eval_count includes them.
 */

/** A whole /api/chat answer (stream: false). */
export function ollamaChatCompletion(body: string, context: TranslationContext): ChatCompletion {
  const answer = parseJsonObject(body, context.targetName) as OllamaChatResponse;
  if (typeof answer.error === 'string') {
    throw new GatewayError('upstream_error', `Upstream "${context.targetName}" failed: ${answer.error}`);
  }
  if (answer.message === null || typeof answer.message !== 'object') {
    throw unreadableAnswer(context.targetName, 'it has no "message"');
  }
  const toolCalls = (answer.message.tool_calls ?? []).map((call, index) => toolCall(call, index, context));
  const content = answer.message.content ?? '';
  return assistantCompletion(context, {
    // OpenAI answers null content beside tool calls when the model said nothing else.
    content: content === '' && toolCalls.length > 0 ? null : content,
    toolCalls,
    finishReason: finishReason(answer.done_reason, toolCalls.length > 0),
    usage: usage(answer),
    logprobs: choiceLogprobs(answer.logprobs),
  });
}

/**
 * Ollama gives no tool-call ids before 0.12, so one is made from the completion's id and the
 * call's position: the same on every read of the same answer, and unique across a conversation
 * because completion ids are. An id Ollama gives is kept.
 */
function toolCallId(call: OllamaToolCall, index: number, context: TranslationContext): string {
  if (typeof call.id === 'string' && call.id !== '') return call.id;
  return `call_${context.id.replace(/^chatcmpl-/, '')}_${index}`;
}

function toolCall(call: OllamaToolCall, index: number, context: TranslationContext): ToolCall {
  return {
    id: toolCallId(call, index, context),
    type: 'function',
    function: { name: call.function?.name ?? '', arguments: argumentsText(call.function?.arguments) },
  };
}

/** Ollama sends arguments as an object; OpenAI's shape carries them as JSON text. */
function argumentsText(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value ?? {});
}

function finishReason(doneReason: string | undefined, calledTools: boolean): FinishReason {
  if (calledTools) return 'tool_calls';
  // Everything else Ollama says ("stop", "load", "unload") ends the answer normally.
  return doneReason === 'length' ? 'length' : 'stop';
}

function usage(answer: OllamaChatResponse): ChatUsage {
  const prompt = typeof answer.prompt_eval_count === 'number' ? answer.prompt_eval_count : 0;
  const completion = typeof answer.eval_count === 'number' ? answer.eval_count : 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function choiceLogprobs(logprobs: OllamaLogprob[] | null | undefined): ChoiceLogprobs | null {
  if (!Array.isArray(logprobs) || logprobs.length === 0) return null;
  return {
    content: logprobs.map(
      (entry): TokenLogprob => ({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes ?? null,
        top_logprobs: (entry.top_logprobs ?? []).map((top) => ({
          token: top.token,
          logprob: top.logprob,
          bytes: top.bytes ?? null,
        })),
      }),
    ),
  };
}

/**
 * Decodes /api/chat's NDJSON stream: each line a piece of the message, tool calls whole in one
 * line, and a last line with `done: true`, the reason and the counts. An `{"error": …}` line
 * means the upstream failed after answering 200.
 */
export class OllamaStreamDecoder implements ChatStreamDecoder {
  readonly #splitter = new NdjsonSplitter();
  readonly #context: TranslationContext;
  #started = false;
  #done = false;
  #toolCalls = 0;
  /** A failure met partway through a push, thrown on the next call (see push). */
  #failure: GatewayError | undefined;

  constructor(context: TranslationContext) {
    this.#context = context;
  }

  /**
   * The lines before a failing one are answered first and the failure thrown on the next call,
   * so the client gets the same content however the bytes were chunked: one push holding the
   * whole stream, or one push per line.
   */
  push(chunk: Buffer): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    const chunks: ChatCompletionChunk[] = [];
    for (const line of this.#splitter.push(chunk)) {
      try {
        this.#decode(line, chunks);
      } catch (error) {
        if (!(error instanceof GatewayError) || chunks.length === 0) throw error;
        this.#failure = error;
        break;
      }
    }
    return chunks;
  }

  end(): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    const chunks: ChatCompletionChunk[] = [];
    const rest = this.#splitter.flush();
    if (rest !== '') this.#decode(rest, chunks);
    if (!this.#done) {
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" ended before its "done" line.`,
      );
    }
    return chunks;
  }

  #decode(line: string, chunks: ChatCompletionChunk[]): void {
    // Anything after the done line is not part of this answer.
    if (this.#done) return;
    const value = parseJsonObject(line, this.#context.targetName) as OllamaChatResponse;
    if (typeof value.error === 'string') {
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" failed: ${value.error}`,
      );
    }
    if (!this.#started) {
      this.#started = true;
      chunks.push(this.#chunk({ role: 'assistant', content: '' }, null));
    }
    const message = value.message;
    const content = typeof message?.content === 'string' ? message.content : '';
    if (content !== '') {
      const chunk = this.#chunk({ content }, null);
      const logprobs = choiceLogprobs(value.logprobs);
      if (logprobs !== null) chunk.choices[0]!.logprobs = logprobs;
      chunks.push(chunk);
    }
    const calls = message?.tool_calls ?? [];
    if (calls.length > 0) {
      const deltas = calls.map((call): ToolCallDelta => {
        const index = this.#toolCalls++;
        return {
          index,
          id: toolCallId(call, index, this.#context),
          type: 'function',
          function: { name: call.function?.name ?? '', arguments: argumentsText(call.function?.arguments) },
        };
      });
      chunks.push(this.#chunk({ tool_calls: deltas }, null));
    }
    if (value.done === true) {
      this.#done = true;
      chunks.push(this.#chunk({}, finishReason(value.done_reason, this.#toolCalls > 0)));
      chunks.push({
        id: this.#context.id,
        object: 'chat.completion.chunk',
        created: this.#context.created,
        model: this.#context.model,
        choices: [],
        usage: usage(value),
      });
    }
  }

  #chunk(delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null) {
    const chunk: ChatCompletionChunk = {
      id: this.#context.id,
      object: 'chat.completion.chunk',
      created: this.#context.created,
      model: this.#context.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    };
    return chunk;
  }
}

/** A whole /api/embed answer. */
export function ollamaEmbeddings(body: string, context: TranslationContext): EmbeddingsResponse {
  const answer = parseJsonObject(body, context.targetName) as Partial<OllamaEmbedResponse>;
  if (!Array.isArray(answer.embeddings)) throw unreadableAnswer(context.targetName, 'it has no "embeddings"');
  const prompt = typeof answer.prompt_eval_count === 'number' ? answer.prompt_eval_count : 0;
  return {
    object: 'list',
    data: answer.embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })),
    model: context.model,
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  };
}

/**
 * A non-2xx answer. Ollama's errors are `{"error": "text"}`: 400 for a bad request, 404 for a
 * model not pulled ("model \"x\" not found, try pulling it first"), 500 for a failure, and 503
 * when its queue is full (OLLAMA_MAX_QUEUE), which is worth retrying. 401, 403 and 429 come from
 * ollama.com's hosted API or a proxy in front of a server; they map as for any upstream.
 */
export function ollamaFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  targetName: string,
): GatewayError {
  if (status === 503) {
    const retryAfter = headers['retry-after'];
    return new GatewayError(
      'upstream_overloaded',
      `Upstream "${targetName}" is busy (${errorText(body) ?? 'HTTP 503'}). Retry after a short wait.`,
      typeof retryAfter === 'string' ? { headers: { 'retry-after': retryAfter } } : {},
    );
  }
  return upstreamFailure(status, headers, body, targetName);
}

function errorText(body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { error?: unknown } | null;
    if (typeof value?.error === 'string' && value.error !== '') return value.error;
  } catch {}
  return body.trim().slice(0, 500) || undefined;
}
