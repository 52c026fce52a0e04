import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../errors/index.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatUsage,
  ChoiceLogprobs,
  FinishReason,
  ToolCall,
} from '../../spec/openai-chat.js';
import type { EmbeddingsResponse } from '../../spec/openai-embeddings.js';
import type { ChatStreamDecoder, TranslationContext } from '../adapter.js';
import { parseJsonObject, unreadableAnswer } from '../json-answer.js';
import { parseSseEvent, SseSplitter } from '../sse.js';
import type {
  GeminiCandidate,
  GeminiEmbeddingsResponse,
  GeminiLogprobCandidate,
  GeminiResponse,
  GeminiUsageMetadata,
  GoogleError,
} from './gemini-wire.js';

/**
 * Gemini → canonical: answers, streams, errors and embeddings, the response direction of the
 * `gemini` adapter. https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse
 */

/** A whole generateContent answer as a chat completion. */
export function fromGeminiResponse(body: string, context: TranslationContext): ChatCompletion {
  const response = parseJsonObject(body, context.targetName) as GeminiResponse;
  const calls = new CallIds(response.responseId ?? context.id);
  const candidates = response.candidates ?? [];
  const completion: ChatCompletion = {
    id: context.id,
    object: 'chat.completion',
    created: context.created,
    model: context.model,
    choices: [],
  };
  if (candidates.length === 0) {
    if (response.promptFeedback?.blockReason === undefined) {
      throw unreadableAnswer(context.targetName, 'it has neither candidates nor a block reason');
    }
    // A blocked prompt is an answer, not a failure: the model declined, as OpenAI's content filter does.
    completion.choices.push({
      index: 0,
      message: { role: 'assistant', content: null },
      logprobs: null,
      finish_reason: 'content_filter',
    });
  }
  candidates.forEach((candidate, position) => {
    let content: string | null = null;
    const toolCalls: ToolCall[] = [];
    for (const part of candidate.content?.parts ?? []) {
      // Thought summaries are the model's reasoning, not its answer.
      if (typeof part.text === 'string' && part.thought !== true) content = (content ?? '') + part.text;
      if (part.functionCall !== undefined) {
        toolCalls.push({
          id: calls.next(),
          type: 'function',
          function: { name: part.functionCall.name, arguments: JSON.stringify(part.functionCall.args ?? {}) },
        });
      }
    }
    const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    completion.choices.push({
      index: candidateIndex(candidate, position),
      message,
      logprobs: choiceLogprobs(candidate),
      finish_reason: finishReason(candidate.finishReason, toolCalls.length > 0),
    });
  });
  completion.choices.sort((left, right) => left.index - right.index);
  if (response.usageMetadata !== undefined) completion.usage = usage(response.usageMetadata);
  return completion;
}

/**
 * proto3 JSON leaves the first candidate's index 0 out, and answers are seen without any index;
 * candidates come in index order, so their position stands in for a missing one.
 */
function candidateIndex(candidate: GeminiCandidate, position: number): number {
  return candidate.index ?? position;
}

/**
 * Gemini gives function calls no ids, so they are made from the response's id and the call's
 * position in the response: the same for every chunk of a stream, and unique across the turns of
 * a conversation, since tool results find their call by id. Characters outside Anthropic's
 * tool-id alphabet are replaced, so the ids survive the Anthropic surface too.
 */
class CallIds {
  readonly #prefix: string;
  #count = 0;

  constructor(responseId: string) {
    this.#prefix = `call_${responseId.replace(/[^A-Za-z0-9_-]/g, '_')}_`;
  }

  next(): string {
    return `${this.#prefix}${this.#count++}`;
  }
}

/**
 * Gemini's finish reasons as OpenAI's. A candidate that stopped to call functions says STOP;
 * OpenAI says tool_calls. Every reason that means "withheld by a filter" is content_filter;
 * the rest (OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE …) end the answer without a better match.
 * https://ai.google.dev/api/generate-content#FinishReason
 */
