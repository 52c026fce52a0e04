import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../../test/support/target-config.js';
import type { TargetConfig } from '../../config/types.js';
import { GatewayError } from '../../errors/index.js';
import type { ChatRequest, FunctionTool } from '../../spec/openai-chat.js';
import { jsonAnswerTool } from '../translation-parts.js';
import type { BedrockRequest } from './bedrock-wire.js';
import { bedrockHeaders, bedrockPath, bedrockRequest, bedrockUnsupportedParams } from './openai-bedrock.js';

function config(overrides: Partial<TargetConfig> = {}): TargetConfig {
  return targetConfig({
    kind: 'bedrock',
    origin: 'https://bedrock-runtime.us-east-1.amazonaws.com',
    basePath: '',
    region: 'us-east-1',
    ...overrides,
  });
}

function translate(request: Partial<ChatRequest>, overrides: Partial<TargetConfig> = {}): BedrockRequest {
  return bedrockRequest({ model: 'claude', messages: [], ...request }, config(overrides));
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

const params = (request: Partial<ChatRequest>) =>
  bedrockUnsupportedParams({ model: 'claude', messages: [], ...request }).map((found) => found.param);

const weather: FunctionTool = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', sessionToken: undefined };

describe('bedrockHeaders', () => {
  test('sends a Bedrock API key as a bearer token, replacing a configured authorization', () => {
    expect(
      bedrockHeaders(config({ apiKey: 'bedrock-key', headers: { Authorization: 'x', 'X-Team': 'a' } })),
    ).toEqual(['content-type', 'application/json', 'x-team', 'a', 'authorization', 'Bearer bedrock-key']);
  });

  test('leaves the credential and x-amz- headers to the signature when signing with AWS credentials', () => {
    const headers = bedrockHeaders(
      config({
        apiKey: undefined,
        awsCredentials: credentials,
        headers: { authorization: 'x', 'X-Amz-Date': 'then', 'x-amzn-bedrock-trace': 'ENABLED', Host: 'h' },
      }),
    );
    expect(headers).toEqual(['content-type', 'application/json', 'x-amzn-bedrock-trace', 'ENABLED']);
  });
});

describe('bedrockPath', () => {
  test('encodes the model id: the ":" of a version, the "/" of an ARN', () => {
    expect(bedrockPath(config(), 'anthropic.claude-3-5-haiku-20241022-v1:0', false)).toBe(
      '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse',
    );
    expect(
      bedrockPath(
        config({ basePath: '/proxy' }),
        'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0',
        true,
      ),
    ).toBe(
      '/proxy/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-pro-v1%3A0/converse-stream',
    );
  });
});

describe('bedrockUnsupportedParams', () => {
  test('names each parameter Converse cannot carry', () => {
    expect(
      params({
        n: 2,
        logprobs: true,
        top_logprobs: 3,
        seed: 7,
        presence_penalty: 0.5,
        frequency_penalty: 0.5,
        logit_bias: { '50256': -100 },
        temperature: 1.5,
        top_k: 40,
        parallel_tool_calls: false,
        reasoning_effort: 'high',
        audio: { voice: 'alloy' },
        modalities: ['text', 'audio'],
        prediction: { type: 'content', content: 'x' },
        web_search_options: {},
        functions: [],
      }),
    ).toEqual([
      'n',
      'logprobs',
      'top_logprobs',
      'seed',
      'presence_penalty',
      'frequency_penalty',
      'logit_bias',
      'temperature',
      'top_k',
      'parallel_tool_calls',
      'functions',
      'reasoning_effort',
      'audio',
      'modalities',
      'prediction',
      'web_search_options',
    ]);
  });

  test('lets through what asks for nothing: n 1, zero penalties, an empty bias, a temperature of 1', () => {
    expect(
      params({ n: 1, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, temperature: 1, seed: null }),
    ).toEqual([]);
  });

  test('refuses tool_choice none only while the conversation holds tool calls, which need the tools defined', () => {
    expect(params({ tool_choice: 'none', messages: [{ role: 'user', content: 'Hi' }] })).toEqual([]);
    expect(
      params({
        tool_choice: 'none',
        messages: [{ role: 'tool', tool_call_id: 'tooluse_1', content: 'sunny' }],
      }),
    ).toEqual(['tool_choice']);
  });
});

describe('bedrockRequest', () => {
  test('sends maxTokens only when the client or the target chooses one', () => {
    expect(translate({ messages: [{ role: 'user', content: 'Hi' }] }).inferenceConfig).toBeUndefined();
    expect(
      translate({ messages: [{ role: 'user', content: 'Hi' }] }, { defaultMaxTokens: 2048 }).inferenceConfig,
    ).toEqual({ maxTokens: 2048 });
    expect(
      translate({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10 }, { defaultMaxTokens: 2048 })
        .inferenceConfig,
    ).toEqual({ maxTokens: 10 });
  });

  test('joins neighbouring messages of one role into one turn and hoists every system message', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'One.' },
        { role: 'user', content: [{ type: 'text', text: 'Two.' }] },
        { role: 'developer', content: [{ type: 'text', text: 'Use metric units.' }] },
        { role: 'assistant', content: '' },
        { role: 'assistant', content: 'Three.' },
      ],
    });
    expect(body.system).toEqual([{ text: 'Be brief.' }, { text: 'Use metric units.' }]);
    expect(body.messages).toEqual([
      { role: 'user', content: [{ text: 'One.' }, { text: 'Two.' }] },
      { role: 'assistant', content: [{ text: 'Three.' }] },
    ]);
  });

  test('keeps an assistant refusal in the history as its text', () => {
    const body = translate({ messages: [{ role: 'assistant', content: null, refusal: 'I cannot help.' }] });
    expect(body.messages).toEqual([{ role: 'assistant', content: [{ text: 'I cannot help.' }] }]);
  });

  test('sends an empty tool result as a toolResult with no content, and "" arguments as {}', () => {
    const body = translate({
      messages: [
        {
          role: 'assistant',
          tool_calls: [{ id: 'tooluse_1', type: 'function', function: { name: 'ping', arguments: '' } }],
        },
        { role: 'tool', tool_call_id: 'tooluse_1', content: '' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'ping', input: {} } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_1', content: [] } }] },
    ]);
  });

  test('refuses tool call arguments that are not a JSON object, naming the field', () => {
    const error = failure({
      messages: [
        {
          role: 'assistant',
          tool_calls: [{ id: 'tooluse_1', type: 'function', function: { name: 'f', arguments: '[1]' } }],
        },
      ],
    });
    expect(error.code).toBe('invalid_field');
    expect(error.param).toBe('messages[0].tool_calls[0].function.arguments');
  });

  test('takes images as base64 data URLs of the four formats Converse reads', () => {
    const image = (url: string) =>
      translate({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] })
        .messages[0]!.content[0];
    expect(image('data:image/jpeg;base64,/9j/4AAQ')).toEqual({
      image: { format: 'jpeg', source: { bytes: '/9j/4AAQ' } },
    });
    expect(image('data:image/webp;name=a.webp;base64,UklGR')).toEqual({
      image: { format: 'webp', source: { bytes: 'UklGR' } },
    });
  });

  test('refuses image URLs, other image formats and other part types with a clear 400', () => {
    const part = (content: ChatRequest['messages'][number]['content']) =>
      failure({ messages: [{ role: 'user', content } as ChatRequest['messages'][number]] });
    const url = part([{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }]);
    expect([url.code, url.param]).toEqual(['unsupported_param', 'messages[0].content[0].image_url.url']);
    expect(url.message).toContain('base64 data URL');
    const tiff = part([{ type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } }]);
    expect([tiff.code, tiff.message]).toEqual([
      'unsupported_param',
      'Bedrock\'s Converse API takes PNG, JPEG, GIF and WebP images, not "image/tiff".',
    ]);
    expect(part([{ type: 'image_url', image_url: { url: 'not a url' } }]).code).toBe('invalid_field');
    expect(part([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }]).param).toBe(
      'messages[0].content[0]',
    );
  });

  test('maps tool_choice: auto, required as any, a named function as tool, none as no tools at all', () => {
    const choice = (tool_choice: ChatRequest['tool_choice']) =>
      translate({ messages: [{ role: 'user', content: 'Hi' }], tools: [weather], tool_choice }).toolConfig;
    expect(choice(undefined)?.toolChoice).toBeUndefined();
    expect(choice('auto')?.toolChoice).toEqual({ auto: {} });
    expect(choice('required')?.toolChoice).toEqual({ any: {} });
    expect(choice({ type: 'function', function: { name: 'get_weather' } })?.toolChoice).toEqual({
      tool: { name: 'get_weather' },
    });
    expect(choice('none')).toBeUndefined();
  });

  test('gives a tool without parameters an empty object schema and leaves an empty description out', () => {
    const body = translate({ tools: [{ type: 'function', function: { name: 'now', description: '' } }] });
    expect(body.toolConfig?.tools).toEqual([
      { toolSpec: { name: 'now', inputSchema: { json: { type: 'object', properties: {} } } } },
    ]);
  });

  test('JSON mode with client tools lets the model call one of them or answer through the JSON tool', () => {
    const body = translate({
      messages: [{ role: 'user', content: 'Hi' }],
      tools: [weather],
      response_format: { type: 'json_object' },
    });
    expect(body.toolConfig?.tools.map((tool) => tool.toolSpec.name)).toEqual(['get_weather', jsonAnswerTool]);
    expect(body.toolConfig?.toolChoice).toEqual({ any: {} });
  });

  test('JSON mode with tool_choice none forces the JSON tool alone', () => {
    const body = translate({
      tools: [weather],
      tool_choice: 'none',
      response_format: { type: 'json_object' },
    });
    expect(body.toolConfig?.tools.map((tool) => tool.toolSpec.name)).toEqual([jsonAnswerTool]);
    expect(body.toolConfig?.toolChoice).toEqual({ tool: { name: jsonAnswerTool } });
  });

  test('JSON mode leaves the JSON tool out when a client tool must be called', () => {
    const body = translate({
      tools: [weather],
      tool_choice: 'required',
      response_format: { type: 'json_object' },
    });
    expect(body.toolConfig).toEqual({
      tools: [expect.objectContaining({ toolSpec: expect.objectContaining({ name: 'get_weather' }) })],
      toolChoice: { any: {} },
    });
  });

  test('reserves the JSON tool name', () => {
    const error = failure({ tools: [{ type: 'function', function: { name: jsonAnswerTool } }] });
    expect([error.code, error.param]).toEqual(['invalid_field', 'tools[0].function.name']);
  });
});
