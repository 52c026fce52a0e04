import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../../test/support/target-config.js';
import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import type { AnthropicRequest } from '../../spec/anthropic.js';
import type { ChatRequest, FunctionTool } from '../../spec/openai-chat.js';
import { jsonAnswerTool } from '../translation-parts.js';
import { anthropicAdapter } from './index.js';
import {
  anthropicHeaders,
  anthropicRequest,
  anthropicUnsupportedParams,
  defaultMaxTokens,
} from './openai-anthropic-request.js';

function config(overrides: Partial<TargetConfig> = {}): TargetConfig {
  return targetConfig({ kind: 'anthropic', origin: 'https://api.anthropic.com', basePath: '', ...overrides });
}

function translate(request: Partial<ChatRequest>, overrides: Partial<TargetConfig> = {}): AnthropicRequest {
  return anthropicRequest(
    { model: 'claude', messages: [], ...request },
    config(overrides),
    'claude-sonnet-4-5',
  );
}

/** The GatewayError a translation throws. */
function failure(request: Partial<ChatRequest>): GatewayError {
  try {
    translate(request);
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error('the translation did not fail');
}

function pairs(headers: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let index = 0; index < headers.length; index += 2) out.push([headers[index]!, headers[index + 1]!]);
  return out;
}

const weather: FunctionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  },
};

describe('the upstream call', () => {
  test('goes to /v1/messages under the base path', () => {
    const call = (basePath: string) =>
      anthropicAdapter.chatRequest(
        { model: 'claude', messages: [{ role: 'user', content: 'Hi' }] },
        { config: config({ basePath }), headers: [] },
        'claude-sonnet-4-5',
      ).path;
    expect(call('')).toBe('/v1/messages');
    expect(call('/anthropic')).toBe('/anthropic/v1/messages');
  });

  test('carries the key as x-api-key and the API version, with configured headers such as anthropic-beta', () => {
    const headers = anthropicHeaders(
      config({ headers: { 'Anthropic-Beta': 'prompt-caching-2024-07-31', 'X-Api-Key': 'sk-other' } }),
    );
    expect(pairs(headers)).toEqual([
      ['content-type', 'application/json'],
      ['anthropic-beta', 'prompt-caching-2024-07-31'],
      ['x-api-key', 'sk-test-secret-key'],
      ['anthropic-version', '2023-06-01'],
    ]);
  });

  test('a configured anthropic-version replaces the default rather than adding a second', () => {
    const headers = pairs(anthropicHeaders(config({ headers: { 'anthropic-version': '2025-01-01' } })));
    expect(headers.filter(([name]) => name === 'anthropic-version')).toEqual([
      ['anthropic-version', '2025-01-01'],
    ]);
  });

  test('without an api_key a configured x-api-key header is the credential', () => {
    const headers = pairs(
      anthropicHeaders(config({ apiKey: undefined, headers: { 'x-api-key': 'sk-header' } })),
    );
    expect(headers.filter(([name]) => name === 'x-api-key')).toEqual([['x-api-key', 'sk-header']]);
  });

  test('streams only when the client asked to', () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    expect(translate({ messages, stream: true }).stream).toBe(true);
    expect(translate({ messages }).stream).toBeUndefined();
  });
});

describe('max_tokens', () => {
  const messages = [{ role: 'user' as const, content: 'Hi' }];

  test('prefers max_completion_tokens, then max_tokens, then the target default, then the built-in one', () => {
    expect(translate({ messages, max_completion_tokens: 100, max_tokens: 200 }).max_tokens).toBe(100);
    expect(translate({ messages, max_tokens: 200 }, { defaultMaxTokens: 300 }).max_tokens).toBe(200);
    expect(translate({ messages }, { defaultMaxTokens: 300 }).max_tokens).toBe(300);
    expect(translate({ messages }).max_tokens).toBe(defaultMaxTokens);
  });
});

