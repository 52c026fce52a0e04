// Streaming latency client: one keep-alive connection, one request at a time, timing each
// request from the moment it is sent to its first body bytes (time to first byte, what a chat
// user feels) and to its end. wrk cannot see inside a response, so this is plain node:http.
//
// Run: node bench/overhead/stream-client.mjs '<json options>'
//   options: { url, body, headers, endMarker, warmup, requests }
//   url includes the path; headers are added to the JSON content type; endMarker is the text a
//   complete stream ends with ("data: [DONE]" for OpenAI's format, the message_stop event for
//   Anthropic's).
// Prints one JSON line: { requests, errors, firstError, ttfbMicroseconds, totalMicroseconds }.

import http from 'node:http';
import { summarise } from './percentiles.mjs';

const options = JSON.parse(process.argv[2]);
const url = new URL(options.url);
const body = Buffer.from(options.body);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const requestOptions = {
  agent,
  hostname: url.hostname,
  port: url.port,
  path: url.pathname,
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    'content-length': body.length,
    accept: 'text/event-stream',
    ...options.headers,
  },
};
const endMarker = options.endMarker;
// Only the end matters for validation; keeping a short tail avoids holding the stream.
const tailLength = endMarker.length + 64;

/** Sends one streaming request; resolves to [ttfb, total] in nanoseconds, or an Error. */
function timeOne() {
  return new Promise((resolve) => {
    let sentAt = 0n;
    const request = http.request(requestOptions, (response) => {
      let firstByteAt = 0n;
      let tail = '';
      response.on('data', (chunk) => {
        if (firstByteAt === 0n) firstByteAt = process.hrtime.bigint();
        tail = (tail + chunk.toString('latin1')).slice(-tailLength);
      });
      response.on('end', () => {
        const endAt = process.hrtime.bigint();
        if (response.statusCode !== 200) {
          resolve(new Error(`status ${response.statusCode}: ${tail}`));
        } else if (!tail.trimEnd().endsWith(endMarker)) {
          resolve(new Error(`stream did not end with ${JSON.stringify(endMarker)}: ...${tail}`));
        } else {
          resolve([firstByteAt - sentAt, endAt - sentAt]);
        }
      });
      response.on('error', resolve);
    });
    // A proxy that stalls mid-stream must fail the run, not hang it.
    request.setTimeout(10_000, () => request.destroy(new Error('no data for 10 s')));
    request.on('error', resolve);
    sentAt = process.hrtime.bigint();
    request.end(body);
  });
}

for (let index = 0; index < options.warmup; index++) await timeOne();

const ttfb = new Float64Array(options.requests);
const total = new Float64Array(options.requests);
let measured = 0;
let errors = 0;
let firstError;
for (let index = 0; index < options.requests; index++) {
  const result = await timeOne();
  if (result instanceof Error) {
    errors++;
    firstError ??= result.message;
    continue;
  }
  ttfb[measured] = Number(result[0]) / 1000;
  total[measured] = Number(result[1]) / 1000;
  measured++;
}
agent.destroy();

process.stdout.write(
  `${JSON.stringify({
    requests: measured,
    errors,
    firstError,
    ttfbMicroseconds: summarise(ttfb.subarray(0, measured)),
    totalMicroseconds: summarise(total.subarray(0, measured)),
  })}\n`,
);
