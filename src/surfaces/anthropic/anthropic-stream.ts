import type { GatewayError } from '../../errors/index.js';
import { encodeSseEvent } from '../../providers/sse.js';
import type { AnthropicStreamEvent } from '../../spec/anthropic.js';
import type { ChatCompletionChunk, ChatUsage, ToolCallDelta } from '../../spec/openai-chat.js';
import { renderAnthropicStreamError } from './anthropic-errors.js';
import {
  type AnthropicStop,
  anthropicMessageId,
  anthropicStop,
  anthropicUsage,
} from './anthropic-response.js';

export interface AnthropicStreamEncoderOptions {
  /** The model name the client asked for. */
  readonly model: string;
  /** The answer's canonical id (TranslationContext.id); the message id is derived from it. */
  readonly id: string;
}

/**
 * Writes a canonical chunk stream (adapter.ts's contract: a role chunk, content and tool-call
 * deltas, a finish chunk, then a usage chunk with no choices) as Anthropic's Messages stream:
 *
 *   message_start → for each block: content_block_start, content_block_delta…, content_block_stop
 *   → message_delta (stop_reason, usage) → message_stop
 *
 * Text becomes a text block; each tool call a tool_use block whose arguments arrive as
 * input_json_delta. Anthropic's blocks follow one another, so a block is closed when the next one
 * begins. OpenAI reports usage only after the finish, so message_delta waits for the usage chunk
 * (or the end) and carries the input token counts as well as the output count.
 * https://docs.anthropic.com/en/docs/build-with-claude/streaming
 *
 * @example
 * const encoder = new AnthropicStreamEncoder({ model: request.model, id: context.id });
 * for (const chunk of decoder.push(bytes)) reply.raw.write(encoder.chunk(chunk));
 * reply.raw.end(encoder.end());
 */
export class AnthropicStreamEncoder {
  readonly #model: string;
  readonly #id: string;
  #started = false;
  #finished = false;
  #nextIndex = 0;
  /** The block now open: its Anthropic index, and whether it is text. */
  #open: { index: number; text: boolean } | undefined;
  /** Canonical tool-call index → the Anthropic index of its tool_use block. */
  readonly #toolBlocks = new Map<number, number>();
  #stop: AnthropicStop | undefined;
  #refused = false;
  #usage: ChatUsage | undefined;

  constructor(options: AnthropicStreamEncoderOptions) {
    this.#model = options.model;
    this.#id = anthropicMessageId(options.id);
  }

  /**
   * message_start, once; empty afterwards. chunk() and end() call it themselves; calling it
   * early lets the client see the stream begin before the model's first token.
   */
  start(): string {
    if (this.#started) return '';
    this.#started = true;
    const usage = anthropicUsage(this.#usage);
    return event({
      type: 'message_start',
      message: {
        id: this.#id,
        type: 'message',
        role: 'assistant',
        model: this.#model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // Anthropic counts the first output token here and the total in message_delta.
        usage: { ...usage, output_tokens: 1 },
      },
    });
  }

  /** The SSE text for one canonical chunk: often several events, sometimes none. */
  chunk(chunk: ChatCompletionChunk): string {
    if (this.#finished) return '';
    if (chunk.usage) this.#usage = chunk.usage;
    let text = this.start();
    for (const choice of chunk.choices) {
      // Anthropic has no `n`: the surface never asks for more than one choice.
      if (choice.index !== 0) continue;
      const delta = choice.delta;
      if (typeof delta.content === 'string' && delta.content !== '') text += this.#text(delta.content);
      if (typeof delta.refusal === 'string' && delta.refusal !== '') {
        this.#refused = true;
        text += this.#text(delta.refusal);
      }
      for (const call of delta.tool_calls ?? []) text += this.#toolCall(call);
      if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
        text += this.#close();
        this.#stop = anthropicStop(
          choice.finish_reason,
          this.#toolBlocks.size > 0,
          (choice as { stop_reason?: unknown }).stop_reason,
        );
      }
    }
    if (this.#stop !== undefined && this.#usage !== undefined) text += this.#finish();
    return text;
  }

  /**
   * The upstream stream ended: whatever is still owed (the open block, message_delta,
   * message_stop), so the client always sees a complete message. A stream that broke off goes
   * to streamError instead.
   */
  end(): string {
    if (this.#finished) return '';
    return this.start() + this.#finish();
  }

  /** An `event: error` in Anthropic's envelope; the stream is over after it. */
  streamError(error: GatewayError): string {
    if (this.#finished) return '';
    this.#finished = true;
    return renderAnthropicStreamError(error);
  }

  #text(text: string): string {
    let events = '';
    if (this.#open === undefined || !this.#open.text) {
      events += this.#close();
      const index = this.#nextIndex++;
      this.#open = { index, text: true };
      events += event({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
    }
    return (
      events +
      event({ type: 'content_block_delta', index: this.#open.index, delta: { type: 'text_delta', text } })
    );
  }

  #toolCall(call: ToolCallDelta): string {
    let events = '';
    let index = this.#toolBlocks.get(call.index);
    if (index === undefined) {
      events += this.#close();
      index = this.#nextIndex++;
      this.#toolBlocks.set(call.index, index);
      this.#open = { index, text: false };
      events += event({
        type: 'content_block_start',
        index,
        content_block: {
          type: 'tool_use',
          // Kept as the upstream gave it: the client sends it back in tool_result, and the
          // upstream must recognise its own id there.
          id: call.id || `toolu_${this.#id.slice('msg_'.length)}_${call.index}`,
          name: call.function?.name ?? '',
          input: {},
        },
      });
    }
    // A delta for a call whose block is already closed (an upstream interleaving parallel calls,
    // which the canonical contract does not forbid) still goes to that block's index: Anthropic's
    // SDKs accumulate by index, and dropping arguments would corrupt the call.
    const partial = call.function?.arguments;
    if (partial !== undefined && partial !== '') {
      events += event({
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: partial },
      });
    }
    return events;
  }

  #close(): string {
    if (this.#open === undefined) return '';
    const { index } = this.#open;
    this.#open = undefined;
    return event({ type: 'content_block_stop', index });
  }

  #finish(): string {
    this.#finished = true;
    let stop = this.#stop ?? anthropicStop(null, this.#toolBlocks.size > 0);
    if (this.#refused) stop = { stop_reason: 'refusal', stop_sequence: null };
    return (
      this.#close() +
      event({
        type: 'message_delta',
        delta: { stop_reason: stop.stop_reason, stop_sequence: stop.stop_sequence },
        // Cumulative totals; Anthropic's SDKs take input counts from here when message_start had none.
        usage: this.#usage === undefined ? { output_tokens: 0 } : anthropicUsage(this.#usage),
      }) +
      event({ type: 'message_stop' })
    );
  }
}

function event(value: AnthropicStreamEvent): string {
  return encodeSseEvent(JSON.stringify(value), value.type);
}
