import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { type GatewayOptions, type RunningGateway, startGateway } from '../../src/gateway/runtime.js';
import { createLogger } from '../../src/telemetry/logger.js';

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
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const gateway = await startGateway(config, createLogger('info', sink), options.gateway);
  return Object.assign(gateway, { logs });
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
