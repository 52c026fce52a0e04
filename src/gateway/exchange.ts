import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors/index.js';
import { transportError } from '../providers/transport-errors.js';
import type { Outcome } from '../routing/deployment.js';
import { failureClass } from '../routing/failure-class.js';
import type { Route } from '../routing/model-table.js';
import type { ChatUsage } from '../spec/openai-chat.js';
import type { ClientSurface } from '../surfaces/surface.js';
import type { RequestRecord } from '../telemetry/request-log.js';
import type { RequestObserver } from '../telemetry/request-observer.js';
import type { Attempt } from './attempts.js';

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
  /** The request's routing: where a failure before the first byte goes next. */
  readonly attempt: Attempt;
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
  /** What the client received, kept only while payload capture is on. */
  protected captured: string[] | undefined;
  #settled = false;

  constructor(call: ExchangeCall, streaming: boolean) {
    this.call = call;
    this.streaming = streaming;
    const { route } = call;
    this.record = requestRecord(
      call.requestId,
      call.startedAtEpoch,
      call.endpointPath,
      call.model,
      route,
      streaming,
      call.attempt.count,
      0,
    );
    // The total timeout is the request's, however many attempts it takes.
    this.totalTimer = setTimeout(
      this.onTotalTimeout,
      Math.max(1, call.attempt.deadline - this.upstreamStart),
    );
    call.response.once('close', this.onClientClose);
    if (call.attempt.context.capture !== undefined) this.captured = [];
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
    const firstByte = now - this.upstreamStart;
    this.record.first_byte_ms = round(firstByte);
    this.call.route.deployment.firstByte(firstByte, now);
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
    this.refuse(failure);
  }

  /**
   * The attempt failed before the client received a byte: the request's routing may send it
   * elsewhere (a retry, a fallback); otherwise the client gets the error.
   */
  protected refuse(failure: GatewayError): void {
    if (this.phase === 'done') return;
    this.#settle(failure, performance.now());
    const final = this.call.attempt.failed(this.call.route, failure);
    if (final !== undefined) {
      this.writeError(final);
      this.finish(final.status, final);
      return;
    }
    // Another attempt answers the client; this one only lets go.
    this.phase = 'done';
    clearTimeout(this.totalTimer);
    this.call.response.off('close', this.onClientClose);
  }

  /** Fails the exchange with `error`, stopping the upstream if it is still sending. */
  protected failWith(error: GatewayError): void {
    this.fail(error);
    this.controller?.abort(error);
  }

  protected writeError(error: GatewayError): void {
    writeErrorResponse(
      this.call.response,
      this.call.surface,
      error,
      this.call.requestId,
      this.call.startedAt,
      performance.now() - this.upstreamStart,
      this.call.route,
      this.call.attempt.count,
      this.call.attempt.request.grant?.headers,
    );
  }

  protected writeStreamHead(): void {
    this.headSent = true;
    const { deployment } = this.call.route;
    const headers: OutgoingHttpHeaders = {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-request-id': this.call.requestId,
      'server-timing': this.serverTimingValue,
      'x-switchyard-target': deployment.name,
      'x-switchyard-attempts': this.call.attempt.count,
    };
    if (deployment.version !== undefined) headers['x-switchyard-version'] = deployment.version;
    const limits = this.call.attempt.request.grant?.headers;
    if (limits !== undefined) Object.assign(headers, limits);
    this.call.response.writeHead(200, headers);
  }

  /** Writes a whole answer's head: its status and type, and which deployment served it. */
  protected writeAnswerHead(status: number, contentType: string, length: number): void {
    const { deployment } = this.call.route;
    const headers: OutgoingHttpHeaders = {
      'content-type': contentType,
      'content-length': length,
      'x-request-id': this.call.requestId,
      'server-timing': serverTiming(this.call.startedAt, performance.now() - this.upstreamStart),
      'x-switchyard-target': deployment.name,
      'x-switchyard-attempts': this.call.attempt.count,
    };
    if (deployment.version !== undefined) headers['x-switchyard-version'] = deployment.version;
    const limits = this.call.attempt.request.grant?.headers;
    if (limits !== undefined) Object.assign(headers, limits);
    this.call.response.writeHead(status, headers);
  }

  /** Ends a whole answer with `body` (its head written), keeping a copy while capture is on. */
  protected endAnswer(body: Buffer | string): void {
    this.captured?.push(typeof body === 'string' ? body : body.toString('utf8'));
    this.call.response.end(body);
  }

  /** Writes stream text, pausing the upstream while the client's socket is full. */
  protected writeStream(text: string): void {
    if (!this.headSent) this.writeStreamHead();
    this.captured?.push(text);
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
    this.#settle(status === clientClosedStatus ? clientGone : error, now);
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
    this.#account(status, usage);
  }

  /**
   * Settles the request's grant with what it used (its reservation back when it failed), charges
   * its cost, and captures its payloads when capture is on.
   */
  #account(status: number, usage: ChatUsage | undefined): void {
    const { attempt, route } = this.call;
    const { context, request } = attempt;
    // A failed request used no tokens; one the client left mid-answer used what the estimate says.
    const served =
      status < 400 || status === clientClosedStatus
        ? {
            upstreamModel: route.upstreamModel,
            local: route.target.config.kind === 'local',
            price: route.deployment.price,
          }
        : undefined;
    const grant = request.grant;
    if (grant !== undefined) context.access.settle(grant, usage, served);
    else if (served !== undefined) context.access.account(this.call.model, usage, served);
    if (this.captured !== undefined && context.capture !== undefined) {
      context.capture.capture(
        this.call.requestId,
        request.rawBody ?? Buffer.alloc(0),
        Buffer.from(this.captured.join(''), 'utf8'),
        Date.now(),
      );
      this.captured = undefined;
    }
  }

  /** Tells the deployment how the attempt went, once: for its breaker and latency average. */
  #settle(error: GatewayError | typeof clientGone | undefined, now: number): void {
    if (this.#settled) return;
    this.#settled = true;
    this.call.route.deployment.settle(outcomeOf(error), now - this.upstreamStart, now);
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

/** The request-log record of an attempt on `route`, its outcome filled in as the attempt goes. */
export function requestRecord(
  id: string,
  startedAtEpoch: number,
  endpoint: string,
  model: string,
  route: Route,
  stream: boolean,
  attempts: number,
  shadow: 0 | 1,
): RequestRecord {
  return {
    id,
    started_at: startedAtEpoch,
    endpoint,
    model,
    target: route.target.config.name,
    upstream_model: route.upstreamModel,
    status: 0,
    stream: stream ? 1 : 0,
    prompt_tokens: null,
    completion_tokens: null,
    total_tokens: null,
    duration_ms: 0,
    upstream_ms: null,
    first_byte_ms: null,
    error_code: null,
    deployment: route.deployment.name,
    version: route.deployment.version ?? null,
    attempts,
    shadow,
  };
}

const clientGone = Symbol('client gone');

/**
 * What an attempt's end says about the deployment: its own trouble (5xx, timeouts, refused
 * connections, rate limits, bad credentials) counts against it; a request it rightly rejected, or
 * a client that left, says nothing.
 */
function outcomeOf(error: GatewayError | typeof clientGone | undefined): Outcome {
  if (error === undefined) return 'success';
  if (error === clientGone) return 'neutral';
  const failure = failureClass(error);
  return failure === undefined || failure === 'context_window' || failure === 'content_policy'
    ? 'success'
    : 'failure';
}

/**
 * Answers with an error in the client's surface format, if nothing was sent yet, with the
 * headers every error carries: x-should-retry from the catalogue, and the deployment that
 * failed when there was one.
 */
export function writeErrorResponse(
  response: ServerResponse,
  surface: ClientSurface,
  error: GatewayError,
  requestId: string,
  startedAt: number,
  upstreamTime: number,
  route?: Route,
  attempts?: number,
  extra?: OutgoingHttpHeaders,
): void {
  if (response.headersSent || response.destroyed) return;
  const { status, body } = surface.errorResponse(error);
  const headers: OutgoingHttpHeaders = {
    ...error.headers,
    'x-should-retry': error.retryable ? 'true' : 'false',
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'server-timing': serverTiming(startedAt, upstreamTime),
  };
  if (route !== undefined) {
    headers['x-switchyard-target'] = route.deployment.name;
    if (route.deployment.version !== undefined) headers['x-switchyard-version'] = route.deployment.version;
  }
  if (attempts !== undefined) headers['x-switchyard-attempts'] = attempts;
  if (extra !== undefined) Object.assign(headers, extra);
  response.writeHead(status, headers);
  response.end(body);
}

/** "gateway;dur=0.21, upstream;dur=12.5": what Switchyard added, and what the upstream took. */
export function serverTiming(startedAt: number, upstreamTime: number): string {
  const total = performance.now() - startedAt;
  return `gateway;dur=${(total - upstreamTime).toFixed(3)}, upstream;dur=${upstreamTime.toFixed(3)}`;
}

export function round(milliseconds: number): number {
  return Math.round(milliseconds * 1000) / 1000;
}
