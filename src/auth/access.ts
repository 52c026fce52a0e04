import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig } from '../config/types.js';
import { GatewayError } from '../errors/index.js';
import type { Caller } from '../routing/request-features.js';
import type { Logger } from '../telemetry/logger.js';
import { cost, type ModelPrice, type PriceTable } from '../telemetry/pricing.js';
import type { UsageLedger } from '../telemetry/usage-ledger.js';
import { allowsModel, type KeyAuthentication, KeyTable } from './api-keys.js';
import type { SpendTracker } from './budgets.js';
import { type LimitScope, RateLimiter, type RateLimitHeaders, type Reservation } from './rate-limits.js';
import type { SharedState } from './shared-state.js';
import { type EstimatedEndpoint, estimateTokens } from './token-estimate.js';
import type { ApiKey, Team } from './types.js';

/**
 * What an admitted request holds until it ends: who sent it, the tokens it reserved, and the
 * headers its answer carries. Settled exactly once, whatever the outcome.
 */
export interface Grant {
  readonly key: ApiKey | undefined;
  readonly team: Team | undefined;
  /** For conditional routes by key or team. */
  readonly caller: Caller | undefined;
  /** The model the client asked for. */
  readonly model: string;
  readonly reservation: Reservation | undefined;
  /** x-ratelimit-* (and a budget warning) for the answer; undefined when nothing applies. */
  readonly headers: RateLimitHeaders | undefined;
  settled: boolean;
}

/** Where a request was served, for its price. */
export interface Served {
  readonly upstreamModel: string | undefined;
  readonly local: boolean;
  readonly price: ModelPrice | undefined;
}

/** Token counts as an answer's usage gives them. */
export interface SettledUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly prompt_tokens_details?: { readonly cached_tokens?: number | undefined } | undefined;
}

export interface AccessControlOptions {
  readonly auth: GatewayConfig['auth'];
  readonly limits: GatewayConfig['limits'];
  readonly prices: PriceTable;
  readonly state: SharedState;
  readonly spend: SpendTracker;
  /** Where each request's usage and cost is accumulated; absent: not recorded. */
  readonly ledger: UsageLedger | undefined;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Admissions that touch no limit, budget or key share this grant's shape but not its object. */
const noScopes: readonly LimitScope[] = [];
/** The scope-cache key of every model without a limit of its own. */
const noModelLimit: LimitScope = Object.freeze({ id: '', limit: {} });

/**
 * The data plane's auth stages, in the order the gateway runs them (DESIGN.md: authenticate →
 * limits/budgets → route … → account usage):
 *
 * 1. `authenticate` (before the body is read): the virtual key of `Authorization: Bearer` or
 *    Anthropic's `x-api-key`, looked up in the compiled key table. In `keys` mode a key is
 *    required as soon as one exists; with none yet, or in `open` mode, requests pass unnamed.
 * 2. `admit` (once the model is known): the key's and its team's model scopes (403), its budget
 *    and its team's (429 `budget_exceeded` once spent; a warning header past the soft amount),
 *    then every rate limit that applies — global, the model's, the team's, the key's — taken all
 *    or nothing, reserving the request's estimated tokens (429 `rate_limit_exceeded`).
 * 3. `settle` (when the answer is complete, streams included, or failed): the reservation is
 *    corrected to the tokens used, and the cost is added to the key's and team's spend and to the
 *    usage ledger.
 *
 * Everything here is synchronous over in-memory state: a request costs hash look-ups and a few
 * bucket updates (bench/overhead, "switchyard-keyed").
 */
export class AccessControl {
  readonly #options: AccessControlOptions;
  readonly #now: () => number;
  readonly #limiter: RateLimiter;
  #open: boolean;
  #prices: PriceTable;
  #global: LimitScope | undefined;
  #models = new Map<string, LimitScope>();
  /** Scope lists by key, then by model: built once per key and model, dropped with the key table. */
  #scopes = new WeakMap<object, Map<LimitScope, readonly LimitScope[]>>();
  #keys: KeyTable = KeyTable.empty;
  /** Whether any key was ever issued, revoked ones that have left the table included. */
  #issued = false;
  /** Keys and teams already warned about their soft budget in the current period. */
  readonly #warned = new Set<string>();

  constructor(options: AccessControlOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#limiter = new RateLimiter(options.state);
    this.#open = options.auth.mode === 'open';
    this.#prices = options.prices;
    this.configure(options);
  }

  /**
   * Takes the auth mode, gateway-wide and per-model limits and prices of a reloaded config.
   * Buckets are kept by scope id, so a limit that stays keeps what it has used; one that changes
   * keeps the share used (rate-limits.ts).
   */
  configure(settings: Pick<AccessControlOptions, 'auth' | 'limits' | 'prices'>): void {
    this.#open = settings.auth.mode === 'open';
    this.#prices = settings.prices;
    const { global, models } = settings.limits;
    this.#global =
      global !== undefined && (global.rpm !== undefined || global.tpm !== undefined)
        ? { id: 'global', limit: global }
        : undefined;
    this.#models = new Map();
    for (const [model, limit] of Object.entries(models)) {
      this.#models.set(model, { id: `model:${model}`, limit });
    }
    this.#scopes = new WeakMap();
  }

