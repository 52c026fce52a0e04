import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import {
  type AnthropicImageBlock,
  type AnthropicMessage,
  type AnthropicRequest,
  type AnthropicRequestBlock,
  type AnthropicTextBlock,
  type AnthropicTool,
  type AnthropicToolChoice,
  anthropicVersion,
} from '../../spec/anthropic.js';
import {
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  contentText,
  type FunctionTool,
  type ImagePart,
  type ResponseFormat,
  requestedMaxTokens,
  type TextPart,
} from '../../spec/openai-chat.js';
import type { UnsupportedParam } from '../adapter.js';
import { functionOfTool, jsonAnswerTool } from '../translation-parts.js';

/**
 * max_tokens when neither the client nor the target's `default_max_tokens` gives one. Anthropic
 * requires the field; 4096 is an answer's worth for every current Claude model (each allows at
 * least that much output) without reserving a long answer's budget for every short question.
 */
export const defaultMaxTokens = 4096;

/** Content-Type, the configured headers, the key as x-api-key, and anthropic-version. */
export function anthropicHeaders(config: TargetConfig): string[] {
  const headers: string[] = ['content-type', 'application/json'];
  // A configured anthropic-version replaces ours rather than joining it: two values would be
  // rejected, and an operator pinning another version means it.
  let version: string = anthropicVersion;
  for (const [name, value] of Object.entries(config.headers)) {
    const lower = name.toLowerCase();
    if (lower === 'content-type' || lower === 'content-length' || lower === 'host') continue;
    // The target's api_key is the credential; a configured header must not send a second one.
    if (lower === 'x-api-key' && config.apiKey !== undefined) continue;
    if (lower === 'anthropic-version') {
      version = value;
      continue;
    }
    // Everything else, anthropic-beta included, goes as configured.
    headers.push(lower, value);
  }
  if (config.apiKey !== undefined) headers.push('x-api-key', config.apiKey);
  headers.push('anthropic-version', version);
  return headers;
}

/** The canonical parameters Anthropic's Messages API cannot carry, each with the reason. */
export function anthropicUnsupportedParams(request: ChatRequest): UnsupportedParam[] {
  const found: UnsupportedParam[] = [];
  if (typeof request.n === 'number' && request.n > 1) {
    found.push({ param: 'n', reason: "Anthropic's Messages API returns one answer per request" });
  }
  if (request.logprobs === true) {
    found.push({ param: 'logprobs', reason: "Anthropic's Messages API returns no log probabilities" });
  }
  if (typeof request.top_logprobs === 'number' && request.top_logprobs > 0) {
    found.push({ param: 'top_logprobs', reason: "Anthropic's Messages API returns no log probabilities" });
  }
  if (request.seed !== undefined && request.seed !== null) {
    found.push({ param: 'seed', reason: "Anthropic's Messages API has no seed for reproducible sampling" });
  }
  // A zero penalty or an empty bias asks for nothing, so only a real one is refused.
  if (typeof request.presence_penalty === 'number' && request.presence_penalty !== 0) {
    found.push({ param: 'presence_penalty', reason: "Anthropic's Messages API has no presence penalty" });
  }
  if (typeof request.frequency_penalty === 'number' && request.frequency_penalty !== 0) {
    found.push({ param: 'frequency_penalty', reason: "Anthropic's Messages API has no frequency penalty" });
  }
  if (request.logit_bias && Object.keys(request.logit_bias).length > 0) {
    found.push({ param: 'logit_bias', reason: "Anthropic's Messages API has no token biasing" });
  }
  if (typeof request.temperature === 'number' && request.temperature > 1) {
    found.push({
      param: 'temperature',
      reason:
        "Anthropic's temperature ranges from 0 to 1; OpenAI's values above 1 have no equivalent, and clamping would change the sampling asked for",
    });
  }
  if (request.audio !== undefined && request.audio !== null) {
    found.push({ param: 'audio', reason: "Anthropic's Messages API produces no audio" });
  }
  if (Array.isArray(request.modalities) && request.modalities.some((modality) => modality !== 'text')) {
    found.push({ param: 'modalities', reason: "Anthropic's Messages API answers in text only" });
  }
  if (request.reasoning_effort !== undefined && request.reasoning_effort !== null) {
    found.push({
      param: 'reasoning_effort',
      reason:
        "Anthropic's extended thinking needs its signed thinking blocks sent back on every tool-use turn, which OpenAI-shaped messages cannot carry, and it forbids forced tool choice and a temperature other than 1; call the Anthropic surface (/v1/messages) with `thinking` instead",
    });
  }
  if (request.web_search_options !== undefined && request.web_search_options !== null) {
    found.push({
      param: 'web_search_options',
      reason:
        "Anthropic's web search is a server tool with its own result blocks, not OpenAI's search options",
    });
  }
  return found;
}

