import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../../test/support/target-config.js';
import { GatewayError } from '../../errors/index.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import { ollamaAdapter } from './ollama-adapter.js';

const config = targetConfig({
  kind: 'ollama',
  origin: 'http://127.0.0.1:11434',
  basePath: '',
  apiKey: undefined,
});
const target = { config, headers: ollamaAdapter.prepareHeaders(config) };

/** The /api/chat body the adapter builds for `request`. */
function sent(request: Partial<ChatRequest>): Record<string, unknown> {
  const call = ollamaAdapter.chatRequest(
    { model: 'ollama/llama3.2', messages: [{ role: 'user', content: 'Hi' }], ...request },
    target,
    'llama3.2',
  );
  expect(call.path).toBe('/api/chat');
  return JSON.parse(call.body.toString()) as Record<string, unknown>;
}

function unsupported(request: Partial<ChatRequest>): string[] {
  return ollamaAdapter
    .unsupportedParams({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], ...request })
    .map((entry) => entry.param);
}

const pixel =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

describe('requests to /api/chat', () => {
  test('always say whether to stream, since Ollama streams unless told not to', () => {
    expect(sent({}).stream).toBe(false);
    expect(sent({ stream: true }).stream).toBe(true);
    expect(sent({ stream: null }).stream).toBe(false);
  });

  test('go under the base path, with no key when none is configured', () => {
    const proxied = targetConfig({ kind: 'ollama', origin: 'https://gpu.example', basePath: '/ollama' });
    const call = ollamaAdapter.chatRequest(
      { model: 'm', messages: [] },
      { config: proxied, headers: ollamaAdapter.prepareHeaders(proxied) },
      'm',
    );
    expect(call.path).toBe('/ollama/api/chat');
    expect(target.headers).toEqual(['content-type', 'application/json']);
    expect(ollamaAdapter.prepareHeaders(proxied)).toContain('Bearer sk-test-secret-key');
  });

  test('carry sampling settings as options under Ollama’s names', () => {
    const body = sent({
      max_completion_tokens: 100,
      max_tokens: 50,
      temperature: 0.7,
      top_p: 0.95,
      top_k: 40,
      seed: 7,
      stop: ['END', 'STOP'],
      presence_penalty: 0.5,
      frequency_penalty: 0.25,
    });
    expect(body.options).toEqual({
      num_predict: 100,
      temperature: 0.7,
      top_p: 0.95,
      top_k: 40,
      seed: 7,
      stop: ['END', 'STOP'],
      presence_penalty: 0.5,
      frequency_penalty: 0.25,
    });
  });

  test('send no options at all when the request sets none', () => {
    expect(sent({})).not.toHaveProperty('options');
  });

  test('pass Ollama’s own options through, with the canonical fields winning', () => {
    const body = sent({ options: { num_ctx: 8192, temperature: 1 }, temperature: 0 });
    expect(body.options).toEqual({ num_ctx: 8192, temperature: 0 });
  });

  test('pass keep_alive through, and reject one that is neither text nor a number', () => {
    expect(sent({ keep_alive: '10m' }).keep_alive).toBe('10m');
    expect(sent({ keep_alive: 0 }).keep_alive).toBe(0);
    expect(() => sent({ keep_alive: { minutes: 5 } })).toThrow(GatewayError);
  });

  test('reject a top_k or options of the wrong type, naming the field', () => {
    expect(() => sent({ top_k: 'forty' })).toThrow(expect.objectContaining({ param: 'top_k' }));
    expect(() => sent({ options: [1] })).toThrow(expect.objectContaining({ param: 'options' }));
  });

  test('map response_format: json_object to "json", json_schema to the schema itself', () => {
    expect(sent({ response_format: { type: 'json_object' } }).format).toBe('json');
    const schema = { type: 'object', properties: { name: { type: 'string' } } };
    expect(
      sent({ response_format: { type: 'json_schema', json_schema: { name: 'n', schema } } }).format,
    ).toEqual(schema);
    expect(sent({ response_format: { type: 'text' } })).not.toHaveProperty('format');
  });

  test('map reasoning_effort to think, with minimal as Ollama’s lowest level', () => {
    expect(sent({ reasoning_effort: 'high' }).think).toBe('high');
    expect(sent({ reasoning_effort: 'medium' }).think).toBe('medium');
    expect(sent({ reasoning_effort: 'minimal' }).think).toBe('low');
    expect(sent({ reasoning_effort: 'none' as never }).think).toBe(false);
    expect(sent({})).not.toHaveProperty('think');
  });

  test('ask for logprobs natively', () => {
    expect(sent({ logprobs: true, top_logprobs: 3 })).toMatchObject({ logprobs: true, top_logprobs: 3 });
    expect(sent({ logprobs: false, top_logprobs: 3 })).not.toHaveProperty('top_logprobs');
  });

  test('offer tools without OpenAI’s strict flag, and none at all when tool_choice is "none"', () => {
    const tools: ChatRequest['tools'] = [
      { type: 'function', function: { name: 'lookup', parameters: { type: 'object' }, strict: true } },
    ];
    expect(sent({ tools }).tools).toEqual([
      { type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } },
    ]);
    expect(sent({ tools, tool_choice: 'none' })).not.toHaveProperty('tools');
  });

  test('send the system prompt, and a developer message as one', () => {
    const body = sent({
      messages: [
        { role: 'developer', content: [{ type: 'text', text: 'Be brief.' }] },
        { role: 'user', content: 'Hi' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
  });

  test('send data-URL images as bare base64 beside the text', () => {
    const body = sent({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare ' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${pixel}` } },
            { type: 'text', text: 'and' },
            { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${pixel}` } },
          ],
        },
      ],
    });
    expect(body.messages).toEqual([{ role: 'user', content: 'Compare and', images: [pixel, pixel] }]);
  });

  test('replay tool calls with object arguments, and name each result after its call', () => {
    const body = sent({
      messages: [
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'clock', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_b', content: '14:00' },
        { role: 'tool', tool_call_id: 'call_a', content: [{ type: 'text', text: 'sunny' }] },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: 'Weather and time in Paris?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { id: 'call_a', function: { name: 'weather', arguments: { city: 'Paris' } } },
          { id: 'call_b', function: { name: 'clock', arguments: {} } },
        ],
      },
      { role: 'tool', content: '14:00', tool_name: 'clock', tool_call_id: 'call_b' },
      { role: 'tool', content: 'sunny', tool_name: 'weather', tool_call_id: 'call_a' },
    ]);
  });

  test('send a tool result whose call is not in the history without a tool_name', () => {
    const body = sent({ messages: [{ role: 'tool', tool_call_id: 'call_gone', content: '42' }] });
    expect(body.messages).toEqual([{ role: 'tool', content: '42', tool_call_id: 'call_gone' }]);
  });

  test('reject replayed tool-call arguments that are not a JSON object, naming where they are', () => {
    const request: Partial<ChatRequest> = {
      messages: [
        { role: 'user', content: 'Hi' },
        {
          role: 'assistant',
          tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"unterminated' } }],
        },
      ],
    };
    expect(() => sent(request)).toThrow(
      expect.objectContaining({
        code: 'invalid_field',
        param: 'messages[1].tool_calls[0].function.arguments',
      }),
    );
  });

  test('leave out an unsupported image part when the model drops unsupported params', () => {
    const body = sent({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
          ],
        },
      ],
    });
    expect(body.messages).toEqual([{ role: 'user', content: 'What is this?' }]);
  });
});

describe('parameters Ollama cannot honour', () => {
  test('are none for a plain request with the settings Ollama has', () => {
    expect(
      unsupported({
        n: 1,
        tool_choice: 'auto',
        parallel_tool_calls: true,
        logprobs: true,
        logit_bias: {},
        reasoning_effort: 'low',
        response_format: { type: 'json_object' },
      }),
    ).toEqual([]);
  });

  test('include more than one choice, logit bias, a forced tool and serial tool calls', () => {
    expect(
      unsupported({
        n: 2,
        logit_bias: { '50256': -100 },
        tool_choice: 'required',
        parallel_tool_calls: false,
      }),
    ).toEqual(['n', 'logit_bias', 'tool_choice', 'parallel_tool_calls']);
    expect(unsupported({ tool_choice: { type: 'function', function: { name: 'f' } } })).toEqual([
      'tool_choice',
    ]);
  });

  test('include image URLs, which Ollama cannot fetch, and parts it has no place for', () => {
    const found = ollamaAdapter.unsupportedParams({
      model: 'm',
      messages: [
        { role: 'system', content: 'Describe.' },
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: `data:image/png;base64,${pixel}` } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
            { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
          ],
        },
      ],
    });
    expect(found.map((entry) => entry.param)).toEqual([
      'messages[1].content[1].image_url.url',
      'messages[1].content[2]',
    ]);
    expect(found[0]!.reason).toMatch(/base64/);
    expect(found[1]!.reason).toMatch(/input_audio/);
  });

  test('include audio output', () => {
    expect(unsupported({ modalities: ['text', 'audio'] })).toEqual(['modalities']);
  });
});

describe('requests to /api/embed', () => {
  function embed(request: Partial<EmbeddingsRequest>) {
    return ollamaAdapter.embeddings!.request(
      { model: 'ollama/nomic', input: 'x', ...request },
      target,
      'nomic',
    );
  }

  test('carry text, truncate and dimensions to /api/embed', () => {
    const call = embed({ input: ['a', 'b'], truncate: false, dimensions: 256, user: 'u' });
    expect(call.path).toBe('/api/embed');
    expect(JSON.parse(call.body.toString())).toEqual({
      model: 'nomic',
      input: ['a', 'b'],
      truncate: false,
      dimensions: 256,
    });
  });

  test('refuse token ids and base64 output with a 400 naming the parameter', () => {
    expect(() => embed({ input: [1, 2, 3] })).toThrow(
      expect.objectContaining({ code: 'unsupported_param', status: 400, param: 'input' }),
    );
    expect(() => embed({ input: [[1, 2]] })).toThrow(expect.objectContaining({ param: 'input' }));
    expect(() => embed({ encoding_format: 'base64' })).toThrow(
      expect.objectContaining({ code: 'unsupported_param', param: 'encoding_format' }),
    );
    expect(() => embed({ encoding_format: 'float' })).not.toThrow();
  });
});
