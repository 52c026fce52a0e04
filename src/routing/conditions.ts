import { z } from 'zod';
import { detectableLanguages } from './language.js';
import type { RequestFeatures } from './request-features.js';

/**
 * The `when` clause of a conditional route (issue 5): which requests for a model go to another
 * model instead. Every key present must hold; values given as a list match any one of them.
 *
 * ```yaml
 * routes:
 *   - when: { language: [de, fr], max_prompt_tokens: 8000 }
 *     model: mistral-large
 *   - when: { images: true }
 *     model: gpt-4o
 *   - when: { header: { x-tenant: [acme, globex] } }
 *     model: dedicated-llama
 *   - when: { team: research }
 *     model: gpt-4o
 * ```
 */

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A value to compare with, or a list of them. YAML reads `x-tier: 2` as a number and
 * `debug: true` as a boolean, while headers and OpenAI metadata values are always strings, so
 * scalars are taken as their text rather than rejected.
 */
const scalar = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value));
const oneOrMore = z.union([scalar, z.array(scalar).min(1, { message: 'must list at least one value' })]);

const language = z.string().refine((code) => detectableLanguages.has(code), {
  message: `must be an ISO 639-1 code that language detection names: ${[...detectableLanguages].sort().join(', ')}`,
});

const tokenCount = z.number().int().nonnegative();

const notEmpty = (record: Record<string, unknown>) => Object.keys(record).length > 0;

export const whenSchema = z
  .strictObject({
    /** Request header (any case) equal to one of the values. */
    header: z
      .record(z.string().regex(headerName, { message: 'must be a valid HTTP header name' }), oneOrMore)
      .refine(notEmpty, { message: 'must name at least one header, such as {x-tenant: acme}' })
      .optional(),
    /** The body's `metadata[key]` equal to one of the values. */
    metadata: z
      .record(z.string().min(1), oneOrMore)
      .refine(notEmpty, { message: 'must name at least one metadata key, such as {tier: premium}' })
      .optional(),
    /** Estimated prompt tokens at least this many (see request-features.ts for the estimate). */
    min_prompt_tokens: tokenCount.optional(),
    /** Estimated prompt tokens at most this many. */
    max_prompt_tokens: tokenCount.optional(),
    /** The language of the latest user text, one of these ISO 639-1 codes. */
    language: z
      .union([language, z.array(language).min(1, { message: 'must list at least one language' })])
      .optional(),
    /** Whether the request offers tools. */
    tools: z.boolean().optional(),
    /** Whether the request carries an image. */
    images: z.boolean().optional(),
    /** The caller's virtual key, by name or id, one of these. */
    key: oneOrMore.optional(),
    /** The caller's team, by name, one of these. */
    team: oneOrMore.optional(),
  })
  .refine((when) => Object.values(when).some((value) => value !== undefined), {
    message:
      'must hold at least one condition: header, metadata, key, team, min_prompt_tokens, max_prompt_tokens, language, tools or images',
  })
  .refine(
    (when) =>
      when.min_prompt_tokens === undefined ||
      when.max_prompt_tokens === undefined ||
      when.min_prompt_tokens <= when.max_prompt_tokens,
    { message: 'min_prompt_tokens must not exceed max_prompt_tokens', path: ['min_prompt_tokens'] },
  );

/** A `when` clause as the config check leaves it. */
export type WhenClause = z.output<typeof whenSchema>;

type Check = (features: RequestFeatures) => boolean;

/**
 * Compiles a checked `when` clause into a predicate over a request's features. Work that can be
 * done once is done here (header names lowered, value lists made sets), and the checks run
 * cheapest first, so a request that fails on a header never has its tokens counted or its
 * language detected.
 *
 * @example
 * const german = compileCondition({ language: 'de', tools: false });
 * german(requestFeatures(body, headers)); // true for a German prompt offering no tools
 */
export function compileCondition(when: WhenClause): (features: RequestFeatures) => boolean {
  const checks: Check[] = [];
  if (when.tools !== undefined) {
    const wanted = when.tools;
    checks.push((features) => features.hasTools === wanted);
  }
  if (when.images !== undefined) {
    const wanted = when.images;
    checks.push((features) => features.hasImages === wanted);
  }
  if (when.key !== undefined) {
    const accepted = valueSet(when.key);
    checks.push((features) => {
      const caller = features.caller;
      return caller !== undefined && (accepted.has(caller.keyName) || accepted.has(caller.keyId));
    });
  }
  if (when.team !== undefined) {
    const accepted = valueSet(when.team);
    checks.push((features) => {
      const team = features.caller?.team;
      return team !== undefined && accepted.has(team);
    });
  }
  for (const [name, values] of Object.entries(when.header ?? {})) {
    const lowered = name.toLowerCase();
    const accepted = valueSet(values);
    checks.push((features) => {
      const value = features.header(lowered);
      return value !== undefined && accepted.has(value);
    });
  }
  for (const [key, values] of Object.entries(when.metadata ?? {})) {
    const accepted = valueSet(values);
    checks.push((features) => {
      const value = features.metadata?.[key];
      return typeof value === 'string' && accepted.has(value);
    });
  }
  const min = when.min_prompt_tokens;
  const max = when.max_prompt_tokens;
  if (min !== undefined || max !== undefined) {
    const low = min ?? 0;
    const high = max ?? Number.POSITIVE_INFINITY;
    checks.push((features) => {
      const tokens = features.promptTokens();
      return tokens >= low && tokens <= high;
    });
  }
  if (when.language !== undefined) {
    const accepted = valueSet(when.language);
    checks.push((features) => {
      const detected = features.language();
      return detected !== undefined && accepted.has(detected);
    });
  }
  if (checks.length === 1) return checks[0]!;
  return (features) => {
    for (const check of checks) if (!check(features)) return false;
    return true;
  };
}

function valueSet(values: string | readonly string[]): ReadonlySet<string> {
  return new Set(typeof values === 'string' ? [values] : values);
}