/**
 * The Messages API body for a canonical request. Parameters listed by anthropicUnsupportedParams
 * are never sent (the gateway has refused or dropped them before this runs).
 *
 * @example
 * anthropicRequest({ model: 'claude', messages: [{ role: 'user', content: 'Hi' }] }, config, 'claude-sonnet-4-5')
 * // → { model: 'claude-sonnet-4-5', max_tokens: 4096, messages: [{ role: 'user', content: 'Hi' }] }
 */
export function anthropicRequest(
  request: ChatRequest,
  config: TargetConfig,
  upstreamModel: string,
): AnthropicRequest {
  const { system, messages } = translateMessages(request.messages);
  const body: AnthropicRequest = {
    model: upstreamModel,
    max_tokens: requestedMaxTokens(request) ?? config.defaultMaxTokens ?? defaultMaxTokens,
    messages,
  };
  if (system !== undefined) body.system = system;
  if (typeof request.stop === 'string') body.stop_sequences = [request.stop];
  else if (Array.isArray(request.stop) && request.stop.length > 0) body.stop_sequences = request.stop;
  if (typeof request.temperature === 'number') body.temperature = request.temperature;
  if (typeof request.top_p === 'number') body.top_p = request.top_p;
  // top_k is no OpenAI parameter, but OpenAI-shaped clients of vLLM and others send it, and it
  // means the same thing here.
  if (typeof request.top_k === 'number') body.top_k = request.top_k;
  if (typeof request.user === 'string' && request.user !== '') body.metadata = { user_id: request.user };
  Object.assign(body, translateTools(request));
  if (request.stream === true) body.stream = true;
  return body;
}

interface Turn {
  role: 'user' | 'assistant';
  blocks: AnthropicRequestBlock[];
}

/**
 * Anthropic takes the system prompt as a top-level field and requires user and assistant turns
 * to alternate, with tool results inside a user turn. So system and developer messages are
 * hoisted (in order), tool messages become tool_result blocks, and neighbouring messages of one
 * role are merged into one turn.
 */
function translateMessages(messages: readonly ChatMessage[]): {
  system: string | AnthropicTextBlock[] | undefined;
  messages: AnthropicMessage[];
} {
  const systemBlocks: AnthropicTextBlock[] = [];
  const turns: Turn[] = [];
  const append = (role: Turn['role'], blocks: AnthropicRequestBlock[]): void => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.blocks.push(...blocks);
    else turns.push({ role, blocks });
  };

  messages.forEach((message, index) => {
    switch (message.role) {
      case 'system':
      case 'developer':
        systemBlocks.push(...textBlocks(message.content));
        break;
      case 'user':
        append('user', userBlocks(message.content, index));
        break;
      case 'assistant': {
        const blocks: AnthropicRequestBlock[] = textBlocks(message.content ?? null);
        // A refusal in the history is what the assistant said; without it the turn would vanish.
        if (blocks.length === 0 && typeof message.refusal === 'string' && message.refusal !== '') {
          blocks.push({ type: 'text', text: message.refusal });
        }
        message.tool_calls?.forEach((call, position) => {
          blocks.push({
            type: 'tool_use',
            id: call.id,
            name: call.function.name,
            input: toolInput(
              call.function.arguments,
              `messages[${index}].tool_calls[${position}].function.arguments`,
            ),
          });
        });
        append('assistant', blocks);
        break;
      }
      case 'tool': {
        const text = contentText(message.content);
        append('user', [
          {
            type: 'tool_result',
            tool_use_id: message.tool_call_id,
            ...(text === '' ? {} : { content: text }),
          },
        ]);
        break;
      }
    }
  });

  return { system: systemPrompt(systemBlocks), messages: turns.map(toMessage) };
}

