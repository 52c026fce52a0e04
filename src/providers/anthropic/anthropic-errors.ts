import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../errors/index.js';
import type { AnthropicErrorEnvelope } from '../../spec/anthropic.js';

/**
 * Anthropic's failures as catalogue errors. Its error envelope is
 * `{"type":"error","error":{"type":"rate_limit_error","message":"…"},"request_id":"req_…"}`,
 * the same in a non-2xx body and in a stream's `error` event.
 * https://docs.anthropic.com/en/api/errors
 */
export function anthropicFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  targetName: string,
): GatewayError {
  const envelope = readEnvelope(body);
  const upstreamMessage =
    envelope !== undefined && envelope.message !== ''
      ? envelope.message
      : body.trim().slice(0, 500) || `HTTP ${status}`;
  const requestId = envelope?.requestId ?? header(headers, 'request-id');
  const cause = `upstream ${targetName} answered ${status}${requestId === undefined ? '' : ` (request ${requestId})`}`;
  const upstream = { type: envelope?.type };

  if (status === 401 || status === 403) {
    // The upstream's message may quote our credential; the client must never see it.
    return new GatewayError('upstream_auth_failed', undefined, { cause });
  }
  if (status === 529 || envelope?.type === 'overloaded_error') {
    return new GatewayError(
      'upstream_overloaded',
      `Upstream "${targetName}" is overloaded: ${upstreamMessage}`,
      { headers: retryAfter(headers), cause },
    );
  }
  if (status === 429) {
    // Only Retry-After is passed on: the anthropic-ratelimit-* headers describe our key's
    // account limits, which are the operator's business, not the client's.
    return new GatewayError(
      'upstream_rate_limited',
      `Upstream "${targetName}" is rate limiting: ${upstreamMessage}`,
      { headers: retryAfter(headers), upstream, cause },
    );
  }
  if (status >= 400 && status < 500) {
    return new GatewayError('upstream_rejected', upstreamMessage, { status, upstream, cause });
  }
  return new GatewayError(
    'upstream_error',
    `Upstream "${targetName}" answered ${status}: ${upstreamMessage}`,
    {
      cause,
    },
  );
}

/**
 * An `error` event in a 2xx stream: Anthropic sends one when a failure (an overload, most often)
 * strikes after the response headers are out. Overload keeps its own retryable code.
 */
export function anthropicStreamFailure(error: unknown, targetName: string): GatewayError {
  const type =
    typeof (error as { type?: unknown })?.type === 'string' ? (error as { type: string }).type : '';
  const message =
    typeof (error as { message?: unknown })?.message === 'string'
      ? (error as { message: string }).message
      : 'an error event';
  if (type === 'overloaded_error') {
    return new GatewayError('upstream_overloaded', `Upstream "${targetName}" is overloaded: ${message}`);
  }
  return new GatewayError(
    'upstream_stream_failed',
    `The stream from "${targetName}" failed${type === '' ? '' : ` (${type})`}: ${message}`,
  );
}

interface UpstreamError {
  type: string | undefined;
  message: string;
  requestId: string | undefined;
}

function readEnvelope(body: string): UpstreamError | undefined {
  try {
    const parsed = JSON.parse(body) as Partial<AnthropicErrorEnvelope> | null;
    if (parsed !== null && typeof parsed.error === 'object' && parsed.error !== null) {
      const { type, message } = parsed.error as { type?: unknown; message?: unknown };
      return {
        type: typeof type === 'string' ? type : undefined,
        message: typeof message === 'string' ? message : '',
        requestId: typeof parsed.request_id === 'string' ? parsed.request_id : undefined,
      };
    }
  } catch {}
  return undefined;
}

function retryAfter(headers: IncomingHttpHeaders): Record<string, string> {
  const value = header(headers, 'retry-after');
  return value === undefined ? {} : { 'retry-after': value };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
}
