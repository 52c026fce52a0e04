import { describe, expect, test } from 'vitest';
import { languageSampleLength } from './language.js';
import { requestFeatures } from './request-features.js';

const german =
  'Ich plane für nächsten Monat eine Reise in die Berge und hätte gern ein paar Ratschläge, was ich einpacken soll.';
const english =
  'I am planning a trip to the mountains next month and would like some advice on what to pack for it.';

const image = { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } };

describe('requestFeatures', () => {
  test('reads headers in any case, joining repeated ones', () => {
    const features = requestFeatures({}, { 'x-tenant': 'acme', 'x-flags': ['a', 'b'] as unknown as string });
    expect(features.header('X-Tenant')).toBe('acme');
    expect(features.header('x-flags')).toBe('a, b');
    expect(features.header('x-missing')).toBeUndefined();
  });

  test('exposes the body metadata only when it is an object', () => {
    expect(requestFeatures({ metadata: { tier: 'gold' } }, {}).metadata).toEqual({ tier: 'gold' });
    expect(requestFeatures({ metadata: 'gold' }, {}).metadata).toBeUndefined();
    expect(requestFeatures({}, {}).metadata).toBeUndefined();
  });

  test('sees tools when the request offers at least one tool or legacy function', () => {
    const tool = { type: 'function', function: { name: 'weather' } };
    expect(requestFeatures({ messages: [], tools: [tool] }, {}).hasTools).toBe(true);
    expect(requestFeatures({ messages: [], functions: [{ name: 'weather' }] }, {}).hasTools).toBe(true);
    expect(requestFeatures({ messages: [], tools: [] }, {}).hasTools).toBe(false);
    expect(requestFeatures({ prompt: 'hi' }, {}).hasTools).toBe(false);
  });

  test('sees images in any message, and none in text-only, completion or embeddings requests', () => {
    const withImage = {
      messages: [
        { role: 'system', content: 'Describe pictures.' },
        { role: 'user', content: [{ type: 'text', text: 'What is this?' }, image] },
      ],
    };
    expect(requestFeatures(withImage, {}).hasImages).toBe(true);
    expect(requestFeatures({ messages: [{ role: 'user', content: 'hi' }] }, {}).hasImages).toBe(false);
    expect(requestFeatures({ prompt: 'hi' }, {}).hasImages).toBe(false);
    expect(requestFeatures({ input: ['a', 'b'] }, {}).hasImages).toBe(false);
  });

  describe('promptTokens', () => {
    test('estimates a chat request as characters / 4 plus 4 a message, as count_tokens does', () => {
      const body = {
        messages: [
          { role: 'system', content: 'x'.repeat(40) }, // 10 tokens + 4
          { role: 'user', content: [{ type: 'text', text: 'y'.repeat(20) }, image] }, // 5 + 4; images not counted
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'abcd', arguments: '{"a":1}' } }],
          }, // (4 + 7) / 4 + 4
        ],
      };
      expect(requestFeatures(body, {}).promptTokens()).toBe(Math.ceil((40 + 20 + 4 + 7) / 4) + 3 * 4);
    });

    test('counts tool definitions as their JSON text', () => {
      const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }];
      const body = { messages: [{ role: 'user', content: 'hi' }], tools };
      expect(requestFeatures(body, {}).promptTokens()).toBe(
        Math.ceil((2 + JSON.stringify(tools).length) / 4) + 4,
      );
    });

    test('estimates completion prompts and embeddings inputs from their text, and counts token ids exactly', () => {
      expect(requestFeatures({ prompt: 'z'.repeat(401) }, {}).promptTokens()).toBe(101);
      expect(requestFeatures({ prompt: ['abcd', 'efgh'] }, {}).promptTokens()).toBe(2);
      expect(requestFeatures({ input: [1, 2, 3, 4, 5] }, {}).promptTokens()).toBe(5);
      expect(requestFeatures({ input: [[1, 2], [3]] }, {}).promptTokens()).toBe(3);
    });

    test('is at least 1, and tolerates messages the request check let through', () => {
      expect(requestFeatures({ prompt: '' }, {}).promptTokens()).toBe(1);
      const odd = { messages: [null, { role: 'user', content: [null, 7, { type: 'text' }] }] };
      expect(requestFeatures(odd, {}).promptTokens()).toBe(4);
    });

    test('is worked out once, when first asked', () => {
      const body: Record<string, unknown> = { prompt: 'abcdefgh' };
      const features = requestFeatures(body, {});
      expect(features.promptTokens()).toBe(2);
      body.prompt = 'a'.repeat(400);
      expect(features.promptTokens()).toBe(2);
    });
  });

  describe('language', () => {
    test('names the language of the latest user message', () => {
      const body = {
        messages: [
          {
            role: 'system',
            content: 'You are a helpful travel agent. Answer in the language of the question.',
          },
          { role: 'user', content: english },
          { role: 'assistant', content: 'Sure! Where are you going?' },
          { role: 'user', content: [{ type: 'text', text: german }, image] },
        ],
      };
      expect(requestFeatures(body, {}).language()).toBe('de');
    });

    test('adds earlier user messages when the latest is too short to tell', () => {
      const body = {
        messages: [
          { role: 'user', content: german },
          { role: 'assistant', content: 'Wohin soll es gehen?' },
          { role: 'user', content: 'In die Alpen.' },
        ],
      };
      expect(requestFeatures(body, {}).language()).toBe('de');
    });

    test('goes by the latest message alone when it is long enough, whatever came before', () => {
      const body = {
        messages: [
          { role: 'user', content: german },
          { role: 'assistant', content: 'Gern!' },
          { role: 'user', content: english },
        ],
      };
      expect(requestFeatures(body, {}).language()).toBe('en');
    });

    test('reads completion prompts and embeddings inputs', () => {
      expect(requestFeatures({ prompt: german }, {}).language()).toBe('de');
      expect(requestFeatures({ input: [english, german] }, {}).language()).toBe('en');
      expect(requestFeatures({ input: ['Berge', 'Reise', german] }, {}).language()).toBe('de');
    });

    test('is undefined for short text, token ids, or no user text at all', () => {
      expect(requestFeatures({ messages: [{ role: 'user', content: 'hi' }] }, {}).language()).toBeUndefined();
      expect(requestFeatures({ input: [1, 2, 3] }, {}).language()).toBeUndefined();
      expect(
        requestFeatures({ messages: [{ role: 'system', content: german }] }, {}).language(),
      ).toBeUndefined();
    });

    test('reads only the beginning of a long message', () => {
      const opening = `${english} `.repeat(Math.ceil(languageSampleLength / english.length));
      const body = { messages: [{ role: 'user', content: opening + german.repeat(500) }] };
      expect(requestFeatures(body, {}).language()).toBe('en');
    });
  });

  describe('promptPrefix', () => {
    const conversation = {
      messages: [
        { role: 'system', content: 'You are terse.' },
        {
          role: 'user',
          content: [{ type: 'text', text: 'Summarise:' }, image, { type: 'text', text: 'the report' }],
        },
        { role: 'assistant', content: 'It says revenue grew.' },
        { role: 'user', content: 'And costs?' },
      ],
    };

    test('joins system and first user text, leaving images out', () => {
      expect(requestFeatures(conversation, {}).promptPrefix(1_000)).toBe(
        'You are terse.\nSummarise:\nthe report',
      );
    });

    test('is the same on every turn of one conversation', () => {
      const firstTurn = { messages: conversation.messages.slice(0, 2) };
      expect(requestFeatures(firstTurn, {}).promptPrefix(1_000)).toBe(
        requestFeatures(conversation, {}).promptPrefix(1_000),
      );
    });

    test('cuts at the requested length', () => {
      const features = requestFeatures(conversation, {});
      expect(features.promptPrefix(8)).toBe('You are ');
      expect(features.promptPrefix(20)).toBe('You are terse.\nSumma');
      expect(features.promptPrefix(0)).toBe('');
    });

    test('takes the start of a completion prompt or embeddings input', () => {
      expect(requestFeatures({ prompt: 'Once upon a time' }, {}).promptPrefix(4)).toBe('Once');
      expect(requestFeatures({ input: ['alpha', 'beta'] }, {}).promptPrefix(100)).toBe('alpha\nbeta');
      expect(requestFeatures({ input: [[1, 2, 3]] }, {}).promptPrefix(100)).toBe('');
    });
  });
});
