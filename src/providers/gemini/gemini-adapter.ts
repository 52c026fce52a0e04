import type { ChatAdapter } from '../adapter.js';
import {
  fromGeminiEmbeddings,
  fromGeminiResponse,
  GeminiStreamDecoder,
  geminiFailure,
} from './gemini-openai.js';
import {
  geminiHeaders,
  geminiUnsupportedParams,
  modelMethodPath,
  toGeminiEmbeddingsRequest,
  toGeminiRequest,
} from './openai-gemini.js';

/**
 * Google's Gemini API (generativelanguage.googleapis.com, v1beta) as an adapter: chat through
 * generateContent and streamGenerateContent (as SSE), embeddings through batchEmbedContents.
 * The key travels in `x-goog-api-key`, never in the `?key=` query parameter, which would put it
 * in every log line that records a URL.
 *
 * @example
 * const call = geminiAdapter.chatRequest(request, target, 'gemini-2.5-flash');
 * // POST https://generativelanguage.googleapis.com + call.path
 * //   → /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse when request.stream
 */
export const geminiAdapter: ChatAdapter = {
  kind: 'gemini',
  prepareHeaders: geminiHeaders,
  unsupportedParams: geminiUnsupportedParams,
  chatRequest(request, target, upstreamModel) {
    const method = request.stream === true ? 'streamGenerateContent?alt=sse' : 'generateContent';
    return {
      path: modelMethodPath(target.config, upstreamModel, method),
      headers: target.headers,
      body: JSON.stringify(toGeminiRequest(request)),
    };
  },
  chatResponse: fromGeminiResponse,
  chatStream: (context) => new GeminiStreamDecoder(context),
  isStreamContentType: (contentType) => contentType?.startsWith('text/event-stream') === true,
  failure: geminiFailure,
  embeddings: {
    request(request, target, upstreamModel) {
      return {
        path: modelMethodPath(target.config, upstreamModel, 'batchEmbedContents'),
        headers: target.headers,
        body: JSON.stringify(toGeminiEmbeddingsRequest(request, upstreamModel)),
      };
    },
    response: fromGeminiEmbeddings,
  },
};
