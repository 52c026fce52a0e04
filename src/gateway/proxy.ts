import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Pool } from 'undici';
import { GatewayError, renderOpenAIError, renderOpenAIStreamError } from '../errors/index.js';
import { extractUsage, upstreamBody, upstreamFailure } from '../providers/openai-compatible.js';
import { SseSplitter } from '../providers/sse.js';
import { transportError } from '../providers/transport-errors.js';
import type { Route } from '../routing/model-table.js';
import type { Endpoint, ProxyRequestBody, Usage } from '../spec/openai.js';
import type { RequestRecord } from '../telemetry/request-log.js';
import type { RequestObserver } from '../telemetry/request-observer.js';

/** Everything one proxied request needs; built by the route from the parsed request. */
export interface ProxyCall {
  readonly requestId: string;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  /** Date.now() when the request arrived, for the request log. */
  readonly startedAtEpoch: number;
  readonly endpoint: Endpoint;
  readonly route: Route;
  readonly body: ProxyRequestBody;
  readonly raw: Buffer;
  readonly pool: Pool;
  readonly response: ServerResponse;
  readonly observe: RequestObserver;
}

/** Status recorded when the client went away before the answer was complete (nginx's 499). */
const clientClosedStatus = 499;
/** Error bodies and non-streamed answers are read whole; this bounds what one may take. */
const maxBufferedBody = 64 * 1024 * 1024;

const eventStream = 'text/event-stream';
const usageOnlyChunk = /"choices"\s*:\s*\[\s*\]/;
const doneEvent = /^data: ?\[DONE\]/m;

class ClientGone extends Error {}

/**
 * Sends one request upstream and answers the client: a non-streamed answer is read whole (for
 * its usage and Server-Timing) and written in one go; a stream is forwarded event by event as it
 * arrives, with backpressure, and its usage picked out on the way. Never throws: every outcome,
 * error included, is written to the response and reported to `observe` exactly once.
 */
export async function proxy(call: ProxyCall): Promise<void> {
  const { route, body, response } = call;
  const target = route.target;
  const timeouts = target.config.timeouts;
  const streaming = body.stream === true && call.endpoint !== 'embeddings';
  const clientWantsUsage = streaming && body.stream_options?.include_usage === true;
  const addUsageRequest = streaming && !clientWantsUsage && target.config.streamUsage;

  const controller = new AbortController();
  const totalTimer = setTimeout(() => {
    controller.abort(
      new GatewayError('request_timeout', `The request to "${target.config.name}" exceeded timeouts.total.`),
    );
  }, timeouts.total);
  const onClose = () => {
    if (!response.writableFinished) controller.abort(new ClientGone());
  };
  response.once('close', onClose);

  const record: RequestRecord = {
    id: call.requestId,
    started_at: call.startedAtEpoch,
    endpoint: `/v1/${call.endpoint}`,
    model: body.model,
    target: target.config.name,
    upstream_model: route.upstreamModel,
    status: 0,
    stream: streaming ? 1 : 0,
    prompt_tokens: null,
    completion_tokens: null,
    total_tokens: null,
    duration_ms: 0,
    upstream_ms: null,
    first_byte_ms: null,
    error_code: null,
  };
  const upstreamStart = performance.now();
  const finish = (status: number, usage: Usage | undefined, error: GatewayError | undefined) => {
    clearTimeout(totalTimer);
    response.off('close', onClose);
    const now = performance.now();
    record.status = status;
    record.duration_ms = round(now - call.startedAt);
    record.upstream_ms = round(now - upstreamStart);
    if (usage) {
      record.prompt_tokens = usage.prompt_tokens;
      record.completion_tokens = usage.completion_tokens;
      record.total_tokens = usage.total_tokens;
    }
    if (error) record.error_code = error.code;
    call.observe(record);
  };
  const fail = (error: unknown) => {
    if (error instanceof ClientGone || controller.signal.reason instanceof ClientGone) {
      finish(clientClosedStatus, undefined, undefined);
      return;
    }
    const failure = transportError(error, target.config.name);
    writeError(response, call, failure, upstreamStart);
    finish(failure.status, undefined, failure);
  };

  let upstream: { statusCode: number; headers: IncomingHttpHeaders; body: Readable };
  try {
    upstream = await call.pool.request({
      method: 'POST',
      path: target.paths[call.endpoint],
      headers: target.headers.concat('x-request-id', call.requestId),
      body: upstreamBody(call.raw, body, route.upstreamModel, addUsageRequest),
      signal: controller.signal,
      headersTimeout: timeouts.firstByte,
      bodyTimeout: timeouts.idle,
    });
  } catch (error) {
    fail(error);
    return;
  }
  const firstByteAt = performance.now();
  record.first_byte_ms = round(firstByteAt - upstreamStart);

  const contentType = upstream.headers['content-type'];
  const isStream = typeof contentType === 'string' && contentType.startsWith(eventStream);
  if (upstream.statusCode < 200 || upstream.statusCode >= 300 || !streaming || !isStream) {
    let answer: Buffer;
    try {
      answer = await readWhole(upstream.body);
    } catch (error) {
      fail(error);
      return;
    }
    if (upstream.statusCode < 200 || upstream.statusCode >= 300) {
      const failure = upstreamFailure(
        upstream.statusCode,
        upstream.headers,
        answer.toString('utf8'),
        target.config.name,
      );
      writeError(response, call, failure, upstreamStart);
      finish(failure.status, undefined, failure);
      return;
    }
    const usage = extractUsage(answer);
    const upstreamTime = performance.now() - upstreamStart;
    response.writeHead(upstream.statusCode, {
      'content-type': contentType ?? 'application/json',
      'content-length': answer.length,
      'x-request-id': call.requestId,
      'server-timing': serverTiming(call.startedAt, upstreamTime),
    });
    response.end(answer);
    finish(upstream.statusCode, usage, undefined);
    return;
  }

  relayStream(call, upstream.body, {
    addUsageRequest,
    serverTiming: serverTiming(call.startedAt, firstByteAt - upstreamStart),
    finish,
    fail,
  });
}

