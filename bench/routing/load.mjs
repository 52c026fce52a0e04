// The load client for bench:routing: a closed loop of `concurrency` workers over one keep-alive
// undici Pool, each sending its next request as soon as the last one ended, so a slow or failing
// deployment shows in the client's own latency and status codes.

import { Pool } from 'undici';

/**
 * Sends non-streamed chat completions to `origin` until `requests` have been sent or, when
 * `durationMs` is given instead, until that long has passed; requests in flight then finish.
 * Resolves to one sample per request: performance.now() at its start and end, its status (0 when
 * the connection failed), the deployment that served it and the attempts it took (from
 * x-switchyard-target and x-switchyard-attempts), and for failures a short reason.
 *
 * @example const samples = await runLoad({ origin, body, concurrency: 8, requests: 600 });
 */
export async function runLoad({
  origin,
  path = '/v1/chat/completions',
  headers = {},
  body,
  concurrency,
  requests,
  durationMs,
}) {
  const pool = new Pool(origin, {
    connections: concurrency,
    pipelining: 1,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const requestHeaders = { 'content-type': 'application/json', ...headers };
  const samples = [];
  const startedAt = performance.now();
  let sent = 0;
  const more = () =>
    durationMs === undefined ? sent < requests : performance.now() - startedAt < durationMs;

  async function worker() {
    while (more()) {
      sent++;
      const start = performance.now();
      const sample = { start, end: 0, status: 0, target: undefined, attempts: undefined, reason: undefined };
      try {
        const response = await pool.request({ path, method: 'POST', headers: requestHeaders, body });
        const text = await response.body.text();
        sample.status = response.statusCode;
        sample.target = response.headers['x-switchyard-target'];
        const attempts = response.headers['x-switchyard-attempts'];
        sample.attempts = attempts === undefined ? undefined : Number(attempts);
        if (response.statusCode !== 200) sample.reason = errorReason(text);
      } catch (error) {
        sample.reason = error.code ?? error.message;
      }
      sample.end = performance.now();
      samples.push(sample);
    }
  }

  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await pool.close();
  }
  return samples;
}

/** The error code or message of an OpenAI error envelope, shortened for a summary. */
function errorReason(text) {
  try {
    const { error } = JSON.parse(text);
    return String(error?.code ?? error?.type ?? error?.message ?? text).slice(0, 120);
  } catch {
    return text.slice(0, 120);
  }
}
