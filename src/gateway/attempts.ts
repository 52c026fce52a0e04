import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FailureClass } from '../config/types.js';
import { parseDuration } from '../config/units.js';
import { GatewayError } from '../errors/index.js';
import { backoffDelay, retryAfterDelay } from '../routing/backoff.js';
import type { Deployment } from '../routing/deployment.js';
import { failureClass, isRetryable } from '../routing/failure-class.js';
import { type Route, type RoutedModel, RoutingRequest, routeTo } from '../routing/model-table.js';
import type { ClientSurface } from '../surfaces/surface.js';
import { clientClosedStatus, requestRecord, round, writeErrorResponse } from './exchange.js';
import type { GatewayContext } from './server.js';

/** How a route sends a request: plans it for a target and starts the exchange. */
export interface Launcher {
  /**
   * Sends one attempt of `attempt`'s request to `route`. Throws a GatewayError when the request
   * cannot go there (a parameter the target cannot carry); nothing has been sent then.
   */
  launch(route: Route, attempt: Attempt): void;
  /** Sends a non-streamed copy of the request to a shadow deployment; its answer is only recorded. */
  shadow?(route: Route, attempt: Attempt): void;
}

/** Per-request timeouts a client may ask for, never longer than the target's own. */
const timeoutHeaders = {
  total: 'x-switchyard-timeout',
  firstByte: 'x-switchyard-first-byte-timeout',
  idle: 'x-switchyard-idle-timeout',
} as const;

/**
 * One client request's way through routing: the model it names (after conditional routes), the
 * deployment each attempt goes to, and what happens when an attempt fails before the client has
 * received a byte — a retry on the model (another deployment first, with backoff and within the
 * gateway's retry budget), then the model's fallbacks, then one error naming every attempt.
 *
 * Exchanges report a failure with `failed()`; after the first byte reached the client nothing is
 * retried and the stream ends with an error event instead.
 */
export class Attempt {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly response: ServerResponse;
  readonly context: GatewayContext;
  readonly surface: ClientSurface;
  readonly endpointPath: string;
  /** The model name the client sent. */
  readonly model: string;
  readonly launcher: Launcher;
  /** Attempts sent so far, retries and fallbacks included. */
  count = 0;
  /** performance.now() after which no attempt may run: the request's total timeout. */
  deadline = 0;
  /** A client's shorter first-byte and idle timeouts (headers), if it asked. */
  readonly firstByteLimit: number | undefined;
  readonly idleLimit: number | undefined;
  readonly #totalLimit: number | undefined;
  /** Built on first use: most models route without looking at the request. */
  #routing: RoutingRequest | undefined;
  #entry: RoutedModel | undefined;
  #root: RoutedModel | undefined;
  #tail = '';
  #modelAttempts = 0;
  /** Deployments of the current model that failed this request; built on the first failure. */
  #tried: Deployment[] | undefined;
  /** "model/deployment: cause" of each failed attempt; built on the first failure. */
  #failures: string[] | undefined;
  #fallbackPositions: Map<readonly string[], number> | undefined;
  #hijacked = false;
  #waiting: { timer: NodeJS.Timeout; route: Route } | undefined;

  constructor(
    context: GatewayContext,
    request: FastifyRequest,
    reply: FastifyReply,
    surface: ClientSurface,
    launcher: Launcher,
    endpointPath: string,
    model: string,
  ) {
    this.context = context;
    this.request = request;
    this.reply = reply;
    this.response = reply.raw;
    this.surface = surface;
    this.launcher = launcher;
    this.endpointPath = endpointPath;
    this.model = model;
    const { headers } = request;
    this.#totalLimit =
      headers[timeoutHeaders.total] === undefined ? undefined : timeoutHeader(request, 'total');
    this.firstByteLimit =
      headers[timeoutHeaders.firstByte] === undefined ? undefined : timeoutHeader(request, 'firstByte');
    this.idleLimit = headers[timeoutHeaders.idle] === undefined ? undefined : timeoutHeader(request, 'idle');
  }

