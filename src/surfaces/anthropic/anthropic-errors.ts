import type { GatewayError } from '../../errors/index.js';
import { encodeSseEvent } from '../../providers/sse.js';
import type { AnthropicErrorEnvelope, AnthropicErrorType } from '../../spec/anthropic.js';

/**
 * Catalogue errors as Anthropic's error envelope, for clients of the Anthropic surface. Anthropic
 * chooses `error.type` by HTTP status (https://docs.anthropic.com/en/api/errors), and its SDKs
 * choose their exception class by status too, so the mapping goes by status: a client sees the
 * same kind of failure it would see from Anthropic, and the message is ours.
 */

/** Anthropic's status for "temporarily overloaded": its SDKs retry it like any 5xx. */
export const overloadedStatus = 529;

export interface AnthropicErrorResponse {
  /** The HTTP status to answer with. */
  readonly status: number;
  /** The JSON body, ready to write. */
  readonly body: string;
}

/**
 * The status an Anthropic client should see. A catalogue 503 that asks to be retried (a busy
 * local model, an upstream that answered 529, a runner restarting, a replica draining) becomes
 * 529 overloaded_error, which is how Anthropic says "busy, come back shortly"; every other status
 * is kept.
 */
export function anthropicErrorStatus(error: GatewayError): number {
  return error.status === 503 && error.retryable ? overloadedStatus : error.status;
}

export function anthropicErrorType(error: GatewayError): AnthropicErrorType {
  const status = anthropicErrorStatus(error);
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case overloadedStatus:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
  }
  // Anthropic documents invalid_request_error for "other 4XX status codes not listed".
  return status < 500 ? 'invalid_request_error' : 'api_error';
}

/** `{"type":"error","error":{"type","message"},"request_id"}`, as Anthropic answers. */
export function anthropicErrorBody(error: GatewayError, requestId?: string): AnthropicErrorEnvelope {
  const envelope: AnthropicErrorEnvelope = {
    type: 'error',
    error: { type: anthropicErrorType(error), message: error.message },
  };
  if (requestId !== undefined) envelope.request_id = requestId;
  return envelope;
}

/**
 * The status and body for a failed request. Headers (Retry-After) still come from
 * `error.headers`.
 *
 * @example
 * const { status, body } = renderAnthropicError(error, request.id);
 * reply.code(status).headers(error.headers ?? {}).send(body);
 */
export function renderAnthropicError(error: GatewayError, requestId?: string): AnthropicErrorResponse {
  return { status: anthropicErrorStatus(error), body: JSON.stringify(anthropicErrorBody(error, requestId)) };
}

/**
 * An `event: error` for a stream whose 200 has already gone out: Anthropic's SDKs raise it as an
 * APIError instead of returning a message cut short.
 */
export function renderAnthropicStreamError(error: GatewayError): string {
  return encodeSseEvent(JSON.stringify(anthropicErrorBody(error)), 'error');
}
