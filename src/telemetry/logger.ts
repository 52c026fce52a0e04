import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The process logger: JSON lines on stdout, written asynchronously so a slow terminal or pipe
 * never stalls a request. Secrets never reach it: request lines carry ids, names, statuses,
 * durations and token counts only, and the redact list guards against a header slipping in.
 */
export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  const stream =
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: false }) : destination;
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: [
          'headers.authorization',
          'headers["x-api-key"]',
          '*.apiKey',
          '*.api_key',
          'apiKey',
          'api_key',
          '*.awsCredentials',
          'awsCredentials',
        ],
        censor: '[redacted]',
      },
    },
    stream,
  );
}

/** Writes out whatever the asynchronous stream still holds; call right before exiting. */
export function flushLogger(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, { flushSync?: () => void }>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // Nothing left to write, or the stream is already closed.
  }
}
