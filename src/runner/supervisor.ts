import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type Dispatcher, request } from 'undici';

export type SupervisedState = 'starting' | 'ready' | 'restarting' | 'stopping' | 'stopped';

export interface SupervisorOptions {
  /** Shown in logs: "runner". */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Polled until it answers 2xx, after each start and on an interval while running. */
  readonly healthUrl: string;
  /** How to reach `healthUrl`: an Agent bound to the runner's Unix socket; default: over TCP. */
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger: Logger;
  /** How long a start may take before the process is killed and started again. Default 120 s. */
  readonly startTimeout?: number;
  readonly healthInterval?: number;
  /** How long one health check may take. Default 2 s. */
  readonly healthTimeout?: number;
  /** Consecutive failed health checks before a running process is restarted. Default 3. */
  readonly unhealthyAfter?: number;
  /** First restart delay, doubled per consecutive failure up to `maxBackoff`. Default 500 ms. */
  readonly initialBackoff?: number;
  readonly maxBackoff?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL. Default 10 s. */
  readonly stopGrace?: number;
}

/**
 * Keeps one child process (the local model runner) alive: spawns it, waits for its health check,
 * restarts it with exponential backoff when it exits or stops answering, and stops it on
 * shutdown. A native crash or out-of-memory in a model therefore never takes the gateway down;
 * while the child is not `ready`, the gateway answers 503 for its models.
 *
 * Emits `state` with the new state on every change.
 */
export class Supervisor extends EventEmitter<{ state: [SupervisedState] }> {
  readonly #options: Required<Omit<SupervisorOptions, 'env' | 'dispatcher'>> & {
    env: NodeJS.ProcessEnv | undefined;
    dispatcher: Dispatcher | undefined;
  };
  #state: SupervisedState = 'stopped';
  #child: ChildProcess | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #unhealthy = 0;
  #restarts = 0;
  #readyWaiters: (() => void)[] = [];

  constructor(options: SupervisorOptions) {
    super();
    this.#options = {
      startTimeout: 120_000,
      healthInterval: 2_000,
      healthTimeout: 2_000,
      unhealthyAfter: 3,
      initialBackoff: 500,
      maxBackoff: 30_000,
      stopGrace: 10_000,
      env: undefined,
      dispatcher: undefined,
      ...options,
    };
  }

  get state(): SupervisedState {
    return this.#state;
  }

  /** How many times the child was started again after a crash or a failed health check. */
  get restarts(): number {
    return this.#restarts;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the child; resolves once it is healthy (it keeps retrying until then). */
  start(): Promise<void> {
    if (this.#state === 'stopped') this.#spawn();
    return this.ready();
  }

  /** Resolves the next time the child is healthy (at once if it is). */
  ready(): Promise<void> {
    if (this.#state === 'ready') return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /** SIGTERM, then SIGKILL after the grace period; no restart follows. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#setState('stopping');
    clearTimeout(this.#timer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), this.#options.stopGrace);
      await exited;
      clearTimeout(killTimer);
    }
    this.#child = undefined;
    this.#setState('stopped');
  }

  #spawn(): void {
    const { command, args, env, logger, name } = this.#options;
    this.#setState(this.#failures === 0 && this.#restarts === 0 ? 'starting' : 'restarting');
    const child = spawn(command, [...args], {
      env: env ?? process.env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.#child = child;
    this.#unhealthy = 0;
    logger.info({ process: name, child_pid: child.pid }, `${name} started`);
    const startedAt = Date.now();
    child.once('exit', (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#state === 'stopping' || this.#state === 'stopped') return;
      logger.error({ process: name, code, signal }, `${name} exited; restarting`);
      this.#scheduleRestart();
    });
    child.once('error', (error) => {
      logger.error({ process: name, err: error }, `${name} could not be started`);
    });
    const check = async () => {
      if (!this.#supervising(child)) return;
      const healthy = await this.#healthy();
      // The child may have exited, or stop() begun, while the check was in flight.
      if (!this.#supervising(child)) return;
      if (healthy) {
        this.#unhealthy = 0;
        if (this.#state !== 'ready') {
          this.#failures = 0;
          logger.info({ process: name, child_pid: child.pid, ms: Date.now() - startedAt }, `${name} ready`);
          this.#setState('ready');
        }
        this.#timer = setTimeout(check, this.#options.healthInterval);
        return;
      }
      if (this.#state === 'ready') {
        this.#unhealthy++;
        if (this.#unhealthy >= this.#options.unhealthyAfter) {
          logger.error(
            { process: name, child_pid: child.pid },
            `${name} stopped answering its health check; restarting`,
          );
          child.kill('SIGKILL');
          return; // the exit handler restarts it
        }
        this.#timer = setTimeout(check, this.#options.healthInterval);
        return;
      }
      if (Date.now() - startedAt > this.#options.startTimeout) {
        logger.error(
          { process: name, child_pid: child.pid },
          `${name} did not become healthy in time; restarting`,
        );
        child.kill('SIGKILL');
        return;
      }
      // Still starting: poll quickly, so readiness is seen soon after it happens.
      this.#timer = setTimeout(check, 100);
    };
    this.#timer = setTimeout(check, 50);
  }

  #supervising(child: ChildProcess): boolean {
    return this.#child === child && this.#state !== 'stopping' && this.#state !== 'stopped';
  }

  #scheduleRestart(): void {
    clearTimeout(this.#timer);
    this.#failures++;
    this.#restarts++;
    const delay = Math.min(
      this.#options.maxBackoff,
      this.#options.initialBackoff * 2 ** (this.#failures - 1),
    );
    this.#setState('restarting');
    this.#timer = setTimeout(() => this.#spawn(), delay);
  }

  async #healthy(): Promise<boolean> {
    try {
      const response = await request(this.#options.healthUrl, {
        headersTimeout: this.#options.healthTimeout,
        bodyTimeout: this.#options.healthTimeout,
        reset: true,
        ...(this.#options.dispatcher === undefined ? {} : { dispatcher: this.#options.dispatcher }),
      });
      await response.body.dump();
      return response.statusCode >= 200 && response.statusCode < 300;
    } catch {
      return false;
    }
  }

  #setState(state: SupervisedState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
    if (state === 'ready') {
      const waiters = this.#readyWaiters;
      this.#readyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
