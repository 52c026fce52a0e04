import type { TargetConfig } from '../config/types.js';
import type { Endpoint } from '../spec/openai.js';
import type { ChatAdapter, PreparedAdapterTarget } from './adapter.js';
import { adapterFor } from './registry.js';

const endpoints: readonly Endpoint[] = ['chat/completions', 'completions', 'embeddings'];

/** A target with everything requests need computed once per config, frozen. */
export interface PreparedTarget extends PreparedAdapterTarget {
  readonly adapter: ChatAdapter;
  /**
   * True when the upstream speaks OpenAI's schema, so an OpenAI client's bytes are forwarded
   * untouched (at most the model name spliced); otherwise requests are translated.
   */
  readonly passthrough: boolean;
  /** The upstream path of an OpenAI endpoint on a passthrough target. */
  pathFor(endpoint: Endpoint, upstreamModel: string): string;
}

export function prepareTarget(config: TargetConfig): PreparedTarget {
  const adapter = adapterFor(config.kind);
  const openAIPath = adapter.openAIPath;
  let pathFor: PreparedTarget['pathFor'] = () => {
    throw new Error(`target kind "${config.kind}" does not speak OpenAI's schema`);
  };
  if (openAIPath !== undefined) {
    // Paths that do not depend on the model (all but Azure's deployment URLs) are joined once.
    const fixed = new Map(endpoints.map((endpoint) => [endpoint, openAIPath(config, endpoint, 'a')]));
    const modelFree = endpoints.every(
      (endpoint) => openAIPath(config, endpoint, 'b') === fixed.get(endpoint),
    );
    pathFor = modelFree
      ? (endpoint) => fixed.get(endpoint)!
      : (endpoint, upstreamModel) => openAIPath(config, endpoint, upstreamModel);
  }
  return Object.freeze({
    config,
    adapter,
    passthrough: openAIPath !== undefined,
    headers: Object.freeze(adapter.prepareHeaders(config)),
    pathFor,
  });
}
