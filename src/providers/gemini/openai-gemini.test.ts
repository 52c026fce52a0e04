import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../../test/support/target-config.js';
import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import type { ChatMessage, ChatRequest, FunctionTool } from '../../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../../spec/openai-embeddings.js';
import { geminiAdapter } from './gemini-adapter.js';
import type { GeminiRequest } from './gemini-wire.js';
import {
  geminiHeaders,
  geminiUnsupportedParams,
  modelMethodPath,
  replayedThoughtSignature,
  toGeminiEmbeddingsRequest,
  toGeminiRequest,
} from './openai-gemini.js';

function config(overrides: Partial<TargetConfig> = {}): TargetConfig {
  return targetConfig({
    kind: 'gemini',
    origin: 'https://generativelanguage.googleapis.com',
    basePath: '',
    apiKey: 'AIza-test-key',
    ...overrides,
  });
}

function translate(request: Partial<ChatRequest>): GeminiRequest {
  return toGeminiRequest({ model: 'gemini', messages: [{ role: 'user', content: 'Hi' }], ...request });
}

/** The GatewayError a function throws. */
function thrown(run: () => unknown): GatewayError {
  try {
    run();
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error('it did not fail');
}

const weather: FunctionTool = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};

describe('the upstream call', () => {
  test('carries the key in x-goog-api-key, never in the path or body', () => {
    const target = { config: config(), headers: geminiHeaders(config()) };
    const call = geminiAdapter.chatRequest(
      { model: 'gemini', messages: [{ role: 'user', content: 'Hi' }] },
      target,
      'gemini-2.5-flash',
    );
    expect(call.headers).toEqual(['content-type', 'application/json', 'x-goog-api-key', 'AIza-test-key']);
    expect(call.path + call.body.toString()).not.toContain('AIza-test-key');
  });

  test('sends configured headers, but not a second key or framing headers', () => {
    const headers = geminiHeaders(
      config({
        headers: { 'X-Goog-Api-Key': 'other', 'Content-Length': '3', 'x-goog-user-project': 'billing' },
      }),
    );
    expect(headers).toEqual([
      'content-type',
      'application/json',
      'x-goog-user-project',
      'billing',
      'x-goog-api-key',
      'AIza-test-key',
    ]);
  });

  test('uses generateContent, or streamGenerateContent as SSE for a stream', () => {
    const target = { config: config(), headers: [] };
    const path = (stream: boolean) =>
      geminiAdapter.chatRequest({ model: 'gemini', messages: [], stream }, target, 'gemini-2.5-flash').path;
    expect(path(false)).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(path(true)).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
  });

  test('adds the API version unless the configured URL already names one', () => {
    const path = (basePath: string) =>
      modelMethodPath(config({ basePath }), 'gemini-2.5-flash', 'generateContent');
    expect(path('')).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(path('/v1beta')).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(path('/v1')).toBe('/v1/models/gemini-2.5-flash:generateContent');
    expect(path('/proxy/gemini')).toBe('/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent');
  });

  test('takes model names with or without their resource prefix', () => {
    const path = (model: string) => modelMethodPath(config(), model, 'generateContent');
    expect(path('models/gemini-2.5-pro')).toBe('/v1beta/models/gemini-2.5-pro:generateContent');
    expect(path('tunedModels/my-model-7')).toBe('/v1beta/tunedModels/my-model-7:generateContent');
  });
});

describe('parameters Gemini cannot carry', () => {
  test('a plain request has none', () => {
    expect(
      geminiUnsupportedParams({
        model: 'gemini',
        messages: [],
        tools: [weather],
        parallel_tool_calls: true,
        logprobs: true,
        seed: 1,
        user: 'someone',
      }),
    ).toEqual([]);
  });

  test('logit_bias, forbidding parallel calls and the legacy functions API are named with reasons', () => {
    const params = geminiUnsupportedParams({
      model: 'gemini',
      messages: [],
      logit_bias: { '50256': -100 },
      parallel_tool_calls: false,
      functions: [{ name: 'f' }],
    });
    expect(params.map((entry) => entry.param)).toEqual(['logit_bias', 'parallel_tool_calls', 'functions']);
    for (const entry of params) expect(entry.reason.length).toBeGreaterThan(10);
  });

  test('audio output, predicted outputs, web search and non-function tools are named', () => {
    const params = geminiUnsupportedParams({
      model: 'gemini',
      messages: [],
      modalities: ['text', 'audio'],
      prediction: { type: 'content', content: 'x' },
      web_search_options: {},
      tools: [{ type: 'custom', custom: { name: 'grammar' } } as unknown as FunctionTool],
    });
    expect(params.map((entry) => entry.param).sort()).toEqual([
      'modalities',
      'prediction',
      'tools',
      'web_search_options',
    ]);
  });
});

