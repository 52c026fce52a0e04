/**
 * Finds a top-level field's value in raw JSON bytes, so the gateway can replace one field (the
 * model name) without parsing and re-serialising the whole body. The input has already passed
 * JSON.parse; this scanner only has to walk it, not validate it.
 */

const quote = 0x22;
const backslash = 0x5c;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const colon = 0x3a;
const comma = 0x2c;

export interface Span {
  /** Offset of the value's first byte. */
  readonly start: number;
  /** Offset just past the value's last byte. */
  readonly end: number;
}

/**
 * The span of `key`'s value in the top-level object, or undefined when it is absent or when a
 * JSON parser could read the bytes differently: the key given twice, or spelt with escapes
 * ("mod\u0065l"). JSON.parse keeps the last duplicate, so splicing the first would leave the
 * upstream reading the value the client sent rather than the one the gateway chose; the caller
 * re-serialises instead. The whole top-level object is walked (values skipped, not parsed) so
 * that a later duplicate is seen.
 */
export function findTopLevelValue(bytes: Buffer, key: string): Span | undefined {
  const wanted = Buffer.from(JSON.stringify(key));
  let found: Span | undefined;
  let position = skipSpace(bytes, 0);
  if (bytes[position] !== openBrace) return undefined;
  position++;
  while (position < bytes.length) {
    position = skipSpace(bytes, position);
    if (bytes[position] !== quote) return undefined; // "}" of an empty object, or not an object
    const keyStart = position;
    const keyEnd = stringEnd(bytes, position);
    const matches =
      keyEnd - keyStart === wanted.length && bytes.compare(wanted, 0, wanted.length, keyStart, keyEnd) === 0;
    if (!matches && escapedSpelling(bytes, keyStart, keyEnd, key)) return undefined;
    position = skipSpace(bytes, keyEnd);
    if (bytes[position] !== colon) return undefined;
    const start = skipSpace(bytes, position + 1);
    const end = valueEnd(bytes, start);
    if (matches) {
      if (found !== undefined) return undefined;
      found = { start, end };
    }
    position = skipSpace(bytes, end);
    if (bytes[position] === closeBrace) return found;
    if (bytes[position] !== comma) return undefined;
    position++;
  }
  return undefined;
}

/** Whether the quoted string at [start, end) uses escapes and decodes to `key`. */
function escapedSpelling(bytes: Buffer, start: number, end: number, key: string): boolean {
  const text = bytes.subarray(start, end);
  if (!text.includes(backslash)) return false;
  try {
    return JSON.parse(text.toString('utf8')) === key;
  } catch {
    return false;
  }
}

/** Replaces the bytes of `span` with `replacement`. */
export function splice(bytes: Buffer, span: Span, replacement: string): Buffer {
  return Buffer.concat([bytes.subarray(0, span.start), Buffer.from(replacement), bytes.subarray(span.end)]);
}

function skipSpace(bytes: Buffer, position: number): number {
  while (position < bytes.length) {
    const byte = bytes[position]!;
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) break;
    position++;
  }
  return position;
}

/** Given the offset of an opening quote, returns the offset just past the closing quote. */
function stringEnd(bytes: Buffer, open: number): number {
  let position = open + 1;
  for (;;) {
    const close = bytes.indexOf(quote, position);
    if (close === -1) return bytes.length;
    // The quote is escaped only if an odd number of backslashes precede it.
    let slashes = 0;
    while (bytes[close - 1 - slashes] === backslash) slashes++;
    if (slashes % 2 === 0) return close + 1;
    position = close + 1;
  }
}

function valueEnd(bytes: Buffer, start: number): number {
  const first = bytes[start];
  if (first === quote) return stringEnd(bytes, start);
  if (first === openBrace || first === openBracket) {
    let depth = 0;
    let position = start;
    while (position < bytes.length) {
      const byte = bytes[position]!;
      if (byte === quote) {
        position = stringEnd(bytes, position);
        continue;
      }
      if (byte === openBrace || byte === openBracket) depth++;
      else if (byte === closeBrace || byte === closeBracket) {
        depth--;
        if (depth === 0) return position + 1;
      }
      position++;
    }
    return position;
  }
  // A number, true, false or null runs until a delimiter.
  let position = start;
  while (position < bytes.length) {
    const byte = bytes[position]!;
    if (
      byte === comma ||
      byte === closeBrace ||
      byte === 0x20 ||
      byte === 0x0a ||
      byte === 0x0d ||
      byte === 0x09
    ) {
      break;
    }
    position++;
  }
  return position;
}
