/**
 * A simulated OpenAI-compatible provider for integration tests: the one piece of the outside
 * world the suites replace. It answers in OpenAI's wire format (chat completions, legacy
 * completions, embeddings, models; JSON or SSE), records every request, and can be told to
 * misbehave the ways real upstreams do: error statuses, slow first bytes, stalls, resets,
 * streams cut off mid-way, requests that never get an answer, rate limits, a seeded error rate,
 * a scripted sequence of answers. Like a vLLM server it also answers GET /health and GET /metrics
 * (with a settable queue), and it can go down and come back on the same port (issue 5: routing
 * and reliability).
 * https://platform.openai.com/docs/api-reference/chat
 *
 * @example
 * const upstream = await startMockUpstream({ chunks: ['Hi', '!'] });
 * upstream.setBehaviour({ kind: 'stall', afterChunks: 2 });
 * // … point a gateway target at upstream.url, send a streaming request, abort it …
 * await upstream.abortedSignal(); // the gateway cancelled its upstream request
 * upstream.setSchedule([{ kind: 'reset' }, rateLimited({ retryAfter: 2 })], { kind: 'ok' });
 * upstream.setLoad({ waiting: 12 }); // a queue the gateway's balancer scrapes from /metrics
 * await upstream.pause(); // connection refused …
 * await upstream.resume(); // … until now
 * await upstream.close();
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from './seeded-random.js';

export interface RecordedRequest {
  method: string;
  /** Path and query as received, such as "/v1/chat/completions". */
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, decoded as UTF-8. */
  body: string;
  /** The body parsed as JSON; undefined when it is empty or not JSON. */
  json: any;
}

/**
 * How the mock answers. For streams, a "chunk" is one SSE event: the role chunk, each content
 * chunk, the finish chunk, the usage chunk (when asked for) and `[DONE]`, in that order. For a
 * JSON answer, `stall` and `cut` send the headers and then, when `afterChunks` > 0, the first
 * half of the body.
 */
export type Behaviour =
  /** A normal answer: JSON, or SSE when the request has `"stream": true`. */
  | { kind: 'ok' }
  /** `body` as JSON when an object, as text/plain when a string, an OpenAI envelope when absent. */
  | { kind: 'error'; status: number; body?: string | object; headers?: Record<string, string> }
  /** A slow first byte: waits `ms` before the response headers, then behaves as `then` (or ok). */
  | { kind: 'delay'; ms: number; then?: Behaviour }
  /** Sends `afterChunks` chunks, then nothing more, keeping the connection open. */
  | { kind: 'stall'; afterChunks: number }
  /**
   * Destroys the connection before any response bytes. By default the socket closes with a FIN,
   * which the client reads as "other side closed"; `rst: true` aborts it with a TCP RST, which
   * the client reads as ECONNRESET.
   */
  | { kind: 'reset'; rst?: boolean }
  /** Sends `afterChunks` chunks, then destroys the connection mid-response. */
  | { kind: 'cut'; afterChunks: number }
  /** Never answers, keeping the connection open. */
  | { kind: 'hang' };

/** A seeded, repeatable fault rate over every API request (probes of /health and /metrics excluded). */
export interface Faults {
  /** The share of requests, 0 to 1, answered with an error instead of their behaviour. */
  errorRate: number;
  /** The status of those errors. Default 500; 429 answers as `rateLimited()` does. */
  errorStatus?: number;
  /** The same seed gives the same faults on the same requests, counted from `setFaults`. */
  seed: number;
  /**
   * Delay added before the first byte, in ms: drawn uniformly from `p50 ± jitter` (never below
   * 0), so `p50` is the median. Default jitter 0.
   */
  latency?: { p50: number; jitter?: number };
}

/** The figures GET /metrics reports, as vLLM's scheduler does. */
export interface Load {
  /** vllm:num_requests_waiting. Default 0. */
  waiting?: number;
  /** vllm:num_requests_running. Default: the API requests the mock is serving right now. */
  running?: number;
  /** vllm:kv_cache_usage_perc, 0 to 1. Default 0. */
  cacheUsage?: number;
}