  /**
   * Chooses the first deployment and sends the first attempt. Throws (before the response is
   * taken over) when the model is unknown or nothing can serve it, so the error handler answers.
   */
  start(): void {
    const { table } = this.context.snapshot;
    const found = table.lookup(this.model);
    if (found === undefined) throw modelNotFound(this.model, table.models);
    const served = found.entry.conditions.length > 0 ? table.follow(found, this.#request()) : found;
    this.#root = served.entry;
    this.context.retryBudget.onRequest();
    let route: Route;
    const deployment = served.entry.choose(this.#requestFor(served.entry));
    if (deployment === undefined) {
      const unavailable = served.entry.unavailable();
      this.#failure(`${served.entry.config.name}: ${unavailable.message}`);
      const fallback = this.#fallback(failureClass(unavailable));
      if (fallback === undefined) {
        // Nothing was sent: say so, as every other answer says how many attempts it took.
        unavailable.headers!['x-switchyard-attempts'] = '0';
        throw unavailable;
      }
      route = fallback;
    } else {
      this.#entry = served.entry;
      this.#tail = served.tail;
      route = routeTo(deployment, served.tail);
    }
    const total = route.target.config.timeouts.total;
    this.deadline =
      this.request.startedAt + (this.#totalLimit === undefined ? total : Math.min(total, this.#totalLimit));
    try {
      this.#checkRunner(route);
      this.#send(route);
    } catch (error) {
      // Nothing was sent: give the deployment back, or its in-flight count would never fall.
      route.deployment.settle('neutral', 0);
      throw error;
    }
    const shadows = served.entry.shadows;
    if (shadows.length > 0 && this.launcher.shadow !== undefined) this.#mirror(served.entry, served.tail);
  }

  #request(): RoutingRequest {
    this.#routing ??= new RoutingRequest(
      this.request.body as Record<string, unknown>,
      this.request.headers,
      this.request.grant?.caller,
    );
    return this.#routing;
  }

  /** The request, for a model whose choice depends on it (splits, affinity); else undefined. */
  #requestFor(entry: RoutedModel): RoutingRequest | undefined {
    return entry.readsRequest ? this.#request() : undefined;
  }

