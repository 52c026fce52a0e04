import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCli, runCli, startCli } from '../support/cli.js';
import { type FixtureUpstream, startFixtureUpstream } from '../support/fixture-upstream.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

/**
 * Both official clients against `switchyard serve` as a user starts it, each reaching models of
 * the other's schema: the Anthropic SDK → an OpenAI-compatible upstream and the local runner;
 * the OpenAI SDK → an Anthropic upstream (a stand-in answering with the conformance fixtures'
 * bytes). Streaming and not.
 */

const anthropicFixtures = fileURLToPath(new URL('../fixtures/anthropic/', import.meta.url));

let openaiUpstream: MockUpstream;
let anthropicUpstream: FixtureUpstream;
let server: RunningCli;
let directory: string;
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  openaiUpstream = await startMockUpstream();
  anthropicUpstream = await startFixtureUpstream();
  directory = await mkdtemp(join(tmpdir(), 'switchyard-front-doors-'));
  const env = { SWITCHYARD_DATA_DIR: directory };
  expect((await runCli(['models', 'create-demo', '--size', 'tiny'], env)).code).toBe(0);
  const config = join(directory, 'switchyard.yaml');
  await writeFile(
    config,
    `store:
  path: ${join(directory, 'switchyard.db')}
runner:
  threads: 1
models:
  - name: gpt-4o-mini
    targets:
      - url: ${openaiUpstream.url}
        api_key: sk-openai-upstream
        model: mock-model
  - name: claude-sonnet
    targets:
      - kind: anthropic
        url: ${anthropicUpstream.url}
        api_key: sk-test-secret-key
        model: claude-sonnet-4-5-20250929
  - name: local
    targets:
      - kind: local
        model: demo:tiny
`,
  );
  server = await startCli(['--config', config], env);
  // The local runner starts beside the gateway; wait until it serves.
  for (let attempt = 0; attempt < 200; attempt++) {
    if ((await fetch(`${server.url}/readyz`)).status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  anthropic = new Anthropic({ baseURL: server.url, apiKey: 'unused-until-keys-exist', maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-until-keys-exist', maxRetries: 0 });
});

afterAll(async () => {
  await server?.stop();
  await openaiUpstream?.close();
  await anthropicUpstream?.close();
  if (directory) await rm(directory, { recursive: true, force: true });
});

describe('the Anthropic SDK', () => {
  it('gets a Messages answer from an OpenAI-compatible model, system prompt and usage carried', async () => {
    const message = await anthropic.messages.create({
      model: 'gpt-4o-mini',
      max_tokens: 64,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    expect(message.type).toBe('message');
    expect(message.content).toEqual([{ type: 'text', text: 'Hello from the mock upstream.' }]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    const sent = openaiUpstream.requests.at(-1)!.json;
    expect(sent.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hello' },
    ]);
    expect(sent.max_tokens).toBe(64);
  });

  it('streams Anthropic events from an OpenAI-compatible stream, ending with the usage', async () => {
    const stream = anthropic.messages.stream({
      model: 'gpt-4o-mini',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    const types: string[] = [];
    stream.on('streamEvent', (event) => types.push(event.type));
    const message = await stream.finalMessage();
    expect(message.content[0]).toMatchObject({ type: 'text', text: 'Hello from the mock upstream.' });
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types).toContain('content_block_delta');
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it('reaches the local runner, streamed and not', async () => {
    const message = await anthropic.messages.create({
      model: 'local',
      max_tokens: 8,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(message.content[0]?.type).toBe('text');
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeLessThanOrEqual(8);
    expect(['end_turn', 'max_tokens']).toContain(message.stop_reason);
    const streamed = await anthropic.messages
      .stream({ model: 'local', max_tokens: 8, messages: [{ role: 'user', content: 'Hello' }] })
      .finalMessage();
    expect(streamed.usage.output_tokens).toBeGreaterThan(0);
  });

  it('raises NotFoundError for an unknown model and BadRequestError naming a missing max_tokens', async () => {
    const unknown = await anthropic.messages
      .create({ model: 'nope', max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }] })
      .catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
    expect((unknown as Error).message).toContain('nope');
    const missing = await anthropic.messages
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] } as never)
      .catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(Anthropic.BadRequestError);
    expect((missing as Error).message).toContain('max_tokens');
  });

  it('counts tokens, saying when the count is an estimate', async () => {
    const response = await fetch(`${server.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there' }] }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-switchyard-token-count')).toBe('estimated');
    const { input_tokens } = (await response.json()) as { input_tokens: number };
    expect(input_tokens).toBeGreaterThan(0);
  });

  it('counts tokens exactly for a local model', async () => {
    const countTokens = (body: Record<string, unknown>) =>
      fetch(`${server.url}/v1/messages/count_tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'local', ...body }),
      });
    const response = await countTokens({
      system: 'Be brief.',
      messages: [
        { role: 'user', content: 'What is two and two?' },
        { role: 'assistant', content: 'Four.' },
        { role: 'user', content: [{ type: 'text', text: 'And three and three?' }] },
      ],
      max_tokens: 64,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-switchyard-token-count')).toBeNull();
    const { input_tokens } = (await response.json()) as { input_tokens: number };
    // The same conversation through the other front door: the runner's own usage is the truth.
    const completion = await openai.chat.completions.create({
      model: 'local',
      max_tokens: 1,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is two and two?' },
        { role: 'assistant', content: 'Four.' },
        { role: 'user', content: 'And three and three?' },
      ],
    });
    expect(input_tokens).toBeGreaterThan(10);
    expect(input_tokens).toBe(completion.usage?.prompt_tokens);

    // What the runner refuses (a local model reads text only) comes back in Anthropic's envelope.
    const image = {
      type: 'image',
      source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' },
    };
    const refused = await countTokens({ messages: [{ role: 'user', content: [image] }] });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringContaining('text') },
    });
  });
});

