import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import { anthropicToCanonical, parseAnthropicRequest } from './anthropic-request.js';

const hello = [{ role: 'user', content: 'Hello' }];

/** A valid body with `fields` replacing or adding to it; `undefined` removes a field. */
function body(fields: Record<string, unknown> = {}): Record<string, unknown> {
  const result: Record<string, unknown> = { model: 'claude', max_tokens: 256, messages: hello };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) delete result[key];
    else result[key] = value;
  }
  return result;
}

function failure(value: unknown): GatewayError {
  try {
    parseAnthropicRequest(value);
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error('the request was accepted');
}

const tool = { name: 'get_weather', description: 'Weather by city', input_schema: { type: 'object' } };
const toolUse = { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } };
const toolResult = { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C' };

describe('parseAnthropicRequest refuses what Anthropic refuses, naming the field', () => {
  test.each([
    ['a body that is not an object', ['not', 'an', 'object'], 'invalid_body', null, 'JSON object'],
    ['no model', body({ model: undefined }), 'missing_field', 'model', 'GET /v1/models'],
    ['an empty model', body({ model: '' }), 'invalid_field', 'model', 'non-empty string'],
    ['no max_tokens', body({ max_tokens: undefined }), 'missing_field', 'max_tokens', 'such as 1024'],
    ['a zero max_tokens', body({ max_tokens: 0 }), 'invalid_field', 'max_tokens', 'at least 1'],
    ['a fractional max_tokens', body({ max_tokens: 1.5 }), 'invalid_field', 'max_tokens', 'integer'],
    ['no messages', body({ messages: undefined }), 'missing_field', 'messages', '"role": "user"'],
    ['empty messages', body({ messages: [] }), 'invalid_field', 'messages', 'non-empty array'],
    ['a message that is a string', body({ messages: ['Hello'] }), 'invalid_field', 'messages.0', '"role"'],
    [
      'a system role in messages',
      body({ messages: [{ role: 'system', content: 'Be brief' }, ...hello] }),
      'invalid_field',
      'messages.0.role',
      'top-level "system"',
    ],
    [
      'a tool role in messages',
      body({ messages: [...hello, { role: 'tool', content: 'x' }] }),
      'invalid_field',
      'messages.1.role',
      '"tool_result" block',
    ],
    [
      'a message without content',
      body({ messages: [{ role: 'user' }] }),
      'missing_field',
      'messages.0.content',
      'string or an array',
    ],
    [
      'empty user content',
      body({ messages: [{ role: 'user', content: '' }] }),
      'invalid_field',
      'messages.0.content',
      'not be empty',
    ],
    [
      'an empty content array',
      body({ messages: [{ role: 'user', content: [] }] }),
      'invalid_field',
      'messages.0.content',
      'at least one content block',
    ],
    [
      'content that is a number',
      body({ messages: [{ role: 'user', content: 7 }] }),
      'invalid_field',
      'messages.0.content',
      'string or an array',
    ],
    [
      'a block without a type',
      body({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
      'missing_field',
      'messages.0.content.0.type',
      '"text", "image"',
    ],
    [
      'an unknown block type',
      body({ messages: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }] }),
      'invalid_field',
      'messages.0.content.0.type',
      'must be one of "text"',
    ],
    [
      'an empty text block',
      body({ messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] }),
      'invalid_field',
      'messages.0.content.0.text',
      'not be empty',
    ],
    [
      'an image with an unsupported media type',
      body({
        messages: [
          {
            role: 'user',
            content: [{ type: 'image', source: { type: 'base64', media_type: 'image/bmp', data: 'AA' } }],
          },
        ],
      }),
      'invalid_field',
      'messages.0.content.0.source.media_type',
      '"image/png"',
    ],
    [
      'an image without a source',
      body({ messages: [{ role: 'user', content: [{ type: 'image' }] }] }),
      'missing_field',
      'messages.0.content.0.source',
      '"base64"',
    ],
    [
      'a tool_use block in a user message',
      body({ messages: [{ role: 'user', content: [toolUse] }] }),
      'invalid_field',
      'messages.0.content.0.type',
      'assistant messages',
    ],
    [
      'a tool_use whose input is not an object',
      body({
        messages: [...hello, { role: 'assistant', content: [{ ...toolUse, input: '{"city":"Paris"}' }] }],
      }),
      'invalid_field',
      'messages.1.content.0.input',
      'as an object',
    ],
    [
      'a tool_result in an assistant message',
      body({ messages: [...hello, { role: 'assistant', content: [toolResult] }] }),
      'invalid_field',
      'messages.1.content.0.type',
      'user messages',
    ],
    [
      'a tool_result answering no tool_use',
      body({
        messages: [...hello, { role: 'assistant', content: 'Hi' }, { role: 'user', content: [toolResult] }],
      }),
      'invalid_field',
      'messages.2.content.0.tool_use_id',
      '"toolu_1" answers no tool_use',
    ],
    [
      'a tool_use left unanswered by the next user turn',
      body({
        messages: [...hello, { role: 'assistant', content: [toolUse] }, { role: 'user', content: 'Go on' }],
      }),
      'invalid_field',
      'messages.2',
      'none answers toolu_1',
    ],
    [
      'a tool_result whose is_error is a string',
      body({
        messages: [
          ...hello,
          { role: 'assistant', content: [toolUse] },
          { role: 'user', content: [{ ...toolResult, is_error: 'yes' }] },
        ],
      }),
      'invalid_field',
      'messages.2.content.0.is_error',
      'true or false',
    ],
    ['a temperature above 1', body({ temperature: 1.5 }), 'invalid_field', 'temperature', 'from 0 to 1'],
    ['a top_p below 0', body({ top_p: -0.1 }), 'invalid_field', 'top_p', 'from 0 to 1'],
    ['a negative top_k', body({ top_k: -1 }), 'invalid_field', 'top_k', 'at least 0'],
    [
      'stop_sequences as a string',
      body({ stop_sequences: 'END' }),
      'invalid_field',
      'stop_sequences',
      'array of strings',
    ],
    ['a non-boolean stream', body({ stream: 'yes' }), 'invalid_field', 'stream', 'true or false'],
    [
      'system as a number',
      body({ system: 3 }),
      'invalid_field',
      'system',
      'string or an array of text blocks',
    ],
    [
      'a system block that is not text',
      body({ system: [{ type: 'image' }] }),
      'invalid_field',
      'system.0',
      'text block',
    ],
    ['tools that are an object', body({ tools: tool }), 'invalid_field', 'tools', 'array of tools'],
    [
      'a tool without a name',
      body({ tools: [{ input_schema: { type: 'object' } }] }),
      'missing_field',
      'tools.0.name',
      'name',
    ],
    [
      'a tool name with spaces',
      body({ tools: [{ ...tool, name: 'get weather' }] }),
      'invalid_field',
      'tools.0.name',
      '1 to 64 letters',
    ],
    ['two tools with one name', body({ tools: [tool, tool] }), 'invalid_field', 'tools.1.name', 'unique'],
    [
      'a tool without input_schema',
      body({ tools: [{ name: 'x' }] }),
      'missing_field',
      'tools.0.input_schema',
      'JSON Schema',
    ],
    [
      'an input_schema that is not an object schema',
      body({ tools: [{ ...tool, input_schema: { type: 'array' } }] }),
      'invalid_field',
      'tools.0.input_schema.type',
      '"object"',
    ],
    [
      'an unknown tool_choice type',
      body({ tools: [tool], tool_choice: { type: 'required' } }),
      'invalid_field',
      'tool_choice.type',
      '"any"',
    ],
    [
      'tool_choice "any" without tools',
      body({ tool_choice: { type: 'any' } }),
      'invalid_field',
      'tool_choice',
      'at least one tool',
    ],
    [
      'tool_choice naming a tool not given',
      body({ tools: [tool], tool_choice: { type: 'tool', name: 'get_time' } }),
      'invalid_field',
      'tool_choice.name',
      '"get_weather"',
    ],
    [
      'tool_choice "tool" without a name',
      body({ tools: [tool], tool_choice: { type: 'tool' } }),
      'missing_field',
      'tool_choice.name',
      'name the tool',
    ],
    [
      'a non-boolean disable_parallel_tool_use',
      body({ tools: [tool], tool_choice: { type: 'auto', disable_parallel_tool_use: 1 } }),
      'invalid_field',
      'tool_choice.disable_parallel_tool_use',
      'true or false',
    ],
    [
      'metadata with other keys',
      body({ metadata: { session: 'x' } }),
      'invalid_field',
      'metadata.session',
      'only "user_id"',
    ],
    ['a numeric user_id', body({ metadata: { user_id: 42 } }), 'invalid_field', 'metadata.user_id', 'string'],
    [
      'an unknown thinking type',
      body({ thinking: { type: 'on' } }),
      'invalid_field',
      'thinking.type',
      '"enabled"',
    ],
    [
      'a thinking budget under 1024',
      body({ max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 512 } }),
      'invalid_field',
      'thinking.budget_tokens',
      'at least 1024',
    ],
    [
      'a thinking budget not under max_tokens',
      body({ max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 2048 } }),
      'invalid_field',
      'thinking.budget_tokens',
      'less than max_tokens (2048)',
    ],
    [
      'an OpenAI-style stop field',
      body({ stop: ['END'] }),
      'invalid_field',
      'stop',
      'accepts model, messages',
    ],
    [
      'an unknown service_tier',
      body({ service_tier: 'priority' }),
      'invalid_field',
      'service_tier',
      '"standard_only"',
    ],
  ])('%s', (_name, value, code, param, words) => {
    const error = failure(value);
    expect(error.code).toBe(code);
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    if (param !== null) expect(error.message.startsWith(`${param}: `), error.message).toBe(true);
    expect(error.message).toContain(words);
  });

  test.each([
    [
      'an Anthropic-hosted tool',
      body({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }),
      'tools.0.type',
    ],
    [
      'a document block',
      body({
        messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', data: 'x' } }] }],
      }),
      'messages.0.content.0.type',
    ],
    [
      'an image from the Files API',
      body({
        messages: [
          { role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_1' } }] },
        ],
      }),
      'messages.0.content.0.source.type',
    ],
    ['mcp_servers', body({ mcp_servers: [] }), 'mcp_servers'],
  ])('%s is named as a feature other models cannot honour', (_name, value, param) => {
    const error = failure(value);
    expect(error.code).toBe('unsupported_param');
    expect(error.param).toBe(param);
    expect(error.message.startsWith(`${param}: `)).toBe(true);
  });

  test('keeps only the fields it defines, leaving out nulls, cache_control and service_tier', () => {
    const request = parseAnthropicRequest(
      body({
        system: [{ type: 'text', text: 'Be brief', cache_control: { type: 'ephemeral' } }],
        temperature: null,
        service_tier: 'auto',
        metadata: { user_id: null },
      }),
    );
    expect(request).toEqual({
      model: 'claude',
      max_tokens: 256,
      messages: hello,
      system: [{ type: 'text', text: 'Be brief' }],
      metadata: {},
    });
  });

  test('accepts an empty final assistant message, the prefill Anthropic allows', () => {
    expect(() =>
      parseAnthropicRequest(body({ messages: [...hello, { role: 'assistant', content: '' }] })),
    ).not.toThrow();
  });

  test('accepts tool results split across consecutive user messages, which Anthropic joins into one turn', () => {
    const secondUse = { ...toolUse, id: 'toolu_2' };
    const request = body({
      messages: [
        ...hello,
        { role: 'assistant', content: [toolUse, secondUse] },
        { role: 'user', content: [toolResult] },
        { role: 'user', content: [{ ...toolResult, tool_use_id: 'toolu_2' }] },
      ],
    });
    expect(() => parseAnthropicRequest(request)).not.toThrow();
  });
});

