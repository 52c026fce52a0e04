import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletionChunk } from '../../spec/openai-chat.js';
import type { TranslationContext } from '../adapter.js';
import {
  finishReason,
  fromGeminiEmbeddings,
  fromGeminiResponse,
  GeminiStreamDecoder,
  geminiFailure,
  usage,
} from './gemini-openai.js';
import type { GeminiResponse } from './gemini-wire.js';

const context: TranslationContext = {
  id: 'chatcmpl-42',
  created: 1_700_000_000,
  model: 'gemini',
  targetName: 'google',
  includeUsage: false,
};

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

function sse(...events: GeminiResponse[]): Buffer {
  return Buffer.from(events.map((event) => `data: ${JSON.stringify(event)}\r\n\r\n`).join(''));
}

function decode(bytes: Buffer): ChatCompletionChunk[] {
  const decoder = new GeminiStreamDecoder(context);
  return [...decoder.push(bytes), ...decoder.end()];
}

const call = (name: string, args: Record<string, unknown>) => ({ functionCall: { name, args } });

describe('a whole answer', () => {
  test('keeps candidates in their index order', () => {
    const completion = fromGeminiResponse(
      JSON.stringify({
        candidates: [
          { index: 1, content: { parts: [{ text: 'B' }] }, finishReason: 'STOP' },
          { index: 0, content: { parts: [{ text: 'A' }] }, finishReason: 'MAX_TOKENS' },
        ],
      }),
      context,
    );
    expect(
      completion.choices.map((choice) => [choice.index, choice.message.content, choice.finish_reason]),
    ).toEqual([
      [0, 'A', 'length'],
      [1, 'B', 'stop'],
    ]);
  });

  test('makes call ids from the response id, kept to letters, digits, _ and -', () => {
    const completion = fromGeminiResponse(
      JSON.stringify({
        responseId: 'ab/c+d=',
        candidates: [{ content: { parts: [call('f', {}), call('g', { x: 1 })] }, finishReason: 'STOP' }],
      }),
      context,
    );
    expect(completion.choices[0]!.message.tool_calls!.map((toolCall) => toolCall.id)).toEqual([
      'call_ab_c_d__0',
      'call_ab_c_d__1',
    ]);
  });

  test('without a response id, call ids come from the completion id', () => {
    const completion = fromGeminiResponse(
      JSON.stringify({ candidates: [{ content: { parts: [call('f', {})] }, finishReason: 'STOP' }] }),
      context,
    );
    expect(completion.choices[0]!.message.tool_calls![0]!.id).toBe('call_chatcmpl-42_0');
  });

  test('an answer with neither candidates nor a block reason, or not JSON, is upstream_bad_response', () => {
    expect(thrown(() => fromGeminiResponse('{"usageMetadata":{}}', context)).code).toBe(
      'upstream_bad_response',
    );
    expect(thrown(() => fromGeminiResponse('<html>', context)).code).toBe('upstream_bad_response');
  });
});

describe('finish reasons', () => {
  test.each([
    ['STOP', false, 'stop'],
    ['STOP', true, 'tool_calls'],
    ['MAX_TOKENS', true, 'length'],
    ['SAFETY', false, 'content_filter'],
    ['RECITATION', false, 'content_filter'],
    ['BLOCKLIST', false, 'content_filter'],
    ['PROHIBITED_CONTENT', false, 'content_filter'],
    ['SPII', false, 'content_filter'],
    ['MALFORMED_FUNCTION_CALL', false, 'stop'],
    ['OTHER', false, 'stop'],
  ] as const)('%s (functions called: %s) is %s', (reason, called, expected) => {
    expect(finishReason(reason, called)).toBe(expected);
  });
});

describe('usage', () => {
  test('counts thinking as output and tool-use prompts as prompt, keeping Gemini total', () => {
    expect(
      usage({
        promptTokenCount: 100,
        toolUsePromptTokenCount: 20,
        candidatesTokenCount: 10,
        thoughtsTokenCount: 5,
        cachedContentTokenCount: 64,
        totalTokenCount: 135,
      }),
    ).toEqual({
      prompt_tokens: 120,
      completion_tokens: 15,
      total_tokens: 135,
      prompt_tokens_details: { cached_tokens: 64 },
      completion_tokens_details: { reasoning_tokens: 5 },
    });
  });

  test('adds up the total when Gemini leaves it out', () => {
    expect(usage({ promptTokenCount: 3, candidatesTokenCount: 4 })).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
    });
  });
});

