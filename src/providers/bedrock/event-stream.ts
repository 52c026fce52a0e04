import * as zlib from 'node:zlib';

/**
 * AWS's event stream encoding (application/vnd.amazon.eventstream), the binary framing of
 * Bedrock's ConverseStream and every other AWS streaming API. Each message is:
 *
 *   total length (uint32) | headers length (uint32) | prelude CRC32 (uint32, of the 8 bytes before)
 *   headers | payload | message CRC32 (uint32, of everything before it)
 *
 * all big-endian. A header is a name length (uint8), the name (UTF-8), a value type (uint8) and
 * the value, whose size the type decides (7, a string: uint16 length, then UTF-8).
 * https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html#streaming-event-stream
 */

export interface EventStreamMessage {
  /** String-valued headers by name, such as ":message-type" → "event". */
  readonly headers: ReadonlyMap<string, string>;
  readonly payload: Buffer;
}

/** Bytes that are not a well-formed event stream: a checksum or a length does not hold. */
export class EventStreamError extends Error {
  override readonly name = 'EventStreamError';
}

const preludeLength = 12;
/** Prelude plus the trailing message CRC. */
const framingLength = 16;
// AWS's limits for one message; a larger length means the bytes are not an event stream (an
// HTML error page, say), and waiting for that many would hold the connection for nothing.
const maximumMessageLength = 16 * 1024 * 1024;
const maximumHeadersLength = 128 * 1024;

/**
 * Splits a byte stream into messages, checking both checksums of each. Bytes may be cut
 * anywhere: a partial message waits for the rest. `next` throws EventStreamError at bytes that
 * cannot be a message, after handing out every message before them; nothing after can be trusted.
 *
 * @example
 * const splitter = new EventStreamSplitter();
 * splitter.append(bytes);
 * for (let message = splitter.next(); message; message = splitter.next()) read(message);
 */
export class EventStreamSplitter {
  #pieces: Buffer[] = [];
  #buffered = 0;
  /** The total length of the message being read, once its prelude was checked. */
  #expected: number | undefined;

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#pieces.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next whole message, or undefined until more bytes arrive. */
  next(): EventStreamMessage | undefined {
    if (this.#expected === undefined) {
      if (this.#buffered < preludeLength) return undefined;
      this.#expected = checkPrelude(this.#peek(preludeLength));
    }
    if (this.#buffered < this.#expected) return undefined;
    const frame = this.#take(this.#expected);
    this.#expected = undefined;
    return decodeMessage(frame);
  }

  /** Bytes held back as the start of a message that has not fully arrived. */
  get pending(): number {
    return this.#buffered;
  }

  #peek(length: number): Buffer {
    const first = this.#pieces[0]!;
    if (first.length >= length) return first.subarray(0, length);
    return Buffer.concat(this.#pieces).subarray(0, length);
  }

  /** The first `length` bytes, removed; joined only when they span pieces. */
  #take(length: number): Buffer {
    let first = this.#pieces[0]!;
    if (first.length < length) {
      first = Buffer.concat(this.#pieces);
      this.#pieces = [first];
    }
    const taken = first.subarray(0, length);
    if (first.length === length) this.#pieces.shift();
    else this.#pieces[0] = first.subarray(length);
    this.#buffered -= length;
    return taken;
  }
}

function checkPrelude(prelude: Buffer): number {
  const total = prelude.readUInt32BE(0);
  const headers = prelude.readUInt32BE(4);
  if (crc32(prelude.subarray(0, 8)) !== prelude.readUInt32BE(8)) {
    throw new EventStreamError('the prelude checksum does not match');
  }
  if (total < framingLength || total > maximumMessageLength) {
    throw new EventStreamError(`a message length of ${total} bytes is impossible`);
  }
  if (headers > maximumHeadersLength || headers > total - framingLength) {
    throw new EventStreamError(`a headers length of ${headers} bytes does not fit the message`);
  }
  return total;
}

function decodeMessage(frame: Buffer): EventStreamMessage {
  const end = frame.length - 4;
  if (crc32(frame.subarray(0, end)) !== frame.readUInt32BE(end)) {
    throw new EventStreamError('the message checksum does not match');
  }
  const headersEnd = preludeLength + frame.readUInt32BE(4);
  return {
    headers: decodeHeaders(frame.subarray(preludeLength, headersEnd)),
    payload: frame.subarray(headersEnd, end),
  };
}

/** Value sizes of the fixed-size header types: 0 and 1 are the booleans, which carry no value. */
const fixedSizes: Readonly<Record<number, number>> = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };
const bytesType = 6;
const stringType = 7;

/** Only string values are kept: the routing headers AWS sends are all strings; others are skipped over. */
function decodeHeaders(bytes: Buffer): Map<string, string> {
  const headers = new Map<string, string>();
  let position = 0;
  while (position < bytes.length) {
    const nameLength = bytes[position]!;
    const nameEnd = position + 1 + nameLength;
    if (nameLength === 0 || nameEnd + 1 > bytes.length) throw new EventStreamError('a header is cut short');
    const name = bytes.toString('utf8', position + 1, nameEnd);
    const type = bytes[nameEnd]!;
    position = nameEnd + 1;
    if (type === bytesType || type === stringType) {
      if (position + 2 > bytes.length) throw new EventStreamError(`header "${name}" is cut short`);
      const length = bytes.readUInt16BE(position);
      const valueEnd = position + 2 + length;
      if (valueEnd > bytes.length) throw new EventStreamError(`header "${name}" is cut short`);
      if (type === stringType) headers.set(name, bytes.toString('utf8', position + 2, valueEnd));
      position = valueEnd;
    } else {
      const size = fixedSizes[type];
      if (size === undefined) throw new EventStreamError(`header "${name}" has unknown type ${type}`);
      if (position + size > bytes.length) throw new EventStreamError(`header "${name}" is cut short`);
      position += size;
    }
  }
  return headers;
}

/**
 * CRC-32 (IEEE 802.3, the checksum of zip and gzip), as the event stream uses it. Node has it
 * natively from 20.15 and 22.2 (zlib.crc32); older releases of Node 20 get the table below.
 */
export const crc32: (data: Uint8Array) => number = nativeCrc32() ?? tableCrc32;

function nativeCrc32(): ((data: Uint8Array) => number) | undefined {
  const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  return typeof native === 'function' ? (data) => native(data) : undefined;
}

let crcTable: Uint32Array | undefined;

/** The byte-at-a-time table algorithm over the reflected polynomial 0xEDB88320. */
export function tableCrc32(data: Uint8Array): number {
  crcTable ??= buildCrcTable();
  let crc = 0xffffffff;
  for (let index = 0; index < data.length; index++) {
    crc = crcTable[(crc ^ data[index]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function buildCrcTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let value = byte;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    table[byte] = value >>> 0;
  }
  return table;
}
