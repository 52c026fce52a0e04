import type {
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicTextBlock,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
} from '../../spec/anthropic.js';
import type {
  AssistantMessage,
  ChatMessage,
  ChatRequest,
  ContentPart,
  FunctionTool,
  ImagePart,
  TextPart,
  ToolCall,
  ToolMessage,
} from '../../spec/openai-chat.js';
import {
  type AnthropicToolDefinition,
  invalidBody,
  invalidField,
  isObject,
  missingField,
  parseMessages,
  parseModel,
  parseSystem,
  parseThinking,
  parseToolChoice,
  parseTools,
  present,
  rejectUnknownFields,
} from './conversation-fields.js';

/**
 * The Anthropic surface's way in: a Claude SDK client's `POST /v1/messages` body, checked the way
 * Anthropic checks it, then translated into Switchyard's canonical (OpenAI chat-completions)
 * request that every adapter understands. https://docs.anthropic.com/en/api/messages
 */

const knownFields = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'stop_sequences',
  'stream',
  'temperature',
  'top_p',
  'top_k',
  'tools',
  'tool_choice',
  'metadata',
  'thinking',
  'service_tier',
]);

// Anthropic's documented limit on metadata.user_id.
const maxUserIdLength = 256;

/**
 * Checks a Messages request body and returns it typed, holding only the fields it defines.
 * Throws GatewayError `invalid_body`, `missing_field` or `invalid_field` (a 400 naming the field,
 * "messages.1.content.0.type: …") or `unsupported_param` for an Anthropic-only feature.
 *
 * @example
 * const request = parseAnthropicRequest({ model: 'claude', max_tokens: 256, messages: [{ role: 'user', content: 'Hi' }] });
 */
export function parseAnthropicRequest(body: unknown): AnthropicRequest {
  if (!isObject(body)) {
    throw invalidBody(
      '{"model": "…", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}',
    );
  }
  rejectUnknownFields(body, knownFields);
  const request: AnthropicRequest = {
    model: parseModel(body.model),
    messages: parseMessages(body.messages),
    max_tokens: parseMaxTokens(body.max_tokens),
  };
  const system = parseSystem(body.system);
  if (system !== undefined) request.system = system;
  if (present(body.stop_sequences)) request.stop_sequences = parseStopSequences(body.stop_sequences);
  if (present(body.stream)) {
    if (typeof body.stream !== 'boolean') throw invalidField('stream', 'must be true or false');
    request.stream = body.stream;
  }
  if (present(body.temperature)) request.temperature = numberFrom(body.temperature, 'temperature', 0, 1);
  if (present(body.top_p)) request.top_p = numberFrom(body.top_p, 'top_p', 0, 1);
  if (present(body.top_k)) {
    if (!Number.isInteger(body.top_k) || (body.top_k as number) < 0) {
      throw invalidField('top_k', 'must be an integer of at least 0');
    }
    request.top_k = body.top_k as number;
  }
  const tools = parseTools(body.tools);
  if (tools !== undefined) request.tools = tools;
  const toolChoice = parseToolChoice(body.tool_choice, tools);
  if (toolChoice !== undefined) request.tool_choice = toolChoice;
  if (present(body.metadata)) request.metadata = parseMetadata(body.metadata);
  const thinking = parseThinking(body.thinking);
  if (thinking !== undefined) {
    if (thinking.type === 'enabled' && thinking.budget_tokens >= request.max_tokens) {
      throw invalidField(
        'thinking.budget_tokens',
        `must be less than max_tokens (${request.max_tokens}), which counts thinking and answer together`,
      );
    }
    request.thinking = thinking;
  }
  // service_tier chooses between Anthropic's capacity pools; it has no meaning for another model
  // and changes nothing in the answer, so it is checked and then not carried.
  if (present(body.service_tier) && body.service_tier !== 'auto' && body.service_tier !== 'standard_only') {
    throw invalidField('service_tier', 'must be "auto" or "standard_only"');
  }
  return request;
}

function parseMaxTokens(value: unknown): number {
  if (!present(value)) {
    throw missingField('max_tokens', 'give the most tokens the answer may have, such as 1024');
  }
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw invalidField('max_tokens', 'must be an integer of at least 1');
  }
  return value as number;
}

function parseStopSequences(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalidField('stop_sequences', 'must be an array of strings such as ["\\n\\nHuman:"]');
  }
  return value as string[];
}

