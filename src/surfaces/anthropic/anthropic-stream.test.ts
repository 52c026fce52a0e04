import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import { parseSseEvent, SseSplitter } from '../../providers/sse.js';
import type {
  AnthropicResponse,
  AnthropicResponseBlock,
  AnthropicStreamEvent,
} from '../../spec/anthropic.js';
import type { ChatCompletion, ChatCompletionChunk, ChatUsage } from '../../spec/openai-chat.js';
import { canonicalToAnthropic } from './anthropic-response.js';
import { AnthropicStreamEncoder } from './anthropic-stream.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];
type Finish = ChatCompletionChunk['choices'][number]['finish_reason'];

function chunk(
  delta: Delta,
  finish: Finish = null,
  extra: Record<string, unknown> = {},
): ChatCompletionChunk {
  return {
    id: 'chatcmpl-stream1',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'upstream-model',
    choices: [{ index: 0, delta, finish_reason: finish, ...extra }],
  };
}

const usage: ChatUsage = {
  prompt_tokens: 42,
  completion_tokens: 9,
  total_tokens: 51,
  prompt_tokens_details: { cached_tokens: 2 },
};

function usageChunk(counts: ChatUsage = usage): ChatCompletionChunk {
  return { ...chunk({}), choices: [], usage: counts };
}

/** Runs chunks through a fresh encoder, then end(); returns the SSE text. */
function encode(chunks: readonly ChatCompletionChunk[]): string {
  const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-stream1' });
  return chunks.map((item) => encoder.chunk(item)).join('') + encoder.end();
}

/**
 * Reads the SSE text back with the gateway's own SSE reader and checks every event the way a
 * Claude SDK relies on: the event name equals the JSON's type, the fields each type needs are
 * there, and the order is message_start, well-nested blocks with increasing indexes,
 * message_delta, message_stop.
 */
function readEvents(text: string): AnthropicStreamEvent[] {
  const splitter = new SseSplitter();
  const raw = splitter.push(text);
  expect(splitter.flush(), 'nothing may follow the last blank line').toBe('');
  const events = raw.map((item) => {
    const parsed = parseSseEvent(item);
    const value = JSON.parse(parsed.data) as AnthropicStreamEvent;
    expect(parsed.event, parsed.data).toBe(value.type);
    return value;
  });
  checkProtocol(events);
  return events;
}

function checkProtocol(events: readonly AnthropicStreamEvent[]): void {
  expect(events[0]?.type).toBe('message_start');
  expect(events.at(-1)?.type).toBe('message_stop');
  expect(events.at(-2)?.type).toBe('message_delta');
  let open: number | undefined;
  let nextIndex = 0;
  for (const event of events.slice(1, -2)) {
    switch (event.type) {
      case 'content_block_start':
        expect(open, 'a block starts only after the previous one stopped').toBeUndefined();
        expect(event.index).toBe(nextIndex++);
        if (event.content_block.type === 'text') expect(event.content_block.text).toBe('');
        if (event.content_block.type === 'tool_use') {
          expect(event.content_block.input).toEqual({});
          expect(event.content_block.id).not.toBe('');
          expect(event.content_block.name).not.toBe('');
        }
        open = event.index;
        break;
      case 'content_block_delta':
        expect(event.index).toBe(open);
        expect(['text_delta', 'input_json_delta']).toContain(event.delta.type);
        break;
      case 'content_block_stop':
        expect(event.index).toBe(open);
        open = undefined;
        break;
      default:
        throw new Error(`unexpected ${event.type} between message_start and message_delta`);
    }
  }
  expect(open, 'every block is stopped before message_delta').toBeUndefined();
  const start = events[0] as Extract<AnthropicStreamEvent, { type: 'message_start' }>;
  expect(start.message).toMatchObject({ type: 'message', role: 'assistant', content: [], stop_reason: null });
  expect(typeof start.message.usage.input_tokens).toBe('number');
  expect(typeof start.message.usage.output_tokens).toBe('number');
  const delta = events.at(-2) as Extract<AnthropicStreamEvent, { type: 'message_delta' }>;
  expect(typeof delta.usage.output_tokens).toBe('number');
  expect(delta.delta.stop_reason).not.toBeNull();
}

