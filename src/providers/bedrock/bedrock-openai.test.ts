import { describe, expect, test } from 'vitest';
import {
  bedrockEvent,
  bedrockException,
  encodeEventStreamMessage,
} from '../../../test/support/event-stream.js';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletionChunk } from '../../spec/openai-chat.js';
import type { TranslationContext } from '../adapter.js';
import { BedrockStreamDecoder, bedrockCompletion, bedrockFailure, finishReason } from './bedrock-openai.js';

const context: TranslationContext = {
  id: 'chatcmpl-1',
  created: 1_700_000_000,
  model: 'claude-bedrock',
  targetName: 'bedrock',
  includeUsage: true,
};

function decode(...messages: Buffer[]): { chunks: ChatCompletionChunk[]; error: GatewayError | undefined } {
  const decoder = new BedrockStreamDecoder(context);
  const chunks: ChatCompletionChunk[] = [];
  try {
    for (const message of messages) chunks.push(...decoder.push(message));
    chunks.push(...decoder.end());
    return { chunks, error: undefined };
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    return { chunks, error };
  }
}

const deltas = (chunks: ChatCompletionChunk[]) =>
  chunks.map((chunk) => chunk.choices[0]?.delta ?? chunk.usage);
const start = () => bedrockEvent('messageStart', { role: 'assistant' });
const text = (value: string) =>
  bedrockEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: value } });
const stop = (stopReason = 'end_turn') => bedrockEvent('messageStop', { stopReason });
const metadata = () =>
  bedrockEvent('metadata', {
    usage: { inputTokens: 3, outputTokens: 2, totalTokens: 5 },
    metrics: { latencyMs: 1 },
  });