export function finishReason(reason: string | undefined, calledFunctions: boolean): FinishReason {
  switch (reason) {
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
    case 'IMAGE_PROHIBITED_CONTENT':
      return 'content_filter';
    default:
      return calledFunctions ? 'tool_calls' : 'stop';
  }
}

/**
 * usageMetadata as OpenAI's usage. Thinking tokens are billed as output, as OpenAI counts its
 * reasoning tokens inside completion_tokens; tokens of tool-use prompts (Gemini's own tools)
 * count as prompt, so the three totals add up as Gemini's do.
 */
export function usage(metadata: GeminiUsageMetadata): ChatUsage {
  const prompt = (metadata.promptTokenCount ?? 0) + (metadata.toolUsePromptTokenCount ?? 0);
  const completion = (metadata.candidatesTokenCount ?? 0) + (metadata.thoughtsTokenCount ?? 0);
  const result: ChatUsage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: metadata.totalTokenCount ?? prompt + completion,
  };
  if (metadata.cachedContentTokenCount !== undefined) {
    result.prompt_tokens_details = { cached_tokens: metadata.cachedContentTokenCount };
  }
  if (metadata.thoughtsTokenCount !== undefined) {
    result.completion_tokens_details = { reasoning_tokens: metadata.thoughtsTokenCount };
  }
  return result;
}

/** logprobsResult as OpenAI's: one entry per chosen token, its alternatives at the same position. */
function choiceLogprobs(candidate: GeminiCandidate): ChoiceLogprobs | null {
  const chosen = candidate.logprobsResult?.chosenCandidates;
  if (chosen === undefined) return null;
  const top = candidate.logprobsResult?.topCandidates ?? [];
  return {
    content: chosen.map((token, position) => ({
      ...tokenLogprob(token),
      top_logprobs: (top[position]?.candidates ?? []).map(tokenLogprob),
    })),
  };
}

function tokenLogprob(candidate: GeminiLogprobCandidate): {
  token: string;
  logprob: number;
  bytes: number[];
} {
  const token = candidate.token ?? '';
  // proto3 JSON leaves a probability of exactly 1 (log 0) out.
  return { token, logprob: candidate.logProbability ?? 0, bytes: [...Buffer.from(token, 'utf8')] };
}

interface ChoiceState {
  calledFunctions: boolean;
  finished: boolean;
}

/**
 * streamGenerateContent?alt=sse: each event is a whole GenerateContentResponse holding the next
 * piece of each candidate. There is no [DONE]: a candidate is complete when it carries a
 * finishReason (a blocked prompt comes as one event with promptFeedback and no candidates), so a
 * stream that closes before then was cut.
 */
export class GeminiStreamDecoder implements ChatStreamDecoder {
  readonly #splitter = new SseSplitter();
  readonly #context: TranslationContext;
  readonly #choices = new Map<number, ChoiceState>();
  /** Tool-call indexes count per choice, as OpenAI's do. */
  readonly #toolCounts = new Map<number, number>();
  #calls: CallIds | undefined;
  #usage: ChatUsage | undefined;
  #blocked = false;
  #failure: GatewayError | undefined;

  constructor(context: TranslationContext) {
    this.#context = context;
  }

