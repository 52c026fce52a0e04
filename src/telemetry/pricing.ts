/**
 * What a request cost, in US dollars. Prices are dollars per million tokens, the unit vendors
 * publish and the unit of a deployment's `price` in the config (which the cost routing strategy
 * reads too), so one number means the same everywhere.
 */

/** Dollars per million tokens. `cachedInput` absent: cached prompt tokens cost the input rate. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
  readonly cachedInput?: number | undefined;
}

/**
 * Token counts as the OpenAI usage object gives them. `cached_tokens` (prompt_tokens_details in
 * OpenAI's shape) are part of `prompt_tokens`, not in addition to them: the adapters translate
 * Anthropic's, Gemini's and Bedrock's cache counts to that convention (providers/translation-parts.ts).
 */
export interface TokenUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly cached_tokens?: number | undefined;
}

/** The price of a model served on this machine: the hardware is already paid for. */
export const freePrice: ModelPrice = Object.freeze({ input: 0, output: 0, cachedInput: 0 });

/**
 * Dollars for `usage` at `price`: cached prompt tokens at the cached rate, the rest of the prompt
 * at the input rate, the completion at the output rate.
 *
 * @example cost({ prompt_tokens: 1000, completion_tokens: 500, cached_tokens: 200 }, { input: 2.5, output: 10, cachedInput: 1.25 }) // 0.00725
 */
export function cost(usage: TokenUsage, price: ModelPrice): number {
  const cached = Math.min(usage.cached_tokens ?? 0, usage.prompt_tokens);
  const uncached = usage.prompt_tokens - cached;
  return (
    (uncached * price.input +
      cached * (price.cachedInput ?? price.input) +
      usage.completion_tokens * price.output) /
    1_000_000
  );
}

/**
 * Vendors' published list prices, standard tier, taken from their pricing pages in July 2025
 * (openai.com/api/pricing, anthropic.com/pricing, ai.google.dev/gemini-api/docs/pricing). They are
 * defaults only: prices change, and negotiated rates differ, so entries in the config (a table's
 * overrides, a deployment's `price`) win over them. Where a vendor charges more for long prompts
 * (Gemini Pro above 128k/200k tokens), the lower tier is given. Anthropic's cache writes, billed
 * 25% above input, are counted at the input rate: the usage object does not separate them.
 *
 * A name matches its key exactly or as a prefix followed by a separator, so "gpt-4o" prices
 * "gpt-4o-2024-08-06" and the longer "gpt-4o-mini" keeps its own price.
 */
