import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import {
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  contentText,
  type ImagePart,
  requestedMaxTokens,
  type ToolChoice,
} from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import type { UnsupportedParam } from '../adapter.js';
import { callArgumentsObject } from '../translation-parts.js';
import type {
  GeminiContent,
  GeminiEmbeddingsRequest,
  GeminiFunctionDeclaration,
  GeminiGenerationConfig,
  GeminiPart,
  GeminiRequest,
} from './gemini-wire.js';

/**
 * Canonical (OpenAI chat completions) → Gemini: the request direction of the `gemini` adapter.
 * https://ai.google.dev/api/generate-content#request-body
 */

/** Content-Type, the configured headers, and the key as `x-goog-api-key`, never in the URL (URLs get logged). */
export function geminiHeaders(config: TargetConfig): string[] {
  const headers: string[] = ['content-type', 'application/json'];
  for (const [name, value] of Object.entries(config.headers)) {
    const lower = name.toLowerCase();
    // The target's api_key is the credential; a configured header must not send a second one.
    if (lower === 'x-goog-api-key' && config.apiKey !== undefined) continue;
    // Framing headers are the HTTP client's to set from the body it sends.
    if (lower === 'content-type' || lower === 'content-length' || lower === 'host') continue;
    headers.push(lower, value);
  }
  if (config.apiKey !== undefined) headers.push('x-goog-api-key', config.apiKey);
  return headers;
}

/**
 * The path of a model method, e.g. `/v1beta/models/gemini-2.5-flash:generateContent`. The API
 * version is added unless the configured URL already ends with one, since Google's own examples
 * give the base URL both ways. A model named `models/x` or `tunedModels/x` is used as named.
 */
export function modelMethodPath(config: TargetConfig, upstreamModel: string, method: string): string {
  const version = /\/v1(?:alpha|beta)?$/.test(config.basePath) ? '' : '/v1beta';
  const resource = /^(?:models|tunedModels)\//.test(upstreamModel)
    ? upstreamModel
    : `models/${encodeURIComponent(upstreamModel)}`;
  return `${config.basePath}${version}/${resource}:${method}`;
}

/** The resource name Gemini wants inside embedding requests ("models/…"). */
export function modelResource(upstreamModel: string): string {
  return /^(?:models|tunedModels)\//.test(upstreamModel) ? upstreamModel : `models/${upstreamModel}`;
}

/** Canonical parameters Gemini's generateContent cannot carry, with the reason. */
export function geminiUnsupportedParams(request: ChatRequest): UnsupportedParam[] {
  const unsupported: UnsupportedParam[] = [];
  if (request.logit_bias !== undefined && request.logit_bias !== null) {
    unsupported.push({ param: 'logit_bias', reason: 'Gemini has no per-token bias' });
  }
  if (request.parallel_tool_calls === false) {
    unsupported.push({
      param: 'parallel_tool_calls',
      reason: 'Gemini cannot be told to call at most one function per turn',
    });
  }
  if (request.tools?.some((tool) => tool.type !== 'function')) {
    unsupported.push({ param: 'tools', reason: 'Gemini takes function tools only' });
  }
  if (request.functions !== undefined || request.function_call !== undefined) {
    const param = request.functions !== undefined ? 'functions' : 'function_call';
    unsupported.push({ param, reason: 'the deprecated functions API is not translated; send tools instead' });
  }
  if (request.prediction !== undefined && request.prediction !== null) {
    unsupported.push({ param: 'prediction', reason: 'Gemini has no predicted outputs' });
  }
  const modalities = request.modalities;
  const audioOut = Array.isArray(modalities) && modalities.some((modality) => modality !== 'text');
  if (audioOut || (request.audio !== undefined && request.audio !== null)) {
    unsupported.push({
      param: request.audio !== undefined && request.audio !== null ? 'audio' : 'modalities',
      reason: "Gemini's text models answer in text only",
    });
  }
  if (request.web_search_options !== undefined && request.web_search_options !== null) {
    unsupported.push({
      param: 'web_search_options',
      reason: 'Google Search grounding is a Gemini tool this gateway does not translate',
    });
  }
  return unsupported;
}