  push(chunk: Buffer): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    return this.#decodeAll(this.#splitter.push(chunk));
  }

  end(): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    const chunks: ChatCompletionChunk[] = [];
    const rest = this.#splitter.flush();
    if (rest.trim() !== '') {
      try {
        this.#decode(rest, chunks);
      } catch (error) {
        // An event cut off mid-way is the truncation reported below, not a malformed event.
        if (!(error instanceof GatewayError) || error.code !== 'upstream_bad_response') throw error;
      }
    }
    const complete =
      this.#blocked ||
      (this.#choices.size > 0 && [...this.#choices.values()].every((choice) => choice.finished));
    if (!complete) {
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" ended before a finishReason.`,
      );
    }
    if (this.#usage !== undefined) chunks.push({ ...this.#chunk([]), usage: this.#usage });
    return chunks;
  }

  /**
   * A failure met after some events of a batch already gave chunks is held back and thrown on
   * the next call, so those chunks reach the client however the bytes were cut.
   */
  #decodeAll(events: readonly string[]): ChatCompletionChunk[] {
    const chunks: ChatCompletionChunk[] = [];
    try {
      for (const event of events) this.#decode(event, chunks);
    } catch (error) {
      if (chunks.length === 0 || !(error instanceof GatewayError)) throw error;
      this.#failure = error;
    }
    return chunks;
  }

  #decode(text: string, chunks: ChatCompletionChunk[]): void {
    const { data } = parseSseEvent(text);
    if (data === '') return;
    const response = parseJsonObject(data, this.#context.targetName) as GeminiResponse & { error?: unknown };
    if (isObject(response.error)) throw errorEvent(response.error as GoogleError, this.#context.targetName);
    this.#calls ??= new CallIds(response.responseId ?? this.#context.id);
    // Each event's usage is the running total; the last one is the answer's.
    if (response.usageMetadata !== undefined) this.#usage = usage(response.usageMetadata);

    const candidates = response.candidates ?? [];
    if (candidates.length === 0 && response.promptFeedback?.blockReason !== undefined) {
      this.#blocked = true;
      this.#open(0, chunks);
      chunks.push(this.#chunk([{ index: 0, delta: {}, finish_reason: 'content_filter' }]));
      return;
    }
    for (const [position, candidate] of candidates.entries()) {
      this.#candidate(candidate, candidateIndex(candidate, position), chunks);
    }
  }

  #candidate(candidate: GeminiCandidate, index: number, chunks: ChatCompletionChunk[]): void {
    const state = this.#open(index, chunks);
    let text = '';
    let logprobs = choiceLogprobs(candidate);
    const flushText = (): void => {
      if (text === '') return;
      const choice: ChatCompletionChunk['choices'][number] = {
        index,
        delta: { content: text },
        finish_reason: null,
      };
      // The event's log probabilities go with its first text, the tokens they describe.
      if (logprobs !== null) {
        choice.logprobs = logprobs;
        logprobs = null;
      }
      chunks.push(this.#chunk([choice]));
      text = '';
    };
    for (const part of candidate.content?.parts ?? []) {
      if (typeof part.text === 'string' && part.thought !== true) text += part.text;
      if (part.functionCall !== undefined) {
        flushText();
        state.calledFunctions = true;
        // Gemini sends a call whole, so its one delta carries id, name and every argument.
        const call = {
          index: this.#toolIndex(index),
          id: this.#calls!.next(),
          type: 'function' as const,
          function: { name: part.functionCall.name, arguments: JSON.stringify(part.functionCall.args ?? {}) },
        };
        chunks.push(this.#chunk([{ index, delta: { tool_calls: [call] }, finish_reason: null }]));
      }
    }
    flushText();
    if (candidate.finishReason !== undefined && !state.finished) {
      state.finished = true;
      const reason = finishReason(candidate.finishReason, state.calledFunctions);
      chunks.push(this.#chunk([{ index, delta: {}, finish_reason: reason }]));
    }
  }

  #toolIndex(choice: number): number {
    const next = this.#toolCounts.get(choice) ?? 0;
    this.#toolCounts.set(choice, next + 1);
    return next;
  }

  /** The choice's state; its first sight opens it with the role delta OpenAI streams begin with. */
  #open(index: number, chunks: ChatCompletionChunk[]): ChoiceState {
    let state = this.#choices.get(index);
    if (state === undefined) {
      state = { calledFunctions: false, finished: false };
      this.#choices.set(index, state);
      chunks.push(this.#chunk([{ index, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
    }
    return state;
  }

  #chunk(choices: ChatCompletionChunk['choices']): ChatCompletionChunk {
    const { id, created, model } = this.#context;
    return { id, object: 'chat.completion.chunk', created, model, choices };
  }
}

/** An error object inside a stream: the answer broke off upstream. */
function errorEvent(error: GoogleError, targetName: string): GatewayError {
  const status = typeof error.status === 'string' ? ` (${error.status})` : '';
  const message =
    typeof error.message === 'string' && error.message !== '' ? error.message : 'an error event';
  return new GatewayError(
    'upstream_stream_failed',
    `The answer from "${targetName}" failed${status}: ${message}`,
  );
}

/**
 * A non-2xx answer as the catalogue error. Google's envelope is {error: {code, message, status,
 * details}}; Gemini answers a bad key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID, which
 * is an auth failure whatever the status says. Auth messages are never passed on: they may quote
 * the key. https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
 */
export function geminiFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  targetName: string,
): GatewayError {
  const error = readGoogleError(body);
  const reasons = (error?.details ?? []).map((detail) => detail.reason);
  if (status === 401 || status === 403 || reasons.includes('API_KEY_INVALID')) {
    return new GatewayError('upstream_auth_failed', undefined, {
      cause: `upstream ${targetName} answered ${status}${error?.status ? ` ${error.status}` : ''}`,
    });
  }
  const upstreamMessage =
    typeof error?.message === 'string' && error.message !== ''
      ? error.message
      : body.trim().slice(0, 500) || `HTTP ${status}`;
  if (status === 429) {
    const retryAfter = retryDelaySeconds(error) ?? headerValue(headers, 'retry-after');
    return new GatewayError(
      'upstream_rate_limited',
      `Upstream "${targetName}" is rate limiting: ${upstreamMessage}`,
      {
        headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter },
      },
    );
  }
  if (status === 503) {
    // Gemini's "The model is overloaded" (UNAVAILABLE): what Anthropic says with 529.
    const retryAfter = headerValue(headers, 'retry-after');
    return new GatewayError(
      'upstream_overloaded',
      `Upstream "${targetName}" is overloaded: ${upstreamMessage}`,
      {
        headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter },
      },
    );
  }
  if (status >= 400 && status < 500) {
    return new GatewayError('upstream_rejected', upstreamMessage, { status });
  }
  // 504 DEADLINE_EXCEEDED is Google's own deadline, not one of ours: the timeout codes name this
  // gateway's settings, which would send an operator to the wrong place.
  const name = error?.status ? ` ${error.status}` : '';
  return new GatewayError(
    'upstream_error',
    `Upstream "${targetName}" answered ${status}${name}: ${upstreamMessage}`,
  );
}

