import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletionChunk } from '../../spec/openai-chat.js';
import type { TranslationContext } from '../adapter.js';
import { jsonAnswerTool } from '../translation-parts.js';
import {
  AnthropicStreamDecoder,
  anthropicCompletion,
  canonicalUsage,
  finishReason,
} from './anthropic-openai-response.js';

const context: TranslationContext = {
  id: 'chatcmpl-1',
  created: 1_700_000_000,
  model: 'claude',
  targetName: 'anthropic',
  includeUsage: true,
};

function answer(
  content: unknown[],
  stopReason = 'end_turn',
  usage: unknown = { input_tokens: 5, output_tokens: 2 },
) {
  return JSON.stringify({
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5',
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage,
  });
}

function events(...list: [string, unknown][]): Buffer {
  return Buffer.from(
    list.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join(''),
  );
}

const messageStart: [string, unknown] = [
  'message_start',
  {
    type: 'message_start',
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [],
      model: 'claude-sonnet-4-5',
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 1 },
    },
  },
];
const messageStop: [string, unknown] = ['message_stop', { type: 'message_stop' }];

function blockStart(index: number, block: unknown): [string, unknown] {
  return ['content_block_start', { type: 'content_block_start', index, content_block: block }];
}
function jsonDelta(index: number, partial: string): [string, unknown] {
  return [
    'content_block_delta',
    { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: partial } },
  ];
}
function textDelta(index: number, text: string): [string, unknown] {
  return ['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } }];
}
function blockStop(index: number): [string, unknown] {
  return ['content_block_stop', { type: 'content_block_stop', index }];
}
function messageDelta(stopReason: string, usage: unknown = { output_tokens: 7 }): [string, unknown] {
  return [
    'message_delta',
    { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage },
  ];
}

function deltas(chunks: ChatCompletionChunk[]) {
  return chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta));
}

