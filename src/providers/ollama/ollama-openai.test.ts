import { describe, expect, test } from 'vitest';
import { GatewayError } from '../../errors/index.js';
import type { ChatCompletionChunk } from '../../spec/openai-chat.js';
import type { TranslationContext } from '../adapter.js';
import { ollamaAdapter } from './ollama-adapter.js';

const context: TranslationContext = {
  id: 'chatcmpl-r42',
  created: 1_700_000_000,
  model: 'ollama/llama3.2',
  targetName: 'ollama',
  includeUsage: true,
};

function answer(message: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model: 'llama3.2',
    created_at: '2025-06-12T09:14:03Z',
    message: { role: 'assistant', ...message },
    done: true,
    done_reason: 'stop',
    prompt_eval_count: 10,
    eval_count: 5,
    ...extra,
  });
}

/** Decodes NDJSON `lines` fed in one piece; returns the chunks, or throws what the decoder threw. */
function decode(lines: readonly unknown[], ending = '\n'): ChatCompletionChunk[] {
  const decoder = ollamaAdapter.chatStream(context);
  const text =
    lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n') + ending;
  return [...decoder.push(Buffer.from(text)), ...decoder.end()];
}

function line(content: string, extra: Record<string, unknown> = {}) {
  return { model: 'llama3.2', message: { role: 'assistant', content }, done: false, ...extra };
}

const done = {
  model: 'llama3.2',
  message: { role: 'assistant', content: '' },
  done: true,
  done_reason: 'stop',
  prompt_eval_count: 7,
  eval_count: 3,
};

