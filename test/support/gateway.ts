import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { type GatewayOptions, type RunningGateway, startGateway } from '../../src/gateway/runtime.js';
import { parseSseEvent, SseSplitter } from '../../src/providers/sse.js';
import { createLogger, type Logger } from '../../src/telemetry/logger.js';

export interface TestGateway extends RunningGateway {
  /** Every log line the gateway wrote, parsed. */
  readonly logs: Record<string, unknown>[];
}

/**
 * Starts the real gateway in this process on a free loopback port, from YAML text as a user
 * would write it. The store is in memory unless a path is given; logs are captured.
 */
export async function startTestGateway(
  yaml: string,
  options: { env?: NodeJS.ProcessEnv; storePath?: string; gateway?: GatewayOptions } = {},
): Promise<TestGateway> {
  const parsed = parseConfigText(yaml, options.env ?? {});
  const config: GatewayConfig = {
    ...parsed,
    server: { ...parsed.server, host: '127.0.0.1', port: 0 },
    store: { ...parsed.store, path: options.storePath ?? ':memory:' },
  };
  const { logger, lines } = capturingLogger('info');
  const gateway = await startGateway(config, logger, options.gateway);
  return Object.assign(gateway, { logs: lines });
}

/** A logger at `level` and every line it writes, parsed. */
export function capturingLogger(level: string): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

/** A config with one model served by one OpenAI-compatible target. */
export function singleModelConfig(
  upstreamUrl: string,
  extra: { model?: string; upstreamModel?: string; target?: string; top?: string } = {},
): string {
  return `${extra.top ?? ''}
models:
  - name: ${extra.model ?? 'test-model'}
    targets:
      - url: ${upstreamUrl}
        api_key: upstream-secret
        model: ${extra.upstreamModel ?? extra.model ?? 'test-model'}
${extra.target ?? ''}`;
}

/** A gateway's answer, read whole. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined for a stream. */
  json: any;
  /** Milliseconds from sending to the end of the body. */
  elapsed: number;
}

/** Sends a request to the gateway and reads the whole answer; a body goes as JSON. */
export async function send(
  gateway: RunningGateway,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const isJson = response.headers.get('content-type')?.startsWith('application/json') === true;
  return {
    status: response.status,
    headers: response.headers,
    text,
    json: isJson ? JSON.parse(text) : undefined,
    elapsed: performance.now() - started,
  };
}

/** The events of a whole server-sent event stream, parsed. */
export function sseEvents(text: string) {
  const splitter = new SseSplitter();
  return [...splitter.push(text), splitter.flush()].filter((event) => event.trim() !== '').map(parseSseEvent);
}