export interface MockUpstream {
  /** Base URL including "/v1", as a target's `url`: http://127.0.0.1:PORT/v1 */
  readonly url: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /**
   * Every API request received, in order, recorded before its behaviour applies. Probes of
   * /health and /metrics are counted (see `count`) but not recorded, so a gateway that polls
   * them does not move `requests.at(-1)`.
   */
  readonly requests: RecordedRequest[];
  /** Requests whose client closed the connection before the response finished. */
  readonly aborted: number;
  /**
   * Resolves the next time a client aborts a request: how a test sees cancellation reach the
   * upstream. Call it before causing the abort; an abort already counted does not resolve it.
   */
  abortedSignal(): Promise<void>;
  /**
   * Sets how subsequent requests are answered; a function decides per request. Drops whatever
   * is left of a schedule.
   */
  setBehaviour(behaviour: Behaviour | ((request: RecordedRequest) => Behaviour)): void;
  /**
   * The n-th API request from now is answered by `behaviours[n]`; once they are used up, `then`
   * applies (default: the behaviour set before).
   *
   * @example
   * upstream.setSchedule([{ kind: 'error', status: 503 }, { kind: 'reset' }]); // then ok again
   */
  setSchedule(behaviours: readonly Behaviour[], then?: Behaviour): void;
  /** Layers a seeded error rate and added latency over the behaviour (or schedule) of each request. */
  setFaults(faults: Faults): void;
  clearFaults(): void;
  /** Replaces what GET /metrics reports; a figure left out takes its default. */
  setLoad(load: Load): void;
  /**
   * Unhealthy: GET /health answers 503. With `failRequests`, every request, /metrics and the API
   * included, answers 503 too, as a server whose engine died behind a live socket does.
   */
  setHealthy(healthy: boolean, options?: { failRequests?: boolean }): void;
  /** Back to the start: ok, no schedule, no faults, default load, healthy. Keeps the records. */
  reset(): void;
  /**
   * Requests received on `path` (its query ignored), probes included and whatever they were
   * answered; without `path`, all of them. Unlike `requests`, never cleared.
   */
  count(path?: string): number;
  /**
   * Stops listening and drops every open connection, so new connections are refused
   * (ECONNREFUSED) as from a server that is down. Exchanges it cuts are not counted as aborted.
   */
  pause(): Promise<void>;
  /** Listens again on the same port. */
  resume(): Promise<void>;
  /** Closes the server, destroying every open connection, stalled or hanging ones included. */
  close(): Promise<void>;
}

export interface RateLimitOptions {
  /** Seconds until the client may retry, sent as `retry-after`. Default 1. */
  retryAfter?: number;
  /** Which limit was reached: requests or tokens per minute. Default 'requests'. */
  limit?: 'requests' | 'tokens';
  /** The model named in the message. Default 'mock-model'. */
  model?: string;
  /** x-ratelimit-limit-requests. Default 60. */
  requestsPerMinute?: number;
  /** x-ratelimit-limit-tokens. Default 150000. */
  tokensPerMinute?: number;
}

/**
 * A 429 as OpenAI sends it when a rate limit is reached: its envelope, `retry-after` in
 * seconds and the x-ratelimit-* headers, with the exhausted limit's remaining count at 0.
 * https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
 *
 * @example
 * upstream.setSchedule([rateLimited({ retryAfter: 2 })]); // one 429, then ok
 */
