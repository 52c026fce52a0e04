import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletion, ChatCompletionChunk } from '../../spec/openai-chat.js';
import { renderAnthropicError } from './anthropic-errors.js';
import { canonicalToAnthropic } from './anthropic-response.js';
import { AnthropicStreamEncoder } from './anthropic-stream.js';

/**
 * What the surface writes, read by Anthropic's own TypeScript SDK through its public API. The SDK
 * is not a dependency yet, so these run only where `@anthropic-ai/sdk` is installed; the name is
 * held in a variable so the type checker does not require it.
 */
const sdkName = '@anthropic-ai/sdk';
const sdk = (await import(sdkName).catch(() => undefined)) as
  | { default: new (options: Record<string, unknown>) => AnthropicClient }
  | undefined;

interface AnthropicClient {
  messages: {
    create(body: Record<string, unknown>): Promise<unknown>;
    stream(body: Record<string, unknown>): { finalMessage(): Promise<unknown> };
  };
}

/** A client whose every request is answered with `response`. */
function clientAnswering(response: () => Response): AnthropicClient {
  return new sdk!.default({
    apiKey: 'sk-test',
    baseURL: 'http://switchyard.test',
    maxRetries: 0,
    fetch: async () => response(),
  });
}

const requestBody = {
  model: 'claude',
  max_tokens: 256,
  messages: [{ role: 'user', content: 'Weather in Paris?' }],
};

function chunk(
  delta: ChatCompletionChunk['choices'][number]['delta'],
  finish: ChatCompletionChunk['choices'][number]['finish_reason'] = null,
): ChatCompletionChunk {
  return {
    id: 'chatcmpl-sdk',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'upstream',
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
}

const usage = { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 };

const answer: ChatCompletion = {
  id: 'chatcmpl-sdk',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'upstream',
  choices: [
    {
      index: 0,
      message: {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
  ],
  usage,
};

describe.skipIf(sdk === undefined)('the official Anthropic SDK reading the surface', () => {
  test('accumulates the encoded stream into the message the non-streamed path returns', async () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-sdk' });
    const text =
      [
        chunk({ role: 'assistant', content: '' }),
        chunk({ content: 'Let me ' }),
        chunk({ content: 'check.' }),
        chunk({
          tool_calls: [
            { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } },
          ],
        }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
        chunk({}, 'tool_calls'),
        { ...chunk({}), choices: [], usage },
      ]
        .map((item) => encoder.chunk(item))
        .join('') + encoder.end();
    const client = clientAnswering(
      () => new Response(text, { headers: { 'content-type': 'text/event-stream' } }),
    );
    const message = await client.messages.stream(requestBody).finalMessage();
    expect(message).toMatchObject(canonicalToAnthropic(answer, 'claude'));
  });

  test('reads the non-streamed message', async () => {
    const body = JSON.stringify(canonicalToAnthropic(answer, 'claude'));
    const client = clientAnswering(
      () => new Response(body, { headers: { 'content-type': 'application/json' } }),
    );
    expect(await client.messages.create(requestBody)).toMatchObject({ stop_reason: 'tool_use' });
  });

  test('raises an error event in the stream as an error', async () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-sdk' });
    const text =
      encoder.chunk(chunk({ content: 'Hel' })) +
      encoder.streamError(new GatewayError('upstream_stream_failed'));
    const client = clientAnswering(
      () => new Response(text, { headers: { 'content-type': 'text/event-stream' } }),
    );
    await expect(client.messages.stream(requestBody).finalMessage()).rejects.toThrow(/broke off/);
  });

  test('reads an overloaded answer as status 529 with overloaded_error', async () => {
    const { status, body } = renderAnthropicError(new GatewayError('model_overloaded'), 'req_1');
    const client = clientAnswering(
      () => new Response(body, { status, headers: { 'content-type': 'application/json' } }),
    );
    const failure = (await client.messages.create(requestBody).catch((error: unknown) => error)) as {
      status?: number;
      error?: unknown;
    };
    expect(failure.status).toBe(529);
    expect(JSON.stringify(failure.error)).toContain('overloaded_error');
  });
});
