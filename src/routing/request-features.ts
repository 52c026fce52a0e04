import type { IncomingHttpHeaders } from 'node:http';
import { detectLanguage, languageSampleLength } from './language.js';

/**
 * What routing may ask of a request (issue 5): conditional routes test these, affinity hashes the
 * prompt's prefix. One shape for chat (`messages`), legacy completions (`prompt`) and embeddings
 * (`input`) bodies. The costly answers (token estimate, language, images) are worked out the
 * first time a route asks and kept; a request whose model has no such route pays nothing.
 *
 * @example
 * const features = requestFeatures(body, request.headers);
 * if (features.hasImages && features.promptTokens() > 8_000) …
 */
export interface RequestFeatures {
  /** A request header by name in any case; repeated headers joined with ", ". */
  header(name: string): string | undefined;
  /** Who is calling, when the request came with a virtual key; undefined in open mode. */
  readonly caller: Caller | undefined;
  /** The body's `metadata` object (OpenAI's: string values), if it has one. */
  readonly metadata: Record<string, unknown> | undefined;
  /**
   * Estimated prompt tokens: characters / 4, rounded up, plus 4 per chat message; tool calls
   * and tool definitions count as their JSON text; token-id prompts count exactly. The rule of
   * `estimateTokens` in src/gateway/routes/messages.ts, so that a route's threshold means the
   * same as the count_tokens estimate a client sees. At least 1.
   */
  promptTokens(): number;
  /** ISO 639-1 code of the latest user text, or undefined when too short or unclear to tell. */
  language(): string | undefined;
  /** Whether the request offers tools (or legacy functions) the model may call. */
  readonly hasTools: boolean;
  /** Whether any message carries an image part. */
  readonly hasImages: boolean;
  /**
   * The conversation's first `chars` characters of text: system and user messages up to the
   * first answer, text parts only, joined with "\n". Stops at the first assistant or tool
   * message so that every turn of one conversation has the same prefix, and so goes to the
   * replica that already holds it in cache. "" when there is no text.
   */
  promptPrefix(chars: number): string;
}

/** The caller as routing sees it: the virtual key's name and id, and its team's name. */
export interface Caller {
  readonly keyId: string;
  readonly keyName: string;
  readonly team: string | undefined;
}

/** The features of a parsed request body and its headers; nothing is computed until asked. */
export function requestFeatures(
  body: Record<string, unknown>,
  headers: IncomingHttpHeaders,
  caller?: Caller,
): RequestFeatures {
  return new BodyFeatures(body, headers, caller);
}

class BodyFeatures implements RequestFeatures {
  readonly #body: Record<string, unknown>;
  readonly #headers: IncomingHttpHeaders;
  #promptTokens: number | undefined;
  #languageDetected = false;
  #language: string | undefined;
  #hasImages: boolean | undefined;
  #prefixChars = -1;
  #prefix = '';
  readonly caller: Caller | undefined;

  constructor(body: Record<string, unknown>, headers: IncomingHttpHeaders, caller: Caller | undefined) {
    this.#body = body;
    this.#headers = headers;
    this.caller = caller;
  }

  header(name: string): string | undefined {
    const value = this.#headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  get metadata(): Record<string, unknown> | undefined {
    const metadata = this.#body.metadata;
    return isObject(metadata) ? metadata : undefined;
  }

  get hasTools(): boolean {
    const { tools, functions } = this.#body;
    return (Array.isArray(tools) && tools.length > 0) || (Array.isArray(functions) && functions.length > 0);
  }

