import { renderOpenAIError, renderOpenAIStreamError } from '../errors/index.js';
import type { ChatCompletionChunk } from '../spec/openai-chat.js';
import type { ChatStreamEncoder, ClientSurface } from './surface.js';

/**
 * OpenAI's surface, for answers that were translated from another schema (an OpenAI client
 * reaching Anthropic, Gemini or Ollama). Untranslated answers never come here: the proxy
 * forwards their bytes.
 */
export const openAISurface: ClientSurface = {
  name: 'openai',
  errorResponse: (error) => ({ status: error.status, body: renderOpenAIError(error) }),
  streamError: renderOpenAIStreamError,
  completion: (completion) => JSON.stringify(completion),
  streamEncoder: ({ includeUsage }) => new OpenAIStreamEncoder(includeUsage),
};

class OpenAIStreamEncoder implements ChatStreamEncoder {
  readonly #includeUsage: boolean;

  constructor(includeUsage: boolean) {
    this.#includeUsage = includeUsage;
  }

  chunk(chunk: ChatCompletionChunk): string {
    // The usage chunk (no choices) goes only to clients that asked for it, as OpenAI does; the
    // others get no "usage" field at all.
    if (chunk.choices.length === 0) {
      return this.#includeUsage ? `data: ${JSON.stringify(chunk)}\n\n` : '';
    }
    if (this.#includeUsage) {
      if (chunk.usage === undefined) chunk.usage = null;
    } else if (chunk.usage !== undefined) {
      delete chunk.usage;
    }
    return `data: ${JSON.stringify(chunk)}\n\n`;
  }

  end(): string {
    return 'data: [DONE]\n\n';
  }
}
