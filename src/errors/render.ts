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

/**
 * Failures the HTTP framework (Fastify) raises itself, by their stable codes, mapped into the
 * catalogue; anything else becomes an internal error. Shared by the gateway and the runner.
 */
export function fromFrameworkError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  switch ((error as { code?: unknown } | null)?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('payload_too_large', undefined, { cause: error });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('unsupported_media_type', undefined, { cause: error });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('invalid_json', undefined, { cause: error });
    default:
      return asGatewayError(error);
  }
}
