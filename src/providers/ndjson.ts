import { StringDecoder } from 'node:string_decoder';

/**
 * The one newline-delimited JSON reader, for upstreams that stream one JSON text per line
 * (Ollama's /api/chat and /api/pull). It cuts a byte stream into whole lines however the bytes
 * were chunked: a multi-byte character split across chunks is held by the StringDecoder, and a
 * line waits in `pending` until its "\n" arrives. Lines come back without their terminator (a
 * "\r" before the "\n" is dropped too) and blank lines are skipped, as the NDJSON spec allows
 * parsers to. https://github.com/ndjson/ndjson-spec
 *
 * @example
 * const splitter = new NdjsonSplitter();
 * for (const line of splitter.push(bytes)) handle(JSON.parse(line));
 * const last = splitter.flush(); // a final line the upstream sent without "\n", or ''
 */
export class NdjsonSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';

  /** Feeds a chunk; returns every line it completed. */
  push(chunk: Buffer | string): string[] {
    const added = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    if (added.indexOf('\n') === -1) {
      // The common case for token-sized chunks: nothing completes, so nothing is scanned twice.
      this.#pending += added;
      return [];
    }
    const text = this.#pending + added;
    const lines: string[] = [];
    let from = 0;
    // `pending` holds no "\n", so the search can start where the new text does.
    let newline = text.indexOf('\n', this.#pending.length);
    while (newline !== -1) {
      const line = trimCarriageReturn(text.slice(from, newline));
      if (line.trim() !== '') lines.push(line);
      from = newline + 1;
      newline = text.indexOf('\n', from);
    }
    this.#pending = text.slice(from);
    return lines;
  }

  /** The last line when the stream ended without a "\n" after it; '' when there is none. */
  flush(): string {
    const rest = trimCarriageReturn(this.#pending + this.#decoder.end());
    this.#pending = '';
    return rest.trim() === '' ? '' : rest;
  }
}

function trimCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
