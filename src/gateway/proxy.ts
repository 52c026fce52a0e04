import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors/index.js';
import { extractUsage, upstreamBody, upstreamFailure } from '../providers/openai-compatible.js';
import { SseSplitter } from '../providers/sse.js';
import type { Endpoint, ProxyRequestBody } from '../spec/openai.js';
import { clientClosedStatus, Exchange, type ExchangeCall, serverTiming } from './exchange.js';

/** Everything one forwarded request needs; built by the route from the parsed request. */
export interface ProxyCall extends ExchangeCall {
  readonly endpoint: Endpoint;
  readonly body: ProxyRequestBody;
  readonly raw: Buffer;
}

const eventStream = 'text/event-stream';
const usageOnlyChunk = /"choices"\s*:\s*\[\s*\]/;
const doneEvent = /^data: ?\[DONE\]/m;

/**
 * Sends one request to an upstream that speaks the client's own schema (OpenAI's) and answers
 * the client with the upstream's bytes. A non-streamed answer is read whole (for its usage and
 * Server-Timing) and written in one go; a stream is forwarded event by event as it arrives, with
 * backpressure, and its usage picked out on the way. Every outcome, error included, is written
 * to the response and reported to `observe` exactly once.
 *
 * It drives undici's dispatcher directly (ADR 0001): no response stream object, no promise and
 * no AbortSignal per request, which the overhead benchmark showed to be a good share of the cost.
 */
export function proxy(call: ProxyCall): void {
  const exchange = new PassthroughExchange(call);
  const target = call.route.target;
  call.pool.dispatch(
    {
      method: 'POST',
      path: target.pathFor(call.endpoint, call.route.upstreamModel),
      headers: target.headers.concat('x-request-id', call.requestId),
      body: upstreamBody(call.raw, call.body, call.route.upstreamModel, exchange.addUsageRequest),
      headersTimeout: call.attempt.firstByteTimeout(call.route),
      bodyTimeout: call.attempt.idleTimeout(call.route),
    },
    exchange,
  );
}

/** Forwards the upstream's answer: whole, or event by event for a stream. */
class PassthroughExchange extends Exchange {
  readonly addUsageRequest: boolean;
  #splitter: SseSplitter | undefined;
  #sawDone = false;

  constructor(call: ProxyCall) {
    const { body } = call;
    const streaming = body.stream === true && call.endpoint !== 'embeddings';
    super(call, streaming);
    const clientWantsUsage = streaming && body.stream_options?.include_usage === true;
    this.addUsageRequest = streaming && !clientWantsUsage && call.route.target.config.streamUsage;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx informational; the real answer follows.
    const now = performance.now();
    const ok = this.begin(statusCode, headers, now);
    if (ok && this.streaming && this.contentType?.startsWith(eventStream)) {
      this.phase = 'streaming';
      this.#splitter = new SseSplitter();
      this.serverTimingValue = serverTiming(this.call.startedAt, now - this.upstreamStart);
    } else {
      this.phase = 'buffering';
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase === 'streaming') {
      this.#forward(this.#splitter!.push(chunk));
      return;
    }
    this.buffer(controller, chunk);
  }

  onResponseEnd(): void {
    if (this.phase === 'streaming') this.#endStream();
    else this.#endBuffered();
  }

  #endBuffered(): void {
    const answer = this.takeBuffered();
    const status = this.status;
    if (status < 200 || status >= 300) {
      this.refuse(
        upstreamFailure(status, this.headers, answer.toString('utf8'), this.call.route.target.config.name),
      );
      return;
    }
    this.usage = extractUsage(answer);
    const response = this.call.response;
    if (response.destroyed) {
      this.finish(clientClosedStatus, undefined);
      return;
    }
    this.writeAnswerHead(status, this.contentType ?? 'application/json', answer.length);
    this.endAnswer(answer);
    this.finish(status, undefined);
  }

  /**
   * Forwards whole SSE events. The response head waits for the first event, so that a stream
   * that dies before saying anything still gets a real error status, not a 200.
   */
  #forward(events: string[]): void {
    if (events.length === 0) return;
    let out = '';
    for (const event of events) {
      if (event.includes('"usage"')) {
        const found = extractUsage(event);
        if (found) {
          this.usage = found;
          // The client did not ask for the usage chunk; the gateway did, for accounting.
          if (this.addUsageRequest && usageOnlyChunk.test(event)) continue;
        }
      }
      if (!this.#sawDone && doneEvent.test(event)) this.#sawDone = true;
      out += event;
    }
    if (out === '') return;
    this.writeStream(out);
  }

  #endStream(): void {
    const rest = this.#splitter!.flush();
    // A last event without its blank line still counts; terminate it for the client's parser.
    if (rest.trim() !== '') this.#forward([rest.replace(/\s*$/, '\n\n')]);
    const response = this.call.response;
    if (!this.#sawDone) {
      // An OpenAI stream ends with "data: [DONE]"; without it the answer was cut short.
      const failure = new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.call.route.target.config.name}" ended before [DONE].`,
      );
      if (this.headSent) {
        response.end(this.call.surface.streamError(failure));
        this.finish(200, failure);
      } else {
        this.refuse(failure);
      }
      return;
    }
    if (!this.headSent) this.writeStreamHead();
    response.end();
    this.finish(200, undefined);
  }
}
