import type { Endpoint } from '../spec/openai.js';

/**
 * How many tokens a request will use, estimated before it is sent, so that tokens-per-minute
 * limits can reserve them (rate-limits.ts) and settle to the real count once the usage arrives.
 *
 * The prompt is measured by a heuristic, about four characters of English text per token
 * (OpenAI's rule of thumb), counting string lengths where they lie without joining or serialising
 * anything. A model's own tokenizer would be exact where one is known, but it costs time and
 * memory per request on the hot path (tens of microseconds to milliseconds for a long prompt,
 * plus a vocabulary per model family), and exactness is not needed here: the reservation is
 * corrected at settlement, so an estimate only has to be cheap and roughly right.
 */

/** Output tokens reserved when a request does not cap them. */
export const defaultOutputTokens = 1024;

/** Characters per token of the heuristic. */
export const charactersPerToken = 4;

/**
 * Tokens counted for an image: a 1024×1024 image at high detail in OpenAI's formula
 * (85 + 170 per 512-pixel tile). Its real cost depends on its size, known only once decoded.
 */
export const imageTokens = 765;

/** Framing tokens per message (role, separators), as OpenAI's counting guide allows. */
const tokensPerMessage = 3;

/** Deeper than any real tool schema; stops a pathological body from costing more than its size. */
const maxDepth = 32;

const imageCharacters = imageTokens * charactersPerToken;

/** The endpoints estimated: OpenAI's, and Anthropic's Messages API. */
export type EstimatedEndpoint = Endpoint | 'messages';

/**
 * Tokens a request will use at most, roughly: its prompt, estimated, plus its output allowance
 * (`max_completion_tokens` ?? `max_tokens` ?? `defaultOutputTokens`, times `n` choices).
 * Embeddings have no output. `body` is the parsed JSON body; fields of unexpected types count
 * as absent.
 *
 * @example
 * estimateTokens({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello there!' }], max_tokens: 100 },
 *   'chat/completions'); // 3 (message) + 3 (reply) + 3 (12 characters) + 100
 */
export function estimateTokens(body: unknown, endpoint: EstimatedEndpoint): number {
  if (body === null || typeof body !== 'object') return endpoint === 'embeddings' ? 0 : defaultOutputTokens;
  const request = body as Record<string, unknown>;
  switch (endpoint) {
    case 'chat/completions': {
      const { messages } = request;
      let characters = charactersOf(request.tools, 0) + charactersOf(request.functions, 0);
      let framing = tokensPerMessage; // the reply's own priming
      if (Array.isArray(messages)) {
        framing += messages.length * tokensPerMessage;
        for (const message of messages) characters += openAIMessageCharacters(message);
      }
      return toTokens(characters) + framing + outputAllowance(request);
    }
    case 'completions':
      return (
        toTokens(promptCharacters(request.prompt) + stringLength(request.suffix)) + outputAllowance(request)
      );
    case 'embeddings':
      return toTokens(promptCharacters(request.input));
    case 'messages': {
      const { messages, system } = request;
      let characters = charactersOf(request.tools, 0);
      characters += typeof system === 'string' ? system.length : anthropicBlocksCharacters(system, 0);
      let framing = tokensPerMessage;
      if (Array.isArray(messages)) {
        framing += messages.length * tokensPerMessage;
        for (const message of messages) {
          if (message !== null && typeof message === 'object') {
            characters += anthropicContentCharacters((message as Record<string, unknown>).content, 0);
          }
        }
      }
      return toTokens(characters) + framing + outputAllowance(request);
    }
  }
}

function toTokens(characters: number): number {
  return Math.ceil(characters / charactersPerToken);
}

