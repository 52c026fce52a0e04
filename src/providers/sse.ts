import { StringDecoder } from 'node:string_decoder';

/**
 * The one server-sent-events reader every adapter uses. It cuts a byte stream into whole events
 * (each ending with a blank line, as the SSE spec defines: "\n\n", "\r\n\r\n" or "\r\r") without
 * touching their text, so a passthrough can forward them byte for byte, and parses an event's
 * fields only when asked. https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
export class SseSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';

  /** Feeds a chunk; returns the text of every event it completed, blank-line terminators kept. */
  push(chunk: Buffer | string): string[] {
    const text = this.#pending + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk));
    const events: string[] = [];
    let from = 0;
    for (;;) {
      const boundary = findBoundary(text, from);
      if (boundary === -1) break;
      events.push(text.slice(from, boundary));
      from = boundary;
    }
    this.#pending = from === 0 ? text : text.slice(from);
    return events;
  }

  /** Whatever the stream left without a terminating blank line. */
  flush(): string {
    const rest = this.#pending + this.#decoder.end();
    this.#pending = '';
    return rest;
  }
}

/** Offset just past the first blank line at or after `from`, or -1. */
function findBoundary(text: string, from: number): number {
  const newline = text.indexOf('\n', from);
  const carriage = text.indexOf('\r', from);
  if (newline === -1 && carriage === -1) return -1;
  // Walk line terminators: a terminator directly followed by another ends the event.
  let position = newline === -1 ? carriage : carriage === -1 ? newline : Math.min(newline, carriage);
  while (position !== -1 && position < text.length) {
    const after = terminatorEnd(text, position);
    if (after < text.length && (text[after] === '\n' || text[after] === '\r')) {
      // A "\r" that ends the text may be the first half of a "\r\n" still in flight; wait for
      // it, so an event's text is the same however the stream happens to be chunked.
      if (text[after] === '\r' && after + 1 === text.length) return -1;
      return terminatorEnd(text, after);
    }
    if (after >= text.length) return -1;
    const nextNewline = text.indexOf('\n', after);
    const nextCarriage = text.indexOf('\r', after);
    position =
      nextNewline === -1
        ? nextCarriage
        : nextCarriage === -1
          ? nextNewline
          : Math.min(nextNewline, nextCarriage);
  }
  return -1;
}

function terminatorEnd(text: string, position: number): number {
  return text[position] === '\r' && text[position + 1] === '\n' ? position + 2 : position + 1;
}

export interface SseEvent {
  /** The `event:` field, or "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
  readonly id: string | undefined;
}

/** Parses one event's fields. Comments (lines starting with ":") are skipped. */
export function parseSseEvent(text: string): SseEvent {
  // Fast path for what every vendor sends per token: one "data: …" line, or an "event: …" line
  // and one "data: …" line, "\n"-terminated. Splitting every event into lines cost translated
  // streams a few microseconds per event.
  const fast = parseCommonEvent(text);
  if (fast !== undefined) return fast;
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  }
  return { event, data: data.join('\n'), id };
}

/** `data: X\n\n` or `event: E\ndata: X\n\n` with no other lines or carriage returns; else undefined. */
function parseCommonEvent(text: string): SseEvent | undefined {
  if (text.includes('\r')) return undefined;
  let start = 0;
  let event = 'message';
  if (text.startsWith('event: ')) {
    const newline = text.indexOf('\n');
    if (newline === -1) return undefined;
    event = text.slice(7, newline);
    start = newline + 1;
  }
  if (!text.startsWith('data: ', start)) return undefined;
  const end = text.indexOf('\n', start);
  const dataEnd = end === -1 ? text.length : end;
  // Anything after the data line other than the blank-line terminator needs the full parser.
  for (let position = dataEnd; position < text.length; position++) {
    if (text.charCodeAt(position) !== 0x0a) return undefined;
  }
  return { event, data: text.slice(start + 6, dataEnd), id: undefined };
}

/** Encodes one event; `data` may hold newlines, each becoming its own data line. */
export function encodeSseEvent(data: string, event?: string): string {
  if (!data.includes('\n')) return event ? `event: ${event}\ndata: ${data}\n\n` : `data: ${data}\n\n`;
  const lines = data
    .split('\n')
    .map((line) => `data: ${line}`)
    .join('\n');
  return event ? `event: ${event}\n${lines}\n\n` : `${lines}\n\n`;
}
