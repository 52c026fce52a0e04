import { GatewayError } from '../../errors/index.js';
import {
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  contentText,
  type ImagePart,
  requestedMaxTokens,
  type TextPart,
} from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import type { PreparedAdapterTarget, UnsupportedParam, UpstreamCall } from '../adapter.js';
import { callArgumentsObject } from '../translation-parts.js';
import type {
  OllamaChatRequest,
  OllamaEmbedRequest,
  OllamaMessage,
  OllamaOptions,
  OllamaToolCall,
} from './ollama-wire.js';

/**
 * Canonical (OpenAI) requests → Ollama's native API. Ollama's /v1 endpoints speak OpenAI's
 * schema and need no adapter; this one exists for what only the native API has: JSON-schema
 * `format`, `keep_alive`, `think`, runtime `options` such as num_ctx, and token counts on every
 * stream. https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
 */

/** A base64 data URL, the only image form Ollama takes; its payload follows the comma. */
const base64DataUrl = /^data:[^,;]*(?:;[^,;]*)*;base64,/i;

/** What Ollama's chat API cannot carry, each with the reason (see ChatAdapter.unsupportedParams). */
export function ollamaUnsupportedParams(request: ChatRequest): UnsupportedParam[] {
  const unsupported: UnsupportedParam[] = [];
  if (typeof request.n === 'number' && request.n > 1) {
    unsupported.push({ param: 'n', reason: "Ollama's /api/chat generates one choice per request" });
  }
  if (request.logit_bias && Object.keys(request.logit_bias).length > 0) {
    unsupported.push({ param: 'logit_bias', reason: 'Ollama has no logit bias' });
  }
  const choice = request.tool_choice;
  if (choice !== undefined && choice !== null && choice !== 'auto' && choice !== 'none') {
    unsupported.push({
      param: 'tool_choice',
      reason:
        'Ollama cannot force a tool call: the model alone decides whether to call one, so only "auto" and "none" can be honoured',
    });
  }
  if (request.parallel_tool_calls === false) {
    unsupported.push({
      param: 'parallel_tool_calls',
      reason: 'Ollama cannot limit the model to one tool call per turn',
    });
  }
  if (Array.isArray(request.modalities) && request.modalities.includes('audio')) {
    unsupported.push({ param: 'modalities', reason: 'Ollama answers in text only' });
  }
  request.messages.forEach((message, messageIndex) => {
    if (!Array.isArray(message.content)) return;
    message.content.forEach((part: ContentPart, partIndex) => {
      const why = unsupportedPartReason(part);
      if (why !== undefined)
        unsupported.push({ param: partParam(messageIndex, partIndex, part), reason: why });
    });
  });
  return unsupported;
}

function unsupportedPartReason(part: ContentPart): string | undefined {
  if (part.type === 'text') return undefined;
  if (part.type === 'image_url') {
    const url = (part as ImagePart).image_url?.url;
    if (typeof url === 'string' && base64DataUrl.test(url)) return undefined;
    return 'Ollama takes images as base64 only and fetches no URLs; send the image as a data URL (data:image/png;base64,…)';
  }
  return `Ollama's chat API takes text and images; a "${part.type}" part cannot be sent`;
}

function partParam(messageIndex: number, partIndex: number, part: ContentPart): string {
  const path = `messages[${messageIndex}].content[${partIndex}]`;
  return part.type === 'image_url' ? `${path}.image_url.url` : path;
}

/**
 * The /api/chat body. Whatever `ollamaUnsupportedParams` reports is left out here: the gateway
 * only gets this far with such a parameter when the model says drop_unsupported_params, and it
 * can remove top-level fields only, not one content part among many.
 */