describe('sampling parameters', () => {
  const messages = [{ role: 'user' as const, content: 'Hi' }];

  test('a single stop string becomes a one-item stop_sequences list', () => {
    expect(translate({ messages, stop: 'END' }).stop_sequences).toEqual(['END']);
    expect(translate({ messages, stop: null }).stop_sequences).toBeUndefined();
  });

  test('temperature, top_p, top_k and user carry over', () => {
    expect(translate({ messages, temperature: 0.7, top_p: 0.5, top_k: 40, user: 'u-1' })).toMatchObject({
      temperature: 0.7,
      top_p: 0.5,
      top_k: 40,
      metadata: { user_id: 'u-1' },
    });
  });
});

describe('messages', () => {
  test('system and developer messages are joined in order into the top-level system prompt', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'First.' },
        { role: 'user', content: 'Hi' },
        { role: 'developer', content: [{ type: 'text', text: 'Second.' }] },
      ],
    });
    expect(body.system).toBe('First.\n\nSecond.');
    expect(body.messages).toEqual([{ role: 'user', content: 'Hi' }]);
  });

  test('a system part asking for prompt caching keeps the system prompt as blocks', () => {
    const body = translate({
      messages: [
        {
          role: 'system',
          content: [{ type: 'text', text: 'Long rules.', cache_control: { type: 'ephemeral' } } as never],
        },
        { role: 'user', content: 'Hi' },
      ],
    });
    expect(body.system).toEqual([
      { type: 'text', text: 'Long rules.', cache_control: { type: 'ephemeral' } },
    ]);
  });

  test('consecutive messages of one role are merged into one turn, since Anthropic requires alternation', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'One.' },
        { role: 'user', content: [{ type: 'text', text: 'Two.' }] },
        { role: 'assistant', content: 'Three.' },
        { role: 'assistant', content: 'Four.' },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'One.' },
          { type: 'text', text: 'Two.' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Three.' },
          { type: 'text', text: 'Four.' },
        ],
      },
    ]);
  });

  test('empty text is left out, since Anthropic rejects empty text blocks', () => {
    const body = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: '' },
            { type: 'text', text: 'Hi' },
          ],
        },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Again' },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hi' },
          { type: 'text', text: 'Again' },
        ],
      },
    ]);
  });

  test('images become base64 sources with the data URL media type, or url sources', () => {
    const body = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.webp', detail: 'low' } },
          ],
        },
      ],
    });
    expect(body.messages[0]!.content).toEqual([
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.webp' } },
    ]);
  });

  test('an image that is neither an http(s) URL nor a base64 data URL is a 400 naming the part', () => {
    const error = failure({
      messages: [
        { role: 'user', content: 'Look' },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,rawbytes' } }] },
      ],
    });
    expect(error.status).toBe(400);
    expect(error.param).toBe('messages[1].content[0].image_url.url');
  });

  test('content parts Anthropic cannot take are refused with the part named', () => {
    const error = failure({
      messages: [
        { role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'UklGR', format: 'wav' } }] },
      ],
    });
    expect(error.code).toBe('unsupported_param');
    expect(error.param).toBe('messages[0].content[0]');
    expect(error.message).toContain('input_audio');
  });

  test('assistant tool calls become tool_use blocks with their arguments parsed', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'toolu_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
            },
            { id: 'toolu_2', type: 'function', function: { name: 'now', arguments: '' } },
          ],
        },
      ],
    });
    expect(body.messages[1]).toEqual({
      role: 'assistant',
      content: [
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } },
        { type: 'tool_use', id: 'toolu_2', name: 'now', input: {} },
      ],
    });
  });

  test('unparseable tool call arguments are a 400 naming where they are', () => {
    const error = failure({
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          tool_calls: [
            { id: 'toolu_1', type: 'function', function: { name: 'a', arguments: '{}' } },
            { id: 'toolu_2', type: 'function', function: { name: 'b', arguments: '{"city":' } },
          ],
        },
      ],
    });
    expect(error.code).toBe('invalid_field');
    expect(error.status).toBe(400);
    expect(error.param).toBe('messages[1].tool_calls[1].function.arguments');
    expect(error.message).toContain('messages[1].tool_calls[1].function.arguments');
  });

  test('tool arguments that are JSON but not an object are refused too', () => {
    const error = failure({
      messages: [
        {
          role: 'assistant',
          tool_calls: [{ id: 't', type: 'function', function: { name: 'a', arguments: '[1]' } }],
        },
      ],
    });
    expect(error.param).toBe('messages[0].tool_calls[0].function.arguments');
  });

  test('tool messages become one user turn of tool results, ahead of a user message that follows', () => {
    const body = translate({
      messages: [
        {
          role: 'assistant',
          tool_calls: [
            { id: 'toolu_1', type: 'function', function: { name: 'a', arguments: '{}' } },
            { id: 'toolu_2', type: 'function', function: { name: 'b', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
        { role: 'tool', tool_call_id: 'toolu_2', content: [{ type: 'text', text: 'warm' }] },
        { role: 'user', content: 'And tomorrow?' },
      ],
    });
    expect(body.messages[1]).toEqual({
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: 'warm' },
        { type: 'text', text: 'And tomorrow?' },
      ],
    });
  });

  test('a user message before tool results in the same turn is moved after them', () => {
    const body = translate({
      messages: [
        {
          role: 'assistant',
          tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'a', arguments: '{}' } }],
        },
        { role: 'user', content: 'Note this.' },
        { role: 'tool', tool_call_id: 'toolu_1', content: '' },
      ],
    });
    expect(body.messages[1]).toEqual({
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_1' },
        { type: 'text', text: 'Note this.' },
      ],
    });
  });
});

