import { GatewayError } from './catalogue.js';

/** OpenAI's error envelope: https://platform.openai.com/docs/guides/error-codes */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openAIErrorBody(error: GatewayError): OpenAIErrorBody {
  return {
    error: {
      message: error.message,
      type: error.upstream?.type ?? error.type,
      param: error.param,
      code: error.upstream?.code ?? error.code,
    },
  };
}

/** Renders the envelope as a JSON string, ready to write. */
export function renderOpenAIError(error: GatewayError): string {
  return JSON.stringify(openAIErrorBody(error));
}

/**
 * An SSE event carrying the error, for a stream that already sent its headers and must end
 * with a reason rather than a silent truncation.
 */
export function renderOpenAIStreamError(error: GatewayError): string {
  return `data: ${renderOpenAIError(error)}\n\n`;
}

/** Anything thrown that is not already a GatewayError becomes an internal error, cause kept. */
export function asGatewayError(value: unknown): GatewayError {
  if (value instanceof GatewayError) return value;
  return new GatewayError('internal_error', undefined, { cause: value });
}
