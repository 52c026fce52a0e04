import { GatewayError } from '../../errors/index.js';
import { isJsonObject } from '../../spec/openai.js';
import type { EngineMessage, EngineResponseFormat } from '../engine/index.js';
import { checkFieldRules, invalid, parseKeepAliveField } from './request-fields.js';

/** A chat-completions body checked once at the edge; the route and engine trust it. */
export interface ChatRequest {
  readonly model: string;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly messages: readonly EngineMessage[];
  readonly maxTokens: number | undefined;
  readonly temperature: number | undefined;
  readonly topP: number | undefined;
  readonly topK: number | undefined;
  readonly seed: number | undefined;
  readonly frequencyPenalty: number | undefined;
  readonly presencePenalty: number | undefined;
  readonly stop: readonly string[] | undefined;
  readonly responseFormat: EngineResponseFormat | undefined;
  /** Ollama's `keep_alive`, in milliseconds (`Infinity` for forever); undefined keeps the model's. */
  readonly keepAliveMs: number | undefined;
}

/**
 * Checks a body against the shared OpenAI field rules, then against what a local model can do:
 * text content only, one choice, and response formats llama.cpp grammars can enforce.
 */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isJsonObject(body)) throw new GatewayError('invalid_body');
  checkFieldRules(body, 'chat/completions');
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw invalid('n', 'must be 1: the local runner generates one choice per request');
  }
  const topK = body.top_k;
  if (topK !== undefined && topK !== null && !(Number.isInteger(topK) && (topK as number) >= 0)) {
    throw invalid('top_k', 'must be an integer of at least 0');
  }
  const keepAliveMs = parseKeepAliveField(body.keep_alive);
  const streamOptions = body.stream_options as { include_usage?: unknown } | null | undefined;
  return {
    model: body.model as string,
    stream: body.stream === true,
    includeUsage: streamOptions?.include_usage === true,
    messages: parseMessages(body.messages as Record<string, unknown>[]),
    maxTokens: optionalNumber(body.max_completion_tokens) ?? optionalNumber(body.max_tokens),
    temperature: optionalNumber(body.temperature),
    topP: optionalNumber(body.top_p),
    topK: optionalNumber(topK),
    seed: optionalNumber(body.seed),
    frequencyPenalty: optionalNumber(body.frequency_penalty),
    presencePenalty: optionalNumber(body.presence_penalty),
    stop:
      typeof body.stop === 'string' ? [body.stop] : ((body.stop as string[] | null | undefined) ?? undefined),
    responseFormat: parseResponseFormat(body.response_format as Record<string, unknown> | null | undefined),
    keepAliveMs,
  };
}

/** A POST /v1/chat/count_tokens body: the prompt half of a chat request. */
export interface ChatCountRequest {
  readonly model: string;
  readonly messages: readonly EngineMessage[];
  /** Ollama's `keep_alive`, in milliseconds, as for a chat request: counting loads the model too. */
  readonly keepAliveMs: number | undefined;
}

/**
 * Checks a count body with the chat request's rules and words, so whatever a chat would refuse is
 * refused here, naming the same field. A client often counts the very body it is about to send,
 * so fields that shape only the answer (`max_tokens`, `stream`, …) are checked and then ignored.
 * `tools` is checked as an array and, as in a chat request, left out of the prompt: the runner
 * has no tool calling yet, so the count stays equal to the chat's `prompt_tokens`.
 *
 * @example
 * parseChatCountRequest({ model: 'demo', messages: [{ role: 'user', content: 'Hello' }] });
 */
export function parseChatCountRequest(body: unknown): ChatCountRequest {
  if (!isJsonObject(body)) throw new GatewayError('invalid_body');
  checkFieldRules(body, 'chat/completions');
  return {
    model: body.model as string,
    messages: parseMessages(body.messages as Record<string, unknown>[]),
    keepAliveMs: parseKeepAliveField(body.keep_alive),
  };
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function parseMessages(messages: readonly Record<string, unknown>[]): EngineMessage[] {
  return messages.map((message, index) => {
    const role = message.role as string;
    if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
      throw invalid(
        `messages[${index}].role`,
        'must be system, developer, user or assistant: the local runner has no tool calling yet',
      );
    }
    return { role, content: textOf(message.content, index) };
  });
}

function textOf(content: unknown, index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  // Array content: OpenAI's content parts; a local text model can read only the text ones.
  return (content as unknown[])
    .map((part, partIndex) => {
      if (isJsonObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
      throw invalid(
        `messages[${index}].content[${partIndex}]`,
        'must be a text part: this model reads text only',
      );
    })
    .join('');
}

function parseResponseFormat(
  format: Record<string, unknown> | null | undefined,
): EngineResponseFormat | undefined {
  if (format === undefined || format === null) return undefined;
  switch (format.type) {
    case 'text':
    case 'json_object':
      return { type: format.type };
    case 'json_schema': {
      const schema = isJsonObject(format.json_schema) ? format.json_schema.schema : undefined;
      if (!isJsonObject(schema)) {
        throw invalid('response_format.json_schema.schema', 'must be a JSON Schema object');
      }
      return { type: 'json_schema', schema };
    }
    default:
      throw invalid('response_format.type', 'must be "text", "json_object" or "json_schema"');
  }
}
