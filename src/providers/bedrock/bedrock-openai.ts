import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../errors/index.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatUsage,
  FinishReason,
  ToolCall,
  ToolCallDelta,
} from '../../spec/openai-chat.js';
import type { ChatStreamDecoder, TranslationContext } from '../adapter.js';
import { assistantCompletion, parseJsonObject, unreadableAnswer } from '../json-answer.js';
import { jsonAnswerTool, usageWithCache } from '../translation-parts.js';
import type { BedrockResponse, BedrockUsage } from './bedrock-wire.js';
import { EventStreamError, type EventStreamMessage, EventStreamSplitter } from './event-stream.js';

/*
 * Bedrock's Converse → canonical: answers, streams and errors, the response direction of the
 * `bedrock` adapter. Choices shared by the whole answer and the stream:
 * - The id is the gateway's (context.id): Converse answers carry none of their own.
 * - toolUseId is kept as the tool call's id, so the client's tool message finds its call again.
 * - reasoningContent blocks are dropped: this adapter never asks for reasoning (reasoning_effort
 *   is refused), and a reasoning block is only of use sent back with its signature.
 * - The toolUse of the JSON-mode tool (jsonAnswerTool) is the answer: its input becomes the
 *   message content and, when the model called no client tool, finish_reason is "stop".
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax
 */

/** A whole Converse answer as a canonical completion. */
export function bedrockCompletion(body: string, context: TranslationContext): ChatCompletion {
  const response = parseJsonObject(body, context.targetName) as BedrockResponse;
  const blocks = response.output?.message?.content;
  if (!Array.isArray(blocks)) throw unreadableAnswer(context.targetName, 'it has no output message content');
  let content: string | null = null;
  const toolCalls: ToolCall[] = [];
  for (const block of blocks) {
    if (typeof block?.text === 'string') {
      content = (content ?? '') + block.text;
    } else if (block?.toolUse !== undefined && block.toolUse.name === jsonAnswerTool) {
      content = (content ?? '') + JSON.stringify(block.toolUse.input ?? {});
    } else if (block?.toolUse !== undefined) {
      toolCalls.push({
        id: block.toolUse.toolUseId,
        type: 'function',
        function: { name: block.toolUse.name, arguments: JSON.stringify(block.toolUse.input ?? {}) },
      });
    }
  }
  return assistantCompletion(context, {
    content,
    toolCalls,
    finishReason: finishReason(response.stopReason, toolCalls.length > 0),
    usage: canonicalUsage(response.usage),
    withRefusal: true,
  });
}

/**
 * Converse's stopReason as OpenAI's finish_reason. "tool_use" means tool_calls only when a
 * client tool was called; the JSON-mode tool alone is a finished answer. A guardrail's
 * intervention and a model's content filter are both what OpenAI calls content_filter.
 */
export function finishReason(stopReason: string | null | undefined, calledTools: boolean): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return calledTools ? 'tool_calls' : 'stop';
    case 'guardrail_intervened':
    case 'content_filtered':
      return 'content_filter';
    default:
      // end_turn, stop_sequence: the model stopped of its own accord.
      return 'stop';
  }
}

/**
 * Like Anthropic's usage, which Bedrock passes on, inputTokens leaves out the prompt tokens read
 * from or written to the cache; OpenAI's prompt_tokens counts them all, with the cache reads
 * repeated as cached_tokens. The total is summed here rather than read, so it always adds up.
 */
export function canonicalUsage(usage: BedrockUsage | null | undefined): ChatUsage | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  return usageWithCache({
    input: usage.inputTokens,
    cacheRead: usage.cacheReadInputTokens,
    cacheWrite: usage.cacheWriteInputTokens,
    output: usage.outputTokens,
  });
}

/** Where a content block's deltas go: a canonical tool call (by its index), or the JSON answer. */
type BlockTarget = { toolIndex: number; sentArguments: boolean } | { json: true; sentText: boolean };