describe('a whole answer', () => {
  test('joins the text blocks into the content and keeps tool_use ids', () => {
    const completion = anthropicCompletion(
      answer(
        [
          { type: 'text', text: 'Checking ' },
          { type: 'text', text: 'now.' },
          { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Rome' } },
        ],
        'tool_use',
      ),
      context,
    );
    expect(completion.id).toBe('chatcmpl-1');
    expect(completion.model).toBe('claude');
    expect(completion.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: 'Checking now.',
        refusal: null,
        tool_calls: [
          {
            id: 'toolu_9',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
          },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    });
  });

  test('content is null when the answer has no text', () => {
    const completion = anthropicCompletion(
      answer([{ type: 'tool_use', id: 'toolu_1', name: 'a', input: {} }], 'tool_use'),
      context,
    );
    expect(completion.choices[0]!.message.content).toBeNull();
  });

  test('the JSON-mode tool is the content, and its tool_use stop is a plain stop', () => {
    const completion = anthropicCompletion(
      answer([{ type: 'tool_use', id: 'toolu_1', name: jsonAnswerTool, input: { ok: true } }], 'tool_use'),
      context,
    );
    expect(completion.choices[0]!.message).toEqual({
      role: 'assistant',
      content: '{"ok":true}',
      refusal: null,
    });
    expect(completion.choices[0]!.finish_reason).toBe('stop');
  });

  test('an answer that is not JSON, or has no content list, is upstream_bad_response', () => {
    expect(() => anthropicCompletion('<html>', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
    expect(() => anthropicCompletion('{"type":"message"}', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
  });
});

describe('stop reasons', () => {
  test.each([
    ['end_turn', false, 'stop'],
    ['stop_sequence', false, 'stop'],
    ['pause_turn', false, 'stop'],
    ['max_tokens', false, 'length'],
    ['model_context_window_exceeded', false, 'length'],
    ['tool_use', true, 'tool_calls'],
    ['tool_use', false, 'stop'],
    ['refusal', false, 'content_filter'],
  ] as const)('%s (client tools called: %s) is %s', (stopReason, calledTools, expected) => {
    expect(finishReason(stopReason, calledTools)).toBe(expected);
  });
});

describe('usage', () => {
  test('prompt tokens include cache reads and writes; cache reads are the cached tokens', () => {
    expect(
      canonicalUsage({
        input_tokens: 10,
        cache_read_input_tokens: 200,
        cache_creation_input_tokens: 30,
        output_tokens: 5,
      }),
    ).toEqual({
      prompt_tokens: 240,
      completion_tokens: 5,
      total_tokens: 245,
      prompt_tokens_details: { cached_tokens: 200 },
    });
  });

  test('missing or null cache counts count as zero', () => {
    expect(canonicalUsage({ input_tokens: 3, output_tokens: 4, cache_read_input_tokens: null })).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    expect(canonicalUsage(undefined)).toBeUndefined();
  });
});

describe('the stream decoder', () => {
  test('numbers tool calls by their order among tool blocks, not by Anthropic block index', () => {
    const decoder = new AnthropicStreamDecoder(context);
    const chunks = decoder.push(
      events(
        messageStart,
        blockStart(0, { type: 'text', text: '' }),
        textDelta(0, 'Two lookups.'),
        blockStop(0),
        blockStart(1, { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: {} }),
        jsonDelta(1, ''),
        jsonDelta(1, '{"city":"Oslo"}'),
        blockStop(1),
        blockStart(2, { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: {} }),
        jsonDelta(2, '{"zone":'),
        jsonDelta(2, '"CET"}'),
        blockStop(2),
        messageDelta('tool_use'),
        messageStop,
      ),
    );
    chunks.push(...decoder.end());
    expect(deltas(chunks).flatMap((delta) => delta.tool_calls ?? [])).toEqual([
      { index: 0, id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '' } },
      { index: 0, function: { arguments: '{"city":"Oslo"}' } },
      { index: 1, id: 'toolu_b', type: 'function', function: { name: 'get_time', arguments: '' } },
      { index: 1, function: { arguments: '{"zone":' } },
      { index: 1, function: { arguments: '"CET"}' } },
    ]);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  test('a tool whose input streamed no JSON gets "{}" as arguments, as in a whole answer', () => {
    const decoder = new AnthropicStreamDecoder(context);
    const chunks = decoder.push(
      events(
        messageStart,
        blockStart(0, { type: 'tool_use', id: 'toolu_a', name: 'now', input: {} }),
        jsonDelta(0, ''),
        blockStop(0),
        messageDelta('tool_use'),
        messageStop,
      ),
    );
    expect(deltas(chunks).flatMap((delta) => delta.tool_calls ?? [])).toEqual([
      { index: 0, id: 'toolu_a', type: 'function', function: { name: 'now', arguments: '' } },
      { index: 0, function: { arguments: '{}' } },
    ]);
  });

  test('thinking blocks, pings and unknown events produce nothing', () => {
    const decoder = new AnthropicStreamDecoder(context);
    const chunks = decoder.push(
      events(
        messageStart,
        ['ping', { type: 'ping' }],
        blockStart(0, { type: 'thinking', thinking: '', signature: '' }),
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Hmm.' } },
        ],
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQB' } },
        ],
        blockStop(0),
        ['future_event', { type: 'future_event', detail: 1 }],
        blockStart(1, { type: 'text', text: '' }),
        textDelta(1, 'Done.'),
        blockStop(1),
      ),
    );
    expect(deltas(chunks)).toEqual([{ role: 'assistant', content: '' }, { content: 'Done.' }]);
  });

  test('usage combines message_start input counts with message_delta cumulative counts', () => {
    const decoder = new AnthropicStreamDecoder(context);
    const chunks = decoder.push(
      events(
        messageStart,
        messageDelta('end_turn', { output_tokens: 40, cache_read_input_tokens: 100 }),
        messageStop,
      ),
    );
    expect(chunks.at(-1)).toEqual({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: 'claude',
      choices: [],
      usage: {
        prompt_tokens: 110,
        completion_tokens: 40,
        total_tokens: 150,
        prompt_tokens_details: { cached_tokens: 100 },
      },
    });
  });

  test('an error event that is not an overload fails the stream with Anthropic message', () => {
    const decoder = new AnthropicStreamDecoder(context);
    decoder.push(events(messageStart));
    let caught: unknown;
    try {
      decoder.push(
        events(['error', { type: 'error', error: { type: 'api_error', message: 'Internal server error' } }]),
      );
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect(caught).toMatchObject({ code: 'upstream_stream_failed' });
    expect((caught as GatewayError).message).toContain('Internal server error');
  });

  test('a failure after chunks in the same read is thrown on the next call, and on every call after', () => {
    const decoder = new AnthropicStreamDecoder(context);
    const bytes = Buffer.concat([
      events(messageStart, blockStart(0, { type: 'text', text: '' }), textDelta(0, 'Hi')),
      events(['error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]),
    ]);
    expect(deltas(decoder.push(bytes))).toEqual([{ role: 'assistant', content: '' }, { content: 'Hi' }]);
    expect(() => decoder.push(Buffer.from(''))).toThrow(
      expect.objectContaining({ code: 'upstream_overloaded' }),
    );
    expect(() => decoder.end()).toThrow(expect.objectContaining({ code: 'upstream_overloaded' }));
  });

  test('a stream that closes after message_delta but before message_stop is a failure', () => {
    const decoder = new AnthropicStreamDecoder(context);
    decoder.push(events(messageStart, messageDelta('end_turn')));
    expect(() => decoder.end()).toThrow(expect.objectContaining({ code: 'upstream_stream_failed' }));
  });

  test('message_stop without a trailing blank line still finishes the stream', () => {
    const decoder = new AnthropicStreamDecoder(context);
    decoder.push(events(messageStart, messageDelta('end_turn')));
    decoder.push(Buffer.from('event: message_stop\ndata: {"type":"message_stop"}'));
    expect(decoder.end().at(-1)?.usage?.completion_tokens).toBe(7);
  });

  test('events after message_stop are ignored', () => {
    const decoder = new AnthropicStreamDecoder(context);
    decoder.push(events(messageStart, messageDelta('end_turn'), messageStop));
    expect(decoder.push(events(textDelta(0, 'late')))).toEqual([]);
    expect(decoder.end()).toEqual([]);
  });
});