export function ollamaChatRequest(
  request: ChatRequest,
  target: PreparedAdapterTarget,
  upstreamModel: string,
): UpstreamCall {
  const body: OllamaChatRequest = {
    model: upstreamModel,
    messages: ollamaMessages(request.messages),
    // Ollama streams unless told otherwise, so the choice is always spelled out.
    stream: request.stream === true,
  };

  const format = ollamaFormat(request);
  if (format !== undefined) body.format = format;

  // Ollama has no tool_choice; "none" is honoured by not offering the tools at all.
  if (request.tools && request.tools.length > 0 && request.tool_choice !== 'none') {
    body.tools = request.tools.map((tool) => ({
      type: 'function',
      function: {
        name: tool.function.name,
        ...(tool.function.description !== undefined && { description: tool.function.description }),
        ...(tool.function.parameters !== undefined && { parameters: tool.function.parameters }),
      },
    }));
  }

  const options = ollamaOptions(request);
  if (options !== undefined) body.options = options;

  const keepAlive = request.keep_alive;
  if (keepAlive !== undefined && keepAlive !== null) {
    if (typeof keepAlive !== 'string' && typeof keepAlive !== 'number') {
      throw invalidField('keep_alive', 'a duration such as "5m", or a number of seconds');
    }
    body.keep_alive = keepAlive;
  }

  const think = ollamaThink(request.reasoning_effort);
  if (think !== undefined) body.think = think;

  if (request.logprobs === true) {
    body.logprobs = true;
    if (typeof request.top_logprobs === 'number') body.top_logprobs = request.top_logprobs;
  }

  return {
    path: `${target.config.basePath}/api/chat`,
    headers: target.headers,
    body: JSON.stringify(body),
  };
}

function ollamaMessages(messages: readonly ChatMessage[]): OllamaMessage[] {
  // Ollama pairs a tool result with its call by the function's name, which OpenAI's tool
  // messages do not repeat: it is found from the assistant turn that made the call.
  const toolNames = new Map<string, string>();
  return messages.map((message, messageIndex) => {
    switch (message.role) {
      case 'system':
      case 'developer':
        // Ollama has no developer role; OpenAI itself treats it as the system prompt.
        return { role: 'system', content: contentText(message.content) };
      case 'user':
        return withParts({ role: 'user', content: '' }, message.content);
      case 'assistant': {
        const text = contentText(message.content);
        const ollama: OllamaMessage = {
          role: 'assistant',
          // A refusal replayed in the history is what the assistant said.
          content: text === '' && typeof message.refusal === 'string' ? message.refusal : text,
        };
        if (message.tool_calls && message.tool_calls.length > 0) {
          ollama.tool_calls = message.tool_calls.map((call, callIndex): OllamaToolCall => {
            toolNames.set(call.id, call.function.name);
            return {
              id: call.id,
              function: {
                name: call.function.name,
                arguments: callArgumentsObject(call.function.arguments, messageIndex, callIndex, 'Ollama'),
              },
            };
          });
        }
        return ollama;
      }
      case 'tool': {
        const ollama = withParts({ role: 'tool', content: '' }, message.content);
        const name = toolNames.get(message.tool_call_id);
        if (name !== undefined) ollama.tool_name = name;
        // Newer Ollama versions match results by id too; older ones ignore the field.
        ollama.tool_call_id = message.tool_call_id;
        return ollama;
      }
      default:
        throw invalidField(
          `messages[${messageIndex}].role`,
          'one of "system", "developer", "user", "assistant" or "tool"',
        );
    }
  });
}

/** Text parts become the content, base64 images its `images`; other parts were reported. */
function withParts(message: OllamaMessage, content: string | readonly ContentPart[]): OllamaMessage {
  if (typeof content === 'string') {
    message.content = content;
    return message;
  }
  const images: string[] = [];
  for (const part of content) {
    if (part.type === 'text') message.content += (part as TextPart).text;
    else if (part.type === 'image_url') {
      const url = (part as ImagePart).image_url?.url;
      const prefix = typeof url === 'string' ? base64DataUrl.exec(url) : null;
      if (prefix !== null) images.push(url!.slice(prefix[0].length));
    }
  }
  if (images.length > 0) message.images = images;
  return message;
}

function ollamaFormat(request: ChatRequest): OllamaChatRequest['format'] {
  const format = request.response_format;
  if (format === undefined || format === null) return undefined;
  if (format.type === 'json_object') return 'json';
  if (format.type === 'json_schema') {
    // Ollama constrains the output to the schema itself, so strict is honoured whatever its value.
    const schema = (format as { json_schema?: { schema?: Record<string, unknown> } }).json_schema?.schema;
    return schema ?? 'json';
  }
  return undefined;
}