/**
 * Decodes ConverseStream's event stream (binary frames, see event-stream.ts) into canonical
 * chunks. Events: messageStart, contentBlockStart (tool uses only), contentBlockDelta,
 * contentBlockStop, messageStop (the stop reason), metadata (the usage, last). An exception
 * message (throttlingException, modelStreamErrorException …) fails the stream.
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html
 *
 * A failure met while decoding a batch that already produced chunks is held back and thrown on
 * the next call, so the chunks before it reach the client however the bytes were cut.
 */
export class BedrockStreamDecoder implements ChatStreamDecoder {
  readonly #splitter = new EventStreamSplitter();
  readonly #context: TranslationContext;
  /** Bedrock's contentBlockIndex → where its deltas go; text blocks are absent (they need no state). */
  readonly #blocks = new Map<number, BlockTarget>();
  #toolCalls = 0;
  #started = false;
  #stopped = false;
  #metadata = false;
  #usage: ChatUsage | undefined;
  #done = false;
  #failure: GatewayError | undefined;

  constructor(context: TranslationContext) {
    this.#context = context;
  }

  push(chunk: Buffer): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    const chunks: ChatCompletionChunk[] = [];
    // Nothing after the metadata event belongs to the answer.
    if (this.#done) return chunks;
    try {
      this.#splitter.append(chunk);
      for (let message = this.#splitter.next(); message !== undefined; message = this.#splitter.next()) {
        this.#message(message, chunks);
        if (this.#done) break;
      }
    } catch (error) {
      const failure =
        error instanceof EventStreamError
          ? unreadableAnswer(this.#context.targetName, `its event stream is corrupt (${error.message})`)
          : error;
      if (!(failure instanceof GatewayError)) throw failure;
      // Kept for every later call too: the bytes after a failure cannot be trusted.
      this.#failure = failure;
      if (chunks.length === 0) throw failure;
    }
    return chunks;
  }

  end(): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    if (!this.#done) {
      // A message cut off mid-way is this truncation too, not a corrupt one.
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" ended before ${this.#stopped ? 'its metadata event' : 'messageStop'}.`,
      );
    }
    return [];
  }

