import { describe, expect, test } from 'vitest';
import { encodeSseEvent, parseSseEvent, SseSplitter } from './sse.js';

/** Feeds `chunks` through one splitter; returns every completed event, then what flush left. */
function split(chunks: readonly (Buffer | string)[]): { events: string[]; rest: string } {
  const splitter = new SseSplitter();
  const events = chunks.flatMap((chunk) => splitter.push(chunk));
  return { events, rest: splitter.flush() };
}

const terminators = {
  LF: '\n',
  CRLF: '\r\n',
  CR: '\r',
} as const;

/** A stream of three events, one of two lines, with non-ASCII text, in the given line ending. */
function stream(eol: string): string {
  return [
    `data: {"content":"héllo wörld 😀"}${eol}${eol}`,
    `event: ping${eol}data: 日本語${eol}data: second line${eol}${eol}`,
    `data: [DONE]${eol}${eol}`,
  ].join('');
}

describe('SseSplitter', () => {
  test.each(Object.entries(terminators))('ends an event at a blank line written with %s', (_name, eol) => {
    const { events, rest } = split([`data: one${eol}${eol}data: two${eol}${eol}data: thr`]);
    expect(events).toEqual([`data: one${eol}${eol}`, `data: two${eol}${eol}`]);
    expect(rest).toBe('data: thr');
  });

  test('keeps multi-line events whole and terminators untouched, so concatenation gives back the stream', () => {
    const text = stream('\n');
    const { events, rest } = split([text]);
    expect(events).toHaveLength(3);
    expect(events[1]).toBe('event: ping\ndata: 日本語\ndata: second line\n\n');
    expect(events.join('') + rest).toBe(text);
  });

  test('an event waits until its blank line arrives', () => {
    const splitter = new SseSplitter();
    expect(splitter.push('data: {"a":')).toEqual([]);
    expect(splitter.push('1}\n')).toEqual([]);
    expect(splitter.push('\ndata: next')).toEqual(['data: {"a":1}\n\n']);
    expect(splitter.flush()).toBe('data: next');
  });

  test.each(Object.entries(terminators))(
    'with %s endings, a split at any byte gives the same events as no split',
    (_name, eol) => {
      const bytes = Buffer.from(stream(eol));
      const whole = split([bytes]);
      expect(whole.events.length + (whole.rest === '' ? 0 : 1)).toBe(3);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const parts = split([bytes.subarray(0, cut), bytes.subarray(cut)]);
        expect(parts, `split at byte ${cut}`).toEqual(whole);
      }
    },
  );

  test('any two splits, even inside a multi-byte character, give the same events as none', () => {
    const bytes = Buffer.from('data: 😀é日\r\n\r\ndata: ü😀\n\ndata: x\r\r');
    const whole = split([bytes]);
    for (let first = 0; first <= bytes.length; first++) {
      for (let second = first; second <= bytes.length; second++) {
        const parts = split([
          bytes.subarray(0, first),
          bytes.subarray(first, second),
          bytes.subarray(second),
        ]);
        expect(parts, `split at bytes ${first} and ${second}`).toEqual(whole);
      }
    }
  });

  test('byte-at-a-time delivery reassembles every event exactly', () => {
    const bytes = Buffer.from(stream('\r\n'));
    const chunks = [...bytes].map((byte) => Buffer.from([byte]));
    const { events, rest } = split(chunks);
    expect(events.join('') + rest).toBe(bytes.toString('utf8'));
    expect(events).toEqual(split([bytes]).events);
  });

  test('a "\\r\\n\\r\\n" split between its last "\\r" and "\\n" stays one terminator', () => {
    const splitter = new SseSplitter();
    expect(splitter.push('data: a\r\n\r')).toEqual([]);
    expect(splitter.push('\ndata: b\r\n\r\n')).toEqual(['data: a\r\n\r\n', 'data: b\r\n\r\n']);
    expect(splitter.flush()).toBe('');
  });

  test('flush returns the unterminated remainder once, then nothing', () => {
    const splitter = new SseSplitter();
    splitter.push('data: [DONE]\n');
    expect(splitter.flush()).toBe('data: [DONE]\n');
    expect(splitter.flush()).toBe('');
  });

  test('flush returns an event ended by a lone trailing "\\r\\r", which may still have been a CRLF', () => {
    const { events, rest } = split(['data: a\r\r']);
    expect(events).toEqual([]);
    expect(rest).toBe('data: a\r\r');
  });
});

