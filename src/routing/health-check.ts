import { type Dispatcher, request } from 'undici';
import type { Logger } from '../telemetry/logger.js';

export interface HealthCheckSettings {
  /** The full URL to GET, such as "http://10.0.0.5:8000/health". */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Time from the end of one check to the start of the next, ms. */
  readonly interval: number;
  /** How long one check may take, connecting included, ms. */
  readonly timeout: number;
  /** Failed checks in a row that mark the target unhealthy; default 2, so one lost packet does not. */
  readonly unhealthyThreshold?: number | undefined;
  /** Passed checks in a row that mark it healthy again; default 1. */
  readonly healthyThreshold?: number | undefined;
  /** Told when the target turns unhealthy or healthy, with the latest check's reason. */
  readonly onChange: (healthy: boolean, reason: string) => void;
  /** A logger that already names the target; it hears of transitions. */
  readonly logger?: Logger | undefined;
  /** The connection pool to check through; undici's global one when left out. */
  readonly dispatcher?: Dispatcher | undefined;
}

export const healthCheckDefaults = Object.freeze({ unhealthyThreshold: 2, healthyThreshold: 1 });

/** A health answer is a few bytes; past this the connection is dropped rather than read. */
const bodyReadLimit = 64 * 1024;

interface CheckResult {
  readonly passed: boolean;
  readonly reason: string;
}

/**
 * Active health checks for one target: a GET on an interval, where 2xx passes and anything else,
 * a timeout or a connection error fails. The target starts healthy, since nothing is known
 * against it and a freshly started gateway should serve. Checks never overlap: the next one is
 * scheduled when the last has finished, and the timer is unref'd so it never keeps the process up.
 *
 * @example
 * const checker = new HealthChecker({
 *   url: 'http://127.0.0.1:8000/health', interval: 5_000, timeout: 2_000,
 *   onChange: (healthy, reason) => table.setHealthy('vllm-a', healthy, reason),
 * });
 * checker.start();
 * // … on shutdown or config reload:
 * checker.stop();
 */
export class HealthChecker {
  readonly #settings: HealthCheckSettings;
  readonly #unhealthyThreshold: number;
  readonly #healthyThreshold: number;
  #healthy = true;
  #lastReason: string | undefined;
  #failuresInRow = 0;
  #passesInRow = 0;
  /** Bumped by start and stop, so a check that outlives a stop cannot report or reschedule. */
  #generation = 0;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: AbortController | undefined;

  constructor(settings: HealthCheckSettings) {
    this.#settings = settings;
    this.#unhealthyThreshold = settings.unhealthyThreshold ?? healthCheckDefaults.unhealthyThreshold;
    this.#healthyThreshold = settings.healthyThreshold ?? healthCheckDefaults.healthyThreshold;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Why the latest check passed or failed ("HTTP 503", "connection refused" …); undefined before the first. */
  get lastReason(): string | undefined {
    return this.#lastReason;
  }

  /** Checks at once, then every interval until stop. Calling it again while running does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#tick(++this.#generation);
  }

  /** Stops checking and abandons a check in flight; the health last reported stands. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inFlight?.abort();
  }

  async #tick(generation: number): Promise<void> {
    const result = await this.#check();
    if (generation !== this.#generation) return;
    try {
      this.#record(result);
    } catch (error) {
      // A fault in onChange must not end the checks, nor surface as an unhandled rejection.
      this.#settings.logger?.error({ err: error }, 'health check listener failed');
    }
    this.#timer = setTimeout(() => void this.#tick(generation), this.#settings.interval).unref();
  }

  async #check(): Promise<CheckResult> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#settings.timeout).unref();
    this.#inFlight = controller;
    try {
      const response = await request(this.#settings.url, {
        method: 'GET',
        headers: this.#settings.headers,
        signal: controller.signal,
        ...(this.#settings.dispatcher ? { dispatcher: this.#settings.dispatcher } : {}),
      });
      // Read the body to its end so the connection goes back to the pool.
      await response.body.dump({ limit: bodyReadLimit, signal: controller.signal });
      const status = response.statusCode;
      return { passed: status >= 200 && status < 300, reason: `HTTP ${status}` };
    } catch (error) {
      return {
        passed: false,
        reason: timedOut ? `timed out after ${this.#settings.timeout} ms` : describeFailure(error),
      };
    } finally {
      clearTimeout(timer);
      this.#inFlight = undefined;
    }
  }

  #record(result: CheckResult): void {
    this.#lastReason = result.reason;
    if (result.passed) {
      this.#failuresInRow = 0;
      this.#passesInRow++;
      if (!this.#healthy && this.#passesInRow >= this.#healthyThreshold) {
        this.#healthy = true;
        this.#settings.logger?.info({ reason: result.reason }, 'health check passed; target is healthy');
        this.#settings.onChange(true, result.reason);
      }
    } else {
      this.#passesInRow = 0;
      this.#failuresInRow++;
      if (this.#healthy && this.#failuresInRow >= this.#unhealthyThreshold) {
        this.#healthy = false;
        this.#settings.logger?.warn({ reason: result.reason }, 'health check failed; target is unhealthy');
        this.#settings.onChange(false, result.reason);
      }
    }
  }
}

const reasonsByCode: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  UND_ERR_SOCKET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'timed out connecting',
};

/** A short reason for an operator, from the errno code undici or the socket left on the error chain. */
function describeFailure(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code in reasonsByCode) return reasonsByCode[code]!;
    current = (current as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.message : String(error);
}
