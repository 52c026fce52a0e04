// A fast stand-in for an OpenAI-compatible provider, so the benchmark measures the proxy and not
// a model. Every response body is serialised once at start-up; the only per-request work is reading
// and parsing the request JSON, which a real provider must do as well and which tells us whether
// the client asked for a stream.
//
// Run: node bench/overhead/mock-upstream.mjs  → prints {"port":N} on stdout once listening on
// 127.0.0.1 (port from MOCK_PORT, default 0 = any free port).

import http from 'node:http';

const model = 'bench-model';
const created = 1_732_000_000;
const completionId = 'chatcmpl-bench0000000000000000000000';
const systemFingerprint = 'fp_bench0001';
const usage = { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 };

// Shaped like a real gpt-4o-mini reply, so the proxy handles a body of realistic size and layout.
const completionBody = Buffer.from(
  JSON.stringify({
    id: completionId,
    object: 'chat.completion',
    created,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello, bright friend!', refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: {
      ...usage,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    },
    service_tier: 'default',
    system_fingerprint: systemFingerprint,
  }),
);

function chunkEvent(delta, finishReason, withUsage) {
  const chunk = {
    id: completionId,
    object: 'chat.completion.chunk',
    created,
    model,
    service_tier: 'default',
    system_fingerprint: systemFingerprint,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
  // OpenAI sends "usage": null on every chunk once include_usage is set.
  if (withUsage) chunk.usage = null;
  return Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
}

// Ten events as OpenAI sends them: a role delta, content deltas, then a finish_reason delta.
const contentPieces = ['Hello', ',', ' bright', ' friend', '!', ' How', ' are', ' you'];
function streamEvents(withUsage) {
  return [
    chunkEvent({ role: 'assistant', content: '', refusal: null }, null, withUsage),
    ...contentPieces.map((content) => chunkEvent({ content }, null, withUsage)),
    chunkEvent({}, 'stop', withUsage),
  ];
}
const plainStreamEvents = streamEvents(false);
const usageStreamEvents = streamEvents(true);
const usageEvent = Buffer.from(
  `data: ${JSON.stringify({
    id: completionId,
    object: 'chat.completion.chunk',
    created,
    model,
    service_tier: 'default',
    system_fingerprint: systemFingerprint,
    choices: [],
    usage,
  })}\n\n`,
);
const doneEvent = Buffer.from('data: [DONE]\n\n');

const jsonHeaders = { 'content-type': 'application/json', 'content-length': completionBody.length };
const streamHeaders = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const notFoundBody = Buffer.from('{"error":{"message":"not found","type":"invalid_request_error"}}');

function respondNotFound(response) {
  response.writeHead(404, { 'content-type': 'application/json', 'content-length': notFoundBody.length });
  response.end(notFoundBody);
}

function respond(response, body) {
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    response.writeHead(400, { 'content-type': 'application/json' });
    response.end('{"error":{"message":"request body is not JSON","type":"invalid_request_error"}}');
    return;
  }
  if (parsed.stream !== true) {
    response.writeHead(200, jsonHeaders);
    response.end(completionBody);
    return;
  }
  const includeUsage = parsed.stream_options?.include_usage === true;
  // One write per event, as a provider flushes each token: the proxy sees many small chunks,
  // which is the shape whose per-chunk cost we want to measure.
  response.writeHead(200, streamHeaders);
  for (const event of includeUsage ? usageStreamEvents : plainStreamEvents) response.write(event);
  if (includeUsage) response.write(usageEvent);
  response.end(doneEvent);
}

const server = http.createServer((request, response) => {
  if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
    request.resume();
    respondNotFound(response);
    return;
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => respond(response, Buffer.concat(chunks).toString('utf8')));
});

// Proxies keep pooled connections idle between benchmark phases; Node's 5 s default would close
// them and charge a reconnect to whichever run comes next.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(Number(process.env.MOCK_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