describe('a stream', () => {
  test('gives each function call its own id and index, the same however the events are cut', () => {
    const bytes = sse(
      { responseId: 'r1', candidates: [{ content: { parts: [call('f', { a: 1 })] } }] },
      { responseId: 'r1', candidates: [{ content: { parts: [call('g', {})] }, finishReason: 'STOP' }] },
    );
    const calls = decode(bytes).flatMap((chunk) =>
      chunk.choices.flatMap((choice) => choice.delta.tool_calls ?? []),
    );
    expect(calls).toEqual([
      { index: 0, id: 'call_r1_0', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
      { index: 1, id: 'call_r1_1', type: 'function', function: { name: 'g', arguments: '{}' } },
    ]);
  });

  test('leaves thought summaries out of the content', () => {
    const chunks = decode(
      sse({
        candidates: [
          {
            content: { parts: [{ text: 'Thinking…', thought: true }, { text: 'Answer' }] },
            finishReason: 'STOP',
          },
        ],
      }),
    );
    const content = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(content).toBe('Answer');
  });

  test('streams several candidates as choices, each opened and finished on its own', () => {
    const chunks = decode(
      sse(
        {
          candidates: [
            { content: { parts: [{ text: 'A' }] } },
            { index: 1, content: { parts: [{ text: 'B' }] } },
          ],
        },
        { candidates: [{ index: 1, finishReason: 'STOP' }] },
        { candidates: [{ finishReason: 'MAX_TOKENS' }] },
      ),
    );
    const summary = chunks.map((chunk) => {
      const choice = chunk.choices[0]!;
      return [choice.index, choice.delta.role ?? choice.delta.content ?? choice.finish_reason];
    });
    expect(summary).toEqual([
      [0, 'assistant'],
      [0, 'A'],
      [1, 'assistant'],
      [1, 'B'],
      [1, 'stop'],
      [0, 'length'],
    ]);
  });

  test('is cut when one of its candidates never finished', () => {
    const decoder = new GeminiStreamDecoder(context);
    decoder.push(
      sse({
        candidates: [
          { content: { parts: [{ text: 'A' }] }, finishReason: 'STOP' },
          { index: 1, content: {} },
        ],
      }),
    );
    expect(thrown(() => decoder.end()).code).toBe('upstream_stream_failed');
  });

  test('is cut when it closes before any event', () => {
    expect(thrown(() => new GeminiStreamDecoder(context).end()).code).toBe('upstream_stream_failed');
  });

  test('gives no usage chunk when Gemini sent no usage', () => {
    const chunks = decode(
      sse({ candidates: [{ content: { parts: [{ text: 'A' }] }, finishReason: 'STOP' }] }),
    );
    expect(chunks.some((chunk) => chunk.usage !== undefined)).toBe(false);
  });

  test('puts an event log probabilities on its text', () => {
    const chunks = decode(
      sse({
        candidates: [
          {
            content: { parts: [{ text: 'Hi' }] },
            finishReason: 'STOP',
            logprobsResult: { chosenCandidates: [{ token: 'Hi', logProbability: -0.5 }] },
          },
        ],
      }),
    );
    expect(chunks[1]!.choices[0]!.logprobs).toEqual({
      content: [{ token: 'Hi', logprob: -0.5, bytes: [72, 105], top_logprobs: [] }],
    });
  });

  test('an error event after content is thrown on the next call, after that content', () => {
    const decoder = new GeminiStreamDecoder(context);
    const bytes = Buffer.concat([
      sse({ candidates: [{ content: { parts: [{ text: 'A' }] } }] }),
      Buffer.from('data: {"error":{"code":500,"message":"Internal error","status":"INTERNAL"}}\r\n\r\n'),
    ]);
    expect(decoder.push(bytes)).toHaveLength(2);
    const error = thrown(() => decoder.end());
    expect(error.code).toBe('upstream_stream_failed');
    expect(error.message).toContain('INTERNAL');
  });
});

describe('errors', () => {
  const envelope = (code: number, status: string, message: string, details: unknown[] = []) =>
    JSON.stringify({ error: { code, message, status, details } });

  test('a rate limit passes on the RetryInfo delay as whole seconds of Retry-After', () => {
    const retryInfo = (delay: string) => [
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: delay },
    ];
    const error = geminiFailure(
      429,
      {},
      envelope(429, 'RESOURCE_EXHAUSTED', 'Quota', retryInfo('37s')),
      'google',
    );
    expect(error.code).toBe('upstream_rate_limited');
    expect(error.headers).toEqual({ 'retry-after': '37' });
    const fraction = geminiFailure(
      429,
      {},
      envelope(429, 'RESOURCE_EXHAUSTED', 'Quota', retryInfo('0.25s')),
      'g',
    );
    expect(fraction.headers).toEqual({ 'retry-after': '1' });
  });

  test('a rate limit without RetryInfo passes on the Retry-After header, if any', () => {
    const body = envelope(429, 'RESOURCE_EXHAUSTED', 'Quota');
    expect(geminiFailure(429, { 'retry-after': '5' }, body, 'g').headers).toEqual({ 'retry-after': '5' });
    expect(geminiFailure(429, {}, body, 'g').headers).toEqual({});
  });

  test('an invalid key is upstream_auth_failed and its message is withheld', () => {
    const body = envelope(400, 'INVALID_ARGUMENT', 'API key not valid: AIza-leaked', [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' },
    ]);
    const error = geminiFailure(400, {}, body, 'google');
    expect({ code: error.code, status: error.status }).toEqual({ code: 'upstream_auth_failed', status: 502 });
    expect(error.message).not.toContain('AIza');
  });

  test('an error wrapped in a JSON array is read as well', () => {
    const body = `[${envelope(404, 'NOT_FOUND', 'models/x is not found')}]`;
    expect(geminiFailure(404, {}, body, 'g').message).toBe('models/x is not found');
  });

  test('an answer without Google envelope is described by its text', () => {
    const error = geminiFailure(502, {}, 'Bad Gateway', 'google');
    expect(error.code).toBe('upstream_error');
    expect(error.message).toBe('Upstream "google" answered 502: Bad Gateway');
  });
});

describe('embeddings', () => {
  test('become OpenAI list in input order, with zero usage since Gemini counts none', () => {
    const body = JSON.stringify({ embeddings: [{ values: [0.1, 0.2] }, { values: [0.3, 0.4] }] });
    expect(fromGeminiEmbeddings(body, context)).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [0.1, 0.2] },
        { object: 'embedding', index: 1, embedding: [0.3, 0.4] },
      ],
      model: 'gemini',
      usage: { prompt_tokens: 0, total_tokens: 0 },
    });
  });

  test('an answer without embeddings is upstream_bad_response', () => {
    expect(thrown(() => fromGeminiEmbeddings('{}', context)).code).toBe('upstream_bad_response');
  });
});
