import { GatewayError } from '../../errors/index.js';
import type { AnthropicResponse, AnthropicUsage } from '../../spec/anthropic.js';
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
import { parseSseEvent, SseSplitter } from '../sse.js';
import { jsonAnswerTool, usageWithCache } from '../translation-parts.js';
import { anthropicStreamFailure } from './anthropic-errors.js';

/*
 * Choices shared by the whole answer and the stream:
 * - The id is the gateway's (context.id), not Anthropic's msg_…: the client sees the same kind of
 *   id from every target, streamed or not, and it matches what the gateway logs.
 * - Thinking blocks are dropped. This adapter never asks for thinking (reasoning_effort is
 *   refused), and a thinking block is only useful to send back with its signature, which
 *   OpenAI-shaped messages cannot carry.
 * - The tool_use of the JSON-mode tool (jsonAnswerTool) is the answer: its input becomes the
 *   message content and, when the model called no client tool, finish_reason is "stop".
 */

/** A whole Messages API answer as a canonical completion. */
export function anthropicCompletion(body: string, context: TranslationContext): ChatCompletion {
  const message = parseJsonObject(body, context.targetName) as unknown as AnthropicResponse;
  if (!Array.isArray(message.content)) throw unreadableAnswer(context.targetName, 'it has no "content" list');
  let content: string | null = null;
  const toolCalls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') {
      content = (content ?? '') + block.text;
    } else if (block.type === 'tool_use' && block.name === jsonAnswerTool) {
      content = (content ?? '') + JSON.stringify(block.input ?? {});
    } else if (block.type === 'tool_use') {
      toolCalls.push({
        id: block.id,
        type: 'function',
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  return assistantCompletion(context, {
    content,
    toolCalls,
    finishReason: finishReason(message.stop_reason, toolCalls.length > 0),
    usage: canonicalUsage(message.usage),
    withRefusal: true,
  });
}

/**
 * Anthropic's stop_reason as OpenAI's finish_reason. "tool_use" means tool_calls only when a
 * client tool was called; the JSON-mode tool alone is a finished answer.
 */
export function finishReason(stopReason: string | null | undefined, calledTools: boolean): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return calledTools ? 'tool_calls' : 'stop';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn (a server tool's long turn, paused): the model
      // stopped of its own accord as far as an OpenAI client can tell.
      return 'stop';
  }
}

/**
 * Anthropic counts cached prompt tokens apart from input_tokens (read from the cache, or written
 * to it); OpenAI's prompt_tokens counts them all, with the cache reads repeated as cached_tokens.
 */
export function canonicalUsage(usage: Partial<AnthropicUsage> | null | undefined): ChatUsage | undefined {
  if (usage === null || typeof usage !== 'object') return undefined;
  return usageWithCache({
    input: usage.input_tokens,
    cacheRead: usage.cache_read_input_tokens,
    cacheWrite: usage.cache_creation_input_tokens,
    output: usage.output_tokens,
  });
}

/** Where a content block's deltas go: a canonical tool call (by its index), or the JSON answer. */
type BlockTarget = { toolIndex: number; sentArguments: boolean } | { json: true; sentText: boolean };

/**
 * Decodes Anthropic's event stream (message_start, content_block_start/delta/stop, message_delta,
 * message_stop, ping, error) into canonical chunks.
 * https://docs.anthropic.com/en/docs/build-with-claude/streaming
 *
 * A failure met while decoding a batch that already produced chunks is held back and thrown on
 * the next call, so the chunks before it reach the client however the bytes were cut.
 */
export class AnthropicStreamDecoder implements ChatStreamDecoder {
  readonly #splitter = new SseSplitter();
  readonly #context: TranslationContext;
  /** Anthropic's content block index → where its deltas go; blocks absent here are ignored. */
  readonly #blocks = new Map<number, BlockTarget>();
  #toolCalls = 0;
  #usage: Partial<AnthropicUsage> | undefined;
  #finished = false;
  #done = false;
  #failure: GatewayError | undefined;

  constructor(context: TranslationContext) {
    this.#context = context;
  }

  push(chunk: Buffer): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    return this.#decode(this.#splitter.push(chunk));
  }

  end(): ChatCompletionChunk[] {
    if (this.#failure !== undefined) throw this.#failure;
    const rest = this.#splitter.flush();
    let chunks: ChatCompletionChunk[] = [];
    if (rest.trim() !== '' && !this.#done) {
      try {
        chunks = this.#decode([rest]);
      } catch (error) {
        // An event cut off mid-way is the truncation reported below, not a malformed event.
        if (!(error instanceof GatewayError) || error.code !== 'upstream_bad_response') throw error;
      }
    }
    if (!this.#done) {
      throw new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#context.targetName}" ended before message_stop.`,
      );
    }
    return chunks;
  }

  #decode(events: readonly string[]): ChatCompletionChunk[] {
    const chunks: ChatCompletionChunk[] = [];
    try {
      for (const text of events) {
        // Nothing after message_stop belongs to the answer.
        if (this.#done) break;
        const { event, data } = parseSseEvent(text);
        if (data === '') continue;
        const value = parseJsonObject(data, this.#context.targetName);
        this.#event(typeof value.type === 'string' ? value.type : event, value, chunks);
      }
    } catch (error) {
      if (chunks.length === 0 || !(error instanceof GatewayError)) throw error;
      this.#failure = error;
    }
    return chunks;
  }

  #event(type: string, value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    switch (type) {
      case 'message_start': {
        const message = value.message as Partial<AnthropicResponse> | undefined;
        // Input token counts arrive here, output counts in message_delta.
        if (typeof message?.usage === 'object' && message.usage !== null) this.#usage = { ...message.usage };
        chunks.push(this.#chunk({ role: 'assistant', content: '' }));
        return;
      }
      case 'content_block_start':
        this.#blockStart(value, chunks);
        return;
      case 'content_block_delta':
        this.#blockDelta(value, chunks);
        return;
      case 'content_block_stop':
        this.#blockStop(value, chunks);
        return;
      case 'message_delta': {
        // Usage here is cumulative: it replaces, field by field, what message_start said.
        const usage = value.usage;
        if (typeof usage === 'object' && usage !== null) {
          const numbers = Object.entries(usage).filter(([, count]) => typeof count === 'number');
          this.#usage = { ...this.#usage, ...Object.fromEntries(numbers) };
        }
        const stopReason = (value.delta as { stop_reason?: string | null } | undefined)?.stop_reason;
        if (!this.#finished) {
          this.#finished = true;
          chunks.push(this.#chunk({}, finishReason(stopReason, this.#toolCalls > 0)));
        }
        return;
      }
      case 'message_stop': {
        if (!this.#finished) {
          this.#finished = true;
          chunks.push(this.#chunk({}, finishReason(undefined, this.#toolCalls > 0)));
        }
        const usage = canonicalUsage(this.#usage);
        if (usage !== undefined) {
          chunks.push({
            id: this.#context.id,
            object: 'chat.completion.chunk',
            created: this.#context.created,
            model: this.#context.model,
            choices: [],
            usage,
          });
        }
        this.#done = true;
        return;
      }
      case 'error':
        throw anthropicStreamFailure(value.error, this.#context.targetName);
      default:
        // ping, and event types Anthropic may add: its docs ask clients to pass over unknown ones.
        return;
    }
  }

  #blockStart(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const index = value.index;
    const block = value.content_block as { type?: unknown; [field: string]: unknown } | undefined;
    if (typeof index !== 'number' || block === undefined) return;
    if (block.type === 'text') {
      if (typeof block.text === 'string' && block.text !== '')
        chunks.push(this.#chunk({ content: block.text }));
    } else if (block.type === 'tool_use' && block.name === jsonAnswerTool) {
      this.#blocks.set(index, { json: true, sentText: false });
    } else if (block.type === 'tool_use') {
      // Canonical indexes count tool calls alone: Anthropic's index counts text blocks too.
      const toolIndex = this.#toolCalls++;
      this.#blocks.set(index, { toolIndex, sentArguments: false });
      chunks.push(
        this.#toolChunk({
          index: toolIndex,
          id: String(block.id),
          type: 'function',
          function: { name: String(block.name), arguments: '' },
        }),
      );
    }
    // thinking, redacted_thinking and server tool blocks have no canonical counterpart.
  }

  #blockDelta(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const delta = value.delta as { type?: unknown; text?: unknown; partial_json?: unknown } | undefined;
    if (delta?.type === 'text_delta' && typeof delta.text === 'string') {
      if (delta.text !== '') chunks.push(this.#chunk({ content: delta.text }));
      return;
    }
    if (delta?.type !== 'input_json_delta' || typeof delta.partial_json !== 'string') return;
    const target = this.#blocks.get(value.index as number);
    // Anthropic opens each tool's input with an empty partial_json; it adds nothing.
    if (target === undefined || delta.partial_json === '') return;
    if ('json' in target) {
      target.sentText = true;
      chunks.push(this.#chunk({ content: delta.partial_json }));
    } else {
      target.sentArguments = true;
      chunks.push(this.#toolChunk({ index: target.toolIndex, function: { arguments: delta.partial_json } }));
    }
  }

  /** A tool input that streamed no JSON at all is the empty object, as in a whole answer. */
  #blockStop(value: Record<string, unknown>, chunks: ChatCompletionChunk[]): void {
    const target = this.#blocks.get(value.index as number);
    if (target === undefined) return;
    if ('json' in target) {
      if (!target.sentText) chunks.push(this.#chunk({ content: '{}' }));
    } else if (!target.sentArguments) {
      chunks.push(this.#toolChunk({ index: target.toolIndex, function: { arguments: '{}' } }));
    }
    this.#blocks.delete(value.index as number);
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