/**
 * Gemini 3 answers 400 when a replayed function call lacks the thought signature it came with.
 * OpenAI's tool_call has no field to carry one and a stateless gateway cannot keep it, so replayed
 * calls carry this value, which Google documents for histories built outside Gemini: validation
 * is skipped and the model goes on without its earlier reasoning.
 * https://ai.google.dev/gemini-api/docs/thought-signatures
 */
export const replayedThoughtSignature = 'skip_thought_signature_validator';

/**
 * The generateContent body. Throws GatewayError for content Gemini cannot take (an unknown part
 * type, an image URL whose type cannot be told) or that does not hold together (a tool result
 * for a call no assistant message made), naming the field.
 */
export function toGeminiRequest(request: ChatRequest): GeminiRequest {
  const body: GeminiRequest = { contents: translateMessages(request.messages) };
  const system = systemInstruction(request.messages);
  if (system !== undefined) body.systemInstruction = system;

  const functions = (request.tools ?? []).filter((tool) => tool.type === 'function');
  if (functions.length > 0) {
    body.tools = [
      {
        functionDeclarations: functions.map(({ function: declared }) => {
          const declaration: GeminiFunctionDeclaration = { name: declared.name };
          if (declared.description !== undefined) declaration.description = declared.description;
          if (declared.parameters !== undefined) {
            declaration.parametersJsonSchema = jsonSchema(declared.parameters);
          }
          return declaration;
        }),
      },
    ];
    if (request.tool_choice !== undefined) {
      body.toolConfig = { functionCallingConfig: toolMode(request.tool_choice) };
    }
  }

  const config = generationConfig(request);
  if (Object.keys(config).length > 0) body.generationConfig = config;
  return body;
}

/**
 * System and developer messages, wherever they stand, joined into Gemini's one system
 * instruction in their order: Gemini has no system turn inside `contents`.
 */
function systemInstruction(messages: readonly ChatMessage[]): GeminiRequest['systemInstruction'] {
  const parts: GeminiPart[] = [];
  for (const message of messages) {
    if (message.role !== 'system' && message.role !== 'developer') continue;
    const text = contentText(message.content);
    if (text !== '') parts.push({ text });
  }
  return parts.length > 0 ? { parts } : undefined;
}

function translateMessages(messages: readonly ChatMessage[]): GeminiContent[] {
  const contents: GeminiContent[] = [];
  // Gemini's function responses are matched by name, OpenAI's tool results by call id.
  const callNames = new Map<string, string>();
  const append = (role: 'user' | 'model', parts: GeminiPart[]): void => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    // Parallel tool results must share one turn, answering the model turn before it; other
    // neighbours of one role merge too, keeping turns alternating as Gemini's examples do.
    if (last?.role === role) last.parts!.push(...parts);
    else contents.push({ role, parts });
  };

  messages.forEach((message, position) => {
    switch (message.role) {
      case 'system':
      case 'developer':
        return;
      case 'user':
        append('user', userParts(message.content, position));
        return;
      case 'assistant': {
        const parts: GeminiPart[] = [];
        const text = contentText(message.content ?? null);
        if (text !== '') parts.push({ text });
        (message.tool_calls ?? []).forEach((call, index) => {
          callNames.set(call.id, call.function.name);
          const part: GeminiPart = {
            functionCall: {
              name: call.function.name,
              args: callArgumentsObject(call.function.arguments, position, index, 'Gemini'),
            },
          };
          // The signature belongs on the first function call of a step (parallel calls share it).
          if (index === 0) part.thoughtSignature = replayedThoughtSignature;
          parts.push(part);
        });
        append('model', parts);
        return;
      }
      case 'tool': {
        const name = callNames.get(message.tool_call_id);
        if (name === undefined) {
          throw new GatewayError(
            'invalid_field',
            `messages[${position}].tool_call_id "${message.tool_call_id}" answers no tool call of an earlier assistant message; Gemini needs the function's name.`,
            { param: `messages[${position}].tool_call_id` },
          );
        }
        append('user', [
          { functionResponse: { name, response: functionResult(contentText(message.content)) } },
        ]);
        return;
      }
    }
  });
  return contents;
}

