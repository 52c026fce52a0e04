import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureUpstream, startFixtureUpstream } from '../support/fixture-upstream.js';
import { sseEvents, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

/**
 * The translating path through the real gateway: parameters a target cannot carry, endpoints a
 * schema lacks, and streams that fail after their first event, seen from both surfaces.
 */

const fixtures = fileURLToPath(new URL('../fixtures/anthropic/', import.meta.url));

let vendor: FixtureUpstream;
let openaiUpstream: MockUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  vendor = await startFixtureUpstream();
  openaiUpstream = await startMockUpstream({ chunks: ['One', ' two', ' three'] });
  gateway = await startTestGateway(`
models:
  - name: claude
    targets:
      - kind: anthropic
        url: ${vendor.url}
        api_key: sk-anthropic-secret
        model: claude-sonnet-4-5
  - name: claude-lenient
    drop_unsupported_params: true
    targets:
      - kind: anthropic
        url: ${vendor.url}
        api_key: sk-anthropic-secret
        model: claude-sonnet-4-5
  - name: gpt
    targets:
      - url: ${openaiUpstream.url}
        api_key: sk-openai-secret
        model: mock-model
`);
});

afterAll(async () => {
  await gateway?.close();
  await vendor?.close();
  await openaiUpstream?.close();
});

const textAnswer = {
  status: 200,
  headers: { 'content-type': 'application/json' },
  body: {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5',
    content: [{ type: 'text', text: 'Hi.' }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 5, output_tokens: 2 },
  },
};

async function post(path: string, body: unknown) {
  const response = await fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { response, text: await response.text() };
}

describe('a parameter the target cannot carry', () => {
  it('is refused with a 400 naming the parameter, the target and the fix', async () => {
    const sent = vendor.requests.length;
    const { response, text } = await post('/v1/chat/completions', {
      model: 'claude',
      messages: [{ role: 'user', content: 'Hi' }],
      seed: 7,
    });
    expect(response.status).toBe(400);
    const { error } = JSON.parse(text);
    expect(error.code).toBe('unsupported_param');
    expect(error.param).toBe('seed');
    expect(error.message).toContain('"seed" is not supported by target');
    expect(error.message).toContain('drop_unsupported_params');
    expect(vendor.requests.length).toBe(sent);
  });

  it('is dropped, not sent, when the model says drop_unsupported_params', async () => {
    vendor.answer(textAnswer);
    const { response, text } = await post('/v1/chat/completions', {
      model: 'claude-lenient',
      messages: [{ role: 'user', content: 'Hi' }],
      seed: 7,
      logprobs: true,
    });
    expect(response.status).toBe(200);
    expect(JSON.parse(text).choices[0].message.content).toBe('Hi.');
    const upstreamBody = JSON.parse(vendor.requests.at(-1)!.body);
    expect(upstreamBody).not.toHaveProperty('seed');
    expect(upstreamBody).not.toHaveProperty('logprobs');
  });
});

describe('an endpoint the schema lacks', () => {
  it.each([
    ['/v1/completions', { model: 'claude', prompt: 'Hi' }],
    ['/v1/embeddings', { model: 'claude', input: 'Hi' }],
  ])('%s on an Anthropic model is a 400 saying so', async (path, body) => {
    const { response, text } = await post(path, body);
    expect(response.status).toBe(400);
    expect(JSON.parse(text).error.code).toBe('unsupported_endpoint');
  });
});

describe('a stream that fails after its first event', () => {
  it('ends with an error event in OpenAI format for an OpenAI client', async () => {
    vendor.answer({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      streamFile: `${fixtures}stream-error-event.sse`,
    });
    const { response, text } = await post('/v1/chat/completions', {
      model: 'claude',
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      stream: true,
    });
    expect(response.status).toBe(200);
    const data = sseEvents(text).map((event) => event.data);
    expect(data).not.toContain('[DONE]');
    expect(JSON.parse(data.at(-1)!).error.code).toBe('upstream_overloaded');
    // The text decoded before the failure reached the client.
    expect(data.slice(0, -1).some((item) => item.includes('"content"'))).toBe(true);
  });

  it('ends with an Anthropic error event for a Claude client, never message_stop', async () => {
    vendor.answer({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      streamFile: `${fixtures}truncated-stream.sse`,
    });
    const { response, text } = await post('/v1/messages', {
      model: 'claude',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      stream: true,
    });
    expect(response.status).toBe(200);
    const received = sseEvents(text);
    expect(received[0]?.event).toBe('message_start');
    expect(received.map((event) => event.event)).not.toContain('message_stop');
    const last = received.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data)).toMatchObject({ type: 'error', error: { type: 'api_error' } });
  });

  it('ends with an Anthropic error event when an OpenAI-compatible stream is cut', async () => {
    openaiUpstream.setBehaviour({ kind: 'cut', afterChunks: 2 });
    const { response, text } = await post('/v1/messages', {
      model: 'gpt',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Count' }],
      stream: true,
    });
    openaiUpstream.setBehaviour({ kind: 'ok' });
    expect(response.status).toBe(200);
    const last = sseEvents(text).at(-1)!;
    expect(last.event).toBe('error');
  });
});

describe('errors on the Anthropic surface', () => {
  it('renders an upstream 529 as Anthropic overloaded_error with status 529', async () => {
    vendor.answer({
      status: 529,
      headers: { 'content-type': 'application/json' },
      body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
    });
    const { response, text } = await post('/v1/messages', {
      model: 'claude',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(response.status).toBe(529);
    expect(JSON.parse(text)).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
  });

  it('answers invalid JSON with Anthropic invalid_request_error, not OpenAI envelope', async () => {
    const response = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});