/** The final message a client builds from the events, accumulating by index as Anthropic's SDKs do. */
function accumulate(events: readonly AnthropicStreamEvent[]): AnthropicResponse {
  let message: AnthropicResponse | undefined;
  const json: string[] = [];
  for (const event of events) {
    if (event.type === 'message_start') message = structuredClone(event.message);
    else if (message === undefined) throw new Error(`${event.type} before message_start`);
    else if (event.type === 'content_block_start') {
      message.content[event.index] = structuredClone(event.content_block);
      json[event.index] = '';
    } else if (event.type === 'content_block_delta') {
      const block = message.content[event.index] as AnthropicResponseBlock;
      if (event.delta.type === 'text_delta' && block.type === 'text') block.text += event.delta.text;
      if (event.delta.type === 'input_json_delta') json[event.index] += event.delta.partial_json;
    } else if (event.type === 'message_delta') {
      message.stop_reason = event.delta.stop_reason;
      message.stop_sequence = event.delta.stop_sequence;
      message.usage = { ...message.usage, ...event.usage };
    }
  }
  if (message === undefined) throw new Error('no message_start');
  message.content.forEach((block, index) => {
    if (block.type === 'tool_use' && json[index]) block.input = JSON.parse(json[index] as string);
  });
  return message;
}

const textChunks = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: 'Hel' }),
  chunk({ content: 'lo.' }),
  chunk({}, 'stop'),
  usageChunk(),
];

const toolChunks = [
  chunk({ role: 'assistant', content: '' }),
  chunk({ content: 'Checking both.' }),
  chunk({
    tool_calls: [
      { index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } },
    ],
  }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
  chunk({
    tool_calls: [
      { index: 1, id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } },
    ],
  }),
  chunk({ tool_calls: [{ index: 1, function: { arguments: 'ty":"Rome"}' } }] }),
  chunk({}, 'tool_calls'),
  usageChunk(),
];

