import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCli, startCli } from '../support/cli.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

/** The official OpenAI client against `switchyard serve`, started as a user starts it. */
let upstream: MockUpstream;
let server: RunningCli;
let directory: string;
let client: OpenAI;

beforeAll(async () => {
  upstream = await startMockUpstream();
  directory = await mkdtemp(join(tmpdir(), 'switchyard-e2e-'));
  const config = join(directory, 'switchyard.yaml');
  await writeFile(
    config,
    `store:
  path: ${join(directory, 'switchyard.db')}
providers:
  mock:
    kind: openai-compatible
    url: ${upstream.url}
    api_key: \${MOCK_KEY}
models:
  - name: gpt-4o-mini
    targets:
      - provider: mock
        model: mock-model
  - name: text-embedding-3-small
    targets:
      - provider: mock
`,
  );
  server = await startCli(['--config', config], { MOCK_KEY: 'sk-mock-upstream' });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-until-keys-exist', maxRetries: 0 });
});
afterAll(async () => {
  await server?.stop();
  await upstream?.close();
  await rm(directory, { recursive: true, force: true });
});

describe('the official openai client', () => {
  it('gets a chat completion', async () => {
    const completion = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    expect(completion.choices[0]!.message.content).toBe('Hello from the mock upstream.');
    expect(completion.usage?.completion_tokens).toBe(6);
    expect(upstream.requests.at(-1)!.json.model).toBe('mock-model');
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer sk-mock-upstream');
  });

  it('streams a chat completion, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Say hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Hello from the mock upstream.');
    expect(usage?.completion_tokens).toBe(6);
  });

  it('creates embeddings', async () => {
    const result = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: ['first', 'second'],
    });
    expect(result.data).toHaveLength(2);
    expect(result.data[0]!.embedding.length).toBeGreaterThan(0);
  });

  it('lists and retrieves models', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(['gpt-4o-mini', 'text-embedding-3-small']);
    expect((await client.models.retrieve('gpt-4o-mini')).id).toBe('gpt-4o-mini');
  });

  it('raises NotFoundError for an unknown model, with our code and message', async () => {
    const error = await client.chat.completions
      .create({ model: 'gpt-7', messages: [{ role: 'user', content: 'x' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    expect((error as Error).message).toContain('gpt-4o-mini');
  });

  it('raises BadRequestError naming the field for a bad request', async () => {
    const error = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [], temperature: 9 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');
  });

  it('raises RateLimitError when the upstream rate-limits', async () => {
    upstream.setBehaviour({
      kind: 'error',
      status: 429,
      headers: { 'retry-after': '1' },
      body: { error: { message: 'slow down', type: 'requests', code: 'rate_limit_exceeded' } },
    });
    const error = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .catch((caught: unknown) => caught);
    upstream.setBehaviour({ kind: 'ok' });
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('1');
  });

  it('raises InternalServerError (502) when the upstream is down', async () => {
    upstream.setBehaviour({ kind: 'reset' });
    const error = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .catch((caught: unknown) => caught);
    upstream.setBehaviour({ kind: 'ok' });
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(502);
  });

  it('never writes the upstream key to its logs', () => {
    expect(server.output.join('\n')).not.toContain('sk-mock-upstream');
  });
});
