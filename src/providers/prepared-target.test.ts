import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../test/support/target-config.js';
import type { TargetConfig } from '../config/types.js';
import { prepareTarget } from './prepared-target.js';

function target(overrides: Partial<TargetConfig> = {}): TargetConfig {
  return targetConfig({
    name: 'openai',
    origin: 'https://api.openai.com',
    apiKey: 'sk-secret-key',
    ...overrides,
  });
}

/** undici's flat header list as pairs, for readable assertions. */
function pairs(headers: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let index = 0; index < headers.length; index += 2) out.push([headers[index]!, headers[index + 1]!]);
  return out;
}

describe('prepareTarget', () => {
  test('joins each endpoint path onto the base path', () => {
    const prepared = prepareTarget(target());
    expect(prepared.passthrough).toBe(true);
    expect(prepared.pathFor('chat/completions', 'gpt-4o')).toBe('/v1/chat/completions');
    expect(prepared.pathFor('completions', 'gpt-4o')).toBe('/v1/completions');
    expect(prepared.pathFor('embeddings', 'gpt-4o')).toBe('/v1/embeddings');
    expect(prepareTarget(target({ basePath: '' })).pathFor('chat/completions', 'x')).toBe(
      '/chat/completions',
    );
    expect(prepareTarget(target({ basePath: '/openai/v1' })).pathFor('embeddings', 'x')).toBe(
      '/openai/v1/embeddings',
    );
  });

  test('sends the key as a bearer token and custom headers with lowercased names', () => {
    const prepared = prepareTarget(target({ headers: { 'OpenAI-Organization': 'org-1', 'X-Trace': 'on' } }));
    expect(pairs(prepared.headers)).toEqual([
      ['content-type', 'application/json'],
      ['openai-organization', 'org-1'],
      ['x-trace', 'on'],
      ['authorization', 'Bearer sk-secret-key'],
    ]);
  });

  test('sends no authorization header when the target has no key', () => {
    const prepared = prepareTarget(target({ apiKey: undefined }));
    expect(pairs(prepared.headers).map(([name]) => name)).not.toContain('authorization');
  });

  test('the prepared target is frozen, so requests cannot change it', () => {
    const prepared = prepareTarget(target());
    expect(Object.isFrozen(prepared)).toBe(true);
    expect(Object.isFrozen(prepared.headers)).toBe(true);
  });

  test('Azure OpenAI puts the deployment in the path with api-version, and the key in api-key', () => {
    const prepared = prepareTarget(
      target({
        kind: 'azure-openai',
        origin: 'https://res.openai.azure.com',
        basePath: '',
        apiVersion: '2024-10-21',
      }),
    );
    expect(prepared.passthrough).toBe(true);
    expect(prepared.pathFor('chat/completions', 'gpt 4o')).toBe(
      '/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21',
    );
    expect(pairs(prepared.headers)).toEqual([
      ['content-type', 'application/json'],
      ['api-key', 'sk-secret-key'],
    ]);
  });

  test("Azure OpenAI without api_version uses Azure's v1 API, the deployment named in the body", () => {
    const prepared = prepareTarget(target({ kind: 'azure-openai', basePath: '' }));
    expect(prepared.pathFor('embeddings', 'text-embedding-3-small')).toBe('/openai/v1/embeddings');
  });
});
