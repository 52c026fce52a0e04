import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors/index.js';
import { extractUsage, upstreamFailure } from '../providers/openai-compatible.js';
import { transportError } from '../providers/transport-errors.js';
import type { Route } from '../routing/model-table.js';
import type { Endpoint, ProxyRequestBody } from '../spec/openai.js';
import type { ChatRequest, ChatUsage } from '../spec/openai-chat.js';
import type { RequestRecord } from '../telemetry/request-log.js';
import type { Attempt } from './attempts.js';
import { maxBufferedBody, requestRecord, round } from './exchange.js';
import { planChat } from './translated-proxy.js';

/**
 * Shadow traffic: a copy of a client's request sent to a candidate deployment, whose answer is
 * recorded in the request log (status, latency, tokens, tagged `shadow`) and never returned. It
 * is sent after the real request, non-streamed, on the candidate's own connections, so it cannot
 * change or delay the real answer; a failing shadow costs nothing but its own record.
 */
export function shadowPassthrough(
  route: Route,
  attempt: Attempt,
  endpoint: Endpoint,
  body: ProxyRequestBody,
): void {
  const { target } = route;
  const copy = { ...body, model: route.upstreamModel, stream: false, stream_options: undefined };
  send(route, attempt, target.pathFor(endpoint, route.upstreamModel), target.headers, JSON.stringify(copy), {
    usage: (answer) => extractUsage(answer),
    failure: (status, headers, answer) => upstreamFailure(status, headers, answer, target.config.name),
  });
}

/** A shadow copy of a chat request to a deployment with another wire schema. */
export function shadowTranslated(route: Route, attempt: Attempt, request: ChatRequest): void {
  const { adapter, config } = route.target;
  const call = planChat({ ...request, stream: false, stream_options: undefined }, route);
  const context = {
    id: `chatcmpl-${attempt.request.id}`,
    created: Math.floor(attempt.request.startedAtEpoch / 1000),
    model: attempt.model,
    targetName: config.name,
    includeUsage: false,
  };
  send(route, attempt, call.path, call.headers, call.body, {
    usage: (answer) => adapter.chatResponse(answer, context).usage,
    failure: (status, headers, answer) => adapter.failure(status, headers, answer, config.name),
  });
}

interface AnswerReader {
  usage(answer: string): ChatUsage | undefined;
  failure(status: number, headers: IncomingHttpHeaders, answer: string): GatewayError;
}

function send(
  route: Route,
  attempt: Attempt,
  path: string,
  headers: readonly string[],
  body: string | Buffer,
  reader: AnswerReader,
): void {
  const { request } = attempt;
  const record = requestRecord(
    request.id,
    Date.now(),
    attempt.endpointPath,
    attempt.model,
    route,
    false,
    1,
    1,
  );
  const handler = new ShadowExchange(route, attempt, record, reader);
  route.pool.dispatch(
    {
      method: 'POST',
      path,
      headers: headers.concat('x-request-id', request.id),
      body,
      headersTimeout: route.target.config.timeouts.firstByte,
      bodyTimeout: route.target.config.timeouts.idle,
    },
    handler,
  );
}

/** Reads a shadow's answer whole and records it; nothing of it reaches the client. */
class ShadowExchange implements Dispatcher.DispatchHandler {
  readonly #route: Route;
  readonly #attempt: Attempt;
  readonly #record: RequestRecord;
  readonly #reader: AnswerReader;
  readonly #start = performance.now();
  readonly #timer: NodeJS.Timeout;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #chunks: Buffer[] = [];
  #size = 0;
  #done = false;

  constructor(route: Route, attempt: Attempt, record: RequestRecord, reader: AnswerReader) {
    this.#route = route;
    this.#attempt = attempt;
    this.#record = record;
    this.#reader = reader;
    this.#timer = setTimeout(this.#onTimeout, route.target.config.timeouts.total);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (status < 200) return;
    this.#status = status;
    this.#headers = headers;
    this.#record.first_byte_ms = round(performance.now() - this.#start);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > maxBufferedBody) {
      controller.abort(new GatewayError('upstream_bad_response', 'The shadow answer is larger than 64 MiB.'));
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    const answer = Buffer.concat(this.#chunks, this.#size).toString('utf8');
    this.#chunks = [];
    if (this.#status >= 300) {
      this.#finish(this.#status, this.#reader.failure(this.#status, this.#headers, answer));
      return;
    }
    try {
      const usage = this.#reader.usage(answer);
      if (usage !== undefined) {
        this.#record.prompt_tokens = usage.prompt_tokens;
        this.#record.completion_tokens = usage.completion_tokens;
        this.#record.total_tokens = usage.total_tokens;
      }
      this.#finish(this.#status, undefined);
    } catch (error) {
      const failure =
        error instanceof GatewayError ? error : transportError(error, this.#route.target.config.name);
      this.#finish(failure.status, failure);
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const failure = transportError(error, this.#route.target.config.name);
    this.#finish(failure.status, failure);
  }

  readonly #onTimeout = (): void => {
    const failure = new GatewayError(
      'request_timeout',
      `The shadow request to "${this.#route.target.config.name}" exceeded timeouts.total.`,
    );
    if (this.#controller !== undefined) this.#controller.abort(failure);
    else this.#finish(failure.status, failure);
  };

  #finish(status: number, error: GatewayError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    const duration = performance.now() - this.#start;
    this.#route.deployment.settle(error === undefined ? 'success' : 'failure', duration);
    const record = this.#record;
    record.status = status;
    record.duration_ms = round(duration);
    record.upstream_ms = record.duration_ms;
    if (error !== undefined) record.error_code = error.code;
    this.#attempt.context.observe(record);
  }
}