function toMessage(turn: Turn): AnthropicMessage {
  let blocks = turn.blocks;
  // Anthropic wants a user turn's tool results before anything else in it; a user message that
  // follows tool messages (merged into their turn) keeps its place after them.
  if (turn.role === 'user' && blocks.some((block) => block.type === 'tool_result')) {
    blocks = [
      ...blocks.filter((block) => block.type === 'tool_result'),
      ...blocks.filter((block) => block.type !== 'tool_result'),
    ];
  }
  const only = blocks[0];
  if (blocks.length === 1 && only?.type === 'text' && only.cache_control === undefined) {
    return { role: turn.role, content: only.text };
  }
  return { role: turn.role, content: blocks };
}

/** One string, unless a part asks for prompt caching, which only blocks can carry. */
function systemPrompt(blocks: AnthropicTextBlock[]): string | AnthropicTextBlock[] | undefined {
  if (blocks.length === 0) return undefined;
  if (blocks.some((block) => block.cache_control !== undefined)) return blocks;
  return blocks.map((block) => block.text).join('\n\n');
}

/**
 * Text parts as text blocks. Empty ones are left out: Anthropic rejects an empty text block and
 * it carries nothing. A `cache_control` on a part (an extension some OpenAI-shaped clients send
 * for Anthropic) is kept, so prompt caching works through the gateway.
 */
function textBlocks(content: string | readonly TextPart[] | null): AnthropicTextBlock[] {
  if (content === null) return [];
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  const blocks: AnthropicTextBlock[] = [];
  for (const part of content) {
    if (part.type !== 'text' || part.text === '') continue;
    blocks.push(withCacheControl({ type: 'text', text: part.text }, part));
  }
  return blocks;
}

function userBlocks(content: string | readonly ContentPart[], messageIndex: number): AnthropicRequestBlock[] {
  if (typeof content === 'string') return textBlocks(content);
  const blocks: AnthropicRequestBlock[] = [];
  content.forEach((part, partIndex) => {
    if (part.type === 'text') {
      blocks.push(...textBlocks([part as TextPart]));
    } else if (part.type === 'image_url') {
      const param = `messages[${messageIndex}].content[${partIndex}].image_url.url`;
      blocks.push(withCacheControl(imageBlock((part as ImagePart).image_url?.url, param), part));
    } else {
      throw new GatewayError(
        'unsupported_param',
        `Content parts of type "${part.type}" cannot be sent to Anthropic's Messages API, which takes text and images.`,
        { param: `messages[${messageIndex}].content[${partIndex}]` },
      );
    }
  });
  return blocks;
}

const dataUrl = /^data:([^;,]+)((?:;[^;,]*)*);base64,/i;

/** A data URL becomes a base64 source, an http(s) URL a url source Anthropic fetches itself. */
function imageBlock(url: unknown, param: string): AnthropicImageBlock {
  if (typeof url === 'string') {
    const match = dataUrl.exec(url);
    if (match !== null) {
      return {
        type: 'image',
        source: { type: 'base64', media_type: match[1]!.toLowerCase(), data: url.slice(match[0].length) },
      };
    }
    if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  }
  throw new GatewayError(
    'invalid_field',
    'An image must be an https URL or a base64 data URL ("data:image/png;base64,…").',
    { param },
  );
}