function ollamaOptions(request: ChatRequest): OllamaOptions | undefined {
  const extra = request.options;
  if (extra !== undefined && extra !== null && (typeof extra !== 'object' || Array.isArray(extra))) {
    throw invalidField('options', 'an object of Ollama\'s model options, such as { "num_ctx": 8192 }');
  }
  // Ollama's own options (num_ctx, min_p, repeat_penalty …) pass through; the canonical fields,
  // being explicit, win where both name the same setting.
  const options: OllamaOptions = { ...(extra as Record<string, unknown> | null | undefined) };
  const maxTokens = requestedMaxTokens(request);
  if (maxTokens !== undefined) options.num_predict = maxTokens;
  if (typeof request.temperature === 'number') options.temperature = request.temperature;
  if (typeof request.top_p === 'number') options.top_p = request.top_p;
  if (request.top_k !== undefined && request.top_k !== null) {
    if (typeof request.top_k !== 'number') throw invalidField('top_k', 'a whole number');
    options.top_k = request.top_k;
  }
  if (typeof request.seed === 'number') options.seed = request.seed;
  if (typeof request.stop === 'string') options.stop = [request.stop];
  else if (Array.isArray(request.stop) && request.stop.length > 0) options.stop = request.stop;
  if (typeof request.presence_penalty === 'number') options.presence_penalty = request.presence_penalty;
  if (typeof request.frequency_penalty === 'number') options.frequency_penalty = request.frequency_penalty;
  return Object.keys(options).length > 0 ? options : undefined;
}

/**
 * reasoning_effort → `think`. Ollama takes a level ("low" | "medium" | "high") for models that
 * have levels (gpt-oss) and reads any level as "on" for other thinking models. It has no
 * "minimal": the nearest level is "low". "none" (OpenAI's newer value) turns thinking off.
 * Without reasoning_effort, `think` is not sent and the model's own default applies.
 */
function ollamaThink(effort: unknown): OllamaChatRequest['think'] {
  switch (effort) {
    case 'minimal':
    case 'low':
      return 'low';
    case 'medium':
    case 'high':
      return effort;
    case 'none':
      return false;
    default:
      return undefined;
  }
}

/** The /api/embed body. Token-id inputs and base64 output cannot be carried: 400 naming them. */
export function ollamaEmbedRequest(
  request: EmbeddingsRequest,
  target: PreparedAdapterTarget,
  upstreamModel: string,
): UpstreamCall {
  const { input } = request;
  const isText =
    typeof input === 'string' || (Array.isArray(input) && input.every((item) => typeof item === 'string'));
  if (!isText) {
    throw new GatewayError(
      'unsupported_param',
      'Ollama embeds text only; token-id inputs cannot be sent to it. Send the text instead.',
      { param: 'input' },
    );
  }
  if (request.encoding_format === 'base64') {
    throw new GatewayError(
      'unsupported_param',
      'Ollama returns embeddings as floats only; leave out encoding_format or set it to "float".',
      { param: 'encoding_format' },
    );
  }
  const body: OllamaEmbedRequest = { model: upstreamModel, input: input as string | string[] };
  if (typeof request.truncate === 'boolean') body.truncate = request.truncate;
  if (typeof request.dimensions === 'number') body.dimensions = request.dimensions;
  if (typeof request.keep_alive === 'string' || typeof request.keep_alive === 'number') {
    body.keep_alive = request.keep_alive;
  }
  if (request.options !== null && typeof request.options === 'object' && !Array.isArray(request.options)) {
    body.options = request.options as Record<string, unknown>;
  }
  return {
    path: `${target.config.basePath}/api/embed`,
    headers: target.headers,
    body: JSON.stringify(body),
  };
}

function invalidField(param: string, expected: string): GatewayError {
  return new GatewayError('invalid_field', `"${param}" must be ${expected}.`, { param });
}