export const defaultPrices: Readonly<Record<string, ModelPrice>> = Object.freeze({
  // OpenAI
  'gpt-4o': { input: 2.5, output: 10, cachedInput: 1.25 },
  'gpt-4o-mini': { input: 0.15, output: 0.6, cachedInput: 0.075 },
  'gpt-4.1': { input: 2, output: 8, cachedInput: 0.5 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6, cachedInput: 0.1 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4, cachedInput: 0.025 },
  // o3 after its June 2025 price cut; o3-mini listed so that it does not take o3's price by prefix.
  o3: { input: 2, output: 8, cachedInput: 0.5 },
  'o3-mini': { input: 1.1, output: 4.4, cachedInput: 0.55 },
  'o4-mini': { input: 1.1, output: 4.4, cachedInput: 0.275 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'text-embedding-3-large': { input: 0.13, output: 0 },
  // Anthropic: cachedInput is the cache-read rate, a tenth of input.
  'claude-3-5-haiku': { input: 0.8, output: 4, cachedInput: 0.08 },
  'claude-3-5-sonnet': { input: 3, output: 15, cachedInput: 0.3 },
  'claude-3-7-sonnet': { input: 3, output: 15, cachedInput: 0.3 },
  'claude-sonnet-4': { input: 3, output: 15, cachedInput: 0.3 },
  'claude-opus-4': { input: 15, output: 75, cachedInput: 1.5 },
  // Google Gemini (text input; prompts up to 128k tokens for 1.5, 200k for 2.5 Pro).
  'gemini-1.5-flash': { input: 0.075, output: 0.3, cachedInput: 0.01875 },
  'gemini-1.5-flash-8b': { input: 0.0375, output: 0.15, cachedInput: 0.01 },
  'gemini-1.5-pro': { input: 1.25, output: 5, cachedInput: 0.3125 },
  'gemini-2.0-flash': { input: 0.1, output: 0.4, cachedInput: 0.025 },
  'gemini-2.0-flash-lite': { input: 0.075, output: 0.3 },
  'gemini-2.5-flash': { input: 0.3, output: 2.5, cachedInput: 0.075 },
  'gemini-2.5-flash-lite': { input: 0.1, output: 0.4, cachedInput: 0.025 },
  'gemini-2.5-pro': { input: 1.25, output: 10, cachedInput: 0.31 },
  // Local models, by the gateway's usual wildcard for the runner's store.
  'local/*': freePrice,
});

/** What follows a model family's name in a dated or tagged variant: "-2024-08-06", "@001", ":0". */
const separators = new Set(['-', '@', ':', '.', '_']);

/**
 * Bedrock's model ids put the vendor first, with an optional cross-region prefix
 * ("us.anthropic.claude-sonnet-4-20250514-v1:0"); what follows is the vendor's own name.
 */
const vendorPrefix = /^(?:[a-z]{2}\.)?[a-z]+\.(?=[a-z])/;

/** Distinct names remembered; the set of names a gateway prices is small, so this is a backstop. */
const maxCached = 4096;

interface Entry {
  readonly key: string;
  readonly wildcard: boolean;
  readonly price: ModelPrice;
}

/**
 * Prices by model name: `defaultPrices` overridden by the config's entries. A look-up tries the
 * name exactly, then the longest key that is a prefix of it (a key ending in "*" matches any
 * continuation; any other key only one that starts with a separator), then the same for the name
 * without a provider path ("openai/gpt-4o", "models/gemini-2.5-pro") or Bedrock vendor prefix.
 * Results are remembered, so pricing a request is a map look-up.
 *
 * @example new PriceTable({ 'gpt-4o': { input: 2, output: 8 } }).lookup('gpt-4o-2024-08-06') // { input: 2, output: 8 }
 */
export class PriceTable {
  readonly #exact = new Map<string, ModelPrice>();
  /** Longest key first, so the first match is the longest. */
  readonly #prefixes: Entry[] = [];
  readonly #cache = new Map<string, ModelPrice | null>();

  constructor(
    overrides: Readonly<Record<string, ModelPrice>> = {},
    defaults: Readonly<Record<string, ModelPrice>> = defaultPrices,
  ) {
    const merged = { ...defaults, ...overrides };
    for (const [key, price] of Object.entries(merged)) {
      const frozen = Object.freeze({ ...price });
      const wildcard = key.endsWith('*');
      const stem = wildcard ? key.slice(0, -1) : key;
      if (!wildcard) this.#exact.set(key, frozen);
      this.#prefixes.push({ key: stem, wildcard, price: frozen });
    }
    this.#prefixes.sort((a, b) => b.key.length - a.key.length);
  }

  /** The price of `model`, or undefined when neither the config nor the defaults know it. */
  lookup(model: string): ModelPrice | undefined {
    const known = this.#cache.get(model);
    if (known !== undefined) return known ?? undefined;
    const found = this.#find(model);
    if (this.#cache.size >= maxCached) this.#cache.clear();
    this.#cache.set(model, found ?? null);
    return found;
  }

  /**
   * The price of one served request: free on a local target; else the deployment's configured
   * price; else the upstream model's, then the client's model's, from the table.
   *
   * @example prices.resolve({ model: 'fast', upstreamModel: 'gpt-4o-mini', local: false, configured: undefined })
   */
  resolve(request: {
    readonly model: string;
    readonly upstreamModel?: string | undefined;
    readonly local?: boolean | undefined;
    readonly configured?: ModelPrice | undefined;
  }): ModelPrice | undefined {
    if (request.local) return freePrice;
    if (request.configured !== undefined) return request.configured;
    return (
      (request.upstreamModel === undefined ? undefined : this.lookup(request.upstreamModel)) ??
      this.lookup(request.model)
    );
  }

  #find(model: string): ModelPrice | undefined {
    const direct = this.#match(model);
    if (direct !== undefined) return direct;
    const tail = model.slice(model.lastIndexOf('/') + 1).replace(vendorPrefix, '');
    return tail === model ? undefined : this.#match(tail);
  }

  #match(name: string): ModelPrice | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    for (const entry of this.#prefixes) {
      if (entry.key.length > name.length || !name.startsWith(entry.key)) continue;
      if (entry.wildcard || separators.has(name[entry.key.length] ?? '')) return entry.price;
    }
    return undefined;
  }
}
