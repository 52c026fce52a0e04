import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import { countTokensToCanonical, parseCountTokensRequest } from './count-tokens.js';

const hello = [{ role: 'user', content: 'Hello' }];

function failure(value: unknown): GatewayError {
  try {
    parseCountTokensRequest(value);
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error('the request was accepted');
}

describe('parseCountTokensRequest', () => {
  test('needs no max_tokens', () => {
    expect(parseCountTokensRequest({ model: 'claude', messages: hello })).toEqual({
      model: 'claude',
      messages: hello,
    });
  });

  test('accepts and drops the answer-only fields of the Messages body a client is about to send', () => {
    const request = parseCountTokensRequest({
      model: 'claude',
      messages: hello,
      max_tokens: 1024,
      temperature: 0.5,
      stream: true,
      metadata: { user_id: 'u' },
    });
    expect(request).toEqual({ model: 'claude', messages: hello });
  });

  test.each([
    ['a body that is an array', [], 'invalid_body', null],
    ['no model', { messages: hello }, 'missing_field', 'model'],
    ['no messages', { model: 'claude' }, 'missing_field', 'messages'],
    [
      'a bad block',
      { model: 'claude', messages: [{ role: 'user', content: [{ type: 'text' }] }] },
      'missing_field',
      'messages.0.content.0.text',
    ],
    ['a bad system prompt', { model: 'claude', messages: hello, system: 1 }, 'invalid_field', 'system'],
    [
      'a tool without a schema',
      { model: 'claude', messages: hello, tools: [{ name: 'f' }] },
      'missing_field',
      'tools.0.input_schema',
    ],
    ['an unknown field', { model: 'claude', messages: hello, n: 2 }, 'invalid_field', 'n'],
    [
      'thinking without a budget',
      { model: 'claude', messages: hello, thinking: { type: 'enabled' } },
      'missing_field',
      'thinking.budget_tokens',
    ],
  ])('refuses %s, naming the field', (_name, body, code, param) => {
    const error = failure(body);
    expect(error.code).toBe(code);
    expect(error.param).toBe(param);
  });

  test('the prompt becomes a canonical request with its system prompt, messages and tools', () => {
    const request = parseCountTokensRequest({
      model: 'claude',
      system: 'Be brief.',
      messages: hello,
      tools: [{ name: 'f', input_schema: { type: 'object' } }],
      tool_choice: { type: 'any' },
    });
    expect(countTokensToCanonical(request)).toEqual({
      model: 'claude',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      tool_choice: 'required',
    });
  });
});
