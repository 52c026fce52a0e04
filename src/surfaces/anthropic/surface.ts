import type { ClientSurface } from '../surface.js';
import { renderAnthropicError, renderAnthropicStreamError } from './anthropic-errors.js';
import { canonicalToAnthropic } from './anthropic-response.js';
import { AnthropicStreamEncoder } from './anthropic-stream.js';

/** Anthropic's Messages API as a surface: Claude SDK clients reach any model through it. */
export const anthropicSurface: ClientSurface = {
  name: 'anthropic',
  errorResponse: (error) => renderAnthropicError(error),
  streamError: renderAnthropicStreamError,
  completion: (completion, model) => JSON.stringify(canonicalToAnthropic(completion, model)),
  streamEncoder: ({ model, id }) => new AnthropicStreamEncoder({ model, id }),
};