  #failure(description: string): void {
    this.#failures ??= [];
    this.#failures.push(description);
  }

  /** Takes the response over from Fastify; the exchanges write it from now on. */
  hijack(): void {
    if (this.#hijacked) return;
    this.#hijacked = true;
    this.reply.hijack();
  }

  /** The first-byte timeout for an attempt on `route`: the target's, or the client's shorter one. */
  firstByteTimeout(route: Route): number {
    const own = route.target.config.timeouts.firstByte;
    return this.firstByteLimit === undefined ? own : Math.min(own, this.firstByteLimit);
  }

  idleTimeout(route: Route): number {
    const own = route.target.config.timeouts.idle;
    return this.idleLimit === undefined ? own : Math.min(own, this.idleLimit);
  }

  /**
   * An attempt on `route` failed before the client received a byte. Returns the error to answer
   * with, or undefined when another attempt has been scheduled and will answer instead.
   */
  failed(route: Route, error: GatewayError): GatewayError | undefined {
    const failure = failureClass(error);
    this.#failure(`${route.deployment.key}: ${error.message}`);
    if (route.deployment.model === this.#entry?.config) {
      this.#tried ??= [];
      this.#tried.push(route.deployment);
    }
    if (this.response.destroyed || performance.now() >= this.deadline) return this.#aggregate(error);
    const next = this.#retry(route, error, failure) ?? this.#fallback(failure);
    if (next === undefined) return this.#aggregate(error);
    return undefined;
  }

  /** A retry on the same model, if the error, the model's policy and the budget allow one. */
  #retry(route: Route, error: GatewayError, failure: FailureClass | undefined): Route | undefined {
    const entry = this.#entry;
    if (entry === undefined || !isRetryable(error, failure)) return undefined;
    const { retries } = entry.config.routing;
    const remaining = this.deadline - performance.now();
    if (this.#modelAttempts > retries.attempts || remaining <= 0) return undefined;
    const deployment = entry.choose(this.#requestFor(entry), this.#tried);
    if (deployment === undefined) return undefined;
    let wait = 0;
    if (deployment === route.deployment) {
      // The same deployment again: back off, and honour its Retry-After if it is short enough.
      const asked = retryAfterDelay(error.headers, Date.now()) ?? 0;
      wait = Math.max(
        backoffDelay(
          this.#modelAttempts,
          { base: retries.backoff, max: retries.maxBackoff },
          this.context.random,
        ),
        asked,
      );
      if (wait > retries.maxBackoff || wait >= remaining) {
        deployment.settle('neutral', 0);
        return undefined;
      }
    }
    if (!this.context.retryBudget.tryRetry()) {
      deployment.settle('neutral', 0);
      return undefined;
    }
    const next = routeTo(deployment, this.#tail);
    this.#schedule(next, wait);
    return next;
  }

  /** The next fallback model with a deployment to take the request, for a failure of this class. */
  #fallback(failure: FailureClass | undefined): Route | undefined {
    const routing = this.#root?.config.routing;
    if (routing === undefined || failure === undefined) return undefined;
    const list =
      failure === 'context_window'
        ? routing.contextWindowFallbacks
        : failure === 'content_policy'
          ? routing.contentPolicyFallbacks
          : routing.fallbackOn.includes(failure)
            ? routing.fallbacks
            : undefined;
    if (list === undefined || list.length === 0) return undefined;
    this.#fallbackPositions ??= new Map();
    const { table } = this.context.snapshot;
    for (let position = this.#fallbackPositions.get(list) ?? 0; position < list.length; ) {
      const name = list[position++]!;
      this.#fallbackPositions.set(list, position);
      const found = table.lookup(name);
      if (found === undefined) continue;
      const deployment = found.entry.choose(this.#requestFor(found.entry));
      if (deployment === undefined) {
        this.#failure(`${name}: ${found.entry.unavailable().message}`);
        continue;
      }
      this.#entry = found.entry;
      this.#tail = found.tail;
      this.#modelAttempts = 0;
      this.#tried = undefined;
      const route = routeTo(deployment, found.tail);
      // Before the first attempt the caller sends it; afterwards it is scheduled from here.
      if (this.count > 0) this.#schedule(route, 0);
      return route;
    }
    return undefined;
  }

  /** Sends `route` after `delay` ms (next turn of the event loop at least), unless the client leaves. */
  #schedule(route: Route, delay: number): void {
    const timer = delay === 0 ? setTimeout(this.#resume, 0) : setTimeout(this.#resume, delay);
    this.#waiting = { timer, route };
    this.response.once('close', this.#onCloseWhileWaiting);
  }

  readonly #resume = (): void => {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    this.response.off('close', this.#onCloseWhileWaiting);
    const { route } = waiting;
    try {
      this.#checkRunner(route);
      this.#send(route);
    } catch (error) {
      route.deployment.settle('neutral', 0);
      const failure =
        error instanceof GatewayError
          ? error
          : new GatewayError('internal_error', undefined, { cause: error });
      const final = this.failed(route, failure);
      if (final !== undefined) this.#answer(final, route);
    }
  };

  readonly #onCloseWhileWaiting = (): void => {
    const waiting = this.#waiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    clearTimeout(waiting.timer);
    waiting.route.deployment.settle('neutral', 0);
    this.#record(clientClosedStatus, undefined, waiting.route);
  };

  #send(route: Route): void {
    this.count++;
    this.#modelAttempts++;
    this.launcher.launch(route, this);
  }

  #checkRunner(route: Route): void {
    if (route.target.config.kind === 'local' && !this.context.runnerReady()) {
      throw new GatewayError(
        'runner_unavailable',
        `The local runner serving "${this.model}" is starting or restarting. Retry in a moment.`,
        { headers: { 'retry-after': '1' } },
      );
    }
  }

  /** Mirrors the request to a sampled shadow deployment, after the real one is on its way. */
  #mirror(entry: RoutedModel, tail: string): void {
    const shadow = entry.shadowFor();
    if (shadow === undefined) return;
    setImmediate(() => {
      try {
        this.launcher.shadow!(routeTo(shadow, tail), this);
      } catch (error) {
        shadow.settle('neutral', 0);
        this.context.logger.warn(
          { err: error, id: this.request.id, deployment: shadow.key },
          'shadow request not sent',
        );
      }
    });
  }

  /** One error for a request whose every attempt failed, naming each attempt and its cause. */
  #aggregate(last: GatewayError): GatewayError {
    const failures = this.#failures;
    if (failures === undefined || failures.length <= 1) return last;
    const attempts = failures.map((failure, index) => `(${index + 1}) ${failure}`).join(' ');
    return new GatewayError(last.code, `All ${failures.length} attempts failed. ${attempts}`, {
      status: last.status,
      param: last.param,
      headers: last.headers,
      upstream: last.upstream,
      cause: last,
    });
  }

  /** Answers with an error when no exchange is left to do it (a scheduled attempt that could not start). */
  #answer(error: GatewayError, route: Route): void {
    this.hijack();
    writeErrorResponse(
      this.response,
      this.surface,
      error,
      this.request.id,
      this.request.startedAt,
      0,
      undefined,
      undefined,
      this.request.grant?.headers,
    );
    this.#record(error.status, error, route);
  }

  #record(status: number, error: GatewayError | undefined, route: Route): void {
    const stream = (this.request.body as { stream?: unknown }).stream === true;
    const record = requestRecord(
      this.request.id,
      this.request.startedAtEpoch,
      this.endpointPath,
      this.model,
      route,
      stream,
      this.count,
      0,
    );
    record.status = status;
    record.duration_ms = round(performance.now() - this.request.startedAt);
    record.error_code = error?.code ?? null;
    this.context.observe(record);
    // Ended without an exchange to settle it: nothing was used.
    if (this.request.grant !== undefined)
      this.context.access.settle(this.request.grant, undefined, undefined);
  }
}

