import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import {
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  contentText,
  type FunctionTool,
  type ImagePart,
  type ResponseFormat,
  requestedMaxTokens,
} from '../../spec/openai-chat.js';
import type { UnsupportedParam } from '../adapter.js';
import { functionOfTool, jsonAnswerTool } from '../translation-parts.js';
import type {
  BedrockContentBlock,
  BedrockImageFormat,
  BedrockInferenceConfig,
  BedrockMessage,
  BedrockRequest,
  BedrockTool,
  BedrockToolChoice,
} from './bedrock-wire.js';
import { uriEncode } from './sigv4.js';

/**
 * Canonical (OpenAI chat completions) → Bedrock's Converse API: the request direction of the
 * `bedrock` adapter. https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
 */

/**
 * Content-Type, the configured headers, and a Bedrock API key as a bearer token. Requests signed
 * with AWS credentials get their signature per request (bedrockAdapter.chatRequest): it covers
 * the body and the time.
 */
export function bedrockHeaders(config: TargetConfig): string[] {
  const headers: string[] = ['content-type', 'application/json'];
  const signed = config.apiKey === undefined && config.awsCredentials !== undefined;
  for (const [name, value] of Object.entries(config.headers)) {
    const lower = name.toLowerCase();
    // Framing headers are the HTTP client's to set from the body it sends.
    if (lower === 'content-type' || lower === 'content-length' || lower === 'host') continue;
    // The target's credential is the one sent; a configured header must not add a second.
    if (lower === 'authorization' && (config.apiKey !== undefined || signed)) continue;
    // The signature sets x-amz-date, x-amz-content-sha256 and x-amz-security-token itself.
    if (signed && lower.startsWith('x-amz-')) continue;
    headers.push(lower, value);
  }
  if (config.apiKey !== undefined) headers.push('authorization', `Bearer ${config.apiKey}`);
  return headers;
}

/** `/model/{modelId}/converse` or `/converse-stream`; ids hold ":" (and ARNs "/"), so the id is encoded. */
export function bedrockPath(config: TargetConfig, upstreamModel: string, stream: boolean): string {
  return `${config.basePath}/model/${uriEncode(upstreamModel)}/${stream ? 'converse-stream' : 'converse'}`;
}

const bedrock = "Bedrock's Converse API";