interface RelayOptions {
  readonly addUsageRequest: boolean;
  readonly serverTiming: string;
  readonly finish: (status: number, usage: Usage | undefined, error: GatewayError | undefined) => void;
  readonly fail: (error: unknown) => void;
}

/**
 * Forwards SSE events as they complete. The response head waits for the first event so that a
 * stream that dies before saying anything still gets a real error status, not a 200.
 */
function relayStream(call: ProxyCall, upstream: Readable, options: RelayOptions): void {
  const { response } = call;
  const splitter = new SseSplitter();
  let usage: Usage | undefined;
  let done = false;
  let started = false;

  const start = () => {
    started = true;
    response.writeHead(200, {
      'content-type': eventStream,
      'cache-control': 'no-cache',
      'x-request-id': call.requestId,
      'server-timing': options.serverTiming,
    });
  };
  const forward = (events: string[]) => {
    let out = '';
    for (const event of events) {
      if (event.includes('"usage"')) {
        const found = extractUsage(event);
        if (found) {
          usage = found;
          // The client did not ask for the usage chunk; the gateway did, for accounting.
          if (options.addUsageRequest && usageOnlyChunk.test(event)) continue;
        }
      }
      if (!done && doneEvent.test(event)) done = true;
      out += event;
    }
    if (out === '') return;
    if (!started) start();
    if (!response.write(out)) {
      upstream.pause();
      response.once('drain', () => upstream.resume());
    }
  };

  upstream.on('data', (chunk: Buffer) => forward(splitter.push(chunk)));
  upstream.on('end', () => {
    const rest = splitter.flush();
    // A last event without its blank line still counts; terminate it for the client's parser.
    if (rest.trim() !== '') forward([rest.replace(/\s*$/, '\n\n')]);
    if (!done) {
      // An OpenAI stream ends with "data: [DONE]"; without it the answer was cut short.
      const failure = new GatewayError(
        'upstream_stream_failed',
        `The stream from "${call.route.target.config.name}" ended before [DONE].`,
      );
      if (!started) {
        writeError(response, call, failure, undefined);
      } else {
        response.end(renderOpenAIStreamError(failure));
      }
      options.finish(started ? 200 : failure.status, usage, failure);
      return;
    }
    if (!started) start();
    response.end();
    options.finish(200, usage, undefined);
  });
  upstream.on('error', (error) => {
    if (!started || response.destroyed) {
      options.fail(error);
      return;
    }
    const failure = transportError(error, call.route.target.config.name);
    response.end(renderOpenAIStreamError(failure));
    options.finish(200, usage, failure);
  });
}

function writeError(
  response: ServerResponse,
  call: ProxyCall,
  error: GatewayError,
  upstreamStart: number | undefined,
): void {
  if (response.headersSent || response.destroyed) return;
  const payload = renderOpenAIError(error);
  response.writeHead(error.status, {
    ...error.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'x-request-id': call.requestId,
    'server-timing': serverTiming(
      call.startedAt,
      upstreamStart === undefined ? 0 : performance.now() - upstreamStart,
    ),
  });
  response.end(payload);
}

/** "gateway;dur=0.21, upstream;dur=12.5": what Switchyard added, and what the upstream took. */
function serverTiming(startedAt: number, upstreamTime: number): string {
  const total = performance.now() - startedAt;
  return `gateway;dur=${(total - upstreamTime).toFixed(3)}, upstream;dur=${upstreamTime.toFixed(3)}`;
}

async function readWhole(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > maxBufferedBody) {
      body.destroy();
      throw new GatewayError('upstream_bad_response', 'The upstream answer is larger than 64 MiB.');
    }
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 1000) / 1000;
}
