import type { AnthropicCountTokensRequest } from '../../spec/anthropic.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import { conversationToCanonical, toolsToCanonical } from './anthropic-request.js';
import {
  invalidBody,
  isObject,
  parseMessages,
  parseModel,
  parseSystem,
  parseThinking,
  parseToolChoice,
  parseTools,
  rejectUnknownFields,
} from './conversation-fields.js';

/**
 * `POST /v1/messages/count_tokens`: the prompt half of a Messages request, checked with the same
 * rules and words. https://docs.anthropic.com/en/api/messages-count-tokens
 */

const knownFields = new Set(['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking']);

/**
 * Fields of a Messages request that only shape the answer. A client often counts the very body it
 * is about to send, so they are accepted and ignored here rather than refused: they change no
 * input token.
 */
const answerFields = new Set([
  'max_tokens',
  'stop_sequences',
  'stream',
  'temperature',
  'top_p',
  'top_k',
  'metadata',
  'service_tier',
]);

const acceptedFields = new Set([...knownFields, ...answerFields]);

/**
 * Checks a count_tokens body and returns it typed. Throws the same GatewayErrors as
 * parseAnthropicRequest; max_tokens is not required.
 *
 * @example
 * parseCountTokensRequest({ model: 'claude', messages: [{ role: 'user', content: 'Hi' }] });
 */
export function parseCountTokensRequest(body: unknown): AnthropicCountTokensRequest {
  if (!isObject(body)) {
    throw invalidBody('{"model": "…", "messages": [{"role": "user", "content": "Hello"}]}');
  }
  rejectUnknownFields(body, acceptedFields);
  const request: AnthropicCountTokensRequest = {
    model: parseModel(body.model),
    messages: parseMessages(body.messages),
  };
  const system = parseSystem(body.system);
  if (system !== undefined) request.system = system;
  const tools = parseTools(body.tools);
  if (tools !== undefined) request.tools = tools;
  const toolChoice = parseToolChoice(body.tool_choice, tools);
  if (toolChoice !== undefined) request.tool_choice = toolChoice;
  const thinking = parseThinking(body.thinking);
  if (thinking !== undefined) request.thinking = thinking;
  return request;
}

/**
 * The prompt as a canonical request, for counting with the model's own tokenizer or chat
 * template: the messages and tools the model would read, nothing about the answer.
 */
export function countTokensToCanonical(request: AnthropicCountTokensRequest): ChatRequest {
  return {
    model: request.model,
    messages: conversationToCanonical(request.system, request.messages),
    ...toolsToCanonical(request.tools, request.tool_choice),
  };
}