/** The canonical parameters Converse cannot carry, each with the reason. */
export function bedrockUnsupportedParams(request: ChatRequest): UnsupportedParam[] {
  const found: UnsupportedParam[] = [];
  if (typeof request.n === 'number' && request.n > 1) {
    found.push({ param: 'n', reason: `${bedrock} returns one answer per request` });
  }
  if (request.logprobs === true) {
    found.push({ param: 'logprobs', reason: `${bedrock} returns no log probabilities` });
  }
  if (typeof request.top_logprobs === 'number' && request.top_logprobs > 0) {
    found.push({ param: 'top_logprobs', reason: `${bedrock} returns no log probabilities` });
  }
  if (request.seed !== undefined && request.seed !== null) {
    found.push({ param: 'seed', reason: `${bedrock} has no seed for reproducible sampling` });
  }
  // A zero penalty or an empty bias asks for nothing, so only a real one is refused.
  if (typeof request.presence_penalty === 'number' && request.presence_penalty !== 0) {
    found.push({ param: 'presence_penalty', reason: `${bedrock} has no presence penalty` });
  }
  if (typeof request.frequency_penalty === 'number' && request.frequency_penalty !== 0) {
    found.push({ param: 'frequency_penalty', reason: `${bedrock} has no frequency penalty` });
  }
  if (request.logit_bias && Object.keys(request.logit_bias).length > 0) {
    found.push({ param: 'logit_bias', reason: `${bedrock} has no token biasing` });
  }
  if (typeof request.temperature === 'number' && request.temperature > 1) {
    found.push({
      param: 'temperature',
      reason: `${bedrock} takes a temperature from 0 to 1; OpenAI's values above 1 have no equivalent, and clamping would change the sampling asked for`,
    });
  }
  if (typeof request.top_k === 'number') {
    found.push({
      param: 'top_k',
      reason: `${bedrock} has no common top_k: each model family names it differently in additionalModelRequestFields`,
    });
  }
  if (request.parallel_tool_calls === false) {
    found.push({
      param: 'parallel_tool_calls',
      reason: `${bedrock} cannot be told to call at most one tool per turn`,
    });
  }
  if (request.tool_choice === 'none' && holdsToolCalls(request.messages)) {
    found.push({
      param: 'tool_choice',
      reason: `${bedrock} needs the tools defined while the conversation holds tool calls, and cannot then be told not to call them`,
    });
  }
  if (request.functions !== undefined || request.function_call !== undefined) {
    const param = request.functions !== undefined ? 'functions' : 'function_call';
    found.push({ param, reason: 'the deprecated functions API is not translated; send tools instead' });
  }
  if (request.reasoning_effort !== undefined && request.reasoning_effort !== null) {
    found.push({
      param: 'reasoning_effort',
      reason: `${bedrock} sets reasoning per model family (additionalModelRequestFields), with signed reasoning blocks to send back that OpenAI-shaped messages cannot carry`,
    });
  }
  if (request.audio !== undefined && request.audio !== null) {
    found.push({ param: 'audio', reason: `${bedrock} answers in text only` });
  }
  if (Array.isArray(request.modalities) && request.modalities.some((modality) => modality !== 'text')) {
    found.push({ param: 'modalities', reason: `${bedrock} answers in text only` });
  }
  if (request.prediction !== undefined && request.prediction !== null) {
    found.push({ param: 'prediction', reason: `${bedrock} has no predicted outputs` });
  }
  if (request.web_search_options !== undefined && request.web_search_options !== null) {
    found.push({ param: 'web_search_options', reason: `${bedrock} has no web search` });
  }
  return found;
}

function holdsToolCalls(messages: readonly ChatMessage[]): boolean {
  return messages.some(
    (message) =>
      message.role === 'tool' || (message.role === 'assistant' && (message.tool_calls?.length ?? 0) > 0),
  );
}

/**
 * The Converse body for a canonical request; the model goes in the path (bedrockPath).
 * Parameters listed by bedrockUnsupportedParams are never sent.
 *
 * @example
 * bedrockRequest({ model: 'claude', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 50 }, config)
 * // → { messages: [{ role: 'user', content: [{ text: 'Hi' }] }], inferenceConfig: { maxTokens: 50 } }
 */
export function bedrockRequest(request: ChatRequest, config: TargetConfig): BedrockRequest {
  const { system, messages } = translateMessages(request.messages);
  const body: BedrockRequest = { messages };
  if (system.length > 0) body.system = system;
  const inference = inferenceConfig(request, config);
  if (Object.keys(inference).length > 0) body.inferenceConfig = inference;
  const toolConfig = translateTools(request);
  if (toolConfig !== undefined) body.toolConfig = toolConfig;
  return body;
}

function inferenceConfig(request: ChatRequest, config: TargetConfig): BedrockInferenceConfig {
  const inference: BedrockInferenceConfig = {};
  // Without one Bedrock applies the model's own default, so only a chosen value is sent.
  const maxTokens = requestedMaxTokens(request) ?? config.defaultMaxTokens;
  if (maxTokens !== undefined) inference.maxTokens = maxTokens;
  if (typeof request.temperature === 'number') inference.temperature = request.temperature;
  if (typeof request.top_p === 'number') inference.topP = request.top_p;
  if (typeof request.stop === 'string') inference.stopSequences = [request.stop];
  else if (Array.isArray(request.stop) && request.stop.length > 0) inference.stopSequences = request.stop;
  return inference;
}