describe('parseSseEvent', () => {
  test('joins data lines with "\\n" and defaults the event to "message"', () => {
    expect(parseSseEvent('data: first\ndata: second\n\n')).toEqual({
      event: 'message',
      data: 'first\nsecond',
      id: undefined,
    });
  });

  test('reads event and id fields and skips comment lines', () => {
    expect(parseSseEvent(': keep-alive\nevent: message_start\nid: 42\ndata: {"x":1}\n\n')).toEqual({
      event: 'message_start',
      data: '{"x":1}',
      id: '42',
    });
  });

  test('removes one space after the colon and no more; no space is fine too', () => {
    expect(parseSseEvent('data:tight\n\n').data).toBe('tight');
    expect(parseSseEvent('data:  two spaces\n\n').data).toBe(' two spaces');
  });

  test('a field name alone is a field with an empty value', () => {
    expect(parseSseEvent('data\ndata: x\n\n').data).toBe('\nx');
  });

  test('ignores unknown fields and reads CRLF and CR line endings', () => {
    expect(parseSseEvent('retry: 1000\r\ndata: a\r\nfoo: bar\r\n\r\n')).toEqual({
      event: 'message',
      data: 'a',
      id: undefined,
    });
    expect(parseSseEvent('event: e\rdata: b\r\r')).toMatchObject({ event: 'e', data: 'b' });
  });

  test('a comment-only event has empty data', () => {
    expect(parseSseEvent(': ping\n\n').data).toBe('');
  });
});

describe('parseSseEvent on the one-data-line shapes vendors send per token', () => {
  test.each([
    ['data: {"a":1}\n\n', { event: 'message', data: '{"a":1}', id: undefined }],
    ['event: ping\ndata: {"type":"ping"}\n\n', { event: 'ping', data: '{"type":"ping"}', id: undefined }],
    ['data: [DONE]', { event: 'message', data: '[DONE]', id: undefined }],
    ['data:{"no":"space"}\n\n', { event: 'message', data: '{"no":"space"}', id: undefined }],
    ['data: one\ndata: two\n\n', { event: 'message', data: 'one\ntwo', id: undefined }],
    ['data: x\nid: 7\n\n', { event: 'message', data: 'x', id: '7' }],
    ['event: a\r\ndata: b\r\n\r\n', { event: 'a', data: 'b', id: undefined }],
    [': comment\ndata: x\n\n', { event: 'message', data: 'x', id: undefined }],
  ])('%j parses as the full parser reads it', (text, expected) => {
    expect(parseSseEvent(text)).toEqual(expected);
  });
});

describe('encodeSseEvent', () => {
  test('writes one data line ended by a blank line', () => {
    expect(encodeSseEvent('[DONE]')).toBe('data: [DONE]\n\n');
  });

  test('writes each line of multi-line data as its own data line, and the event name first', () => {
    expect(encodeSseEvent('a\nb', 'error')).toBe('event: error\ndata: a\ndata: b\n\n');
  });

  test('what it encodes, the splitter and parser read back', () => {
    const encoded = encodeSseEvent('{"x":"ü"}\nsecond', 'delta') + encodeSseEvent('[DONE]');
    const { events, rest } = split([encoded]);
    expect(rest).toBe('');
    expect(events.map(parseSseEvent)).toEqual([
      { event: 'delta', data: '{"x":"ü"}\nsecond', id: undefined },
      { event: 'message', data: '[DONE]', id: undefined },
    ]);
  });
});
