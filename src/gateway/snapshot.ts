import type { GatewayConfig } from '../config/types.js';
import { UpstreamPools } from '../providers/upstream-pools.js';
import { ModelTable } from '../routing/model-table.js';

/**
 * Everything the data plane reads per request, compiled once from a config: the model table
 * with its prepared targets, and a connection pool per upstream. Immutable once built.
 */
export interface Snapshot {
  readonly config: GatewayConfig;
  readonly table: ModelTable;
  readonly pools: UpstreamPools;
  /** Unix seconds when it was compiled; the `created` of the models it serves. */
  readonly createdAt: number;
}

export function compileSnapshot(config: GatewayConfig, now = Date.now()): Snapshot {
  const pools = new UpstreamPools(config.models.flatMap((model) => model.targets));
  return Object.freeze({
    config,
    table: new ModelTable(config.models, pools),
    pools,
    createdAt: Math.floor(now / 1000),
  });
}
