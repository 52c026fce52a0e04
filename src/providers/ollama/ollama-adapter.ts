import type { ChatAdapter } from '../adapter.js';
import { openAIHeaders } from '../openai-compatible.js';
import {
  OllamaStreamDecoder,
  ollamaChatCompletion,
  ollamaEmbeddings,
  ollamaFailure,
} from './ollama-openai.js';
import { ollamaChatRequest, ollamaEmbedRequest, ollamaUnsupportedParams } from './openai-ollama.js';

/**
 * Ollama's native API (/api/chat, /api/embed) as an adapter: a server the user already runs
 * (origin http://127.0.0.1:11434, basePath ''), or ollama.com's hosted API with an api_key.
 * Headers are OpenAI's: Ollama needs none, and the hosted API takes the key as a bearer token.
 *
 * @example
 * // targets: [{ kind: ollama, url: http://127.0.0.1:11434, model: llama3.2 }]
 * const call = ollamaAdapter.chatRequest(request, target, 'llama3.2');
 * // POST http://127.0.0.1:11434/api/chat  {"model":"llama3.2","messages":[…],"stream":false}
 */
export const ollamaAdapter: ChatAdapter = {
  kind: 'ollama',
  prepareHeaders: openAIHeaders,
  unsupportedParams: ollamaUnsupportedParams,
  chatRequest: ollamaChatRequest,
  chatResponse: ollamaChatCompletion,
  chatStream: (context) => new OllamaStreamDecoder(context),
  // Ollama streams NDJSON; a request with stream: false is answered as application/json.
  isStreamContentType: (contentType) => contentType?.startsWith('application/x-ndjson') === true,
  failure: ollamaFailure,
  embeddings: { request: ollamaEmbedRequest, response: ollamaEmbeddings },
};
