import { SlidingCounts } from './sliding-counts.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerSettings {
  /** Share of failed requests in the window (0..1) that opens the circuit. */
  readonly failureRate: number;
  /** Length of the sliding window the failure rate is measured over, ms. */
  readonly window: number;
  /** Requests the window must hold before the failure rate counts, so two early errors do not open it. */
  readonly minRequests: number;
  /**
   * Failures in a row that open the circuit even below minRequests: passive outlier ejection, as
   * Envoy's consecutive_5xx, for a deployment that is plainly down on a quiet gateway.
   */
  readonly consecutiveFailures: number;
  /** How long it stays open before a probe is let through, ms; doubled after each failed probe. */
  readonly cooldown: number;
  /** The most the doubled cooldown grows to, ms. */
  readonly maxCooldown: number;
  /** Probe successes needed to close again; also the most probes in flight at once. */
  readonly probes: number;
  /** Told of every transition, for logs and metrics. */
  readonly onStateChange?: ((from: CircuitState, to: CircuitState) => void) | undefined;
}

export const circuitBreakerDefaults = Object.freeze({
  failureRate: 0.5,
  window: 30_000,
  minRequests: 10,
  consecutiveFailures: 5,
  cooldown: 30_000,
  maxCooldown: 300_000,
  probes: 1,
}) satisfies Omit<CircuitBreakerSettings, 'onStateChange'>;

/**
 * How long to suggest waiting while every probe slot is taken: the probes' answers decide, and
 * they come at no known time, so the shortest hint a Retry-After header can carry.
 */
const probesBusyRetryAfter = 1_000;

/**
 * Stops sending requests to a deployment that keeps failing, and lets a few through after a
 * cooldown to find out whether it recovered. One breaker per deployment; recording an outcome is
 * O(1) and allocates nothing, as it runs on every request.
 *
 * A request that acquired a slot must report back with exactly one of onSuccess, onFailure or
 * release, or a half-open slot stays taken. Outcomes count towards the state the breaker is in
 * when they arrive: a long stream begun while closed that fails once half-open re-opens it, which
 * is still fresh news about the deployment.
 *
 * @example
 * const breaker = new CircuitBreaker({ consecutiveFailures: 3 });
 * if (breaker.tryAcquire()) {
 *   try { await send(); breaker.onSuccess(); } catch (error) { breaker.onFailure(); throw error; }
 * } else {
 *   // try another deployment, or answer 503 with Retry-After: breaker.retryAfter()
 * }
 */
export class CircuitBreaker {
  readonly #settings: CircuitBreakerSettings;
  readonly #now: () => number;
  /** Outcomes (first) and failures (second) over the window. */
  readonly #counts: SlidingCounts;

  #state: CircuitState = 'closed';
  #failuresInRow = 0;
  #cooldown: number;
  #openUntil = 0;
  #probesInFlight = 0;
  #probeSuccesses = 0;

  constructor(settings: Partial<CircuitBreakerSettings> = {}, now: () => number = () => performance.now()) {
    this.#settings = { ...circuitBreakerDefaults, ...settings };
    this.#now = now;
    this.#counts = new SlidingCounts(this.#settings.window, now);
    this.#cooldown = this.#settings.cooldown;
  }

  /** The current state; an open circuit whose cooldown has passed reads as half-open. */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#now() >= this.#openUntil) {
      this.#probesInFlight = 0;
      this.#probeSuccesses = 0;
      this.#moveTo('half-open');
    }
    return this.#state;
  }

  /** Whether a request may be sent now; in half-open, a true takes one of the probe slots. */
  tryAcquire(): boolean {
    switch (this.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.#probesInFlight >= this.#settings.probes) return false;
        this.#probesInFlight++;
        return true;
    }
  }

  /** Records a request that succeeded; in half-open, a probe that passed. */
  onSuccess(): void {
    switch (this.state) {
      case 'closed':
        this.#failuresInRow = 0;
        this.#record(false);
        return;
      case 'open':
        // A request sent before the circuit opened; the cooldown stands.
        return;
      case 'half-open':
        this.#freeProbeSlot();
        if (++this.#probeSuccesses >= this.#settings.probes) this.#close();
        return;
    }
  }

  /** Records a request that failed in a way that speaks of the deployment (5xx, timeout, refused). */
  onFailure(): void {
    switch (this.state) {
      case 'closed': {
        this.#failuresInRow++;
        this.#record(true);
        const rateExceeded =
          this.#counts.first >= this.#settings.minRequests &&
          this.#counts.second >= this.#settings.failureRate * this.#counts.first;
        if (rateExceeded || this.#failuresInRow >= this.#settings.consecutiveFailures) {
          this.#open(this.#settings.cooldown);
        }
        return;
      }
      case 'open':
        return;
      case 'half-open':
        this.#freeProbeSlot();
        this.#open(Math.min(this.#cooldown * 2, this.#settings.maxCooldown));
        return;
    }
  }

  /** Gives back a slot taken by tryAcquire for a request that ended without an outcome (the client left). */
  release(): void {
    if (this.#state === 'half-open') this.#freeProbeSlot();
  }

  /** Milliseconds until a request may be sent; 0 when one may be sent now. */
  retryAfter(): number {
    switch (this.state) {
      case 'closed':
        return 0;
      case 'open':
        return Math.max(0, this.#openUntil - this.#now());
      case 'half-open':
        return this.#probesInFlight < this.#settings.probes ? 0 : probesBusyRetryAfter;
    }
  }

  /** Closes the circuit and forgets every outcome, as after a config reload or an operator's command. */
  reset(): void {
    this.#close();
  }

  #open(cooldown: number): void {
    this.#cooldown = cooldown;
    this.#openUntil = this.#now() + cooldown;
    this.#probesInFlight = 0;
    this.#moveTo('open');
  }

  #close(): void {
    this.#cooldown = this.#settings.cooldown;
    this.#failuresInRow = 0;
    this.#probesInFlight = 0;
    this.#counts.clear();
    this.#moveTo('closed');
  }

  #freeProbeSlot(): void {
    if (this.#probesInFlight > 0) this.#probesInFlight--;
  }

  #moveTo(state: CircuitState): void {
    const from = this.#state;
    if (from === state) return;
    this.#state = state;
    this.#settings.onStateChange?.(from, state);
  }

  /** Counts one outcome in the current bucket. */
  #record(failed: boolean): void {
    this.#counts.add(failed);
  }
}