describe('messages', () => {
  test('system and developer messages, wherever they stand, join the system instruction in order', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'developer', content: [{ type: 'text', text: 'Use French.' }] },
      ],
    });
    expect(body.systemInstruction).toEqual({ parts: [{ text: 'Be brief.' }, { text: 'Use French.' }] });
    expect(body.contents).toEqual([{ role: 'user', parts: [{ text: 'Hi' }] }]);
  });

  test('assistant turns are model turns, and consecutive turns of one role merge', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'One' },
        { role: 'user', content: 'Two' },
        { role: 'assistant', content: 'Three' },
        { role: 'assistant', content: null },
        { role: 'user', content: 'Four' },
      ],
    });
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'One' }, { text: 'Two' }] },
      { role: 'model', parts: [{ text: 'Three' }] },
      { role: 'user', parts: [{ text: 'Four' }] },
    ]);
  });

  test('replayed function calls carry the validator-skipping signature on the first call of each turn', () => {
    const call = (id: string, name: string) => ({
      id,
      type: 'function' as const,
      function: { name, arguments: '{}' },
    });
    const body = translate({
      messages: [
        { role: 'user', content: 'Go' },
        { role: 'assistant', tool_calls: [call('a', 'first'), call('b', 'second')] },
        { role: 'tool', tool_call_id: 'a', content: 'ok' },
        { role: 'tool', tool_call_id: 'b', content: 'ok' },
        { role: 'assistant', tool_calls: [call('c', 'third')] },
        { role: 'tool', tool_call_id: 'c', content: 'ok' },
      ],
    });
    const signatures = body.contents
      .filter((content) => content.role === 'model')
      .map((content) => content.parts!.map((part) => part.thoughtSignature));
    expect(signatures).toEqual([[replayedThoughtSignature, undefined], [replayedThoughtSignature]]);
  });

  test('a tool result is answered by function name, looked up from the call id', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: '[1, 2]' }] },
      ],
    });
    expect(body.contents[2]).toEqual({
      role: 'user',
      parts: [{ functionResponse: { name: 'get_weather', response: { result: '[1, 2]' } } }],
    });
  });

  test('a tool result for a call no assistant made is a 400 naming its tool_call_id', () => {
    const error = thrown(() =>
      translate({ messages: [{ role: 'tool', tool_call_id: 'call_x', content: 'ok' }] }),
    );
    expect(error.code).toBe('invalid_field');
    expect(error.param).toBe('messages[0].tool_call_id');
  });

  test('tool-call arguments that are not a JSON object are a 400 naming them', () => {
    const messages: ChatMessage[] = [
      {
        role: 'assistant',
        tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '[1' } }],
      },
    ];
    const error = thrown(() => translate({ messages }));
    expect(error.code).toBe('invalid_field');
    expect(error.param).toBe('messages[0].tool_calls[0].function.arguments');
  });
});

