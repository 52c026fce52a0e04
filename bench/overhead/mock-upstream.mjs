// A fast stand-in for an OpenAI-compatible provider (POST /v1/chat/completions) and for Anthropic's
// Messages API (POST /v1/messages), so the benchmark measures the proxy and not a model. Every
// response body is serialised once at start-up; the only per-request work is reading and parsing
// the request JSON, which a real provider must do as well and which tells us whether the client
// asked for a stream.
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

// Anthropic's Messages API, shaped like a real claude-haiku reply: the same text, pieces and
// token counts as the OpenAI answers above, so that translated and passthrough targets move the
// same content. https://docs.anthropic.com/en/api/messages
const messageId = 'msg_bench00000000000000000000';
const anthropicUsage = {
  input_tokens: usage.prompt_tokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
  output_tokens: usage.completion_tokens,
  service_tier: 'standard',
};
const messageBody = Buffer.from(
  JSON.stringify({
    id: messageId,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text: 'Hello, bright friend!' }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: anthropicUsage,
  }),
);

const anthropicEvent = (value) => `event: ${value.type}\ndata: ${JSON.stringify(value)}\n\n`;
// Anthropic's event sequence, in as many writes as the OpenAI stream with usage (twelve), each
// standing for its OpenAI counterpart: message_start, content_block_start and the ping that
// Anthropic sends after it (the role chunk); one text_delta per content piece; content_block_stop
// (the finish chunk); message_delta with the output count (the usage chunk); message_stop ([DONE]).
// https://docs.anthropic.com/en/docs/build-with-claude/streaming
const anthropicStreamEvents = [
  anthropicEvent({
    type: 'message_start',
    message: {
      id: messageId,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...anthropicUsage, output_tokens: 1 },
    },
  }) +
    anthropicEvent({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) +
    anthropicEvent({ type: 'ping' }),
  ...contentPieces.map((text) =>
    anthropicEvent({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
  ),
  anthropicEvent({ type: 'content_block_stop', index: 0 }),
  anthropicEvent({
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: usage.completion_tokens },
  }),
].map((text) => Buffer.from(text));
const messageStopEvent = Buffer.from(anthropicEvent({ type: 'message_stop' }));

const jsonHeaders = { 'content-type': 'application/json', 'content-length': completionBody.length };
const streamHeaders = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const messageHeaders = { 'content-type': 'application/json', 'content-length': messageBody.length };
const notFoundBody = Buffer.from('{"error":{"message":"not found","type":"invalid_request_error"}}');
const unauthorisedBody = Buffer.from(
  '{"type":"error","error":{"type":"authentication_error","message":"x-api-key and anthropic-version are required"}}',
);

function respondNotFound(response) {
  response.writeHead(404, { 'content-type': 'application/json', 'content-length': notFoundBody.length });
  response.end(notFoundBody);
}

/** The request body as JSON, or undefined after answering 400. */
function parseRequest(response, body) {
  try {
    return JSON.parse(body);
  } catch {
    response.writeHead(400, { 'content-type': 'application/json' });
    response.end('{"error":{"message":"request body is not JSON","type":"invalid_request_error"}}');
    return undefined;
  }
}

function respondOpenAI(response, body) {
  const parsed = parseRequest(response, body);
  if (parsed === undefined) return;
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

function respondAnthropic(response, body) {
  const parsed = parseRequest(response, body);
  if (parsed === undefined) return;
  if (parsed.stream !== true) {
    response.writeHead(200, messageHeaders);
    response.end(messageBody);
    return;
  }
  // One write per event group, as for the OpenAI stream above.
  response.writeHead(200, streamHeaders);
  for (const event of anthropicStreamEvents) response.write(event);
  response.end(messageStopEvent);
}

/** Request path → its answer. */
const answers = new Map([
  ['/v1/chat/completions', respondOpenAI],
  ['/v1/messages', respondAnthropic],
]);

const server = http.createServer((request, response) => {
  const answer = request.method === 'POST' ? answers.get(request.url) : undefined;
  if (answer === undefined) {
    request.resume();
    respondNotFound(response);
    return;
  }
  // Anthropic refuses a request without its key or version header; so does this mock, so that a
  // translated request which lost either fails the preflight instead of being measured.
  if (
    answer === respondAnthropic &&
    (!request.headers['x-api-key'] || !request.headers['anthropic-version'])
  ) {
    request.resume();
    response.writeHead(401, {
      'content-type': 'application/json',
      'content-length': unauthorisedBody.length,
    });
    response.end(unauthorisedBody);
    return;
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => answer(response, Buffer.concat(chunks).toString('utf8')));
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
