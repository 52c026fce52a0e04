import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fixture upstream answers next: a vendor's status, headers and body or raw stream. */
export interface FixtureAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  /** A JSON value (serialised) or raw text. */
  readonly body?: unknown;
  /** A raw stream file, sent byte for byte in small pieces, as a vendor's server would. */
  readonly streamFile?: string;
}

export interface FixtureRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface FixtureUpstream {
  readonly url: string;
  /** The next requests' answer. */
  answer(answer: FixtureAnswer): void;
  /** Every request received, oldest first. */
  readonly requests: FixtureRequest[];
  close(): Promise<void>;
}

/**
 * A stand-in for any vendor's API, speaking exactly the bytes of a conformance fixture
 * (test/fixtures/<kind>/), so the real gateway's translation is tested end to end on loopback.
 */
export async function startFixtureUpstream(): Promise<FixtureUpstream> {
  let next: FixtureAnswer = { status: 500, body: { error: 'no answer set' } };
  const requests: FixtureRequest[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (text) => (body += text));
    request.on('end', () => {
      requests.push({ method: request.method!, path: request.url!, headers: request.headers, body });
      const answer = next;
      if (answer.streamFile !== undefined) {
        const bytes = readFileSync(answer.streamFile);
        response.writeHead(answer.status, answer.headers);
        // Pieces of uneven size, written on separate turns, cut events anywhere.
        let offset = 0;
        const write = () => {
          if (offset >= bytes.length) return void response.end();
          const size = 5 + (offset % 23);
          response.write(bytes.subarray(offset, offset + size));
          offset += size;
          setImmediate(write);
        };
        write();
        return;
      }
      const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? {});
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    answer(answer) {
      next = answer;
    },
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