  get hasImages(): boolean {
    this.#hasImages ??= messagesOf(this.#body).some(
      (message) => Array.isArray(message.content) && message.content.some(isImagePart),
    );
    return this.#hasImages;
  }

  promptTokens(): number {
    this.#promptTokens ??= estimatePromptTokens(this.#body);
    return this.#promptTokens;
  }

  language(): string | undefined {
    if (!this.#languageDetected) {
      this.#languageDetected = true;
      // The latest message alone first: earlier ones may be in another language, and mixing
      // them makes a clear answer unclear. Only when it is too short to tell do they help.
      const latest = userText(this.#body, languageSampleLength, 1);
      this.#language = detectLanguage(latest);
      if (this.#language === undefined && latest.length < languageSampleLength) {
        const more = userText(this.#body, languageSampleLength, Number.POSITIVE_INFINITY);
        if (more.length > latest.length) this.#language = detectLanguage(more);
      }
    }
    return this.#language;
  }

  promptPrefix(chars: number): string {
    if (chars !== this.#prefixChars) {
      this.#prefix = chars > 0 ? leadingText(this.#body, chars) : '';
      this.#prefixChars = chars;
    }
    return this.#prefix;
  }
}

type Message = Record<string, unknown> & { role?: unknown; content?: unknown };

const noMessages: readonly Message[] = [];

/** A chat body's messages that are objects; the request check has vouched for little else. */
function messagesOf(body: Record<string, unknown>): readonly Message[] {
  const messages = body.messages;
  if (!Array.isArray(messages)) return noMessages;
  return messages.every(isObject) ? (messages as Message[]) : (messages.filter(isObject) as Message[]);
}

function estimatePromptTokens(body: Record<string, unknown>): number {
  let characters = 0;
  let tokens = 0;
  if (Array.isArray(body.messages)) {
    for (const message of messagesOf(body)) {
      tokens += 4;
      characters += textLength(message.content);
      if (message.role === 'assistant' && Array.isArray(message.tool_calls)) {
        for (const call of message.tool_calls) {
          const action = isObject(call) && isObject(call.function) ? call.function : undefined;
          if (typeof action?.name === 'string') characters += action.name.length;
          if (typeof action?.arguments === 'string') characters += action.arguments.length;
        }
      }
    }
    if (body.tools !== undefined && body.tools !== null) characters += JSON.stringify(body.tools).length;
  } else {
    const input = body.prompt ?? body.input;
    for (const item of typeof input === 'string' ? [input] : Array.isArray(input) ? input : []) {
      if (typeof item === 'string') characters += item.length;
      else if (typeof item === 'number') tokens += 1;
      else if (Array.isArray(item)) tokens += item.length;
    }
  }
  return Math.max(1, Math.ceil(characters / 4) + tokens);
}

/**
 * Up to `limit` characters of what the user wrote in their last `pieces` messages, latest first;
 * for a completion or an embedding, its first `pieces` text inputs.
 */
function userText(body: Record<string, unknown>, limit: number, pieces: number): string {
  let text = '';
  let taken = 0;
  if (Array.isArray(body.messages)) {
    const messages = messagesOf(body);
    for (let index = messages.length - 1; index >= 0 && taken < pieces && text.length < limit; index--) {
      const message = messages[index]!;
      if (message.role !== 'user') continue;
      text = appendContent(text, message.content, limit);
      taken++;
    }
    return text;
  }
  return appendInputs(text, body.prompt ?? body.input, limit, pieces);
}

/** Up to `limit` characters of the conversation's opening: system and user text before any answer. */
function leadingText(body: Record<string, unknown>, limit: number): string {
  let text = '';
  if (Array.isArray(body.messages)) {
    for (const message of messagesOf(body)) {
      const { role } = message;
      if (role !== 'system' && role !== 'developer' && role !== 'user') break;
      text = appendContent(text, message.content, limit);
      if (text.length >= limit) break;
    }
    return text;
  }
  return appendInputs(text, body.prompt ?? body.input, limit, Number.POSITIVE_INFINITY);
}

/** The text of a completion's `prompt` or an embedding's `input`, up to `pieces` strings of it. */
function appendInputs(text: string, input: unknown, limit: number, pieces: number): string {
  if (typeof input === 'string') return appendPiece(text, input, limit);
  if (!Array.isArray(input)) return text;
  let taken = 0;
  for (const item of input) {
    if (text.length >= limit || taken >= pieces) break;
    if (typeof item === 'string') {
      text = appendPiece(text, item, limit);
      taken++;
    }
  }
  return text;
}

function appendContent(text: string, content: unknown, limit: number): string {
  if (typeof content === 'string') return appendPiece(text, content, limit);
  if (!Array.isArray(content)) return text;
  for (const part of content) {
    if (text.length >= limit) break;
    if (isTextPart(part)) text = appendPiece(text, part.text, limit);
  }
  return text;
}

/** `text` and `piece` joined by "\n", cut at `limit`; only what fits is read of a long piece. */
function appendPiece(text: string, piece: string, limit: number): string {
  if (piece === '' || text.length >= limit) return text;
  if (text === '') return piece.length > limit ? piece.slice(0, limit) : piece;
  const room = limit - text.length - 1;
  if (room <= 0) return text;
  return `${text}\n${piece.length > room ? piece.slice(0, room) : piece}`;
}

/** Characters of a message's text: the string, or its text parts. */
function textLength(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let length = 0;
  for (const part of content) if (isTextPart(part)) length += part.text.length;
  return length;
}

function isTextPart(part: unknown): part is { type: 'text'; text: string } {
  return isObject(part) && part.type === 'text' && typeof part.text === 'string';
}

function isImagePart(part: unknown): boolean {
  return isObject(part) && part.type === 'image_url';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