  #message(message: EventStreamMessage, chunks: ChatCompletionChunk[]): void {
    const kind = message.headers.get(':message-type');
    if (kind === 'exception') {
      const type = message.headers.get(':exception-type') ?? 'exception';
      throw bedrockStreamFailure(type, readMessage(message.payload), this.#context.targetName);
    }
    if (kind === 'error') {
      // The event stream's own failure, with its code and message in headers rather than a payload.
      const code = message.headers.get(':error-code') ?? 'error';
      throw bedrockStreamFailure(code, message.headers.get(':error-message') ?? '', this.#context.targetName);
    }
    if (kind !== 'event') return;
    const type = message.headers.get(':event-type');
    const value = parseJsonObject(message.payload.toString('utf8'), this.#context.targetName);
    switch (type) {
      case 'messageStart':
        this.#start(chunks);
        return;
      case 'contentBlockStart':
        this.#blockStart(value, chunks);
        return;
      case 'contentBlockDelta':
        this.#blockDelta(value, chunks);
        return;
      case 'contentBlockStop':
        this.#blockStop(value, chunks);
        return;
      case 'messageStop':
        this.#start(chunks);
        if (!this.#stopped) {
          this.#stopped = true;
          const stopReason = typeof value.stopReason === 'string' ? value.stopReason : undefined;
          chunks.push(this.#chunk({}, finishReason(stopReason, this.#toolCalls > 0)));
        }
        this.#finishIfComplete(chunks);
        return;
      case 'metadata':
        // The usage comes after messageStop; should it ever come first, it waits for it.
        this.#metadata = true;
        this.#usage = canonicalUsage(value.usage as BedrockUsage | undefined);
        this.#finishIfComplete(chunks);
        return;
      default:
        // Event types Bedrock may add are passed over, as its SDKs do with unknown union members.
        return;
    }
  }

  /** The role chunk comes first, whatever event arrives first. */
  #start(chunks: ChatCompletionChunk[]): void {
    if (this.#started) return;
    this.#started = true;
    chunks.push(this.#chunk({ role: 'assistant', content: '' }));
  }

  #finishIfComplete(chunks: ChatCompletionChunk[]): void {
    if (!this.#stopped || !this.#metadata) return;
    this.#done = true;
    if (this.#usage === undefined) return;
    chunks.push({
      id: this.#context.id,
      object: 'chat.completion.chunk',
      created: this.#context.created,
      model: this.#context.model,
      choices: [],
      usage: this.#usage,
    });
  }

  #blockStart(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const index = value.contentBlockIndex;
    const toolUse = (value.start as { toolUse?: { toolUseId?: unknown; name?: unknown } } | undefined)
      ?.toolUse;
    if (typeof index !== 'number' || toolUse === undefined) return;
    this.#start(chunks);
    if (toolUse.name === jsonAnswerTool) {
      this.#blocks.set(index, { json: true, sentText: false });
      return;
    }
    // Canonical indexes count tool calls alone: Bedrock's index counts text blocks too.
    const toolIndex = this.#toolCalls++;
    this.#blocks.set(index, { toolIndex, sentArguments: false });
    chunks.push(
      this.#toolChunk({
        index: toolIndex,
        id: String(toolUse.toolUseId),
        type: 'function',
        function: { name: String(toolUse.name), arguments: '' },
      }),
    );
  }

  #blockDelta(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const delta = value.delta as { text?: unknown; toolUse?: { input?: unknown } } | undefined;
    if (typeof delta?.text === 'string') {
      this.#start(chunks);
      if (delta.text !== '') chunks.push(this.#chunk({ content: delta.text }));
      return;
    }
    const input = delta?.toolUse?.input;
    const target = this.#blocks.get(value.contentBlockIndex as number);
    // reasoningContent, citations and deltas of blocks never started have no canonical counterpart.
    if (typeof input !== 'string' || input === '' || target === undefined) return;
    if ('json' in target) {
      target.sentText = true;
      chunks.push(this.#chunk({ content: input }));
    } else {
      target.sentArguments = true;
      chunks.push(this.#toolChunk({ index: target.toolIndex, function: { arguments: input } }));
    }
  }

  /** A tool input that streamed no JSON at all is the empty object, as in a whole answer. */
  #blockStop(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const index = value.contentBlockIndex as number;
    const target = this.#blocks.get(index);
    if (target === undefined) return;
    if ('json' in target) {
      if (!target.sentText) chunks.push(this.#chunk({ content: '{}' }));
    } else if (!target.sentArguments) {
      chunks.push(this.#toolChunk({ index: target.toolIndex, function: { arguments: '{}' } }));
    }
    this.#blocks.delete(index);
  }

  #toolChunk(call: ToolCallDelta): ChatCompletionChunk {
    return this.#chunk({ tool_calls: [call] });
  }

  #chunk(
    delta: ChatCompletionChunk['choices'][number]['delta'],
    finish: FinishReason | null = null,
  ): ChatCompletionChunk {
    return {
      id: this.#context.id,
      object: 'chat.completion.chunk',
      created: this.#context.created,
      model: this.#context.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    };
  }
}

/**
 * An exception message in a 2xx stream (its type in lowerCamelCase, such as throttlingException):
 * AWS sends one when a failure strikes after the response headers are out. Throttling and
 * unavailability keep their retryable codes; the rest broke the stream.
 */
export function bedrockStreamFailure(type: string, message: string, targetName: string): GatewayError {
  const said = message === '' ? type : `${type}: ${message}`;
  switch (type.toLowerCase()) {
    case 'throttlingexception':
    case 'servicequotaexceededexception':
      return new GatewayError('upstream_rate_limited', `Upstream "${targetName}" is rate limiting: ${said}`);
    case 'serviceunavailableexception':
    case 'modelnotreadyexception':
      return new GatewayError('upstream_overloaded', `Upstream "${targetName}" is overloaded: ${said}`);
    case 'validationexception':
      return new GatewayError('upstream_rejected', `Upstream "${targetName}" rejected the request: ${said}`);
    default:
      return new GatewayError('upstream_stream_failed', `The stream from "${targetName}" failed (${said}).`);
  }
}

/**
 * Error types that say our credentials are wrong, whatever the status: some come as 400
 * (IncompleteSignature, ExpiredTokenException) and their messages may quote the credential.
 */
const credentialErrors = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignature',
  'IncompleteSignatureException',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
]);

/**
 * Bedrock's non-2xx answers as catalogue errors. The error type comes in the x-amzn-errortype
 * header ("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"), the
 * message in a JSON body `{"message": "…"}`.
 * https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html
 */
export function bedrockFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  targetName: string,
): GatewayError {
  const { type, message } = readError(headers, body);
  const upstreamMessage = message || body.trim().slice(0, 500) || `HTTP ${status}`;
  const requestId = header(headers, 'x-amzn-requestid');
  const cause = `upstream ${targetName} answered ${status}${type === undefined ? '' : ` ${type}`}${requestId === undefined ? '' : ` (request ${requestId})`}`;

  if (status === 401 || status === 403 || (type !== undefined && credentialErrors.has(type))) {
    // The upstream's message may quote our credential; the client must never see it.
    return new GatewayError('upstream_auth_failed', undefined, { cause });
  }
  if (status === 429 && type === 'ModelNotReadyException') {
    // The model is being brought up, not our quota spent: a short wait is the cure.
    return new GatewayError(
      'upstream_overloaded',
      `Upstream "${targetName}" is not ready: ${upstreamMessage}`,
      {
        headers: retryAfter(headers),
        cause,
      },
    );
  }
  if (status === 429 || type === 'ThrottlingException' || type === 'ServiceQuotaExceededException') {
    return new GatewayError(
      'upstream_rate_limited',
      `Upstream "${targetName}" is rate limiting: ${upstreamMessage}`,
      { headers: retryAfter(headers), cause },
    );
  }
  if (status === 503 || type === 'ServiceUnavailableException') {
    return new GatewayError(
      'upstream_overloaded',
      `Upstream "${targetName}" is overloaded: ${upstreamMessage}`,
      {
        headers: retryAfter(headers),
        cause,
      },
    );
  }
  if (
    status === 408 ||
    type === 'ModelTimeoutException' ||
    status === 424 ||
    type === 'ModelErrorException'
  ) {
    // The model failed or ran out of Bedrock's time for it: not the client's request at fault
    // (a 4xx would say so), and not one of this gateway's timeouts, which name its settings.
    return new GatewayError(
      'upstream_error',
      `Upstream "${targetName}" answered ${status}${type === undefined ? '' : ` ${type}`}: ${upstreamMessage}`,
      { cause },
    );
  }
  if (status >= 400 && status < 500) {
    return new GatewayError('upstream_rejected', upstreamMessage, { status, cause });
  }
  return new GatewayError(
    'upstream_error',
    `Upstream "${targetName}" answered ${status}${type === undefined ? '' : ` ${type}`}: ${upstreamMessage}`,
    { cause },
  );
}

function readError(
  headers: IncomingHttpHeaders,
  body: string,
): { type: string | undefined; message: string } {
  let type = header(headers, 'x-amzn-errortype')?.split(':')[0];
  let message = '';
  try {
    const parsed = JSON.parse(body) as Record<string, unknown> | null;
    if (parsed !== null && typeof parsed === 'object') {
      const text = parsed.message ?? parsed.Message;
      if (typeof text === 'string') message = text;
      // AWS's JSON protocols name the type in the body too, as "…#ValidationException".
      if (type === undefined && typeof parsed.__type === 'string') type = parsed.__type.split('#').at(-1);
    }
  } catch {}
  return { type: type === '' ? undefined : type, message };
}

function readMessage(payload: Buffer): string {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as { message?: unknown; Message?: unknown } | null;
    const message = parsed?.message ?? parsed?.Message;
    return typeof message === 'string' ? message : '';
  } catch {
    return payload.toString('utf8').slice(0, 500);
  }
}

function retryAfter(headers: IncomingHttpHeaders): Record<string, string> {
  const value = header(headers, 'retry-after');
  return value === undefined ? {} : { 'retry-after': value };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
}
