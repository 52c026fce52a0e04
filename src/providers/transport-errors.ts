import { GatewayError } from '../errors/index.js';

/**
 * Maps what undici (or the socket under it) throws into the catalogue. An error that already is
 * a GatewayError — the reason given to an AbortController — passes through unchanged.
 */
export function transportError(error: unknown, targetName: string): GatewayError {
  if (error instanceof GatewayError) return error;
  const code = errorCode(error);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new GatewayError(
        'upstream_connect_timeout',
        `Timed out connecting to upstream "${targetName}" (timeouts.connect).`,
        { cause: error },
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new GatewayError(
        'upstream_first_byte_timeout',
        `Upstream "${targetName}" did not start answering in time (timeouts.first_byte).`,
        { cause: error },
      );
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatewayError(
        'upstream_idle_timeout',
        `Upstream "${targetName}" stalled between chunks for longer than timeouts.idle.`,
        { cause: error },
      );
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new GatewayError(
        'upstream_unreachable',
        `Could not connect to upstream "${targetName}" (${code}). Check that it is running and its URL is right.`,
        { cause: error },
      );
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return new GatewayError(
        'upstream_connection_reset',
        `Upstream "${targetName}" closed the connection before the response was complete. Retry the request.`,
        { cause: error },
      );
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new GatewayError(
        'upstream_bad_response',
        `Upstream "${targetName}" sent a response larger than this gateway accepts.`,
        { cause: error },
      );
    default:
      return new GatewayError(
        'upstream_bad_response',
        `Upstream "${targetName}" failed: ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
  }
}

function errorCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  // undici wraps socket errors; the errno code may sit on the cause.
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