describe('a whole answer', () => {
  test('becomes one canonical choice with the counts as usage', () => {
    const completion = ollamaAdapter.chatResponse(answer({ content: 'Hello!' }), context);
    expect(completion).toEqual({
      id: 'chatcmpl-r42',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'ollama/llama3.2',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello!' },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  });

  test('counts a prompt Ollama omitted (all of it cached) as zero tokens', () => {
    const body = JSON.stringify({ message: { role: 'assistant', content: 'x' }, done: true, eval_count: 1 });
    expect(ollamaAdapter.chatResponse(body, context).usage).toEqual({
      prompt_tokens: 0,
      completion_tokens: 1,
      total_tokens: 1,
    });
  });

  test('maps done_reason length to length, and load or unload to stop', () => {
    const finish = (reason: string) =>
      ollamaAdapter.chatResponse(answer({ content: '' }, { done_reason: reason }), context).choices[0]!
        .finish_reason;
    expect(finish('length')).toBe('length');
    expect(finish('load')).toBe('stop');
    expect(finish('unload')).toBe('stop');
  });

  test('gives tool calls without an id a stable one, the same on every read', () => {
    const body = answer({
      content: '',
      tool_calls: [
        { function: { name: 'weather', arguments: { city: 'Paris' } } },
        { function: { name: 'clock', arguments: {} } },
      ],
    });
    const first = ollamaAdapter.chatResponse(body, context).choices[0]!;
    expect(first.finish_reason).toBe('tool_calls');
    expect(first.message).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'call_r42_0', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_r42_1', type: 'function', function: { name: 'clock', arguments: '{}' } },
      ],
    });
    expect(ollamaAdapter.chatResponse(body, context).choices[0]).toEqual(first);
  });

  test('keeps the ids newer Ollama versions give, and text said beside the calls', () => {
    const body = answer({
      content: 'Checking.',
      tool_calls: [{ id: 'call_x1', function: { index: 0, name: 'weather', arguments: { city: 'Oslo' } } }],
    });
    const message = ollamaAdapter.chatResponse(body, context).choices[0]!.message;
    expect(message.content).toBe('Checking.');
    expect(message.tool_calls![0]!.id).toBe('call_x1');
  });

  test('leaves a thinking model’s reasoning out of content', () => {
    const body = answer({ thinking: 'Let me count the r’s…', content: 'Three.' });
    expect(ollamaAdapter.chatResponse(body, context).choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'Three.',
    });
  });

  test('turns Ollama’s logprobs into choice logprobs', () => {
    const body = answer(
      { content: 'Hi' },
      { logprobs: [{ token: 'Hi', logprob: -0.1, top_logprobs: [{ token: 'Hi', logprob: -0.1 }] }] },
    );
    expect(ollamaAdapter.chatResponse(body, context).choices[0]!.logprobs).toEqual({
      content: [
        {
          token: 'Hi',
          logprob: -0.1,
          bytes: null,
          top_logprobs: [{ token: 'Hi', logprob: -0.1, bytes: null }],
        },
      ],
    });
  });

  test('that is not JSON, or has no message, is upstream_bad_response', () => {
    expect(() => ollamaAdapter.chatResponse('<html>', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
    expect(() => ollamaAdapter.chatResponse('{"done":true}', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
  });

  test('that is an error despite the 200 is upstream_error with its text', () => {
    expect(() => ollamaAdapter.chatResponse('{"error":"unexpected EOF"}', context)).toThrow(
      expect.objectContaining({ code: 'upstream_error', message: expect.stringContaining('unexpected EOF') }),
    );
  });
});

describe('a streamed answer', () => {
  test('is recognised by its NDJSON content type only', () => {
    expect(ollamaAdapter.isStreamContentType('application/x-ndjson')).toBe(true);
    expect(ollamaAdapter.isStreamContentType('application/json; charset=utf-8')).toBe(false);
    expect(ollamaAdapter.isStreamContentType(undefined)).toBe(false);
  });

  test('starts with the role, carries content deltas, then the finish and the usage', () => {
    const chunks = decode([line('Hel'), line('lo'), done]);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta ?? chunk.usage)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Hel' },
      { content: 'lo' },
      {},
      { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    ]);
    expect(chunks[3]!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks[4]!.choices).toEqual([]);
  });

  test('sends no delta for lines that carry only thinking', () => {
    const chunks = decode([
      { model: 'qwen3', message: { role: 'assistant', content: '', thinking: 'Hmm' }, done: false },
      line('Yes.'),
      done,
    ]);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Yes.' },
      {},
      undefined,
    ]);
  });

  test('numbers tool calls across lines and ends with finish_reason tool_calls', () => {
    const call = (name: string) => ({
      model: 'llama3.2',
      message: {
        role: 'assistant',
        content: '',
        tool_calls: [{ function: { name, arguments: { q: name } } }],
      },
      done: false,
    });
    const chunks = decode([call('first'), call('second'), done]);
    const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
    expect(deltas).toEqual([
      {
        index: 0,
        id: 'call_r42_0',
        type: 'function',
        function: { name: 'first', arguments: '{"q":"first"}' },
      },
      {
        index: 1,
        id: 'call_r42_1',
        type: 'function',
        function: { name: 'second', arguments: '{"q":"second"}' },
      },
    ]);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  test('ends properly on a done line sent without a trailing newline', () => {
    expect(decode([line('Hi'), done], '').at(-1)!.usage).toEqual({
      prompt_tokens: 7,
      completion_tokens: 3,
      total_tokens: 10,
    });
  });

  test('attaches each line’s logprobs to its content delta', () => {
    const chunks = decode([
      line('Hi', { logprobs: [{ token: 'Hi', logprob: -0.2, bytes: [72, 105] }] }),
      done,
    ]);
    expect(chunks[1]!.choices[0]!.logprobs).toEqual({
      content: [{ token: 'Hi', logprob: -0.2, bytes: [72, 105], top_logprobs: [] }],
    });
  });

  test('fails with the upstream’s message on an error line, after answering the lines before it', () => {
    const decoder = ollamaAdapter.chatStream(context);
    const text = `${JSON.stringify(line('Once'))}\n{"error":"CUDA error: out of memory"}\n`;
    expect(decoder.push(Buffer.from(text))).toHaveLength(2);
    expect(() => decoder.end()).toThrow(
      expect.objectContaining({
        code: 'upstream_stream_failed',
        message: expect.stringContaining('out of memory'),
      }),
    );
  });

  test('fails as upstream_stream_failed when it ends before the done line', () => {
    expect(() => decode([line('The answer is')])).toThrow(
      expect.objectContaining({ code: 'upstream_stream_failed' }),
    );
    expect(() => decode([])).toThrow(expect.objectContaining({ code: 'upstream_stream_failed' }));
  });

  test('fails as upstream_bad_response on a line that is not JSON', () => {
    expect(() => decode(['{"message":'])).toThrow(expect.objectContaining({ code: 'upstream_bad_response' }));
  });

  test('ignores anything after the done line', () => {
    const chunks = decode([line('Hi'), done, line('stray')]);
    expect(chunks.at(-1)!.usage).toBeDefined();
    expect(chunks.filter((chunk) => chunk.choices[0]?.delta.content === 'stray')).toEqual([]);
  });
});

describe('embeddings', () => {
  test('become an OpenAI list with the prompt count as usage', () => {
    const body = JSON.stringify({
      model: 'nomic',
      embeddings: [
        [0.1, 0.2],
        [0.3, 0.4],
      ],
      prompt_eval_count: 6,
    });
    expect(ollamaAdapter.embeddings!.response(body, context)).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [0.1, 0.2] },
        { object: 'embedding', index: 1, embedding: [0.3, 0.4] },
      ],
      model: 'ollama/llama3.2',
      usage: { prompt_tokens: 6, total_tokens: 6 },
    });
  });

  test('without an embeddings array are upstream_bad_response', () => {
    expect(() => ollamaAdapter.embeddings!.response('{"embedding":[0.1]}', context)).toThrow(
      expect.objectContaining({ code: 'upstream_bad_response' }),
    );
  });
});

describe('failures', () => {
  const failure = (status: number, error: string, headers = {}) =>
    ollamaAdapter.failure(status, headers, JSON.stringify({ error }), 'ollama');

  test('a model not pulled is upstream_rejected 404 with Ollama’s advice', () => {
    const error = failure(404, 'model "llama9" not found, try pulling it first');
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'upstream_rejected', status: 404 });
    expect(error.message).toBe('model "llama9" not found, try pulling it first');
  });

  test('a bad request is upstream_rejected 400, a crash upstream_error', () => {
    expect(failure(400, 'invalid options')).toMatchObject({ code: 'upstream_rejected', status: 400 });
    expect(failure(500, 'llama runner process has terminated')).toMatchObject({
      code: 'upstream_error',
      status: 502,
      retryable: true,
    });
  });

  test('a full queue is upstream_overloaded, retryable, with Retry-After passed on', () => {
    const error = failure(503, 'server busy, please try again.  maximum pending requests exceeded', {
      'retry-after': '2',
    });
    expect(error).toMatchObject({ code: 'upstream_overloaded', status: 503, retryable: true });
    expect(error.headers).toEqual({ 'retry-after': '2' });
    expect(error.message).toContain('server busy');
  });

  test('a proxy’s 401 never shows its text, which might quote the key', () => {
    const error = failure(401, 'invalid key sk-test-secret-key');
    expect(error.code).toBe('upstream_auth_failed');
    expect(error.message).not.toContain('sk-test');
  });
});