describe('bedrockCompletion', () => {
  test('drops reasoning blocks and joins the text blocks', () => {
    const completion = bedrockCompletion(
      JSON.stringify({
        output: {
          message: {
            role: 'assistant',
            content: [
              { reasoningContent: { reasoningText: { text: 'Let me think.', signature: 'c2ln' } } },
              { text: 'Four' },
              { text: '.' },
            ],
          },
        },
        stopReason: 'end_turn',
      }),
      context,
    );
    expect(completion.choices[0]?.message.content).toBe('Four.');
    expect(completion.usage).toBeUndefined();
  });

  test('an answer without an output message is unreadable', () => {
    expect(() => bedrockCompletion('{"stopReason":"end_turn"}', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
    expect(() => bedrockCompletion('<html>', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
  });
});

describe('finishReason', () => {
  test.each([
    ['end_turn', false, 'stop'],
    ['stop_sequence', false, 'stop'],
    ['max_tokens', false, 'length'],
    ['model_context_window_exceeded', false, 'length'],
    ['tool_use', true, 'tool_calls'],
    ['tool_use', false, 'stop'],
    ['guardrail_intervened', false, 'content_filter'],
    ['content_filtered', false, 'content_filter'],
  ] as const)('%s (client tools called: %s) is %s', (stopReason, called, expected) => {
    expect(finishReason(stopReason, called)).toBe(expected);
  });
});

describe('BedrockStreamDecoder', () => {
  test('ends with the finish chunk and then the usage chunk', () => {
    const { chunks, error } = decode(Buffer.concat([start(), text('Hi'), stop('max_tokens'), metadata()]));
    expect(error).toBeUndefined();
    expect(deltas(chunks)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Hi' },
      {},
      {
        prompt_tokens: 3,
        completion_tokens: 2,
        total_tokens: 5,
        prompt_tokens_details: { cached_tokens: 0 },
      },
    ]);
    expect(chunks[2]?.choices[0]?.finish_reason).toBe('length');
    expect(chunks[3]?.choices).toEqual([]);
  });

  test('a stream that stops without its metadata event is cut short, not finished', () => {
    const { chunks, error } = decode(start(), text('Hi'), stop());
    expect(chunks).toHaveLength(3);
    expect(error?.code).toBe('upstream_stream_failed');
    expect(error?.message).toBe('The stream from "bedrock" ended before its metadata event.');
  });

  test('ignores whatever follows the metadata event', () => {
    const { chunks, error } = decode(
      Buffer.concat([start(), stop(), metadata(), text('late'), Buffer.from('junk')]),
    );
    expect(error).toBeUndefined();
    expect(deltas(chunks).map((delta) => JSON.stringify(delta))).not.toContain('{"content":"late"}');
  });

  test('sends the role chunk first even when the first event is not messageStart', () => {
    const { chunks } = decode(text('Hi'), stop(), metadata());
    expect(deltas(chunks).slice(0, 2)).toEqual([{ role: 'assistant', content: '' }, { content: 'Hi' }]);
  });

  test('a tool use that streams no input gives "{}" as its arguments', () => {
    const { chunks } = decode(
      start(),
      bedrockEvent('contentBlockStart', {
        contentBlockIndex: 0,
        start: { toolUse: { toolUseId: 'tooluse_1', name: 'now' } },
      }),
      bedrockEvent('contentBlockStop', { contentBlockIndex: 0 }),
      stop('tool_use'),
      metadata(),
    );
    expect(deltas(chunks).slice(1, 3)).toEqual([
      {
        tool_calls: [
          { index: 0, id: 'tooluse_1', type: 'function', function: { name: 'now', arguments: '' } },
        ],
      },
      { tool_calls: [{ index: 0, function: { arguments: '{}' } }] },
    ]);
    expect(chunks[3]?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  test('passes over reasoning deltas and event types it does not know', () => {
    const { chunks, error } = decode(
      start(),
      bedrockEvent('contentBlockDelta', {
        contentBlockIndex: 0,
        delta: { reasoningContent: { text: 'hmm' } },
      }),
      bedrockEvent('somethingNew', { x: 1 }),
      text('Yes'),
      stop(),
      metadata(),
    );
    expect(error).toBeUndefined();
    expect(deltas(chunks).slice(0, 2)).toEqual([{ role: 'assistant', content: '' }, { content: 'Yes' }]);
  });

  test('an exception before any chunk fails at once; after chunks, on the next call', () => {
    const immediate = new BedrockStreamDecoder(context);
    expect(() => immediate.push(bedrockException('validationException', 'Input is too long.'))).toThrow(
      expect.objectContaining({ code: 'upstream_rejected', status: 400 }),
    );

    const later = new BedrockStreamDecoder(context);
    const chunks = later.push(Buffer.concat([start(), bedrockException('internalServerException', 'Oops.')]));
    expect(chunks).toHaveLength(1);
    expect(() => later.end()).toThrow(
      expect.objectContaining({
        code: 'upstream_stream_failed',
        message: 'The stream from "bedrock" failed (internalServerException: Oops.).',
      }),
    );
  });

  test('keeps the retryable meaning of exceptions: unavailable is overloaded', () => {
    const { error } = decode(bedrockException('serviceUnavailableException', 'Try later.'));
    expect(error?.code).toBe('upstream_overloaded');
  });

  test("an event stream's own error message fails the stream with its code", () => {
    const { error } = decode(
      encodeEventStreamMessage(
        { ':message-type': 'error', ':error-code': 'InternalFailure', ':error-message': 'stream broke' },
        '',
      ),
    );
    expect(error?.code).toBe('upstream_stream_failed');
    expect(error?.message).toContain('InternalFailure: stream broke');
  });

  test('an event whose payload is not JSON is unreadable', () => {
    const { error } = decode(
      encodeEventStreamMessage({ ':message-type': 'event', ':event-type': 'contentBlockDelta' }, 'not json'),
    );
    expect(error?.code).toBe('upstream_bad_response');
  });

  test('bytes that are no event stream at all (an HTML page with a 200) are unreadable', () => {
    const { error } = decode(Buffer.from('<html><body>Service Unavailable</body></html>'));
    expect(error?.code).toBe('upstream_bad_response');
  });
});

describe('bedrockFailure', () => {
  const fail = (
    status: number,
    type: string | undefined,
    message: string,
    extra: Record<string, string> = {},
  ) =>
    bedrockFailure(
      status,
      {
        'content-type': 'application/json',
        ...(type ? { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/` } : {}),
        ...extra,
      },
      JSON.stringify({ message }),
      'bedrock',
    );

  test('credential errors are upstream_auth_failed whatever their status, their message never shown', () => {
    for (const [status, type] of [
      [400, 'ExpiredTokenException'],
      [400, 'IncompleteSignature'],
      [403, 'InvalidSignatureException'],
      [403, 'MissingAuthenticationTokenException'],
    ] as const) {
      const error = fail(status, type, 'Credential=AKIDSECRETLEAK/20250101');
      expect(error.code).toBe('upstream_auth_failed');
      expect(error.message).not.toContain('AKIDSECRETLEAK');
    }
  });

  test('a spent quota is rate limiting, though Bedrock answers it with 400', () => {
    expect(fail(400, 'ServiceQuotaExceededException', 'Quota exceeded.').code).toBe('upstream_rate_limited');
  });

  test('a model not ready yet (429) is overloaded, passing Retry-After on', () => {
    const error = fail(429, 'ModelNotReadyException', 'Model is not ready.', { 'retry-after': '5' });
    expect([error.code, error.headers]).toEqual(['upstream_overloaded', { 'retry-after': '5' }]);
  });

  test('a model error (424) is upstream_error', () => {
    const error = fail(424, 'ModelErrorException', 'The model failed.');
    expect([error.code, error.status, error.message]).toEqual([
      'upstream_error',
      502,
      'Upstream "bedrock" answered 424 ModelErrorException: The model failed.',
    ]);
  });

  test('reads the type from the body when the header is missing, and a body that is no JSON as the message', () => {
    const fromBody = bedrockFailure(
      400,
      {},
      '{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"expired"}',
      'bedrock',
    );
    expect(fromBody.code).toBe('upstream_auth_failed');
    const plain = bedrockFailure(413, {}, 'Request Entity Too Large', 'bedrock');
    expect([plain.code, plain.status, plain.message]).toEqual([
      'upstream_rejected',
      413,
      'Request Entity Too Large',
    ]);
  });
});
