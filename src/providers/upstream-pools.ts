import { Pool } from 'undici';
import type { TargetConfig } from '../config/types.js';

/**
 * One undici keep-alive pool per upstream origin and connection settings, created when a config
 * is loaded so no request pays for it. Targets that share an origin share its connections, and a
 * reloaded config keeps the warm connections of the origins it still uses.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();

  /** `previous`: the pools of the config this one replaces; those still needed are shared. */
  constructor(targets: Iterable<TargetConfig>, previous?: UpstreamPools) {
    const kept = previous === undefined ? undefined : previous.#pools;
    for (const target of targets) {
      const key = poolKey(target);
      if (!this.#pools.has(key)) this.#pools.set(key, kept?.get(key) ?? this.#create(target));
    }
  }

  /**
   * Closes the pools `next` does not share, once their requests in flight have finished: what a
   * reload does with the connections of upstreams that left the config.
   */
  async closeUnshared(next: UpstreamPools): Promise<void> {
    const shared = new Set(next.#pools.values());
    await Promise.all(
      [...this.#pools.values()].filter((pool) => !shared.has(pool)).map((pool) => pool.close()),
    );
  }

  /** The pool for a target; every target of the config it was built from has one. */
  for(target: TargetConfig): Pool {
    const pool = this.#pools.get(poolKey(target));
    if (!pool) throw new Error(`no upstream pool for ${target.origin}; the config and pools are out of step`);
    return pool;
  }

  get size(): number {
    return this.#pools.size;
  }

  /** Waits for requests in flight to finish, then closes every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
  }

  /** Closes every connection at once, failing requests in flight. */
  async destroy(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
  }

  #create(target: TargetConfig): Pool {
    return new Pool(target.origin, {
      ...(target.socketPath === undefined ? {} : { socketPath: target.socketPath }),
      connections: target.maxConnections ?? null,
      connect: { timeout: target.timeouts.connect },
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      // Per-request values are set on each dispatch; these are the pool's fallbacks.
      headersTimeout: target.timeouts.firstByte,
      bodyTimeout: target.timeouts.idle,
    });
  }
}

function poolKey(target: TargetConfig): string {
  return `${target.origin} ${target.socketPath ?? '-'} ${target.timeouts.connect} ${target.maxConnections ?? '-'}`;
}