describe('the OpenAI SDK', () => {
  it('gets a chat completion from an Anthropic model', async () => {
    anthropicUpstream.answer({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: {
        id: 'msg_01',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5-20250929',
        content: [{ type: 'text', text: 'Paris.' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 12, output_tokens: 3, cache_read_input_tokens: 4 },
      },
    });
    const completion = await openai.chat.completions.create({
      model: 'claude-sonnet',
      messages: [{ role: 'user', content: 'Capital of France?' }],
    });
    expect(completion.choices[0]?.message.content).toBe('Paris.');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage?.prompt_tokens).toBe(16);
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(4);
    const sent = JSON.parse(anthropicUpstream.requests.at(-1)!.body);
    expect(sent.model).toBe('claude-sonnet-4-5-20250929');
    expect(anthropicUpstream.requests.at(-1)!.headers['x-api-key']).toBe('sk-test-secret-key');
  });

  it('streams tool calls from an Anthropic stream with stable ids', async () => {
    anthropicUpstream.answer({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      streamFile: join(anthropicFixtures, 'tool-call-stream.sse'),
    });
    const stream = await openai.chat.completions.create({
      model: 'claude-sonnet',
      messages: [{ role: 'user', content: 'Weather?' }],
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', parameters: { type: 'object', properties: {} } },
        },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
    const calls = new Map<number, { id?: string; name?: string; arguments: string }>();
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        finish = choice.finish_reason ?? finish;
        for (const call of choice.delta.tool_calls ?? []) {
          const entry = calls.get(call.index) ?? { arguments: '' };
          entry.id ??= call.id;
          entry.name ??= call.function?.name;
          entry.arguments += call.function?.arguments ?? '';
          calls.set(call.index, entry);
        }
      }
    }
    expect(finish).toBe('tool_calls');
    expect(calls.size).toBeGreaterThan(0);
    for (const call of calls.values()) {
      expect(call.id).toMatch(/^toolu_/);
      expect(() => JSON.parse(call.arguments)).not.toThrow();
    }
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });
});