function numberFrom(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidField(path, `must be a number from ${min} to ${max}`);
  }
  return value;
}

function parseMetadata(value: unknown): { user_id?: string | null } {
  if (!isObject(value)) throw invalidField('metadata', 'must be an object such as {"user_id": "…"}');
  for (const key of Object.keys(value)) {
    if (key !== 'user_id')
      throw invalidField(`metadata.${key}`, 'is not accepted; metadata holds only "user_id"');
  }
  const userId = value.user_id;
  if (!present(userId)) return {};
  if (typeof userId !== 'string' || userId.length > maxUserIdLength) {
    throw invalidField('metadata.user_id', `must be a string of at most ${maxUserIdLength} characters`);
  }
  return { user_id: userId };
}

/**
 * The canonical request for a checked Messages request.
 *
 * - `system` becomes the first message; user and assistant content becomes content parts
 *   (a base64 image a data URL); tool_use blocks become the assistant's tool_calls.
 * - tool_result blocks become `tool` messages, placed before the rest of their user turn, as
 *   OpenAI needs them directly after the assistant's tool_calls.
 * - thinking blocks are dropped: their signatures mean something only to Anthropic, and other
 *   models take no reasoning as input.
 * - `top_k` and `thinking` have no OpenAI field and travel as extension fields of the same name;
 *   an adapter that cannot honour them declares them unsupported.
 * - A stream always asks for usage, which Anthropic's events report whether or not a client wants it.
 */
export function anthropicToCanonical(request: AnthropicRequest): ChatRequest {
  const canonical: ChatRequest = {
    model: request.model,
    messages: conversationToCanonical(request.system, request.messages),
    max_tokens: request.max_tokens,
  };
  if (request.stream === true) {
    canonical.stream = true;
    canonical.stream_options = { include_usage: true };
  }
  if (request.temperature !== undefined) canonical.temperature = request.temperature;
  if (request.top_p !== undefined) canonical.top_p = request.top_p;
  if (request.top_k !== undefined) canonical.top_k = request.top_k;
  if (request.stop_sequences !== undefined && request.stop_sequences.length > 0) {
    canonical.stop = [...request.stop_sequences];
  }
  Object.assign(canonical, toolsToCanonical(request.tools, request.tool_choice));
  const userId = request.metadata?.user_id;
  if (typeof userId === 'string') canonical.user = userId;
  // "disabled" is every model's default, so only an enabled budget is worth carrying.
  if (request.thinking?.type === 'enabled') canonical.thinking = { ...request.thinking };
  return canonical;
}

/** tools, tool_choice and parallel_tool_calls, each left out when it would say nothing. */
export function toolsToCanonical(
  tools: readonly AnthropicToolDefinition[] | undefined,
  choice: AnthropicToolChoice | undefined,
): Pick<ChatRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'> {
  // OpenAI refuses tool_choice and parallel_tool_calls without tools; Anthropic's "auto" and
  // "none" say nothing then anyway ("any" and "tool" without tools never get past the parser).
  if (tools === undefined || tools.length === 0) return {};
  const result: Pick<ChatRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'> = {
    tools: tools.map((tool): FunctionTool => {
      const definition: FunctionTool['function'] = { name: tool.name, parameters: tool.input_schema };
      if (tool.description !== undefined) definition.description = tool.description;
      if (tool.strict !== undefined) definition.strict = tool.strict;
      return { type: 'function', function: definition };
    }),
  };
  if (choice === undefined) return result;
  switch (choice.type) {
    case 'auto':
      result.tool_choice = 'auto';
      break;
    case 'any':
      result.tool_choice = 'required';
      break;
    case 'tool':
      result.tool_choice = { type: 'function', function: { name: choice.name } };
      break;
    case 'none':
      result.tool_choice = 'none';
      break;
  }
  if (choice.type !== 'none' && choice.disable_parallel_tool_use === true) result.parallel_tool_calls = false;
  return result;
}

