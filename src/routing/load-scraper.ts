import { type Dispatcher, request } from 'undici';
import type { LoadReading } from './balancer.js';

/**
 * Reads a server's queue from its Prometheus text exposition (format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/). Knows vLLM, the llama.cpp
 * server and Switchyard's runner, whose gauges are named after vLLM's. Samples of one metric add
 * up across label sets, as a server with several models (or vLLM's data-parallel engines) reports
 * one per model; cache usage takes the fullest instead, since it is a ratio. Returns undefined
 * when the page has none of the known metrics.
 *
 * @example
 * parseLoadMetrics('vllm:num_requests_waiting{model_name="m"} 3\n', performance.now());
 * // { waiting: 3, running: 0, cacheUsage: undefined, at: … }
 */
export function parseLoadMetrics(text: string, now: number): LoadReading | undefined {
  let waiting: number | undefined;
  let running: number | undefined;
  let cacheUsage: number | undefined;
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    const sample = readSample(text, lineStart, lineEnd);
    lineStart = lineEnd + 1;
    if (sample === undefined) continue;
    switch (sample.field) {
      case 'waiting':
        waiting = (waiting ?? 0) + sample.value;
        break;
      case 'running':
        running = (running ?? 0) + sample.value;
        break;
      case 'cacheUsage':
        cacheUsage = Math.max(cacheUsage ?? 0, sample.value);
        break;
    }
  }
  if (waiting === undefined && running === undefined && cacheUsage === undefined) return undefined;
  return { waiting: waiting ?? 0, running: running ?? 0, cacheUsage, at: now };
}

type LoadField = 'waiting' | 'running' | 'cacheUsage';

/** vLLM renamed its cache gauge in v0.10 and kept the old name for a while; both are read. */
const knownMetrics = new Map<string, LoadField>([
  ['vllm:num_requests_waiting', 'waiting'],
  ['vllm:num_requests_running', 'running'],
  ['vllm:kv_cache_usage_perc', 'cacheUsage'],
  ['vllm:gpu_cache_usage_perc', 'cacheUsage'],
  ['llamacpp:requests_deferred', 'waiting'],
  ['llamacpp:requests_processing', 'running'],
  ['llamacpp:kv_cache_usage_ratio', 'cacheUsage'],
  ['switchyard_runner_num_requests_waiting', 'waiting'],
  ['switchyard_runner_num_requests_running', 'running'],
]);

/**
 * The known metric and finite value on one line, or undefined for comments, other metrics and
 * NaN or infinite values (one odd sample should not make the whole sum meaningless).
 */
function readSample(
  text: string,
  start: number,
  end: number,
): { field: LoadField; value: number } | undefined {
  let cursor = start;
  while (cursor < end && isBlank(text.charCodeAt(cursor))) cursor++;
  if (cursor === end || text[cursor] === '#') return undefined;
  const nameStart = cursor;
  while (cursor < end && text[cursor] !== '{' && !isBlank(text.charCodeAt(cursor))) cursor++;
  const field = knownMetrics.get(text.slice(nameStart, cursor));
  if (field === undefined) return undefined;
  while (cursor < end && isBlank(text.charCodeAt(cursor))) cursor++;
  if (text[cursor] === '{') {
    cursor = skipLabels(text, cursor + 1, end);
    if (cursor === -1) return undefined;
  }
  while (cursor < end && isBlank(text.charCodeAt(cursor))) cursor++;
  const valueStart = cursor;
  while (cursor < end && !isBlank(text.charCodeAt(cursor))) cursor++;
  if (cursor === valueStart) return undefined;
  // What follows the value, if anything, is a timestamp, which a gauge's current value ignores.
  const value = Number(text.slice(valueStart, cursor));
  return Number.isFinite(value) ? { field, value } : undefined;
}

/** The index after the label set's closing brace, or -1 if the line ends first. Label values may hold `}` and escaped quotes. */
function skipLabels(text: string, cursor: number, end: number): number {
  let quoted = false;
  for (; cursor < end; cursor++) {
    const character = text[cursor];
    if (quoted) {
      if (character === '\\') cursor++;
      else if (character === '"') quoted = false;
    } else if (character === '"') {
      quoted = true;
    } else if (character === '}') {
      return cursor + 1;
    }
  }
  return -1;
}

/** Space, tab or the carriage return of a CRLF line. */
function isBlank(code: number): boolean {
  return code === 32 || code === 9 || code === 13;
}

export interface LoadScraperOptions {
  /** The server's metrics page, such as http://10.0.0.5:8000/metrics. */
  readonly url: string;
  readonly headers?: Record<string, string> | undefined;
  /** Ms between scrapes. */
  readonly interval: number;
  /** Ms a scrape may take, body included, before it counts as failed. */
  readonly timeout: number;
  /** Called after every scrape; undefined when it failed or the page has no known metrics. */
  readonly onReading: (reading: LoadReading | undefined) => void;
  readonly logger?: { warn(obj: object, msg: string): void } | undefined;
  /** Where a runner listens on a Unix socket, an undici Agent with its `socketPath`. */
  readonly dispatcher?: Dispatcher | undefined;
}

/**
 * Polls one deployment's metrics page in the background, so picking a deployment only reads the
 * last figures and never waits on a scrape. A failed scrape reports undefined at once: a stale
 * reading would keep showing a crashed server as idle.
 */
export class LoadScraper {
  readonly #options: LoadScraperOptions;
  /** The URL without its query, which may carry a token, for logs. */
  readonly #safeUrl: string;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: AbortController | undefined;
  #failing = false;

  constructor(options: LoadScraperOptions) {
    this.#options = options;
    const url = new URL(options.url);
    this.#safeUrl = `${url.protocol}//${url.host}${url.pathname}`;
  }

  /** Scrapes now, then every `interval`; the timer does not keep the process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.#scrape(), this.#options.interval).unref();
    void this.#scrape();
  }

  /** Stops the timer and abandons a scrape in flight; no reading is reported after this. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#inFlight?.abort();
    this.#inFlight = undefined;
  }

  async #scrape(): Promise<void> {
    // A slow server gets one scrape at a time, not a pile of them.
    if (this.#inFlight !== undefined) return;
    const controller = new AbortController();
    this.#inFlight = controller;
    let reading: LoadReading | undefined;
    let problem: { error?: unknown; reason: string } | undefined;
    try {
      const { url, headers, timeout, dispatcher } = this.#options;
      const response = await request(url, {
        method: 'GET',
        headers: { accept: 'text/plain', ...headers },
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(timeout)]),
        ...(dispatcher ? { dispatcher } : {}),
      });
      if (response.statusCode === 200) {
        reading = parseLoadMetrics(await response.body.text(), performance.now());
        if (reading === undefined) problem = { reason: 'the metrics page has no known load metrics' };
      } else {
        await response.body.dump();
        problem = { reason: `the metrics page answered ${response.statusCode}` };
      }
    } catch (error) {
      problem = { error, reason: 'the metrics page could not be read' };
    }
    if (this.#inFlight !== controller) return;
    this.#inFlight = undefined;
    if (problem !== undefined && !this.#failing) {
      this.#options.logger?.warn(
        { url: this.#safeUrl, err: problem.error },
        `load scrape failed: ${problem.reason}; routing treats the deployment as unscraped until it recovers`,
      );
    }
    this.#failing = problem !== undefined;
    this.#options.onReading(reading);
  }
}