function readGoogleError(body: string): GoogleError | undefined {
  try {
    let parsed: unknown = JSON.parse(body);
    // streamGenerateContent without alt=sse answers a JSON array, errors included.
    if (Array.isArray(parsed)) parsed = parsed[0];
    const error = isObject(parsed) ? parsed.error : undefined;
    return isObject(error) ? (error as GoogleError) : undefined;
  } catch {
    return undefined;
  }
}

/** google.rpc.RetryInfo's retryDelay ("37s", "0.5s") as whole seconds for Retry-After. */
function retryDelaySeconds(error: GoogleError | undefined): string | undefined {
  for (const detail of error?.details ?? []) {
    if (!detail['@type']?.endsWith('google.rpc.RetryInfo') || typeof detail.retryDelay !== 'string') continue;
    const seconds = /^(\d+(?:\.\d+)?)s$/.exec(detail.retryDelay)?.[1];
    if (seconds !== undefined) return String(Math.ceil(Number(seconds)));
  }
  return undefined;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * batchEmbedContents' answer as OpenAI's list. Gemini reports no token counts for embeddings, so
 * usage is zero: the type requires the field and clients read it, and zero is what the gateway
 * learnt, not an estimate.
 */
export function fromGeminiEmbeddings(body: string, context: TranslationContext): EmbeddingsResponse {
  const response = parseJsonObject(body, context.targetName) as GeminiEmbeddingsResponse;
  if (!Array.isArray(response.embeddings))
    throw unreadableAnswer(context.targetName, 'it has no "embeddings"');
  return {
    object: 'list',
    data: response.embeddings.map((embedding, index) => ({
      object: 'embedding',
      index,
      embedding: embedding.values ?? [],
    })),
    model: context.model,
    usage: { prompt_tokens: 0, total_tokens: 0 },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