function userParts(content: string | readonly ContentPart[], position: number): GeminiPart[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  const parts: GeminiPart[] = [];
  content.forEach((part, index) => {
    const param = `messages[${position}].content[${index}]`;
    switch (part.type) {
      case 'text': {
        const text = (part as { text: string }).text;
        if (text !== '') parts.push({ text });
        return;
      }
      case 'image_url':
        parts.push(imagePart((part as ImagePart).image_url.url, `${param}.image_url.url`));
        return;
      case 'input_audio': {
        const audio = (part as { input_audio?: { data?: unknown; format?: unknown } }).input_audio;
        if (typeof audio?.data !== 'string' || typeof audio.format !== 'string') {
          throw new GatewayError('invalid_field', `${param}.input_audio needs "data" and "format".`, {
            param,
          });
        }
        parts.push({ inlineData: { mimeType: `audio/${audio.format}`, data: audio.data } });
        return;
      }
      case 'file': {
        const file = (part as { file?: { file_data?: unknown } }).file;
        const data = typeof file?.file_data === 'string' ? parseDataUrl(file.file_data) : undefined;
        if (data === undefined) {
          throw new GatewayError(
            'unsupported_param',
            `${param}: Gemini takes files inline only; send "file_data" as a data URL (OpenAI file ids mean nothing to Gemini).`,
            { param },
          );
        }
        parts.push({ inlineData: data });
        return;
      }
      default:
        throw new GatewayError('unsupported_param', `${param}: Gemini takes no "${part.type}" parts.`, {
          param,
        });
    }
  });
  return parts;
}

/**
 * A data URL goes inline. Any other URL goes as `fileData`: the Gemini API fetches public and
 * signed HTTPS URLs itself (and Cloud Storage or Files API URIs), but it needs the MIME type up
 * front, read here from the file extension.
 * https://ai.google.dev/gemini-api/docs/file-input-methods
 */
function imagePart(url: string, param: string): GeminiPart {
  if (url.startsWith('data:')) {
    const inlineData = parseDataUrl(url);
    if (inlineData === undefined) {
      throw new GatewayError('invalid_field', `${param} is not a valid data URL.`, { param });
    }
    return { inlineData };
  }
  const mimeType = imageTypeOf(url);
  if (mimeType === undefined) {
    throw new GatewayError(
      'unsupported_param',
      `${param}: Gemini needs an image URL's type, and this URL's extension does not say it (.png, .jpg, .jpeg, .webp, .gif, .heic, .heif). Send the image as a data URL instead.`,
      { param },
    );
  }
  return { fileData: { mimeType, fileUri: url } };
}

const imageTypes: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  heic: 'image/heic',
  heif: 'image/heif',
};

function imageTypeOf(url: string): string | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const extension = /\.([a-z0-9]+)$/i.exec(pathname)?.[1]?.toLowerCase();
  return extension === undefined ? undefined : imageTypes[extension];
}

/** RFC 2397: `data:[<mediatype>][;base64],<data>`; Gemini wants the bytes base64-encoded. */
function parseDataUrl(url: string): { mimeType: string; data: string } | undefined {
  const match = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(url);
  if (match === null) return undefined;
  const mimeType = match[1]!.split(';')[0]! || 'text/plain';
  const payload = match[3]!;
  if (match[2] !== undefined) return { mimeType, data: payload };
  try {
    return { mimeType, data: Buffer.from(decodeURIComponent(payload), 'utf8').toString('base64') };
  } catch {
    return undefined;
  }
}

/** A JSON object result is passed as itself; anything else is wrapped, as Gemini wants an object. */
function functionResult(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      return value as Record<string, unknown>;
    }
  } catch {}
  return { result: text };
}

