import type { ChatAdapter } from '../adapter.js';
import { anthropicFailure } from './anthropic-errors.js';
import { AnthropicStreamDecoder, anthropicCompletion } from './anthropic-openai-response.js';
import {
  anthropicHeaders,
  anthropicRequest,
  anthropicUnsupportedParams,
} from './openai-anthropic-request.js';

/**
 * Anthropic's Messages API as an adapter: Switchyard's canonical (OpenAI-shaped) requests become
 * POST /v1/messages, and Anthropic's answers, event streams and errors come back canonical.
 * Anthropic has no embeddings endpoint, so this adapter has none.
 *
 * @example
 * const call = anthropicAdapter.chatRequest(request, { config, headers }, 'claude-sonnet-4-5');
 * // call.path === '/v1/messages' on https://api.anthropic.com
 */
export const anthropicAdapter: ChatAdapter = {
  kind: 'anthropic',
  prepareHeaders: anthropicHeaders,
  unsupportedParams: anthropicUnsupportedParams,
  chatRequest(request, target, upstreamModel) {
    return {
      path: `${target.config.basePath}/v1/messages`,
      headers: target.headers,
      body: JSON.stringify(anthropicRequest(request, target.config, upstreamModel)),
    };
  },
  chatResponse: anthropicCompletion,
  chatStream: (context) => new AnthropicStreamDecoder(context),
  isStreamContentType: (contentType) => contentType?.startsWith('text/event-stream') === true,
  failure: anthropicFailure,
};