  /**
   * Swaps in the key table the control plane compiled after a change. `issued` says whether the
   * store holds any key at all: the table drops keys revoked long ago, and a gateway whose every
   * key was revoked must not open up again once they have aged out of it.
   */
  setKeys(table: KeyTable, issued: boolean = table.size > 0): void {
    this.#keys = table;
    this.#issued = issued || table.size > 0;
    this.#scopes = new WeakMap();
  }

  /** True when requests need no key: `open` mode, or no key was ever issued. */
  get open(): boolean {
    return this.#open || !this.#issued;
  }

  /**
   * The caller's key and team, or undefined when no key is needed. Throws 401 `invalid_api_key`
   * for a missing, unknown, expired or revoked key, with the same message for each except that
   * an expired or revoked key is named as such (its holder had it legitimately).
   */
  authenticate(headers: IncomingHttpHeaders): KeyAuthentication | undefined {
    if (this.open) return undefined;
    const token = presentedKey(headers);
    if (token === undefined) throw new GatewayError('invalid_api_key');
    const found = this.#keys.authenticate(token, this.#now());
    if (typeof found === 'string') {
      if (found === 'unknown') throw new GatewayError('invalid_api_key');
      throw new GatewayError(
        'invalid_api_key',
        `This API key is ${found}. Ask an admin for a new one (\`switchyard keys create\`, or rotate it).`,
      );
    }
    return found;
  }

  /**
   * Throws 403 `model_not_allowed` unless the caller's key and its team may use `model`; every
   * endpoint that names a model asks, token counting included, not only those `admit` guards.
   */
  authorizeModel(caller: KeyAuthentication | undefined, model: string): void {
    if (caller === undefined || allowsModel(caller.key, caller.team, model)) return;
    throw new GatewayError(
      'model_not_allowed',
      `This API key may not use the model "${model}". It may use: ${describeScope(caller.key, caller.team)}.`,
      { param: 'model' },
    );
  }

  /**
   * Admits a request for `model` from `caller` (undefined in open mode), or throws 403/429. The
   * grant goes back to `settle` once the answer is complete.
   */
  admit(
    caller: KeyAuthentication | undefined,
    model: string,
    body: unknown,
    endpoint: EstimatedEndpoint,
  ): Grant | undefined {
    this.authorizeModel(caller, model);
    const key = caller?.key;
    const team = caller?.team;
    const now = this.#now();
    let warning: string | undefined;
    if (key !== undefined && (key.budget !== undefined || team?.budget !== undefined)) {
      // Spend is kept under the key's lineage, so a rotation does not start its budget afresh.
      const spender = key.lineage === key.id ? key : { id: key.lineage, budget: key.budget };
      const budget = this.#options.spend.check(spender, team, now);
      if (budget.state === 'exceeded') {
        throw new GatewayError(
          'budget_exceeded',
          `The ${budget.scope === 'key' ? 'key' : `team "${team?.name}"`}'s budget of $${budget.budget.amount} a ${budget.budget.period} is spent ($${budget.spent.toFixed(2)} so far); requests are refused until the ${budget.budget.period} ends. An admin can raise it (\`switchyard keys update\`).`,
        );
      }
      if (budget.state === 'soft') {
        warning = `${budget.scope} budget: $${budget.spent.toFixed(2)} of $${budget.budget.amount} this ${budget.budget.period} spent`;
        this.#warnOnce(
          budget.scope === 'key' ? key.lineage : (team?.id ?? ''),
          budget.budget.period,
          now,
          warning,
        );
      }
    }
    const scopes = this.#scopesFor(key, team, model);
    if (scopes.length === 0) {
      if (caller === undefined && warning === undefined) return undefined;
      return grant(
        key,
        team,
        model,
        undefined,
        warning === undefined ? undefined : { 'x-switchyard-budget-warning': warning },
      );
    }
    const admission = this.#limiter.admit({ scopes, estimatedTokens: estimateTokens(body, endpoint), now });
    if (admission instanceof Promise) {
      // Only a remote shared state answers later; the gateway runs on the in-memory one until the
      // scale-out issue makes this stage asynchronous.
      throw new Error('an asynchronous shared state needs an asynchronous admission stage');
    }
    if (!admission.ok) {
      throw new GatewayError(
        'rate_limit_exceeded',
        `Rate limit reached for ${describeLimitScope(admission.scope)}: ${admission.kind} per minute. Retry in ${Math.ceil(admission.retryAfterMs / 1000)} s.`,
        { headers: admission.headers },
      );
    }
    const headers =
      warning === undefined
        ? admission.headers
        : { ...admission.headers, 'x-switchyard-budget-warning': warning };
    return grant(key, team, model, admission.reservation, headers);
  }

