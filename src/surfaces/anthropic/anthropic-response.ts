import { GatewayError } from '../../errors/index.js';
import { argumentsObject } from '../../providers/translation-parts.js';
import type {
  AnthropicResponse,
  AnthropicResponseBlock,
  AnthropicStopReason,
  AnthropicUsage,
} from '../../spec/anthropic.js';
import type { ChatCompletion, ChatUsage, FinishReason, ToolCall } from '../../spec/openai-chat.js';

/**
 * A canonical completion as the Message a Claude SDK client expects from `POST /v1/messages`.
 * https://docs.anthropic.com/en/api/messages
 */

/**
 * Anthropic ids start "msg_". The canonical id ("chatcmpl-…", the one in the gateway's logs) keeps
 * its distinctive part, so the two can be matched; an id that already is Anthropic's is kept.
 */
export function anthropicMessageId(canonicalId: string): string {
  if (canonicalId.startsWith('msg_')) return canonicalId;
  return `msg_${canonicalId.replace(/^chatcmpl-/, '')}`;
}

/**
 * OpenAI counts cached prompt tokens inside prompt_tokens; Anthropic counts them apart from
 * input_tokens. OpenAI reports no cache writes, so cache_creation_input_tokens is 0.
 */
export function anthropicUsage(usage: ChatUsage | null | undefined): AnthropicUsage {
  const cached = usage?.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    input_tokens: Math.max(0, (usage?.prompt_tokens ?? 0) - cached),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: usage?.completion_tokens ?? 0,
  };
}

export interface AnthropicStop {
  readonly stop_reason: AnthropicStopReason;
  readonly stop_sequence: string | null;
}

/**
 * Anthropic's stop_reason for a finish_reason.
 *
 * - `stop` is a stop sequence when the upstream says which one matched: vLLM (and servers built
 *   like it) put the matched string in the choice's `stop_reason`; a number there is a stop token,
 *   which is an ordinary end of turn. Without that, OpenAI's "stop" cannot tell a stop sequence
 *   from the model's own end, and end_turn is the answer.
 * - A `stop` that came with tool calls is tool_use: some servers report "stop" there, and Claude
 *   clients run tools only on tool_use.
 * - `content_filter` is refusal, Anthropic's stop for an answer its safety systems ended.
 */
export function anthropicStop(
  finishReason: FinishReason | null | undefined,
  hasToolCalls: boolean,
  upstreamStopReason?: unknown,
): AnthropicStop {
  switch (finishReason) {
    case 'length':
      return { stop_reason: 'max_tokens', stop_sequence: null };
    case 'tool_calls':
    case 'function_call':
      return { stop_reason: 'tool_use', stop_sequence: null };
    case 'content_filter':
      return { stop_reason: 'refusal', stop_sequence: null };
  }
  if (hasToolCalls) return { stop_reason: 'tool_use', stop_sequence: null };
  if (finishReason === 'stop' && typeof upstreamStopReason === 'string' && upstreamStopReason !== '') {
    return { stop_reason: 'stop_sequence', stop_sequence: upstreamStopReason };
  }
  return { stop_reason: 'end_turn', stop_sequence: null };
}

/**
 * The Message for a non-streamed answer. `requestModel` is the model name the client asked for.
 * Throws GatewayError `upstream_bad_response` when the completion has no choice, or when a tool
 * call's arguments are not a JSON object (Anthropic's tool_use.input always is one; a guessed
 * `{}` would run the tool with arguments the model never gave, and the error is retryable).
 *
 * @example
 * reply.send(canonicalToAnthropic(completion, request.model));
 */
export function canonicalToAnthropic(completion: ChatCompletion, requestModel: string): AnthropicResponse {
  const choice = completion.choices[0];
  if (choice === undefined) {
    throw new GatewayError(
      'upstream_bad_response',
      'The upstream answered with no choices, so there is no message to return.',
    );
  }
  const id = anthropicMessageId(completion.id);
  const message = choice.message;
  const content: AnthropicResponseBlock[] = [];
  if (typeof message.content === 'string' && message.content !== '') {
    content.push({ type: 'text', text: message.content });
  }
  // An OpenAI refusal is the model's own words declining; an Anthropic client reads them as text.
  const refused = typeof message.refusal === 'string' && message.refusal !== '';
  if (refused) content.push({ type: 'text', text: message.refusal as string });
  const toolCalls = message.tool_calls ?? [];
  toolCalls.forEach((call, index) => {
    content.push({
      type: 'tool_use',
      id: call.id || `toolu_${id.slice('msg_'.length)}_${index}`,
      name: call.function.name,
      input: toolInput(call),
    });
  });
  const stop = refused
    ? { stop_reason: 'refusal' as const, stop_sequence: null }
    : anthropicStop(
        choice.finish_reason,
        toolCalls.length > 0,
        (choice as { stop_reason?: unknown }).stop_reason,
      );
  return {
    id,
    type: 'message',
    role: 'assistant',
    model: requestModel,
    content,
    stop_reason: stop.stop_reason,
    stop_sequence: stop.stop_sequence,
    usage: anthropicUsage(completion.usage),
  };
}

function toolInput(call: ToolCall): Record<string, unknown> {
  const text = call.function.arguments;
  const value = argumentsObject(text);
  if (value === undefined) {
    const excerpt = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    throw new GatewayError(
      'upstream_bad_response',
      `The model called tool "${call.function.name}" with arguments that are not a JSON object (${excerpt}). Retry the request.`,
    );
  }
  return value;
}