export function rateLimited(options: RateLimitOptions = {}): Behaviour {
  const retryAfter = options.retryAfter ?? 1;
  const limit = options.limit ?? 'requests';
  const model = options.model ?? 'mock-model';
  const requestsPerMinute = options.requestsPerMinute ?? 60;
  const tokensPerMinute = options.tokensPerMinute ?? 150_000;
  const reached = limit === 'requests' ? requestsPerMinute : tokensPerMinute;
  const unit = limit === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
  const wait = resetDuration(retryAfter);
  return {
    kind: 'error',
    status: 429,
    body: {
      error: {
        message: `Rate limit reached for ${model} in organization org-mock on ${unit}: Limit ${reached}, Used ${reached}, Requested 1. Please try again in ${wait}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
        type: limit,
        param: null,
        code: 'rate_limit_exceeded',
      },
    },
    headers: {
      'retry-after': String(retryAfter),
      'x-ratelimit-limit-requests': String(requestsPerMinute),
      'x-ratelimit-limit-tokens': String(tokensPerMinute),
      'x-ratelimit-remaining-requests': limit === 'requests' ? '0' : String(requestsPerMinute - 1),
      'x-ratelimit-remaining-tokens': limit === 'tokens' ? '0' : String(tokensPerMinute),
      'x-ratelimit-reset-requests': limit === 'requests' ? wait : '1s',
      'x-ratelimit-reset-tokens': limit === 'tokens' ? wait : '0s',
    },
  };
}

/** OpenAI writes reset times as Go durations: "20s", "6m0s", "1.5s". */
function resetDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

export interface MockUpstreamOptions {
  /** Milliseconds between two SSE events. Default 0. */
  chunkDelayMs?: number;
  /** The answer's content pieces; one SSE chunk each. Default: "Hello from the mock upstream." in 6 pieces. */
  chunks?: string[];
  /** The models GET /v1/models lists. Default ["mock-model"]. */
  models?: string[];
}

const defaultChunks = ['Hello', ' from', ' the', ' mock', ' upstream', '.'];
const fingerprint = 'fp_mock';

export async function startMockUpstream(options: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const chunks = options.chunks ?? defaultChunks;
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  const models = options.models ?? ['mock-model'];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let behaviour: Behaviour | ((request: RecordedRequest) => Behaviour) = { kind: 'ok' };
  let schedule: Behaviour[] = [];
  let faults: { settings: Faults; random: () => number } | undefined;
  let load: Load = {};
  let healthy = true;
  let failRequests = false;
  const counts = new Map<string, number>();
  let received = 0;
  // API exchanges recorded and not yet closed: vLLM's "running" when no load is set.
  let serving = 0;
  // Marks each open exchange as ended by the server, for pause(), which is no client abort.
  const openExchanges = new Set<() => void>();
  let aborted = 0;
  let waiters: (() => void)[] = [];
  let closing = false;
  let sequence = 0;

  const server = createServer((request, response) => {
    // Set when the mock itself ends the exchange early (reset, cut, pause), which is not a client abort.
    let endedByServer = false;
    const markEnded = () => {
      endedByServer = true;
    };
    openExchanges.add(markEnded);
    response.once('close', () => {
      openExchanges.delete(markEnded);
      if (response.writableFinished || endedByServer || closing) return;
      aborted++;
      const resolved = waiters;
      waiters = [];
      for (const resolve of resolved) resolve();
    });

    readBody(request).then(
      (raw) => {
        const path = (request.url ?? '/').split('?')[0]!;
        received++;
        counts.set(path, (counts.get(path) ?? 0) + 1);
        const isProbe = path === '/health' || path === '/metrics';
        // A client may leave between its last body byte and here; its close has already fired.
        if (!isProbe && !response.destroyed) {
          serving++;
          response.once('close', () => serving--);
        }
        if (failRequests) {
          if (!isProbe) requests.push(record(request, raw));
          sendError(response, { kind: 'error', status: 503, body: unhealthyEnvelope });
          return;
        }
        if (path === '/health') {
          sendJson(response, healthy ? 200 : 503, { status: healthy ? 'ok' : 'unhealthy' });
          return;
        }
        if (path === '/metrics') {
          sendMetrics(response);
          return;
        }
        const recorded = record(request, raw);
        requests.push(recorded);
        const exchange: Exchange = {
          request: recorded,
          response,
          id: ++sequence,
          destroy: (rst) => {
            endedByServer = true;
            if (rst) response.socket?.resetAndDestroy();
            else response.socket?.destroy();
          },
        };
        const { outcome, latency } = withFaults(choose(recorded));
        if (latency > 0) applyLater(exchange, latency, outcome);
        else apply(exchange, outcome);
      },
      () => {
        // The client went away while sending its body; the close handler has counted it.
      },
    );
  });

  const choose = (recorded: RecordedRequest): Behaviour => {
    const scheduled = schedule.shift();
    if (scheduled) return scheduled;
    return typeof behaviour === 'function' ? behaviour(recorded) : behaviour;
  };

  /** Two draws per request whatever they decide, so a seed maps to the same fault per request. */
  const withFaults = (chosen: Behaviour): { outcome: Behaviour; latency: number } => {
    if (!faults) return { outcome: chosen, latency: 0 };
    const { settings, random } = faults;
    const failDraw = random();
    const latencyDraw = random();
    let outcome = chosen;
    if (failDraw < settings.errorRate) {
      const status = settings.errorStatus ?? 500;
      outcome = status === 429 ? rateLimited() : { kind: 'error', status };
    }
    if (!settings.latency) return { outcome, latency: 0 };
    const { p50, jitter = 0 } = settings.latency;
    return { outcome, latency: Math.max(0, Math.round(p50 + jitter * (2 * latencyDraw - 1))) };
  };

  /** vLLM's Prometheus page, reduced to the scheduler gauges a load-aware balancer reads. */
  const sendMetrics = (response: ServerResponse): void => {
    const labels = `{engine="0",model_name="${escapeLabel(models[0] ?? 'mock-model')}"}`;
    const gauges: [name: string, help: string, value: number][] = [
      [
        'vllm:num_requests_running',
        'Number of requests in model execution batches.',
        load.running ?? serving,
      ],
      ['vllm:num_requests_waiting', 'Number of requests waiting to be processed.', load.waiting ?? 0],
      ['vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', load.cacheUsage ?? 0],
    ];
    const page = gauges
      .map(
        ([name, help, value]) =>
          `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${labels} ${pythonFloat(value)}\n`,
      )
      .join('');
    response.writeHead(200, {
      // What prometheus_client, which vLLM serves its page with, sends.
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(page),
    });
    response.end(page);
  };

  const apply = (exchange: Exchange, chosen: Behaviour): void => {
    const { response } = exchange;
    if (response.destroyed) return;
    switch (chosen.kind) {
      case 'ok':
        answer(exchange, undefined);
        return;
      case 'error':
        sendError(response, chosen);
        return;
      case 'delay':
        applyLater(exchange, chosen.ms, chosen.then ?? { kind: 'ok' });
        return;
      case 'stall':
        answer(exchange, { afterChunks: chosen.afterChunks, ending: 'stall' });
        return;
      case 'cut':
        answer(exchange, { afterChunks: chosen.afterChunks, ending: 'cut' });
        return;
      case 'reset':
        exchange.destroy(chosen.rst === true);
        return;
      case 'hang':
        return;
    }
  };

  const applyLater = (exchange: Exchange, ms: number, chosen: Behaviour): void => {
    const timer = setTimeout(() => apply(exchange, chosen), ms);
    exchange.response.once('close', () => clearTimeout(timer));
  };

  /** The normal answer for the request's endpoint, optionally broken off after some chunks. */
  const answer = (exchange: Exchange, breakOff: BreakOff | undefined): void => {
    const { request, response } = exchange;
    const path = request.path.split('?')[0];
    const route = `${request.method} ${path}`;
    if (request.method === 'POST' && (request.json === null || typeof request.json !== 'object')) {
      sendJson(response, 400, {
        error: {
          message:
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
      return;
    }
    const body = request.json ?? {};
    const created = Math.floor(Date.now() / 1000);
    const model = typeof body.model === 'string' ? body.model : 'mock-model';
    switch (route) {
      case 'POST /v1/chat/completions': {
        const usage = chatUsage(countChatWords(body.messages), chunks.length);
        const id = `chatcmpl-mock${exchange.id}`;
        if (body.stream === true) {
          const head = {
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            system_fingerprint: fingerprint,
          };
          const choice = (delta: object, finish: string | null) => ({
            index: 0,
            delta,
            logprobs: null,
            finish_reason: finish,
          });
          const events = [
            { ...head, choices: [choice({ role: 'assistant', content: '' }, null)] },
            ...chunks.map((content) => ({ ...head, choices: [choice({ content }, null)] })),
            { ...head, choices: [choice({}, 'stop')] },
          ];
          sendStream(response, withUsage(events, head, usage, body), breakOff, exchange);
          return;
        }
        const completion = {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: chunks.join(''), refusal: null },
              logprobs: null,
              finish_reason: 'stop',
            },
          ],
          usage,
          system_fingerprint: fingerprint,
        };
        sendJsonMaybeBroken(response, completion, breakOff, exchange);
        return;
      }
      case 'POST /v1/completions': {
        const usage = completionUsage(countWords(body.prompt), chunks.length);
        const id = `cmpl-mock${exchange.id}`;
        if (body.stream === true) {
          const head = { id, object: 'text_completion', created, model, system_fingerprint: fingerprint };
          const choice = (text: string, finish: string | null) => ({
            text,
            index: 0,
            logprobs: null,
            finish_reason: finish,
          });
          const events = [
            ...chunks.map((text) => ({ ...head, choices: [choice(text, null)] })),
            { ...head, choices: [choice('', 'stop')] },
          ];
          sendStream(response, withUsage(events, head, usage, body), breakOff, exchange);
          return;
        }
        const completion = {
          id,
          object: 'text_completion',
          created,
          model,
          system_fingerprint: fingerprint,
          choices: [{ text: chunks.join(''), index: 0, logprobs: null, finish_reason: 'stop' }],
          usage,
        };
        sendJsonMaybeBroken(response, completion, breakOff, exchange);
        return;
      }
      case 'POST /v1/embeddings': {
        const inputs: unknown[] =
          Array.isArray(body.input) && !isTokenArray(body.input) ? body.input : [body.input];
        const tokens = inputs.reduce<number>((sum, input) => sum + countWords(input), 0);
        const list = {
          object: 'list',
          data: inputs.map((input, index) => ({
            object: 'embedding',
            index,
            embedding: embed(JSON.stringify(input ?? null)),
          })),
          model,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        };
        sendJsonMaybeBroken(response, list, breakOff, exchange);
        return;
      }
      case 'GET /v1/models': {
        const list = {
          object: 'list',
          data: models.map((name) => ({
            id: name,
            object: 'model',
            created: 1_700_000_000,
            owned_by: 'mock',
          })),
        };
        sendJsonMaybeBroken(response, list, breakOff, exchange);
        return;
      }
      default:
        sendJson(response, 404, {
          error: {
            message: `Invalid URL (${route})`,
            type: 'invalid_request_error',
            param: null,
            code: null,
          },
        });
    }
  };

  const sendStream = (
    response: ServerResponse,
    events: readonly object[],
    breakOff: BreakOff | undefined,
    exchange: Exchange,
  ): void => {
    const frames = [...events.map((event) => `data: ${JSON.stringify(event)}\n\n`), 'data: [DONE]\n\n'];
    const limit = breakOff ? Math.min(breakOff.afterChunks, frames.length) : frames.length;
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.flushHeaders();
    void (async () => {
      for (let index = 0; index < limit; index++) {
        if (index > 0 && chunkDelayMs > 0) await sleep(chunkDelayMs);
        if (response.destroyed) return;
        response.write(frames[index]);
      }
      finishOrBreak(response, breakOff, exchange);
    })();
  };

  const sendJsonMaybeBroken = (
    response: ServerResponse,
    value: object,
    breakOff: BreakOff | undefined,
    exchange: Exchange,
  ): void => {
    if (!breakOff) {
      sendJson(response, 200, value);
      return;
    }
    const payload = Buffer.from(JSON.stringify(value));
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': payload.length });
    response.flushHeaders();
    if (breakOff.afterChunks > 0) response.write(payload.subarray(0, payload.length >> 1));
    finishOrBreak(response, breakOff, exchange);
  };

  const finishOrBreak = (
    response: ServerResponse,
    breakOff: BreakOff | undefined,
    exchange: Exchange,
  ): void => {
    if (response.destroyed) return;
    if (!breakOff) {
      response.end();
      return;
    }
    // Destroy only once what was written has left, so the client sees the chunks, then the cut.
    if (breakOff.ending === 'cut') response.write('', () => exchange.destroy(false));
  };

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.once('close', () => sockets.delete(socket));
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    requests,
    get aborted() {
      return aborted;
    },
    abortedSignal: () => new Promise<void>((resolve) => waiters.push(resolve)),
    setBehaviour(next) {
      behaviour = next;
      schedule = [];
    },
    setSchedule(behaviours, then) {
      schedule = [...behaviours];
      if (then) behaviour = then;
    },
    setFaults(settings) {
      faults = { settings: { ...settings }, random: seededRandom(settings.seed) };
    },
    clearFaults() {
      faults = undefined;
    },
    setLoad(next) {
      load = { ...next };
    },
    setHealthy(next, options = {}) {
      healthy = next;
      failRequests = !next && options.failRequests === true;
    },
    reset() {
      behaviour = { kind: 'ok' };
      schedule = [];
      faults = undefined;
      load = {};
      healthy = true;
      failRequests = false;
    },
    count: (path) => (path === undefined ? received : (counts.get(path.split('?')[0]!) ?? 0)),
    pause: async () => {
      if (!server.listening) return;
      for (const markEnded of openExchanges) markEnded();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    resume: async () => {
      if (!server.listening) await listen(port);
    },
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await closed;
    },
  };
}

interface Exchange {
  readonly request: RecordedRequest;
  readonly response: ServerResponse;
  /** A per-server sequence number, for distinct completion ids. */
  readonly id: number;
  /** Ends the exchange by destroying its socket (with a TCP RST when `rst`), not counted as a client abort. */
  readonly destroy: (rst: boolean) => void;
}

interface BreakOff {
  readonly afterChunks: number;
  readonly ending: 'stall' | 'cut';
}

interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details: { reasoning_tokens: number };
}

function chatUsage(prompt: number, completion: number): ChatUsage {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

function completionUsage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * With `stream_options.include_usage`, OpenAI puts `"usage": null` on every chunk and sends one
 * more chunk, with no choices, that carries the usage.
 */
function withUsage(events: readonly object[], head: object, usage: object, body: any): object[] {
  if (body.stream_options?.include_usage !== true) return [...events];
  return [...events.map((event) => ({ ...event, usage: null })), { ...head, choices: [], usage }];
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const payload = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  response.end(payload);
}

const errorTypes: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  429: 'rate_limit_error',
};

function sendError(response: ServerResponse, behaviour: Extract<Behaviour, { kind: 'error' }>): void {
  const body = behaviour.body ?? {
    error: {
      message: `Mock upstream error ${behaviour.status}.`,
      type: errorTypes[behaviour.status] ?? 'server_error',
      param: null,
      code: null,
    },
  };
  const isText = typeof body === 'string';
  const payload = isText ? body : JSON.stringify(body);
  response.writeHead(behaviour.status, {
    'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...behaviour.headers,
  });
  response.end(payload);
}

function record(request: IncomingMessage, raw: string): RecordedRequest {
  return {
    method: request.method ?? 'GET',
    path: request.url ?? '/',
    headers: request.headers,
    body: raw,
    json: parseJson(raw),
  };
}

const unhealthyEnvelope = {
  error: { message: 'Mock upstream is unhealthy.', type: 'server_error', param: null, code: null },
};

/** Prometheus label values escape backslash, double quote and newline. */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (character) => (character === '\n' ? '\\n' : `\\${character}`));
}

/** prometheus_client writes every sample as a Python float: 3 as "3.0". */
function pythonFloat(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    request.once('error', reject);
    request.once('close', () => {
      if (!request.complete) reject(new Error('client closed the request before its body ended'));
    });
  });
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A deterministic stand-in for a token count: words, or the length of a token-id array. */
function countWords(value: unknown): number {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean).length;
  if (Array.isArray(value)) {
    if (isTokenArray(value)) return value.length;
    return value.reduce<number>((sum, item) => sum + countWords(item), 0);
  }
  return 0;
}

function countChatWords(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let words = 0;
  for (const message of messages) {
    const content = (message as { content?: unknown } | null)?.content;
    if (typeof content === 'string') words += countWords(content);
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text = (part as { text?: unknown } | null)?.text;
        if (typeof text === 'string') words += countWords(text);
      }
    }
  }
  return words;
}

function isTokenArray(value: unknown[]): boolean {
  return value.length > 0 && value.every((item) => typeof item === 'number');
}

/** Eight floats in [-1, 1] derived from the input, so equal inputs embed equally. */
function embed(text: string): number[] {
  // FNV-1a seeds a small LCG; nothing here needs to be a good hash, only a stable one.
  let state = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    state ^= text.charCodeAt(index);
    state = Math.imul(state, 0x01000193) >>> 0;
  }
  const vector: number[] = [];
  for (let index = 0; index < 8; index++) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    vector.push(Math.round((state / 0xffffffff) * 2_000_000 - 1_000_000) / 1_000_000);
  }
  return vector;
}
