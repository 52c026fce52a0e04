import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors/index.js';
import { transportError } from '../providers/transport-errors.js';
import type { Route } from '../routing/model-table.js';
import type { ChatUsage } from '../spec/openai-chat.js';
import type { ClientSurface } from '../surfaces/surface.js';
import type { RequestRecord } from '../telemetry/request-log.js';
import type { RequestObserver } from '../telemetry/request-observer.js';

/** What every exchange with an upstream needs, whichever way its answer is handled. */
export interface ExchangeCall {
  readonly requestId: string;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  /** Date.now() when the request arrived, for the request log. */
  readonly startedAtEpoch: number;
  /** The client's path, for the request log: "/v1/chat/completions", "/v1/messages" … */
  readonly endpointPath: string;
  /** The model name the client sent. */
  readonly model: string;
  readonly route: Route;
  readonly pool: Dispatcher;
  readonly response: ServerResponse;
  readonly observe: RequestObserver;
  /** Renders errors in the client's own format. */
  readonly surface: ClientSurface;
}

/** Status recorded when the client went away before the answer was complete (nginx's 499). */
export const clientClosedStatus = 499;
/** Error bodies and non-streamed answers are read whole; this bounds what one may take. */
export const maxBufferedBody = 64 * 1024 * 1024;

export type Phase = 'waiting' | 'buffering' | 'streaming' | 'done';

export class ClientGone extends Error {}

/**
 * One request's journey upstream and back, as an undici dispatch handler: the parts every
 * exchange shares (timers, client disconnects, errors before and after the first byte, the
 * request record). Subclasses decide what the answer's bytes become: `PassthroughExchange`
 * forwards them (proxy.ts), `TranslatingExchange` translates them (translated-proxy.ts).
 *
 * Fields are protected rather than #private so the subclasses on the hot path reach them
 * directly; nothing outside the two subclasses touches them.
 */
export abstract class Exchange implements Dispatcher.DispatchHandler {
  protected readonly call: ExchangeCall;
  protected readonly streaming: boolean;
  protected readonly record: RequestRecord;
  protected readonly upstreamStart = performance.now();
  protected readonly totalTimer: NodeJS.Timeout;
  protected controller: Dispatcher.DispatchController | undefined;
  /** Why the exchange must stop, when that is decided before undici handed us its controller. */
  protected abortReason: Error | undefined;
  protected phase: Phase = 'waiting';
  protected status = 0;
  protected contentType: string | undefined;
  protected headers: IncomingHttpHeaders = {};
  protected chunks: Buffer[] = [];
  protected size = 0;
  protected usage: ChatUsage | undefined;
  protected headSent = false;
  protected serverTimingValue = '';

  constructor(call: ExchangeCall, streaming: boolean) {
    this.call = call;
    this.streaming = streaming;
    const { route } = call;
    this.record = {
      id: call.requestId,
      started_at: call.startedAtEpoch,
      endpoint: call.endpointPath,
      model: call.model,
      target: route.target.config.name,
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
    this.totalTimer = setTimeout(this.onTotalTimeout, route.target.config.timeouts.total);
    call.response.once('close', this.onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  abstract onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void;
  abstract onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  abstract onResponseEnd(): void;

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(error);
  }

  /** Records the answer's status and headers; true for a 2xx, the answer worth reading. */
  protected begin(statusCode: number, headers: IncomingHttpHeaders, now: number): boolean {
    this.record.first_byte_ms = round(now - this.upstreamStart);
    this.status = statusCode;
    this.headers = headers;
    const contentType = headers['content-type'];
    this.contentType = typeof contentType === 'string' ? contentType : undefined;
    return statusCode < 300;
  }

  /** Buffers a body that is read whole; false once it grew past the limit (the exchange is aborted). */
  protected buffer(controller: Dispatcher.DispatchController, chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.size > maxBufferedBody) {
      controller.abort(
        new GatewayError('upstream_bad_response', 'The upstream answer is larger than 64 MiB.'),
      );
      return false;
    }
    this.chunks.push(chunk);
    return true;
  }

  protected takeBuffered(): Buffer {
    const answer = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    return answer;
  }

  protected fail(error: Error): void {
    if (this.phase === 'done') return;
    if (error instanceof ClientGone || this.abortReason instanceof ClientGone) {
      this.finish(clientClosedStatus, undefined);
      return;
    }
    const failure =
      error instanceof GatewayError ? error : transportError(error, this.call.route.target.config.name);
    if (this.headSent) {
      this.call.response.end(this.call.surface.streamError(failure));
      this.finish(200, failure);
      return;
    }
    this.writeError(failure);
    this.finish(failure.status, failure);
  }

  /** Fails the exchange with `error`, stopping the upstream if it is still sending. */
  protected failWith(error: GatewayError): void {
    this.fail(error);
    this.controller?.abort(error);
  }

  protected writeError(error: GatewayError): void {
    const response = this.call.response;
    if (response.headersSent || response.destroyed) return;
    const { status, body } = this.call.surface.errorResponse(error);
    response.writeHead(status, {
      ...error.headers,
      'x-should-retry': error.retryable ? 'true' : 'false',
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': this.call.requestId,
      'server-timing': serverTiming(this.call.startedAt, performance.now() - this.upstreamStart),
    });
    response.end(body);
  }

  protected writeStreamHead(): void {
    this.headSent = true;
    this.call.response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-request-id': this.call.requestId,
      'server-timing': this.serverTimingValue,
    });
  }

  /** Writes stream text, pausing the upstream while the client's socket is full. */
  protected writeStream(text: string): void {
    if (!this.headSent) this.writeStreamHead();
    if (!this.call.response.write(text)) {
      this.controller?.pause();
      this.call.response.once('drain', this.onDrain);
    }
  }

  protected finish(status: number, error: GatewayError | undefined): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearTimeout(this.totalTimer);
    this.call.response.off('close', this.onClientClose);
    const now = performance.now();
    const record = this.record;
    record.status = status;
    record.duration_ms = round(now - this.call.startedAt);
    record.upstream_ms = round(now - this.upstreamStart);
    const usage = this.usage;
    if (usage) {
      record.prompt_tokens = usage.prompt_tokens;
      record.completion_tokens = usage.completion_tokens;
      record.total_tokens = usage.total_tokens;
    }
    if (error) record.error_code = error.code;
    this.call.observe(record);
  }

  protected abort(reason: Error): void {
    if (this.phase === 'done') return;
    this.abortReason ??= reason;
    if (this.controller) this.controller.abort(reason);
    // Still queued for a connection: answer now; onRequestStart cancels the dispatch later.
    else this.fail(reason);
  }

  protected readonly onClientClose = () => {
    if (!this.call.response.writableFinished) this.abort(new ClientGone());
  };

  protected readonly onTotalTimeout = () => {
    this.abort(
      new GatewayError(
        'request_timeout',
        `The request to "${this.call.route.target.config.name}" exceeded timeouts.total.`,
      ),
    );
  };

  protected readonly onDrain = () => this.controller?.resume();
}

/** "gateway;dur=0.21, upstream;dur=12.5": what Switchyard added, and what the upstream took. */
export function serverTiming(startedAt: number, upstreamTime: number): string {
  const total = performance.now() - startedAt;
  return `gateway;dur=${(total - upstreamTime).toFixed(3)}, upstream;dur=${upstreamTime.toFixed(3)}`;
}

export function round(milliseconds: number): number {
  return Math.round(milliseconds * 1000) / 1000;
}