/** Parses and translates in one step, as the route does. */
function canonical(fields: Record<string, unknown>): ChatRequest {
  return anthropicToCanonical(parseAnthropicRequest(body(fields)));
}

describe('anthropicToCanonical', () => {
  test('a plain text request becomes the same conversation with the system prompt first', () => {
    expect(
      canonical({
        system: 'You are terse.',
        messages: [
          { role: 'user', content: 'Hello' },
          { role: 'assistant', content: 'Hi.' },
          { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
        ],
      }),
    ).toEqual({
      model: 'claude',
      max_tokens: 256,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi.' },
        { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
      ],
    });
  });

  test('system text blocks become text parts, and an empty system prompt is left out', () => {
    const blocks = canonical({
      system: [
        { type: 'text', text: 'One.' },
        { type: 'text', text: 'Two.' },
      ],
    });
    expect(blocks.messages[0]).toEqual({
      role: 'system',
      content: [
        { type: 'text', text: 'One.' },
        { type: 'text', text: 'Two.' },
      ],
    });
    expect(canonical({ system: '' }).messages).toEqual([{ role: 'user', content: 'Hello' }]);
  });

  test('sampling settings carry over; top_k travels as an extension; user_id becomes user', () => {
    expect(
      canonical({
        temperature: 0.2,
        top_p: 0.9,
        top_k: 40,
        stop_sequences: ['END', '\n\nHuman:'],
        metadata: { user_id: 'user-7' },
      }),
    ).toMatchObject({ temperature: 0.2, top_p: 0.9, top_k: 40, stop: ['END', '\n\nHuman:'], user: 'user-7' });
  });

  test('a stream always asks for usage, which message_delta must report', () => {
    expect(canonical({ stream: true })).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(canonical({ stream: false })).not.toHaveProperty('stream');
  });

  test('enabled thinking travels as an extension; disabled thinking is left out', () => {
    expect(
      canonical({ max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 } }).thinking,
    ).toEqual({
      type: 'enabled',
      budget_tokens: 2048,
    });
    expect(canonical({ thinking: { type: 'disabled' } })).not.toHaveProperty('thinking');
  });

  test('images become image_url parts: base64 as a data URL, a URL as itself', () => {
    const request = canonical({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these.' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
          ],
        },
      ],
    });
    expect(request.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Compare these.' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
        ],
      },
    ]);
  });

  test('tools become functions and each tool_choice its OpenAI equivalent', () => {
    const strictTool = { ...tool, strict: true };
    const base = { tools: [strictTool] };
    expect(canonical(base)).toMatchObject({
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather by city',
            parameters: { type: 'object' },
            strict: true,
          },
        },
      ],
    });
    expect(canonical(base)).not.toHaveProperty('tool_choice');
    expect(canonical({ ...base, tool_choice: { type: 'auto' } }).tool_choice).toBe('auto');
    expect(canonical({ ...base, tool_choice: { type: 'any' } }).tool_choice).toBe('required');
    expect(canonical({ ...base, tool_choice: { type: 'none' } }).tool_choice).toBe('none');
    expect(canonical({ ...base, tool_choice: { type: 'tool', name: 'get_weather' } }).tool_choice).toEqual({
      type: 'function',
      function: { name: 'get_weather' },
    });
    expect(
      canonical({ ...base, tool_choice: { type: 'any', disable_parallel_tool_use: true } }),
    ).toMatchObject({ tool_choice: 'required', parallel_tool_calls: false });
    // OpenAI refuses tool_choice without tools; Anthropic's "auto" says nothing then.
    expect(canonical({ tool_choice: { type: 'auto' } })).not.toHaveProperty('tool_choice');
  });

  test('a tool-use turn: thinking dropped, tool_use as tool_calls, tool results before the user text', () => {
    const request = canonical({
      tools: [tool],
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Two cities: two calls.', signature: 'sig' },
            { type: 'text', text: 'Checking both.' },
            toolUse,
            { ...toolUse, id: 'toolu_2', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Use Celsius.' },
            { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '18°C' }] },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: 'Service down', is_error: true },
          ],
        },
      ],
    });
    expect(request.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: [{ type: 'text', text: 'Checking both.' }],
        tool_calls: [
          {
            id: 'toolu_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
          {
            id: 'toolu_2',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: '18°C' },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: Service down' },
      { role: 'user', content: [{ type: 'text', text: 'Use Celsius.' }] },
    ]);
  });

  test('an assistant message of tool calls alone has null content', () => {
    const request = canonical({
      messages: [
        ...hello,
        { role: 'assistant', content: [toolUse] },
        { role: 'user', content: [toolResult] },
      ],
    });
    expect(request.messages[1]).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      ],
    });
  });

  test('an error result that already says so is not prefixed twice, and an empty one reads "Error"', () => {
    const messages = canonical({
      messages: [
        ...hello,
        { role: 'assistant', content: [toolUse, { ...toolUse, id: 'toolu_2' }] },
        {
          role: 'user',
          content: [
            { ...toolResult, content: 'error: no such city', is_error: true },
            { type: 'tool_result', tool_use_id: 'toolu_2', is_error: true },
          ],
        },
      ],
    }).messages;
    expect(messages.slice(2)).toEqual([
      { role: 'tool', tool_call_id: 'toolu_1', content: 'error: no such city' },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'Error' },
    ]);
  });

  test('images a tool returned follow the tool messages in a user message naming the call', () => {
    const messages = canonical({
      messages: [
        ...hello,
        { role: 'assistant', content: [{ ...toolUse, name: 'screenshot', input: {} }] },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'toolu_1',
              content: [
                { type: 'text', text: 'Captured.' },
                { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/' } },
              ],
            },
            { type: 'text', text: 'What do you see?' },
          ],
        },
      ],
    }).messages;
    expect(messages.slice(2)).toEqual([
      { role: 'tool', tool_call_id: 'toolu_1', content: 'Captured.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Images from the result of tool call toolu_1:' },
          { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/' } },
        ],
      },
      { role: 'user', content: [{ type: 'text', text: 'What do you see?' }] },
    ]);
  });

  test('consecutive assistant messages become one, so tool messages follow their tool calls directly', () => {
    const messages = canonical({
      messages: [
        ...hello,
        { role: 'assistant', content: 'Let me look.' },
        { role: 'assistant', content: [toolUse] },
        { role: 'user', content: [toolResult] },
      ],
    }).messages;
    expect(messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: [{ type: 'text', text: 'Let me look.' }],
        tool_calls: [
          {
            id: 'toolu_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: '18°C' },
    ]);
  });

  test('an assistant message of thinking alone, or an empty prefill, leaves nothing behind', () => {
    const messages = canonical({
      messages: [
        ...hello,
        { role: 'assistant', content: [{ type: 'redacted_thinking', data: 'opaque' }] },
        { role: 'user', content: 'And?' },
        { role: 'assistant', content: '' },
      ],
    }).messages;
    expect(messages).toEqual([
      { role: 'user', content: 'Hello' },
      { role: 'user', content: 'And?' },
    ]);
  });
});