describe('AnthropicStreamEncoder', () => {
  test('a text answer is message_start, one text block, message_delta with usage, message_stop', () => {
    const text = encode(textChunks);
    expect(text.startsWith('event: message_start\ndata: {')).toBe(true);
    const events = readEvents(text);
    expect(events).toEqual([
      {
        type: 'message_start',
        message: {
          id: 'msg_stream1',
          type: 'message',
          role: 'assistant',
          model: 'claude',
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: {
            input_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: 1,
          },
        },
      },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'lo.' } },
      { type: 'content_block_stop', index: 0 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: {
          input_tokens: 40,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 2,
          output_tokens: 9,
        },
      },
      { type: 'message_stop' },
    ]);
  });

  test('text then two parallel tool calls: one block each, closed in order, arguments as input_json_delta', () => {
    const events = readEvents(encode(toolChunks));
    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[4]).toEqual({
      type: 'content_block_start',
      index: 1,
      content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} },
    });
    expect(events[9]).toEqual({
      type: 'content_block_delta',
      index: 2,
      delta: { type: 'input_json_delta', partial_json: '{"ci' },
    });
    expect(events.at(-2)).toMatchObject({ delta: { stop_reason: 'tool_use', stop_sequence: null } });
  });

  test('what a client accumulates from the stream equals the non-streamed message for the same answer', () => {
    const answer: ChatCompletion = {
      id: 'chatcmpl-stream1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'upstream-model',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Checking both.',
            tool_calls: [
              {
                id: 'call_a',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
              },
              {
                id: 'call_b',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
              },
            ],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage,
    };
    expect(accumulate(readEvents(encode(toolChunks)))).toEqual(canonicalToAnthropic(answer, 'claude'));
  });

  test('message_delta waits for the usage chunk that follows the finish, then the stream is complete', () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-stream1' });
    encoder.chunk(chunk({ role: 'assistant', content: 'Hi' }));
    const atFinish = encoder.chunk(chunk({}, 'stop'));
    expect(atFinish).toBe('event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n');
    const atUsage = encoder.chunk(usageChunk());
    expect(atUsage).toContain('event: message_delta');
    expect(atUsage.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true);
    expect(encoder.end()).toBe('');
    expect(encoder.chunk(chunk({ content: 'late' }))).toBe('');
  });

  test('usage on the finish chunk itself completes the message at once', () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-stream1' });
    const text = encoder.chunk({ ...chunk({ content: 'Hi' }, 'stop'), usage });
    expect(readEvents(text).at(-2)).toMatchObject({ usage: { input_tokens: 40, output_tokens: 9 } });
  });

  test('without a usage chunk, end() still closes the message, with the output count unknown (0)', () => {
    const events = readEvents(encode(textChunks.slice(0, -1)));
    expect(events.at(-2)).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 0 },
    });
  });

  test('an empty stream is still a complete, empty message', () => {
    const events = readEvents(encode([]));
    expect(events.map((event) => event.type)).toEqual(['message_start', 'message_delta', 'message_stop']);
    expect(accumulate(events)).toMatchObject({ id: 'msg_stream1', content: [], stop_reason: 'end_turn' });
  });

  test('start() can send message_start before the first chunk, and it is sent only once', () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-stream1' });
    expect(encoder.start()).toContain('event: message_start');
    expect(encoder.start()).toBe('');
    expect(encoder.chunk(chunk({ role: 'assistant', content: '' }))).toBe('');
  });

  test.each([
    ['length', {}, 'max_tokens', null],
    ['content_filter', {}, 'refusal', null],
    ['stop', { stop_reason: 'END' }, 'stop_sequence', 'END'],
  ] as const)(
    'finish_reason %s ends with the matching stop_reason',
    (finish, extra, stopReason, stopSequence) => {
      const events = readEvents(encode([chunk({ content: 'x' }), chunk({}, finish, extra), usageChunk()]));
      expect(events.at(-2)).toMatchObject({
        delta: { stop_reason: stopReason, stop_sequence: stopSequence },
      });
    },
  );

  test('a streamed refusal arrives as text and stops with refusal', () => {
    const events = readEvents(encode([chunk({ refusal: 'I cannot.' }), chunk({}, 'stop'), usageChunk()]));
    expect(accumulate(events)).toMatchObject({
      content: [{ type: 'text', text: 'I cannot.' }],
      stop_reason: 'refusal',
    });
  });

  test('text after a tool call opens a new text block rather than reopening the first', () => {
    const events = readEvents(
      encode([
        chunk({ content: 'A' }),
        chunk({
          tool_calls: [
            { index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '{}' } },
          ],
        }),
        chunk({ content: 'B' }),
        chunk({}, 'tool_calls'),
        usageChunk(),
      ]),
    );
    expect(accumulate(events).content).toEqual([
      { type: 'text', text: 'A' },
      { type: 'tool_use', id: 'call_a', name: 'f', input: {} },
      { type: 'text', text: 'B' },
    ]);
  });

  test('a failure mid-stream becomes an Anthropic error event, after which nothing more is written', () => {
    const encoder = new AnthropicStreamEncoder({ model: 'claude', id: 'chatcmpl-stream1' });
    encoder.chunk(chunk({ content: 'Hel' }));
    const text = encoder.streamError(
      new GatewayError('upstream_stream_failed', 'The stream from "test" broke off.'),
    );
    const event = parseSseEvent(text);
    expect(event.event).toBe('error');
    expect(JSON.parse(event.data)).toEqual({
      type: 'error',
      error: { type: 'api_error', message: 'The stream from "test" broke off.' },
    });
    expect(encoder.end()).toBe('');
    expect(encoder.chunk(usageChunk())).toBe('');
  });

  test('only the first choice is written: Anthropic has no n', () => {
    const two: ChatCompletionChunk = {
      ...chunk({ content: 'first' }),
      choices: [
        { index: 0, delta: { content: 'first' }, finish_reason: null },
        { index: 1, delta: { content: 'second' }, finish_reason: null },
      ],
    };
    expect(accumulate(readEvents(encode([two, chunk({}, 'stop'), usageChunk()]))).content).toEqual([
      { type: 'text', text: 'first' },
    ]);
  });
});
