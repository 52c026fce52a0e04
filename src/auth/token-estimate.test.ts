import { describe, expect, test } from 'vitest';
import { defaultOutputTokens, estimateTokens, imageTokens } from './token-estimate.js';

const text = (characters: number) => 'x'.repeat(characters);

describe('estimateTokens', () => {
  test('chat: string contents at four characters a token, framing per message, and max_tokens', () => {
    const body = {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: text(40) },
        { role: 'user', content: text(81) },
      ],
      max_tokens: 100,
    };
    // 121 characters → 31 tokens; 2 messages and the reply at 3 each.
    expect(estimateTokens(body, 'chat/completions')).toBe(31 + 9 + 100);
  });

  test('chat: text parts count, an image a flat allowance, other parts nothing', () => {
    const body = {
      model: 'gpt-4o',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: text(20) },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            { type: 'input_audio', input_audio: { data: text(10_000), format: 'wav' } },
            { type: 'text', text: text(20) },
          ],
        },
      ],
      max_completion_tokens: 10,
    };
    expect(estimateTokens(body, 'chat/completions')).toBe(10 + imageTokens + 6 + 10);
  });

  test('chat: tool calls, tool results and tool definitions count', () => {
    const body = {
      model: 'gpt-4o',
      messages: [
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: text(9) },
      ],
      tools: [{ type: 'function', function: { name: 'weather' } }],
      max_tokens: 0,
    };
    // weather + {"city":"Oslo"} = 22; tool result 9; tools: type function (12) function name weather (19).
    expect(estimateTokens(body, 'chat/completions')).toBe(Math.ceil((22 + 9 + 12 + 19) / 4) + 9);
  });

  test('chat: max_completion_tokens wins over max_tokens, and n multiplies the output', () => {
    const messages = [{ role: 'user', content: '' }];
    expect(estimateTokens({ messages, max_completion_tokens: 50, max_tokens: 500 }, 'chat/completions')).toBe(
      56,
    );
    expect(estimateTokens({ messages, max_tokens: 50, n: 3 }, 'chat/completions')).toBe(156);
  });

  test('chat: without a cap, the default output allowance', () => {
    const body = { messages: [{ role: 'user', content: 'Hi' }], max_tokens: null };
    expect(estimateTokens(body, 'chat/completions')).toBe(1 + 6 + defaultOutputTokens);
    expect(defaultOutputTokens).toBe(1024);
  });

  test('completions: a string, strings, or token ids, plus max_tokens', () => {
    expect(estimateTokens({ prompt: text(10), max_tokens: 16 }, 'completions')).toBe(3 + 16);
    expect(estimateTokens({ prompt: [text(4), text(4)], max_tokens: 16 }, 'completions')).toBe(2 + 16);
    expect(estimateTokens({ prompt: [1, 2, 3], max_tokens: 16 }, 'completions')).toBe(3 + 16);
    expect(estimateTokens({ prompt: [[1, 2], [3]], max_tokens: 16 }, 'completions')).toBe(3 + 16);
    expect(estimateTokens({ prompt: 'abcd', best_of: 3, max_tokens: 10 }, 'completions')).toBe(1 + 30);
  });

  test('embeddings: the input only, no output', () => {
    expect(estimateTokens({ input: text(400) }, 'embeddings')).toBe(100);
    expect(estimateTokens({ input: [text(8), text(8)], max_tokens: 999 }, 'embeddings')).toBe(4);
    expect(estimateTokens({ input: [[1, 2, 3], [4]] }, 'embeddings')).toBe(4);
  });

  test('anthropic messages: system, text and tool blocks, and max_tokens', () => {
    const body = {
      model: 'claude-sonnet-4',
      system: [{ type: 'text', text: text(16) }],
      messages: [
        { role: 'user', content: text(8) },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: text(4), signature: 'sig' },
            { type: 'tool_use', id: 't1', name: 'weather', input: { city: 'Oslo' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: text(12) }] },
            { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } },
          ],
        },
      ],
      max_tokens: 200,
    };
    // 16 + 8 + 4 + (7 + 4 + 4) + 12 = 55 characters → 14 tokens; 3 messages and the reply.
    expect(estimateTokens(body, 'messages')).toBe(14 + imageTokens + 12 + 200);
    expect(estimateTokens({ system: text(40), messages: [], max_tokens: 1 }, 'messages')).toBe(10 + 3 + 1);
  });

  test('a body of the wrong shape estimates only the output allowance', () => {
    expect(estimateTokens(null, 'chat/completions')).toBe(defaultOutputTokens);
    expect(estimateTokens({ messages: 'hello', max_tokens: 'many' }, 'chat/completions')).toBe(
      3 + defaultOutputTokens,
    );
    expect(estimateTokens({ input: 42 }, 'embeddings')).toBe(0);
  });
});
