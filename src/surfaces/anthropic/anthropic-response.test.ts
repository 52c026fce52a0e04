import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletion } from '../../spec/openai-chat.js';
import { anthropicToCanonical, parseAnthropicRequest } from './anthropic-request.js';
import { anthropicMessageId, anthropicUsage, canonicalToAnthropic } from './anthropic-response.js';

type Choice = ChatCompletion['choices'][number];

function completion(
  message: Partial<Choice['message']>,
  finish: Choice['finish_reason'],
  extra = {},
): ChatCompletion {
  return {
    id: 'chatcmpl-abc123',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'upstream-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: null, ...message },
        logprobs: null,
        finish_reason: finish,
        ...extra,
      },
    ],
    usage: {
      prompt_tokens: 120,
      completion_tokens: 15,
      total_tokens: 135,
      prompt_tokens_details: { cached_tokens: 100 },
    },
  };
}

describe('canonicalToAnthropic', () => {
  test('a text answer becomes a message with one text block, end_turn and Anthropic usage', () => {
    expect(canonicalToAnthropic(completion({ content: 'Hello there.' }, 'stop'), 'claude')).toEqual({
      id: 'msg_abc123',
      type: 'message',
      role: 'assistant',
      model: 'claude',
      content: [{ type: 'text', text: 'Hello there.' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: 20,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 100,
        output_tokens: 15,
      },
    });
  });

  test('tool calls become tool_use blocks after the text, with parsed input and the upstream ids', () => {
    const answer = canonicalToAnthropic(
      completion(
        {
          content: 'Checking both.',
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
            { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        'tool_calls',
      ),
      'claude',
    );
    expect(answer.content).toEqual([
      { type: 'text', text: 'Checking both.' },
      { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
    ]);
    expect(answer.stop_reason).toBe('tool_use');
  });

  test('tool calls reported with finish_reason "stop" still stop with tool_use, so the client runs them', () => {
    const calls = [{ id: 'call_1', type: 'function' as const, function: { name: 'f', arguments: '{}' } }];
    expect(canonicalToAnthropic(completion({ tool_calls: calls }, 'stop'), 'claude').stop_reason).toBe(
      'tool_use',
    );
  });

  test.each([
    ['length', 'max_tokens'],
    ['content_filter', 'refusal'],
    ['function_call', 'tool_use'],
    [null, 'end_turn'],
  ] as const)('finish_reason %s becomes stop_reason %s', (finish, stop) => {
    expect(canonicalToAnthropic(completion({ content: 'x' }, finish), 'claude').stop_reason).toBe(stop);
  });

  test('a matched stop string reported in the choice (as vLLM does) becomes stop_sequence', () => {
    const answer = canonicalToAnthropic(
      completion({ content: 'one, two' }, 'stop', { stop_reason: 'three' }),
      'claude',
    );
    expect(answer).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'three' });
    // A number there is a stop token: the model's own end of turn.
    const token = canonicalToAnthropic(
      completion({ content: 'x' }, 'stop', { stop_reason: 128001 }),
      'claude',
    );
    expect(token).toMatchObject({ stop_reason: 'end_turn', stop_sequence: null });
  });

  test("an OpenAI refusal becomes the refusal's text with stop_reason refusal", () => {
    const answer = canonicalToAnthropic(
      completion({ refusal: 'I cannot help with that.' }, 'stop'),
      'claude',
    );
    expect(answer.content).toEqual([{ type: 'text', text: 'I cannot help with that.' }]);
    expect(answer.stop_reason).toBe('refusal');
  });

  test('an empty answer has no content blocks', () => {
    expect(canonicalToAnthropic(completion({ content: '' }, 'stop'), 'claude').content).toEqual([]);
  });

  test('arguments that are not a JSON object fail as a retryable bad response naming the tool', () => {
    for (const argumentsText of ['{"city": "Par', '["Paris"]', 'null']) {
      const call = {
        id: 'call_1',
        type: 'function' as const,
        function: { name: 'get_weather', arguments: argumentsText },
      };
      let error: unknown;
      try {
        canonicalToAnthropic(completion({ tool_calls: [call] }, 'tool_calls'), 'claude');
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('upstream_bad_response');
      expect((error as GatewayError).retryable).toBe(true);
      expect((error as GatewayError).message).toContain('"get_weather"');
    }
  });

  test('a completion without choices is a bad response', () => {
    const empty = { ...completion({ content: 'x' }, 'stop'), choices: [] };
    expect(() => canonicalToAnthropic(empty, 'claude')).toThrow(/no choices/);
  });

  test('a tool call without an id gets one unique to the message', () => {
    const call = { id: '', type: 'function' as const, function: { name: 'f', arguments: '{}' } };
    const answer = canonicalToAnthropic(completion({ tool_calls: [call, call] }, 'tool_calls'), 'claude');
    expect(answer.content.map((block) => (block.type === 'tool_use' ? block.id : ''))).toEqual([
      'toolu_abc123_0',
      'toolu_abc123_1',
    ]);
  });
});

describe('ids and usage', () => {
  test('message ids keep the canonical id recognisable, and an Anthropic id is kept as it is', () => {
    expect(anthropicMessageId('chatcmpl-9f8e7d')).toBe('msg_9f8e7d');
    expect(anthropicMessageId('gen-42')).toBe('msg_gen-42');
    expect(anthropicMessageId('msg_01XyZ')).toBe('msg_01XyZ');
  });

  test('without usage every count is 0; without cache details nothing is cached', () => {
    expect(anthropicUsage(undefined)).toEqual({
      input_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 0,
    });
    expect(anthropicUsage({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 })).toMatchObject({
      input_tokens: 9,
      cache_read_input_tokens: 0,
      output_tokens: 3,
    });
  });
});

describe('a round trip: Anthropic request → canonical → canonical answer → Anthropic message', () => {
  test('a multi-turn tool conversation keeps ids so the next turn answers the right call', () => {
    const request = anthropicToCanonical(
      parseAnthropicRequest({
        model: 'claude',
        max_tokens: 512,
        tools: [
          { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
        ],
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
      }),
    );
    expect(request.tools?.[0]?.function.name).toBe('get_weather');

    // The upstream answers with a tool call; the client gets a tool_use block …
    const first = canonicalToAnthropic(
      completion(
        {
          tool_calls: [
            {
              id: 'call_77',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
          ],
        },
        'tool_calls',
      ),
      'claude',
    );
    expect(first.stop_reason).toBe('tool_use');

    // … and sends it back with its result, which reaches the upstream under the upstream's id.
    const next = anthropicToCanonical(
      parseAnthropicRequest({
        model: 'claude',
        max_tokens: 512,
        tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
        messages: [
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', content: first.content },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: 'call_77', content: '18°C, sunny' }],
          },
        ],
      }),
    );
    expect(next.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_77',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_77', content: '18°C, sunny' },
    ]);

    const last = canonicalToAnthropic(
      completion({ content: 'It is 18°C and sunny in Paris.' }, 'stop'),
      'claude',
    );
    expect(last.content).toEqual([{ type: 'text', text: 'It is 18°C and sunny in Paris.' }]);
    expect(last.stop_reason).toBe('end_turn');
  });
});
