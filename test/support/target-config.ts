import { defaultDeployment } from '../../src/config/routing.js';
import type { TargetConfig } from '../../src/config/types.js';

/** A compiled target for unit tests: an OpenAI-compatible upstream unless overridden. */
export function targetConfig(overrides: Partial<TargetConfig> = {}): TargetConfig {
  return {
    name: 'test',
    kind: 'openai-compatible',
    origin: 'https://upstream.test',
    basePath: '/v1',
    apiKey: 'sk-test-secret-key',
    model: undefined,
    headers: {},
    timeouts: { connect: 1_000, firstByte: 1_000, idle: 1_000, total: 1_000 },
    maxConnections: undefined,
    streamUsage: true,
    apiVersion: undefined,
    defaultMaxTokens: undefined,
    region: undefined,
    awsCredentials: undefined,
    deployment: defaultDeployment('test'),
    ...overrides,
  };
}