function withCacheControl<Block extends AnthropicTextBlock | AnthropicImageBlock>(
  block: Block,
  part: ContentPart,
): Block {
  const cacheControl = (part as { cache_control?: unknown }).cache_control;
  if (typeof cacheControl === 'object' && cacheControl !== null) {
    block.cache_control = cacheControl as AnthropicTextBlock['cache_control'];
  }
  return block;
}

/** A tool call's arguments, a JSON text, as the object Anthropic's tool_use.input must be. */
function toolInput(text: string, param: string): Record<string, unknown> {
  // Models call argument-less functions with "" as often as with "{}".
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('invalid_field', `${param} is not valid JSON.`, { param });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GatewayError('invalid_field', `${param} must be a JSON object.`, { param });
  }
  return value as Record<string, unknown>;
}

/**
 * tools and tool_choice, with JSON mode folded in. The JSON tool is offered only when the model
 * may answer without calling a client tool (tool_choice unset, auto or none): then it is forced
 * when no client tool may be called, and otherwise tool_choice becomes "any", so the model either
 * calls a client tool or answers through the JSON tool, never in free text. With "required" or a
 * named function the model must call a client tool, so the answer is no JSON text and the JSON
 * tool is left out.
 */
function translateTools(request: ChatRequest): Pick<AnthropicRequest, 'tools' | 'tool_choice'> {
  const clientTools = (request.tools ?? []).map(translateTool);
  const choice = request.tool_choice;
  let tools: AnthropicTool[] = clientTools;
  let toolChoice: AnthropicToolChoice | undefined;
  if (choice === 'none') toolChoice = { type: 'none' };
  else if (choice === 'auto') toolChoice = { type: 'auto' };
  else if (choice === 'required') toolChoice = { type: 'any' };
  else if (typeof choice === 'object' && choice !== null) {
    toolChoice = { type: 'tool', name: choice.function.name };
  }

  const answer = jsonAnswer(request.response_format);
  if (answer !== undefined && (choice === undefined || choice === 'auto' || choice === 'none')) {
    tools = [...clientTools, answer];
    toolChoice =
      clientTools.length > 0 && choice !== 'none' ? { type: 'any' } : { type: 'tool', name: jsonAnswerTool };
  }

  if (tools.length === 0) return {};
  if (request.parallel_tool_calls === false && toolChoice?.type !== 'none') {
    toolChoice = { ...(toolChoice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }
  return toolChoice === undefined ? { tools } : { tools, tool_choice: toolChoice };
}

function translateTool(tool: FunctionTool, index: number): AnthropicTool {
  const { name, description, parameters } = functionOfTool(tool, index, 'Anthropic');
  // `strict` is left behind: the stable API has no strict schema adherence. The schema still
  // steers the model, and the arguments it writes are JSON an application validates anyway.
  return {
    name,
    ...(description === undefined ? {} : { description }),
    input_schema: parameters ?? { type: 'object', properties: {} },
  };
}

/**
 * The tool that carries JSON mode (`jsonAnswerTool`). Anthropic's stable Messages API has no
 * response_format, so its documented way to get JSON is a tool whose input_schema is the wanted
 * schema, forced with tool_choice; the tool_use it answers with is the JSON. The response
 * decoders know the tool by its name alone (they never see the request), so it is reserved.
 * https://docs.anthropic.com/en/docs/build-with-claude/tool-use#json-mode
 */
function jsonAnswer(format: ResponseFormat | undefined): AnthropicTool | undefined {
  if (format?.type === 'json_schema') {
    const { name, description, schema } = format.json_schema;
    return {
      name: jsonAnswerTool,
      description: `Give your final answer by calling this tool: its input is the answer, a JSON object following the "${name}" schema.${description ? ` ${description}` : ''}`,
      input_schema: schema ?? { type: 'object' },
    };
  }
  if (format?.type === 'json_object') {
    return {
      name: jsonAnswerTool,
      description: 'Give your final answer by calling this tool: its input is the answer, as a JSON object.',
      input_schema: { type: 'object' },
    };
  }
  return undefined;
}