  /**
   * Ends a grant: corrects its token reservation to what was used (the estimate stands when an
   * answer had no usage, as some streams do), and charges the cost to spend and the ledger.
   * Calling it again does nothing.
   */
  settle(grant: Grant, usage: SettledUsage | undefined, served: Served | undefined): void {
    if (grant.settled) return;
    grant.settled = true;
    const now = this.#now();
    if (grant.reservation !== undefined) {
      const used =
        usage === undefined
          ? served === undefined
            ? 0
            : grant.reservation.tokens
          : usage.prompt_tokens + usage.completion_tokens;
      void this.#limiter.settle(grant.reservation, used, now);
    }
    if (usage === undefined || served === undefined) return;
    const cached = usage.prompt_tokens_details?.cached_tokens;
    const price = this.#prices.resolve({
      model: grant.model,
      upstreamModel: served.upstreamModel,
      local: served.local,
      configured: served.price,
    });
    const dollars =
      price === undefined
        ? 0
        : cost(
            {
              prompt_tokens: usage.prompt_tokens,
              completion_tokens: usage.completion_tokens,
              cached_tokens: cached,
            },
            price,
          );
    const keyId = grant.key?.lineage;
    const teamId = grant.team?.id;
    if (dollars > 0) this.#options.spend.record(keyId, teamId, dollars, now);
    this.#options.ledger?.record({
      at: now,
      keyId,
      teamId,
      model: grant.model,
      promptTokens: usage.prompt_tokens,
      completionTokens: usage.completion_tokens,
      cachedTokens: cached,
      cost: dollars,
    });
  }

  /** Records usage of a request that needed no grant (open mode, no limits). */
  account(model: string, usage: SettledUsage | undefined, served: Served): void {
    if (usage === undefined || this.#options.ledger === undefined) return;
    this.settle(grant(undefined, undefined, model, undefined, undefined), usage, served);
  }

  #scopesFor(key: ApiKey | undefined, team: Team | undefined, model: string): readonly LimitScope[] {
    const owner: object = key ?? this.#models;
    let byModel = this.#scopes.get(owner);
    if (byModel === undefined) {
      byModel = new Map();
      this.#scopes.set(owner, byModel);
    }
    // Cached by the model's limit, not its name: admission runs before the model is looked up,
    // so names are whatever clients send, and a cache keyed by them would grow without bound.
    const modelScope = this.#models.get(model);
    const cacheKey = modelScope ?? noModelLimit;
    let scopes = byModel.get(cacheKey);
    if (scopes === undefined) {
      const list: LimitScope[] = [];
      if (this.#global !== undefined) list.push(this.#global);
      if (modelScope !== undefined) list.push(modelScope);
      if (team !== undefined && hasLimit(team.limits))
        list.push({ id: `team:${team.id}`, limit: team.limits });
      if (key !== undefined && hasLimit(key.limits)) {
        list.push({ id: `key:${key.lineage}`, limit: key.limits });
      }
      scopes = list.length === 0 ? noScopes : list;
      byModel.set(cacheKey, scopes);
    }
    return scopes;
  }

  #warnOnce(id: string, period: string, now: number, warning: string): void {
    const mark = `${id}\u0000${period}\u0000${Math.floor(now / 86_400_000)}`;
    if (this.#warned.has(mark)) return;
    if (this.#warned.size > 10_000) this.#warned.clear();
    this.#warned.add(mark);
    this.#options.logger.warn({ id, period }, `soft budget reached: ${warning}`);
  }
}

function grant(
  key: ApiKey | undefined,
  team: Team | undefined,
  model: string,
  reservation: Reservation | undefined,
  headers: RateLimitHeaders | undefined,
): Grant {
  return {
    key,
    team,
    caller: key === undefined ? undefined : { keyId: key.id, keyName: key.name, team: team?.name },
    model,
    reservation,
    headers,
    settled: false,
  };
}

/** The key a request presents: `Authorization: Bearer <key>`, else Anthropic's `x-api-key`. */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (match) return match[1];
  }
  const apiKey = headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey !== '' ? apiKey : undefined;
}

function hasLimit(limit: { readonly rpm?: number | undefined; readonly tpm?: number | undefined }): boolean {
  return limit.rpm !== undefined || limit.tpm !== undefined;
}

function describeScope(key: ApiKey, team: Team | undefined): string {
  const own = key.models.length === 0 ? 'any model' : key.models.join(', ');
  if (team === undefined || team.models.length === 0) return own;
  return `${own}, within team "${team.name}"'s ${team.models.join(', ')}`;
}

function describeLimitScope(scope: string): string {
  if (scope === 'global') return 'the gateway';
  const colon = scope.indexOf(':');
  return `the ${scope.slice(0, colon)} "${scope.slice(colon + 1)}"`;
}