/** The system prompt and conversation as canonical messages; count_tokens uses it too. */
export function conversationToCanonical(
  system: string | readonly AnthropicTextBlock[] | undefined,
  messages: readonly AnthropicMessage[],
): ChatMessage[] {
  const canonical: ChatMessage[] = [];
  if (typeof system === 'string') {
    if (system !== '') canonical.push({ role: 'system', content: system });
  } else if (system !== undefined && system.length > 0) {
    canonical.push({ role: 'system', content: system.map(textPart) });
  }
  // Consecutive messages of one role are one turn to Anthropic; translating a turn at a time
  // keeps each turn's tool results next to the tool calls they answer.
  let start = 0;
  while (start < messages.length) {
    const role = messages[start]!.role;
    let end = start;
    while (end < messages.length && messages[end]!.role === role) end++;
    const turn = messages.slice(start, end);
    if (role === 'assistant') {
      const message = assistantTurn(turn);
      if (message !== undefined) canonical.push(message);
    } else {
      canonical.push(...userTurn(turn));
    }
    start = end;
  }
  return canonical;
}

/**
 * One assistant message for the turn: OpenAI wants a turn's tool calls on one message, which the
 * tool messages then follow. Text keeps its shape: a lone string stays a string, blocks become parts.
 */
function assistantTurn(turn: readonly AnthropicMessage[]): AssistantMessage | undefined {
  const only = turn.length === 1 ? turn[0]!.content : undefined;
  if (typeof only === 'string') return only === '' ? undefined : { role: 'assistant', content: only };
  const parts: TextPart[] = [];
  const toolCalls: ToolCall[] = [];
  for (const message of turn) {
    if (typeof message.content === 'string') {
      if (message.content !== '') parts.push({ type: 'text', text: message.content });
      continue;
    }
    for (const block of message.content) {
      if (block.type === 'text') parts.push(textPart(block));
      else if (block.type === 'tool_use') {
        toolCalls.push({
          id: block.id,
          type: 'function',
          function: { name: block.name, arguments: JSON.stringify(block.input) },
        });
      }
    }
  }
  if (parts.length === 0 && toolCalls.length === 0) return undefined;
  const message: AssistantMessage = { role: 'assistant', content: parts.length > 0 ? parts : null };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return message;
}

/**
 * The turn's tool results first, as `tool` messages in their order; then, since a `tool` message
 * holds only text, any images the results returned, in a user message that says which call each
 * came from; then the turn's own messages.
 */
function userTurn(turn: readonly AnthropicMessage[]): ChatMessage[] {
  const toolMessages: ToolMessage[] = [];
  const resultImages: ContentPart[] = [];
  const userMessages: ChatMessage[] = [];
  for (const message of turn) {
    if (typeof message.content === 'string') {
      userMessages.push({ role: 'user', content: message.content });
      continue;
    }
    const parts: ContentPart[] = [];
    for (const block of message.content) {
      if (block.type === 'tool_result') toolMessages.push(toolMessage(block, resultImages));
      else if (block.type === 'text') parts.push(textPart(block));
      else if (block.type === 'image') parts.push(imagePart(block));
    }
    if (parts.length > 0) userMessages.push({ role: 'user', content: parts });
  }
  const messages: ChatMessage[] = toolMessages;
  if (resultImages.length > 0) messages.push({ role: 'user', content: resultImages });
  messages.push(...userMessages);
  return messages;
}

/**
 * A `tool` message carries text only, so its content is the result's text blocks joined by
 * newlines. OpenAI has no is_error flag: a failed call's text starts with "Error: " (unless it
 * already says so), because a model that cannot tell a failure from an answer would act on it.
 */
function toolMessage(block: AnthropicToolResultBlock, images: ContentPart[]): ToolMessage {
  let text: string;
  if (block.content === undefined) text = '';
  else if (typeof block.content === 'string') text = block.content;
  else {
    const texts: string[] = [];
    let labelled = false;
    for (const item of block.content) {
      if (item.type === 'text') texts.push(item.text);
      else {
        if (!labelled) {
          images.push({ type: 'text', text: `Images from the result of tool call ${block.tool_use_id}:` });
          labelled = true;
        }
        images.push(imagePart(item));
      }
    }
    text = texts.join('\n');
  }
  if (block.is_error === true && !/^error\b/i.test(text)) text = text === '' ? 'Error' : `Error: ${text}`;
  return { role: 'tool', tool_call_id: block.tool_use_id, content: text };
}

function textPart(block: AnthropicTextBlock): TextPart {
  return { type: 'text', text: block.text };
}

function imagePart(block: AnthropicImageBlock): ImagePart {
  const source = block.source;
  const url = source.type === 'base64' ? `data:${source.media_type};base64,${source.data}` : source.url;
  return { type: 'image_url', image_url: { url } };
}