/**
 * The schema as JSON Schema: Gemini's `parametersJsonSchema` and `responseJsonSchema` take JSON
 * Schema's keywords (additionalProperties, $ref and $defs, anyOf …), unlike the OpenAPI subset of
 * `parameters` and `responseSchema`, so schemas go through as written. Only `$schema`, which names
 * a dialect and constrains nothing, is left out.
 */
function jsonSchema(schema: Record<string, unknown>): Record<string, unknown> {
  if (!('$schema' in schema)) return schema;
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

function toolMode(choice: ToolChoice): NonNullable<GeminiRequest['toolConfig']>['functionCallingConfig'] {
  if (choice === 'none') return { mode: 'NONE' };
  if (choice === 'auto') return { mode: 'AUTO' };
  if (choice === 'required') return { mode: 'ANY' };
  return { mode: 'ANY', allowedFunctionNames: [choice.function.name] };
}

function generationConfig(request: ChatRequest): GeminiGenerationConfig {
  const config: GeminiGenerationConfig = {};
  const maxTokens = requestedMaxTokens(request);
  if (maxTokens !== undefined) config.maxOutputTokens = maxTokens;
  if (isNumber(request.temperature)) config.temperature = request.temperature;
  if (isNumber(request.top_p)) config.topP = request.top_p;
  // Not OpenAI's, but vLLM's and others' extension; Gemini has the same knob.
  if (isNumber(request.top_k)) config.topK = request.top_k;
  if (typeof request.stop === 'string') config.stopSequences = [request.stop];
  else if (Array.isArray(request.stop) && request.stop.length > 0) config.stopSequences = request.stop;
  if (isNumber(request.seed)) config.seed = request.seed;
  if (isNumber(request.n)) config.candidateCount = request.n;
  if (isNumber(request.presence_penalty)) config.presencePenalty = request.presence_penalty;
  if (isNumber(request.frequency_penalty)) config.frequencyPenalty = request.frequency_penalty;
  if (request.logprobs === true) {
    config.responseLogprobs = true;
    if (isNumber(request.top_logprobs)) config.logprobs = request.top_logprobs;
  }
  const format = request.response_format;
  if (format?.type === 'json_object') config.responseMimeType = 'application/json';
  else if (format?.type === 'json_schema') {
    config.responseMimeType = 'application/json';
    if (format.json_schema.schema !== undefined) {
      config.responseJsonSchema = jsonSchema(format.json_schema.schema);
    }
  }
  // Gemini 3's thinking levels share OpenAI's effort names (minimal, low, medium, high).
  if (typeof request.reasoning_effort === 'string') {
    config.thinkingConfig = { thinkingLevel: request.reasoning_effort };
  }
  return config;
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number';
}

/**
 * batchEmbedContents: one request per input text. Token-id inputs cannot be sent: Gemini takes
 * text only, and ids from OpenAI's tokenizers mean nothing to it. Nor can base64 output be
 * promised: the answer's translation does not see the request, and floats handed to a client that
 * decodes base64 would be read as garbage, not refused.
 * https://ai.google.dev/api/embeddings#method:-models.batchembedcontents
 */
export function toGeminiEmbeddingsRequest(
  request: EmbeddingsRequest,
  upstreamModel: string,
): GeminiEmbeddingsRequest {
  if (request.encoding_format === 'base64') {
    throw new GatewayError(
      'unsupported_param',
      'Embeddings from Gemini come back as floats only; leave out encoding_format or set it to "float".',
      { param: 'encoding_format' },
    );
  }
  const inputs = typeof request.input === 'string' ? [request.input] : request.input;
  const model = modelResource(upstreamModel);
  return {
    requests: inputs.map((input, index) => {
      if (typeof input !== 'string') {
        throw new GatewayError(
          'unsupported_param',
          'Gemini embeds text only; send "input" as strings, not token ids.',
          {
            param: typeof request.input === 'string' ? 'input' : `input[${index}]`,
          },
        );
      }
      const entry: GeminiEmbeddingsRequest['requests'][number] = {
        model,
        content: { parts: [{ text: input }] },
      };
      if (request.dimensions !== undefined) entry.outputDimensionality = request.dimensions;
      return entry;
    }),
  };
}