describe('tools and tool_choice', () => {
  const messages = [{ role: 'user' as const, content: 'Weather?' }];

  test('function tools become tools with an input_schema', () => {
    const body = translate({
      messages,
      tools: [
        { type: 'function', function: { name: 'now', description: 'The time.' } },
        { ...weather, function: { ...weather.function, strict: true } },
      ],
    });
    expect(body.tools).toEqual([
      { name: 'now', description: 'The time.', input_schema: { type: 'object', properties: {} } },
      { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
    ]);
    expect(body.tool_choice).toBeUndefined();
  });

  test.each([
    ['auto', { type: 'auto' }],
    ['none', { type: 'none' }],
    ['required', { type: 'any' }],
    [
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'tool', name: 'get_weather' },
    ],
  ] as const)('tool_choice %j becomes %j', (choice, expected) => {
    expect(translate({ messages, tools: [weather], tool_choice: choice }).tool_choice).toEqual(expected);
  });

  test('parallel_tool_calls false disables parallel tool use on whatever the choice is', () => {
    expect(translate({ messages, tools: [weather], parallel_tool_calls: false }).tool_choice).toEqual({
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    expect(
      translate({ messages, tools: [weather], tool_choice: 'required', parallel_tool_calls: false })
        .tool_choice,
    ).toEqual({ type: 'any', disable_parallel_tool_use: true });
    // "none" calls no tool at all, and Anthropic's none choice takes no such flag.
    expect(
      translate({ messages, tools: [weather], tool_choice: 'none', parallel_tool_calls: false }).tool_choice,
    ).toEqual({ type: 'none' });
  });

  test('a tool_choice without tools is not sent, since Anthropic requires tools with it', () => {
    const body = translate({ messages, tool_choice: 'auto' });
    expect(body.tools).toBeUndefined();
    expect(body.tool_choice).toBeUndefined();
  });

  test('a client tool may not take the name reserved for JSON mode', () => {
    const error = failure({
      messages,
      tools: [{ type: 'function', function: { name: jsonAnswerTool } }],
    });
    expect(error.code).toBe('invalid_field');
    expect(error.param).toBe('tools[0].function.name');
  });
});

describe('JSON mode through a forced tool', () => {
  const messages = [{ role: 'user' as const, content: 'A city, as JSON.' }];
  const schema = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };

  test('json_schema becomes a forced tool whose input_schema is the schema', () => {
    const body = translate({
      messages,
      response_format: { type: 'json_schema', json_schema: { name: 'city', description: 'A city.', schema } },
    });
    expect(body.tools).toEqual([
      {
        name: jsonAnswerTool,
        description:
          'Give your final answer by calling this tool: its input is the answer, a JSON object following the "city" schema. A city.',
        input_schema: schema,
      },
    ]);
    expect(body.tool_choice).toEqual({ type: 'tool', name: jsonAnswerTool });
  });

  test('json_object forces a tool that takes any object', () => {
    const body = translate({ messages, response_format: { type: 'json_object' } });
    expect(body.tools?.[0]?.input_schema).toEqual({ type: 'object' });
    expect(body.tool_choice).toEqual({ type: 'tool', name: jsonAnswerTool });
  });

  test('a text response_format asks for nothing', () => {
    const body = translate({ messages, response_format: { type: 'text' } });
    expect(body.tools).toBeUndefined();
  });

  test('with client tools the model must either call one of them or answer through the JSON tool', () => {
    const body = translate({ messages, tools: [weather], response_format: { type: 'json_object' } });
    expect(body.tools?.map((tool) => tool.name)).toEqual(['get_weather', jsonAnswerTool]);
    expect(body.tool_choice).toEqual({ type: 'any' });
  });

  test('with tool_choice none the client tools stay declared but the JSON tool is forced', () => {
    const body = translate({
      messages,
      tools: [weather],
      tool_choice: 'none',
      response_format: { type: 'json_object' },
    });
    expect(body.tools?.map((tool) => tool.name)).toEqual(['get_weather', jsonAnswerTool]);
    expect(body.tool_choice).toEqual({ type: 'tool', name: jsonAnswerTool });
  });

  test('when a client tool must be called, the JSON tool is not offered', () => {
    const body = translate({
      messages,
      tools: [weather],
      tool_choice: 'required',
      response_format: { type: 'json_object' },
    });
    expect(body.tools?.map((tool) => tool.name)).toEqual(['get_weather']);
    expect(body.tool_choice).toEqual({ type: 'any' });
  });
});

describe('unsupported parameters', () => {
  const messages = [{ role: 'user' as const, content: 'Hi' }];

  test('lists each parameter Anthropic cannot honour, with a reason', () => {
    const found = anthropicUnsupportedParams({
      model: 'claude',
      messages,
      n: 2,
      logprobs: true,
      top_logprobs: 3,
      seed: 7,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { '50256': -100 },
      temperature: 1.5,
      audio: { voice: 'alloy', format: 'mp3' },
      modalities: ['text', 'audio'],
      reasoning_effort: 'high',
      web_search_options: {},
    });
    expect(found.map((item) => item.param)).toEqual([
      'n',
      'logprobs',
      'top_logprobs',
      'seed',
      'presence_penalty',
      'frequency_penalty',
      'logit_bias',
      'temperature',
      'audio',
      'modalities',
      'reasoning_effort',
      'web_search_options',
    ]);
    for (const item of found) expect(item.reason.length).toBeGreaterThan(20);
  });

  test('values that ask for nothing beyond the defaults are not refused', () => {
    expect(
      anthropicUnsupportedParams({
        model: 'claude',
        messages,
        n: 1,
        logprobs: false,
        top_logprobs: 0,
        seed: null,
        presence_penalty: 0,
        frequency_penalty: 0,
        logit_bias: {},
        temperature: 1,
        modalities: ['text'],
        reasoning_effort: null,
      }),
    ).toEqual([]);
  });

  test('temperature above 1 is refused rather than clamped into Anthropic range', () => {
    expect(anthropicUnsupportedParams({ model: 'claude', messages, temperature: 1.2 })).toEqual([
      { param: 'temperature', reason: expect.stringContaining('0 to 1') },
    ]);
  });

  test('refused parameters are never sent upstream, even when the gateway did not drop them', () => {
    const body = translate({
      messages,
      seed: 1,
      logprobs: true,
      n: 3,
      presence_penalty: 1,
      logit_bias: { '1': 1 },
    });
    expect(Object.keys(body).sort()).toEqual(['max_tokens', 'messages', 'model']);
  });
});