describe('content parts', () => {
  const parts = (content: ChatRequest['messages'][number]['content']) =>
    translate({ messages: [{ role: 'user', content } as ChatMessage] }).contents[0]!.parts;

  test('a percent-encoded data URL is sent base64-encoded', () => {
    expect(parts([{ type: 'image_url', image_url: { url: 'data:image/svg+xml,%3Csvg%2F%3E' } }])).toEqual([
      { inlineData: { mimeType: 'image/svg+xml', data: Buffer.from('<svg/>').toString('base64') } },
    ]);
  });

  test('an image URL is fileData with the type its extension gives', () => {
    expect(parts([{ type: 'image_url', image_url: { url: 'https://cdn.example/a/b.webp' } }])).toEqual([
      { fileData: { mimeType: 'image/webp', fileUri: 'https://cdn.example/a/b.webp' } },
    ]);
  });

  test('an image URL whose type cannot be told is a 400 naming it', () => {
    const error = thrown(() =>
      translate({
        messages: [
          {
            role: 'user',
            content: [{ type: 'image_url', image_url: { url: 'https://cdn.example/image?id=4' } }],
          },
        ],
      }),
    );
    expect(error.code).toBe('unsupported_param');
    expect(error.param).toBe('messages[0].content[0].image_url.url');
    expect(error.message).toContain('data URL');
  });

  test('audio and inline files go as inlineData', () => {
    expect(
      parts([
        { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
        { type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0=' } },
      ]),
    ).toEqual([
      { inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } },
      { inlineData: { mimeType: 'application/pdf', data: 'JVBERi0=' } },
    ]);
  });

  test('an OpenAI file id, or a part type Gemini has no counterpart for, is a 400 naming the part', () => {
    const fileId = thrown(() =>
      parts([
        { type: 'text', text: 'Read' },
        { type: 'file', file: { file_id: 'file-abc' } },
      ]),
    );
    expect(fileId.param).toBe('messages[0].content[1]');
    const unknown = thrown(() => parts([{ type: 'refusal', refusal: 'no' }]));
    expect(unknown.code).toBe('unsupported_param');
    expect(unknown.message).toContain('no "refusal" parts');
  });
});

describe('tools', () => {
  test('a named tool_choice allows that function only; none is mode NONE', () => {
    const named = translate({
      tools: [weather],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(named.toolConfig).toEqual({
      functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] },
    });
    expect(translate({ tools: [weather], tool_choice: 'none' }).toolConfig).toEqual({
      functionCallingConfig: { mode: 'NONE' },
    });
  });

  test('without tools, no tools or tool config are sent', () => {
    const body = translate({ tools: [], tool_choice: 'none' });
    expect(body.tools).toBeUndefined();
    expect(body.toolConfig).toBeUndefined();
  });

  test('a function without parameters is declared without a schema', () => {
    const body = translate({ tools: [{ type: 'function', function: { name: 'now' } }] });
    expect(body.tools).toEqual([{ functionDeclarations: [{ name: 'now' }] }]);
  });
});

describe('generation settings', () => {
  test('stop sequences, logprobs without top_logprobs, and reasoning effort as a thinking level', () => {
    const body = translate({ stop: ['a', 'b'], logprobs: true, reasoning_effort: 'low' });
    expect(body.generationConfig).toEqual({
      stopSequences: ['a', 'b'],
      responseLogprobs: true,
      thinkingConfig: { thinkingLevel: 'low' },
    });
  });

  test('top_logprobs alone asks for nothing, as in OpenAI where it needs logprobs', () => {
    expect(translate({ top_logprobs: 3 }).generationConfig).toBeUndefined();
  });

  test('a json_schema response format drops only $schema from the schema', () => {
    const body = translate({
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'answer',
          schema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            type: 'object',
            properties: { n: { $ref: '#/$defs/count' } },
            $defs: { count: { type: 'integer', minimum: 0 } },
            additionalProperties: false,
          },
        },
      },
    });
    expect(body.generationConfig).toEqual({
      responseMimeType: 'application/json',
      responseJsonSchema: {
        type: 'object',
        properties: { n: { $ref: '#/$defs/count' } },
        $defs: { count: { type: 'integer', minimum: 0 } },
        additionalProperties: false,
      },
    });
  });

  test('a text response format and null settings send no generation config', () => {
    expect(
      translate({ response_format: { type: 'text' }, temperature: null, stop: null }).generationConfig,
    ).toBeUndefined();
  });
});

describe('embeddings', () => {
  const embed = (request: Partial<EmbeddingsRequest>, model = 'gemini-embedding-001') =>
    toGeminiEmbeddingsRequest({ model: 'embed', input: 'x', ...request }, model);

  test('each input is one request naming the model, with dimensions as outputDimensionality', () => {
    expect(embed({ input: ['a', 'b'], dimensions: 768 })).toEqual({
      requests: [
        {
          model: 'models/gemini-embedding-001',
          content: { parts: [{ text: 'a' }] },
          outputDimensionality: 768,
        },
        {
          model: 'models/gemini-embedding-001',
          content: { parts: [{ text: 'b' }] },
          outputDimensionality: 768,
        },
      ],
    });
    expect(embed({ input: 'a' }, 'models/text-embedding-004').requests[0]!.model).toBe(
      'models/text-embedding-004',
    );
  });

  test('go to batchEmbedContents', () => {
    const call = geminiAdapter.embeddings!.request(
      { model: 'embed', input: 'a' },
      { config: config(), headers: [] },
      'gemini-embedding-001',
    );
    expect(call.path).toBe('/v1beta/models/gemini-embedding-001:batchEmbedContents');
  });

  test('token-id inputs and base64 output are 400s naming the field', () => {
    expect(thrown(() => embed({ input: [[1, 2, 3]] })).param).toBe('input[0]');
    expect(thrown(() => embed({ encoding_format: 'base64' })).param).toBe('encoding_format');
  });
});
