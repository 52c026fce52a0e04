import type { Dispatcher } from 'undici';
import type { ModelConfig } from '../config/types.js';
import { type PreparedTarget, prepareTarget } from '../providers/prepared-target.js';
import type { UpstreamPools } from '../providers/upstream-pools.js';

/** Where one request goes: the model entry that matched, the target chosen, the upstream's name. */
export interface Route {
  readonly model: ModelConfig;
  readonly target: PreparedTarget;
  /** The connection pool of the target's origin. */
  readonly pool: Dispatcher;
  /** The model name to send upstream. */
  readonly upstreamModel: string;
}

interface Entry {
  readonly config: ModelConfig;
  /** For a wildcard entry ("openai/*"), the part before "*". */
  readonly prefix: string | undefined;
  readonly targets: readonly { readonly prepared: PreparedTarget; readonly pool: Dispatcher }[];
  next: number;
}

/**
 * Resolves the `model` a client sends to a target, in O(1) for exact names. Built once per
 * config; wildcard entries are tried longest prefix first, so "openai/*" wins over "*".
 * Several targets under one model share its traffic in turn (round robin).
 */
export class ModelTable {
  readonly #exact = new Map<string, Entry>();
  readonly #patterns: Entry[] = [];
  readonly #all: readonly ModelConfig[];

  constructor(models: readonly ModelConfig[], pools: UpstreamPools) {
    this.#all = models;
    for (const config of models) {
      const wildcard = config.name.endsWith('*');
      const entry: Entry = {
        config,
        prefix: wildcard ? config.name.slice(0, -1) : undefined,
        targets: config.targets.map((target) => ({
          prepared: prepareTarget(target),
          pool: pools.for(target),
        })),
        next: 0,
      };
      if (wildcard) this.#patterns.push(entry);
      else this.#exact.set(config.name, entry);
    }
    this.#patterns.sort((a, b) => b.prefix!.length - a.prefix!.length);
  }

  resolve(name: string): Route | undefined {
    const found = this.#lookup(name);
    if (found === undefined) return undefined;
    const { entry, tail } = found;
    const targets = entry.targets;
    const { prepared, pool } = targets.length === 1 ? targets[0]! : targets[entry.next++ % targets.length]!;
    return { model: entry.config, target: prepared, pool, upstreamModel: prepared.config.model ?? tail };
  }

  /** The model entry a name would be served by, or the wildcard entry itself when named. */
  match(name: string): ModelConfig | undefined {
    const pattern = this.#patterns.find((entry) => entry.config.name === name);
    return pattern?.config ?? this.#lookup(name)?.entry.config;
  }

  #lookup(name: string): { entry: Entry; tail: string } | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return { entry: exact, tail: name };
    for (const pattern of this.#patterns) {
      if (name.startsWith(pattern.prefix!) && name.length > pattern.prefix!.length) {
        return { entry: pattern, tail: name.slice(pattern.prefix!.length) };
      }
    }
    return undefined;
  }

  /** Every configured model, exact names and wildcards, in config order. */
  get models(): readonly ModelConfig[] {
    return this.#all;
  }
}
