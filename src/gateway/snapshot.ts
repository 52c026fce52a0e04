import type { GatewayConfig } from '../config/types.js';
import { UpstreamPools } from '../providers/upstream-pools.js';
import { ModelTable } from '../routing/model-table.js';

/**
 * Everything the data plane reads per request, compiled once from a config: the model table
 * with its deployments, and a connection pool per upstream. Immutable once built; a reload
 * builds the next one and swaps it in, while requests in flight finish on the one they started.
 */
export interface Snapshot {
  readonly config: GatewayConfig;
  readonly table: ModelTable;
  readonly pools: UpstreamPools;
  /** Unix seconds when it was compiled; the `created` of the models it serves. */
  readonly createdAt: number;
}

export interface SnapshotOptions {
  /** The snapshot this one replaces: its pools and deployments' live figures are kept where unchanged. */
  readonly previous?: Snapshot | undefined;
  readonly random?: (() => number) | undefined;
  readonly now?: number;
}

export function compileSnapshot(config: GatewayConfig, options: SnapshotOptions = {}): Snapshot {
  const pools = new UpstreamPools(
    config.models.flatMap((model) => model.targets),
    options.previous?.pools,
  );
  return Object.freeze({
    config,
    table: new ModelTable(config.models, pools, {
      random: options.random,
      previous: options.previous?.table,
    }),
    pools,
    createdAt: Math.floor((options.now ?? Date.now()) / 1000),
  });
}