/** A timeout header in milliseconds ("30s", "500ms", or a number of ms); 400 when unreadable. */
function timeoutHeader(request: FastifyRequest, which: keyof typeof timeoutHeaders): number {
  const name = timeoutHeaders[which];
  const raw = request.headers[name];
  const parsed = typeof raw === 'string' ? parseDuration(/^\d+$/.test(raw) ? Number(raw) : raw) : undefined;
  if (parsed === undefined || parsed <= 0) {
    throw new GatewayError(
      'invalid_header',
      `${name} must be a positive duration such as "30s" or "500ms" (or a number of milliseconds); it can only shorten the model's own timeout.`,
    );
  }
  return parsed;
}

const listedModels = 20;

/** 404 naming the models there are, so a typo is easy to spot. */
export function modelNotFound(name: string, models: readonly { readonly name: string }[]): GatewayError {
  const names = models.map((model) => model.name);
  if (names.length === 0) {
    return new GatewayError(
      'model_not_found',
      `The model "${name}" does not exist: no models are configured. Start Switchyard with --config FILE, or set a provider key such as OPENAI_API_KEY.`,
      { param: 'model' },
    );
  }
  const shown = names.slice(0, listedModels).join(', ');
  const more = names.length > listedModels ? ` and ${names.length - listedModels} more (GET /v1/models)` : '';
  return new GatewayError(
    'model_not_found',
    `The model "${name}" does not exist. Available models: ${shown}${more}.`,
    {
      param: 'model',
    },
  );
}
