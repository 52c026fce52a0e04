import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
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
  readonly pool: Dispatcher;
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
 * Sends one request upstream and answers the client. A non-streamed answer is read whole (for
 * its usage and Server-Timing) and written in one go; a stream is forwarded event by event as it
 * arrives, with backpressure, and its usage picked out on the way. Every outcome, error
 * included, is written to the response and reported to `observe` exactly once.
 *
 * It drives undici's dispatcher directly (ADR 0001): no response stream object, no promise and
 * no AbortSignal per request, which the overhead benchmark showed to be a good share of the cost.
 */
export function proxy(call: ProxyCall): void {
  const exchange = new Exchange(call);
  const target = call.route.target;
  call.pool.dispatch(
    {
      method: 'POST',
      path: target.paths[call.endpoint],
      headers: target.headers.concat('x-request-id', call.requestId),
      body: upstreamBody(call.raw, call.body, call.route.upstreamModel, exchange.addUsageRequest),
      headersTimeout: target.config.timeouts.firstByte,
      bodyTimeout: target.config.timeouts.idle,
    },
    exchange,
  );
}

type Phase = 'waiting' | 'buffering' | 'streaming' | 'done';

/** One request's journey upstream and back; undici calls its handler methods. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly addUsageRequest: boolean;
  readonly #call: ProxyCall;
  readonly #streaming: boolean;
  readonly #record: RequestRecord;
  readonly #upstreamStart = performance.now();
  readonly #totalTimer: NodeJS.Timeout;
  #controller: Dispatcher.DispatchController | undefined;
  /** Why the exchange must stop, when that is decided before undici handed us its controller. */
  #abortReason: Error | undefined;
  #phase: Phase = 'waiting';
  #status = 0;
  #contentType: string | undefined;
  #headers: IncomingHttpHeaders = {};
  #chunks: Buffer[] = [];
  #size = 0;
  #splitter: SseSplitter | undefined;
  #usage: Usage | undefined;
  #headSent = false;
  #sawDone = false;
  #serverTiming = '';

  constructor(call: ProxyCall) {
    this.#call = call;
    const { body, route } = call;
    this.#streaming = body.stream === true && call.endpoint !== 'embeddings';
    const clientWantsUsage = this.#streaming && body.stream_options?.include_usage === true;
    this.addUsageRequest = this.#streaming && !clientWantsUsage && route.target.config.streamUsage;
    this.#record = {
      id: call.requestId,
      started_at: call.startedAtEpoch,
      endpoint: `/v1/${call.endpoint}`,
      model: body.model,
      target: route.target.config.name,
      upstream_model: route.upstreamModel,
      status: 0,
      stream: this.#streaming ? 1 : 0,
      prompt_tokens: null,
      completion_tokens: null,
      total_tokens: null,
      duration_ms: 0,
      upstream_ms: null,
      first_byte_ms: null,
      error_code: null,
    };
    this.#totalTimer = setTimeout(this.#onTotalTimeout, route.target.config.timeouts.total);
    call.response.once('close', this.#onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason) controller.abort(this.#abortReason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx informational; the real answer follows.
    const now = performance.now();
    this.#record.first_byte_ms = round(now - this.#upstreamStart);
    this.#status = statusCode;
    this.#headers = headers;
    const contentType = headers['content-type'];
    this.#contentType = typeof contentType === 'string' ? contentType : undefined;
    const ok = statusCode < 300;
    if (ok && this.#streaming && this.#contentType?.startsWith(eventStream)) {
      this.#phase = 'streaming';
      this.#splitter = new SseSplitter();
      this.#serverTiming = serverTiming(this.#call.startedAt, now - this.#upstreamStart);
    } else {
      this.#phase = 'buffering';
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#phase === 'streaming') {
      this.#forward(this.#splitter!.push(chunk));
      return;
    }
    this.#size += chunk.length;
    if (this.#size > maxBufferedBody) {
      controller.abort(
        new GatewayError('upstream_bad_response', 'The upstream answer is larger than 64 MiB.'),
      );
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#phase === 'streaming') this.#endStream();
    else this.#endBuffered();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#fail(error);
  }

  #fail(error: Error): void {
    if (this.#phase === 'done') return;
    if (error instanceof ClientGone || this.#abortReason instanceof ClientGone) {
      this.#finish(clientClosedStatus, undefined);
      return;
    }
    const failure = transportError(error, this.#call.route.target.config.name);
    if (this.#headSent) {
      this.#call.response.end(renderOpenAIStreamError(failure));
      this.#finish(200, failure);
      return;
    }
    this.#writeError(failure);
    this.#finish(failure.status, failure);
  }

  #endBuffered(): void {
    const answer = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    const status = this.#status;
    if (status < 200 || status >= 300) {
      const failure = upstreamFailure(
        status,
        this.#headers,
        answer.toString('utf8'),
        this.#call.route.target.config.name,
      );
      this.#writeError(failure);
      this.#finish(failure.status, failure);
      return;
    }
    this.#usage = extractUsage(answer);
    const response = this.#call.response;
    if (response.destroyed) {
      this.#finish(clientClosedStatus, undefined);
      return;
    }
    response.writeHead(status, {
      'content-type': this.#contentType ?? 'application/json',
      'content-length': answer.length,
      'x-request-id': this.#call.requestId,
      'server-timing': serverTiming(this.#call.startedAt, performance.now() - this.#upstreamStart),
    });
    response.end(answer);
    this.#finish(status, undefined);
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
          this.#usage = found;
          // The client did not ask for the usage chunk; the gateway did, for accounting.
          if (this.addUsageRequest && usageOnlyChunk.test(event)) continue;
        }
      }
      if (!this.#sawDone && doneEvent.test(event)) this.#sawDone = true;
      out += event;
    }
    if (out === '') return;
    const response = this.#call.response;
    if (!this.#headSent) this.#writeStreamHead();
    if (!response.write(out)) {
      this.#controller?.pause();
      response.once('drain', this.#onDrain);
    }
  }

  #endStream(): void {
    const rest = this.#splitter!.flush();
    // A last event without its blank line still counts; terminate it for the client's parser.
    if (rest.trim() !== '') this.#forward([rest.replace(/\s*$/, '\n\n')]);
    const response = this.#call.response;
    if (!this.#sawDone) {
      // An OpenAI stream ends with "data: [DONE]"; without it the answer was cut short.
      const failure = new GatewayError(
        'upstream_stream_failed',
        `The stream from "${this.#call.route.target.config.name}" ended before [DONE].`,
      );
      if (this.#headSent) {
        response.end(renderOpenAIStreamError(failure));
        this.#finish(200, failure);
      } else {
        this.#writeError(failure);
        this.#finish(failure.status, failure);
      }
      return;
    }
    if (!this.#headSent) this.#writeStreamHead();
    response.end();
    this.#finish(200, undefined);
  }

  #writeStreamHead(): void {
    this.#headSent = true;
    this.#call.response.writeHead(200, {
      'content-type': eventStream,
      'cache-control': 'no-cache',
      'x-request-id': this.#call.requestId,
      'server-timing': this.#serverTiming,
    });
  }

  #writeError(error: GatewayError): void {
    const response = this.#call.response;
    if (response.headersSent || response.destroyed) return;
    const payload = renderOpenAIError(error);
    response.writeHead(error.status, {
      ...error.headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      'x-request-id': this.#call.requestId,
      'server-timing': serverTiming(this.#call.startedAt, performance.now() - this.#upstreamStart),
    });
    response.end(payload);
  }

  #finish(status: number, error: GatewayError | undefined): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    clearTimeout(this.#totalTimer);
    this.#call.response.off('close', this.#onClientClose);
    const now = performance.now();
    const record = this.#record;
    record.status = status;
    record.duration_ms = round(now - this.#call.startedAt);
    record.upstream_ms = round(now - this.#upstreamStart);
    const usage = this.#usage;
    if (usage) {
      record.prompt_tokens = usage.prompt_tokens;
      record.completion_tokens = usage.completion_tokens;
      record.total_tokens = usage.total_tokens;
    }
    if (error) record.error_code = error.code;
    this.#call.observe(record);
  }

  #abort(reason: Error): void {
    if (this.#phase === 'done') return;
    this.#abortReason ??= reason;
    if (this.#controller) this.#controller.abort(reason);
    // Still queued for a connection: answer now; onRequestStart cancels the dispatch later.
    else this.#fail(reason);
  }

  readonly #onClientClose = () => {
    if (!this.#call.response.writableFinished) this.#abort(new ClientGone());
  };

  readonly #onTotalTimeout = () => {
    this.#abort(
      new GatewayError(
        'request_timeout',
        `The request to "${this.#call.route.target.config.name}" exceeded timeouts.total.`,
      ),
    );
  };

  readonly #onDrain = () => this.#controller?.resume();
}

/** "gateway;dur=0.21, upstream;dur=12.5": what Switchyard added, and what the upstream took. */
function serverTiming(startedAt: number, upstreamTime: number): string {
  const total = performance.now() - startedAt;
  return `gateway;dur=${(total - upstreamTime).toFixed(3)}, upstream;dur=${upstreamTime.toFixed(3)}`;
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 1000) / 1000;
}