/**
 * Converse takes the system prompt apart from the turns and wants user and assistant turns to
 * alternate, tool results inside a user turn. So system and developer messages are hoisted (in
 * order), tool messages become toolResult blocks, and neighbouring messages of one role merge.
 */
function translateMessages(messages: readonly ChatMessage[]): {
  system: { text: string }[];
  messages: BedrockMessage[];
} {
  const system: { text: string }[] = [];
  const turns: BedrockMessage[] = [];
  const append = (role: BedrockMessage['role'], blocks: BedrockContentBlock[]): void => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };

  messages.forEach((message, index) => {
    switch (message.role) {
      case 'system':
      case 'developer': {
        const text = contentText(message.content);
        if (text !== '') system.push({ text });
        break;
      }
      case 'user':
        append('user', userBlocks(message.content, index));
        break;
      case 'assistant': {
        const blocks: BedrockContentBlock[] = [];
        const text = contentText(message.content ?? null);
        if (text !== '') blocks.push({ text });
        // A refusal in the history is what the assistant said; without it the turn would vanish.
        else if (typeof message.refusal === 'string' && message.refusal !== '') {
          blocks.push({ text: message.refusal });
        }
        message.tool_calls?.forEach((call, position) => {
          blocks.push({
            toolUse: {
              toolUseId: call.id,
              name: call.function.name,
              input: toolInput(
                call.function.arguments,
                `messages[${index}].tool_calls[${position}].function.arguments`,
              ),
            },
          });
        });
        append('assistant', blocks);
        break;
      }
      case 'tool': {
        const text = contentText(message.content);
        // OpenAI's tool result is text, so it goes as text (every model on Converse takes text
        // results; not all take json). An empty result goes as no content: an empty text block
        // is one Bedrock refuses in messages.
        append('user', [
          { toolResult: { toolUseId: message.tool_call_id, content: text === '' ? [] : [{ text }] } },
        ]);
        break;
      }
    }
  });

  // Tool results answer the assistant turn before them and go first in their user turn, as
  // Anthropic's models behind Converse require; a user message merged after them keeps its place.
  for (const turn of turns) {
    if (turn.role === 'user' && turn.content.some((block) => 'toolResult' in block)) {
      turn.content = [
        ...turn.content.filter((block) => 'toolResult' in block),
        ...turn.content.filter((block) => !('toolResult' in block)),
      ];
    }
  }
  return { system, messages: turns };
}

function userBlocks(content: string | readonly ContentPart[], messageIndex: number): BedrockContentBlock[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  const blocks: BedrockContentBlock[] = [];
  content.forEach((part, partIndex) => {
    const param = `messages[${messageIndex}].content[${partIndex}]`;
    if (part.type === 'text') {
      const text = (part as { text: string }).text;
      if (text !== '') blocks.push({ text });
    } else if (part.type === 'image_url') {
      blocks.push(imageBlock((part as ImagePart).image_url?.url, `${param}.image_url.url`));
    } else {
      throw new GatewayError(
        'unsupported_param',
        `Content parts of type "${part.type}" are not translated for ${bedrock}, which takes text and images here.`,
        { param },
      );
    }
  });
  return blocks;
}

const imageFormats: Readonly<Record<string, BedrockImageFormat>> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

const base64DataUrl = /^data:([^;,]+)(?:;[^;,]*)*;base64,/i;

/**
 * A base64 data URL becomes an image block with its bytes. Converse takes image bytes or an S3
 * location, never an http(s) URL to fetch, so a web URL is refused rather than fetched here.
 */