function outputAllowance(request: Record<string, unknown>): number {
  const asked = request.max_completion_tokens ?? request.max_tokens;
  const perChoice =
    typeof asked === 'number' && asked >= 0 && Number.isFinite(asked) ? asked : defaultOutputTokens;
  const { n, best_of: bestOf } = request;
  let choices = typeof n === 'number' && n > 1 ? n : 1;
  // Legacy completions generate best_of choices server-side and bill all of them.
  if (typeof bestOf === 'number' && bestOf > choices) choices = bestOf;
  return perChoice * Math.ceil(choices);
}

function stringLength(value: unknown): number {
  return typeof value === 'string' ? value.length : 0;
}

/**
 * A completions `prompt` or embeddings `input`: a string, strings, token ids, or arrays of
 * token ids. Token ids count exactly, as characters-worth.
 */
function promptCharacters(prompt: unknown): number {
  if (typeof prompt === 'string') return prompt.length;
  if (!Array.isArray(prompt)) return 0;
  let characters = 0;
  for (const item of prompt) {
    if (typeof item === 'string') characters += item.length;
    else if (typeof item === 'number') characters += charactersPerToken;
    else if (Array.isArray(item)) characters += item.length * charactersPerToken;
  }
  return characters;
}

function openAIMessageCharacters(message: unknown): number {
  if (message === null || typeof message !== 'object') return 0;
  const { content, name, refusal, tool_calls: toolCalls } = message as Record<string, unknown>;
  let characters = stringLength(name) + stringLength(refusal);
  if (typeof content === 'string') characters += content.length;
  else if (Array.isArray(content)) {
    for (const part of content) {
      if (part === null || typeof part !== 'object') continue;
      const { type, text } = part as Record<string, unknown>;
      if (type === 'text') characters += stringLength(text);
      else if (type === 'image_url') characters += imageCharacters;
      // Audio and file parts count once decoded, upstream; settlement corrects for them.
    }
  }
  if (Array.isArray(toolCalls)) {
    for (const call of toolCalls) {
      const fn =
        call !== null && typeof call === 'object' ? (call as Record<string, unknown>).function : undefined;
      if (fn !== null && typeof fn === 'object') {
        const { name: functionName, arguments: args } = fn as Record<string, unknown>;
        characters += stringLength(functionName) + stringLength(args);
      }
    }
  }
  return characters;
}

/** An Anthropic message's or tool result's content: a string or blocks. */
function anthropicContentCharacters(content: unknown, depth: number): number {
  return typeof content === 'string' ? content.length : anthropicBlocksCharacters(content, depth);
}

function anthropicBlocksCharacters(blocks: unknown, depth: number): number {
  if (!Array.isArray(blocks) || depth > maxDepth) return 0;
  let characters = 0;
  for (const block of blocks) {
    if (block === null || typeof block !== 'object') continue;
    const fields = block as Record<string, unknown>;
    switch (fields.type) {
      case 'text':
        characters += stringLength(fields.text);
        break;
      case 'image':
        characters += imageCharacters;
        break;
      case 'tool_use':
        characters += stringLength(fields.name) + charactersOf(fields.input, depth + 1);
        break;
      case 'tool_result':
        characters += anthropicContentCharacters(fields.content, depth + 1);
        break;
      case 'thinking':
        characters += stringLength(fields.thinking);
        break;
      // Redacted thinking is encrypted and documents decode upstream; settlement corrects.
    }
  }
  return characters;
}

/** Characters of a JSON value's keys and strings (tool schemas, tool inputs), without serialising it. */
function charactersOf(value: unknown, depth: number): number {
  if (typeof value === 'string') return value.length;
  if (typeof value === 'number' || typeof value === 'boolean') return charactersPerToken;
  if (value === null || typeof value !== 'object' || depth > maxDepth) return 0;
  let characters = 0;
  if (Array.isArray(value)) {
    for (const item of value) characters += charactersOf(item, depth + 1);
    return characters;
  }
  for (const key in value) {
    characters += key.length + charactersOf((value as Record<string, unknown>)[key], depth + 1);
  }
  return characters;
}
