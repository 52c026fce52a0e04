import { describe, expect, test } from 'vitest';
import { NdjsonSplitter } from './ndjson.js';

/** Feeds `chunks` through one splitter; returns every completed line, then what flush left. */
function split(chunks: readonly (Buffer | string)[]): { lines: string[]; rest: string } {
  const splitter = new NdjsonSplitter();
  const lines = chunks.flatMap((chunk) => splitter.push(chunk));
  return { lines, rest: splitter.flush() };
}

/** Three lines with non-ASCII text, the last one left without its newline, as Ollama may end. */
const stream = [
  '{"message":{"content":"héllo wörld 😀"},"done":false}',
  '{"message":{"content":"日本語"},"done":false}',
  '{"done":true,"eval_count":2}',
].join('\n');

describe('NdjsonSplitter', () => {
  test('returns each line without its terminator', () => {
    expect(split(['{"a":1}\n{"b":2}\n'])).toEqual({ lines: ['{"a":1}', '{"b":2}'], rest: '' });
  });

  test('drops the carriage return of a CRLF ending', () => {
    expect(split(['{"a":1}\r\n{"b":2}\r\n'])).toEqual({ lines: ['{"a":1}', '{"b":2}'], rest: '' });
  });

  test('a line waits until its newline arrives', () => {
    const splitter = new NdjsonSplitter();
    expect(splitter.push('{"a":')).toEqual([]);
    expect(splitter.push('1}')).toEqual([]);
    expect(splitter.push('\n{"b"')).toEqual(['{"a":1}']);
    expect(splitter.flush()).toBe('{"b"');
  });

  test('flush gives back a final line the upstream sent without a newline', () => {
    const { lines, rest } = split([stream]);
    expect(lines).toHaveLength(2);
    expect(rest).toBe('{"done":true,"eval_count":2}');
  });

  test('flush gives nothing when the stream ended on a newline', () => {
    expect(split(['{"a":1}\n']).rest).toBe('');
  });

  test('blank lines are skipped', () => {
    expect(split(['\n{"a":1}\n\n  \n{"b":2}\n\r\n']).lines).toEqual(['{"a":1}', '{"b":2}']);
  });

  test('a split at any byte, even inside a multi-byte character, gives the same lines as no split', () => {
    const bytes = Buffer.from(stream);
    const whole = split([bytes]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parts = split([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(parts, `split at byte ${cut}`).toEqual(whole);
    }
  });

  test('one byte at a time gives the same lines as no split', () => {
    const bytes = Buffer.from(`${stream}\r\n`);
    const pieces = Array.from(bytes, (byte) => Buffer.from([byte]));
    expect(split(pieces)).toEqual(split([bytes]));
    expect(split(pieces).lines).toHaveLength(3);
  });

  test('a CRLF split between its two bytes still ends the line cleanly', () => {
    expect(split(['{"a":1}\r', '\n{"b":2}'])).toEqual({ lines: ['{"a":1}'], rest: '{"b":2}' });
  });
});