function imageBlock(url: unknown, param: string): BedrockContentBlock {
  if (typeof url === 'string' && /^https?:\/\//i.test(url)) {
    throw new GatewayError(
      'unsupported_param',
      `${bedrock} does not fetch image URLs; send the image as a base64 data URL ("data:image/png;base64,…").`,
      { param },
    );
  }
  const match = typeof url === 'string' ? base64DataUrl.exec(url) : null;
  if (match === null) {
    throw new GatewayError(
      'invalid_field',
      'An image must be a base64 data URL ("data:image/png;base64,…").',
      {
        param,
      },
    );
  }
  const mediaType = match[1]!.toLowerCase();
  const format = imageFormats[mediaType];
  if (format === undefined) {
    throw new GatewayError(
      'unsupported_param',
      `${bedrock} takes PNG, JPEG, GIF and WebP images, not "${mediaType}".`,
      { param },
    );
  }
  return { image: { format, source: { bytes: (url as string).slice(match[0].length) } } };
}

/** A tool call's arguments, a JSON text, as the object a toolUse input is. */
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
 * tools and toolChoice, with JSON mode folded in. tool_choice "none" sends no tools: Converse
 * has no "none", and a model offered no tools calls none. The JSON tool is offered only when the
 * model may answer without calling a client tool (tool_choice unset, auto or none): then it is
 * forced when no client tool may be called, and otherwise toolChoice becomes "any", so the model
 * calls a client tool or answers through the JSON tool, never in free text.
 */
function translateTools(request: ChatRequest): BedrockRequest['toolConfig'] {
  const choice = request.tool_choice;
  const clientTools = choice === 'none' ? [] : (request.tools ?? []).map(translateTool);
  let tools: BedrockTool[] = clientTools;
  let toolChoice: BedrockToolChoice | undefined;
  if (choice === 'auto') toolChoice = { auto: {} };
  else if (choice === 'required') toolChoice = { any: {} };
  else if (typeof choice === 'object' && choice !== null)
    toolChoice = { tool: { name: choice.function.name } };

  const answer = jsonAnswer(request.response_format);
  if (answer !== undefined && (choice === undefined || choice === 'auto' || choice === 'none')) {
    tools = [...clientTools, answer];
    toolChoice = clientTools.length > 0 ? { any: {} } : { tool: { name: jsonAnswerTool } };
  }
  if (tools.length === 0) return undefined;
  return toolChoice === undefined ? { tools } : { tools, toolChoice };
}

function translateTool(tool: FunctionTool, index: number): BedrockTool {
  const { name, description, parameters } = functionOfTool(tool, index, bedrock);
  // `strict` has no counterpart: the schema steers the model, and applications validate anyway.
  return {
    toolSpec: {
      name,
      // Bedrock refuses an empty description (its minimum length is 1).
      ...(description ? { description } : {}),
      inputSchema: { json: parameters ?? { type: 'object', properties: {} } },
    },
  };
}

/**
 * The tool that carries JSON mode (`jsonAnswerTool`). Converse has no response format that every
 * model honours, so JSON comes the way Bedrock's tool-use guide shows: a tool whose input schema
 * is the wanted schema, forced with toolChoice; the toolUse the model answers with is the JSON.
 * Forcing a tool ({ tool } or { any }) works on the models that take toolChoice (Anthropic Claude
 * 3 and later, Amazon Nova, Mistral Large); on others Bedrock answers 400, which the client sees.
 * https://docs.aws.amazon.com/bedrock/latest/userguide/tool-use.html
 */
function jsonAnswer(format: ResponseFormat | undefined): BedrockTool | undefined {
  if (format?.type === 'json_schema') {
    const { name, description, schema } = format.json_schema;
    return {
      toolSpec: {
        name: jsonAnswerTool,
        description: `Give your final answer by calling this tool: its input is the answer, a JSON object following the "${name}" schema.${description ? ` ${description}` : ''}`,
        inputSchema: { json: schema ?? { type: 'object' } },
      },
    };
  }
  if (format?.type === 'json_object') {
    return {
      toolSpec: {
        name: jsonAnswerTool,
        description:
          'Give your final answer by calling this tool: its input is the answer, as a JSON object.',
        inputSchema: { json: { type: 'object' } },
      },
    };
  }
  return undefined;
}
