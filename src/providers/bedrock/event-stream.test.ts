import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { streamFiles } from '../../../test/fixtures/bedrock/streams.js';
import { bedrockEvent, encodeEventStreamMessage } from '../../../test/support/event-stream.js';
import {
  crc32,
  EventStreamError,
  type EventStreamMessage,
  EventStreamSplitter,
  tableCrc32,
} from './event-stream.js';

function split(pieces: Buffer[]): { messages: EventStreamMessage[]; error: unknown } {
  const splitter = new EventStreamSplitter();
  const messages: EventStreamMessage[] = [];
  try {
    for (const piece of pieces) {
      splitter.append(piece);
      for (let message = splitter.next(); message !== undefined; message = splitter.next())
        messages.push(message);
    }
    return { messages, error: undefined };
  } catch (error) {
    return { messages, error };
  }
}

const simple = (messages: EventStreamMessage[]) =>
  messages.map((message) => ({
    headers: Object.fromEntries(message.headers),
    payload: message.payload.toString('utf8'),
  }));

const bytesOf = (stream: Buffer) => [...stream].map((byte) => Buffer.from([byte]));

describe('EventStreamSplitter', () => {
  const stream = Buffer.concat([
    bedrockEvent('messageStart', { role: 'assistant' }),
    bedrockEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'héllo ✓' } }),
    encodeEventStreamMessage({ ':message-type': 'event', ':event-type': 'empty' }, ''),
  ]);

  test('reads messages, their string headers and payloads', () => {
    expect(simple(split([stream]).messages)).toEqual([
      {
        headers: {
          ':event-type': 'messageStart',
          ':content-type': 'application/json',
          ':message-type': 'event',
        },
        payload: '{"role":"assistant"}',
      },
      {
        headers: {
          ':event-type': 'contentBlockDelta',
          ':content-type': 'application/json',
          ':message-type': 'event',
        },
        payload: '{"contentBlockIndex":0,"delta":{"text":"héllo ✓"}}',
      },
      { headers: { ':message-type': 'event', ':event-type': 'empty' }, payload: '' },
    ]);
  });

  test('gives the same messages whatever the bytes are cut into, one byte at a time included', () => {
    const whole = simple(split([stream]).messages);
    expect(simple(split(bytesOf(stream)).messages)).toEqual(whole);
    expect(
      simple(split([stream.subarray(0, 5), stream.subarray(5, 150), stream.subarray(150)]).messages),
    ).toEqual(whole);
  });

  test('holds a partial message back until the rest arrives', () => {
    const message = bedrockEvent('messageStop', { stopReason: 'end_turn' });
    const splitter = new EventStreamSplitter();
    splitter.append(message.subarray(0, message.length - 1));
    expect(splitter.next()).toBeUndefined();
    expect(splitter.pending).toBe(message.length - 1);
    splitter.append(message.subarray(message.length - 1));
    expect(splitter.next()?.payload.toString()).toBe('{"stopReason":"end_turn"}');
    expect(splitter.pending).toBe(0);
  });

  test('hands out the messages before a corrupt one, then fails at it', () => {
    const good = bedrockEvent('messageStart', { role: 'assistant' });
    const bad = Buffer.from(bedrockEvent('contentBlockDelta', { delta: { text: 'x' } }));
    bad[bad.length - 10]! ^= 0x01;
    const { messages, error } = split([Buffer.concat([good, bad, good])]);
    expect(messages).toHaveLength(1);
    expect(error).toBeInstanceOf(EventStreamError);
    expect((error as Error).message).toBe('the message checksum does not match');
  });

  test('fails on a prelude whose checksum does not match, before waiting for the length it claims', () => {
    const bad = Buffer.from(bedrockEvent('messageStart', {}));
    bad[1] = 0x7f;
    const { error } = split([bad.subarray(0, 12)]);
    expect((error as Error).message).toBe('the prelude checksum does not match');
  });

  test('fails on lengths no message can have', () => {
    const prelude = (total: number, headers: number) => {
      const bytes = Buffer.alloc(12);
      bytes.writeUInt32BE(total, 0);
      bytes.writeUInt32BE(headers, 4);
      bytes.writeUInt32BE(crc32(bytes.subarray(0, 8)), 8);
      return bytes;
    };
    expect((split([prelude(8, 0)]).error as Error).message).toBe('a message length of 8 bytes is impossible');
    expect((split([prelude(64 * 1024 * 1024, 0)]).error as Error).message).toMatch(/is impossible$/);
    expect((split([prelude(40, 30)]).error as Error).message).toBe(
      'a headers length of 30 bytes does not fit the message',
    );
  });

  test('skips header values of other types and keeps the strings', () => {
    const headers = Buffer.concat([
      Buffer.from([5, ...Buffer.from('flag1'), 0]), // boolean true: no value
      Buffer.from([3, ...Buffer.from('num'), 4, 0, 0, 0, 42]), // int32
      Buffer.from([3, ...Buffer.from('raw'), 6, 0, 2, 0xff, 0xfe]), // bytes
      Buffer.from([4, ...Buffer.from('time'), 8, 0, 0, 0, 0, 0, 0, 0, 1]), // timestamp
      Buffer.from([2, ...Buffer.from('id'), 9, ...Buffer.alloc(16)]), // uuid
      Buffer.from([5, ...Buffer.from(':type'), 7, 0, 2, ...Buffer.from('ok')]),
    ]);
    const total = 12 + headers.length + 2 + 4;
    const message = Buffer.alloc(total);
    message.writeUInt32BE(total, 0);
    message.writeUInt32BE(headers.length, 4);
    message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
    headers.copy(message, 12);
    message.write('{}', 12 + headers.length);
    message.writeUInt32BE(crc32(message.subarray(0, total - 4)), total - 4);
    expect(simple(split([message]).messages)).toEqual([{ headers: { ':type': 'ok' }, payload: '{}' }]);
  });
});

describe('crc32', () => {
  test('the table implementation gives the standard check value and agrees with zlib', () => {
    expect(tableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(tableCrc32(Buffer.alloc(0))).toBe(0);
    const sample = Buffer.from(Array.from({ length: 1000 }, (_, index) => (index * 31) & 0xff));
    expect(crc32(sample)).toBe(tableCrc32(sample));
    const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
    if (typeof native === 'function') expect(native(sample)).toBe(tableCrc32(sample));
  });
});

describe('the bedrock conformance streams', () => {
  test.each(Object.keys(streamFiles))(
    '%s is what test/fixtures/bedrock/streams.ts encodes (regenerate with make-streams.ts)',
    (name) => {
      const committed = readFileSync(new URL(`../../../test/fixtures/bedrock/${name}`, import.meta.url));
      expect(committed.equals(streamFiles[name]!())).toBe(true);
    },
  );
});
