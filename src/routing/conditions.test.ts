import { describe, expect, test } from 'vitest';
import { compileCondition, type WhenClause, whenSchema } from './conditions.js';
import { type RequestFeatures, requestFeatures } from './request-features.js';

const german =
  'Ich plane für nächsten Monat eine Reise in die Berge und hätte gern ein paar Ratschläge, was ich einpacken soll.';
const english =
  'I am planning a trip to the mountains next month and would like some advice on what to pack for it.';

/** A chat request's features: one user message, with what else the test gives. */
function chat(
  text: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): RequestFeatures {
  return requestFeatures({ model: 'm', messages: [{ role: 'user', content: text }], ...extra }, headers);
}

/** Checks `when` as the config loader does, then compiles it. */
function compile(when: unknown): (features: RequestFeatures) => boolean {
  return compileCondition(whenSchema.parse(when));
}

/** zod's messages for `when`, with paths; for a bad record key, its pattern's, as the loader shows. */
function problems(when: unknown): string[] {
  const result = whenSchema.safeParse(when);
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    const message = issue.code === 'invalid_key' ? issue.issues[0]?.message : issue.message;
    return `${issue.path.join('.')}: ${message}`;
  });
}

describe('compileCondition', () => {
  test('matches a header by name in any case against any of the listed values', () => {
    const tenant = compile({ header: { 'X-Tenant': ['acme', 'globex'] } });
    expect(tenant(chat('hi', {}, { 'x-tenant': 'globex' }))).toBe(true);
    expect(tenant(chat('hi', {}, { 'x-tenant': 'initech' }))).toBe(false);
    expect(tenant(chat('hi'))).toBe(false);
  });

  test('compares header values exactly', () => {
    expect(compile({ header: { 'x-tier': 'Gold' } })(chat('hi', {}, { 'x-tier': 'gold' }))).toBe(false);
  });

  test('matches body metadata, taking YAML numbers and booleans as their text', () => {
    const tier = compile({ metadata: { tier: 2, beta: true } });
    expect(tier(chat('hi', { metadata: { tier: '2', beta: 'true' } }))).toBe(true);
    expect(tier(chat('hi', { metadata: { tier: '2' } }))).toBe(false);
    expect(tier(chat('hi', { metadata: { tier: 2, beta: true } }))).toBe(false);
    expect(tier(chat('hi'))).toBe(false);
  });

  test('bounds the estimated prompt tokens at both ends, inclusively', () => {
    // One message of 4 × n characters estimates to n + 4 tokens.
    const mid = compile({ min_prompt_tokens: 14, max_prompt_tokens: 24 });
    expect(mid(chat('x'.repeat(36)))).toBe(false); // 13
    expect(mid(chat('x'.repeat(40)))).toBe(true); // 14
    expect(mid(chat('x'.repeat(80)))).toBe(true); // 24
    expect(mid(chat('x'.repeat(84)))).toBe(false); // 25
    expect(compile({ min_prompt_tokens: 1_000 })(chat('x'.repeat(4_000)))).toBe(true);
    expect(compile({ max_prompt_tokens: 10 })(chat('x'.repeat(4_000)))).toBe(false);
  });

  test('matches the detected language against one code or a list, and never an undetected one', () => {
    expect(compile({ language: 'de' })(chat(german))).toBe(true);
    expect(compile({ language: ['fr', 'de'] })(chat(german))).toBe(true);
    expect(compile({ language: 'de' })(chat(english))).toBe(false);
    expect(compile({ language: 'en' })(chat('hi'))).toBe(false);
  });

  test('matches tools and images both ways', () => {
    const tool = { type: 'function', function: { name: 'weather' } };
    const image = { type: 'image_url', image_url: { url: 'https://example.com/a.png' } };
    const withImage = requestFeatures({ messages: [{ role: 'user', content: [image] }] }, {});
    expect(compile({ tools: true })(chat('hi', { tools: [tool] }))).toBe(true);
    expect(compile({ tools: true })(chat('hi'))).toBe(false);
    expect(compile({ tools: false })(chat('hi'))).toBe(true);
    expect(compile({ images: true })(withImage)).toBe(true);
    expect(compile({ images: false })(withImage)).toBe(false);
  });

  test("matches the caller's key by name or id and its team by name; a request without a key matches neither", () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
    const caller = { keyId: 'key_1', keyName: 'search-bot', team: 'research' };
    const byKey = compile({ key: ['search-bot', 'key_9'] });
    const byId = compile({ key: 'key_1' });
    const byTeam = compile({ team: ['research', 'ops'] });
    expect(byKey(requestFeatures(body, {}, caller))).toBe(true);
    expect(byId(requestFeatures(body, {}, caller))).toBe(true);
    expect(byTeam(requestFeatures(body, {}, caller))).toBe(true);
    expect(byTeam(requestFeatures(body, {}, { ...caller, team: undefined }))).toBe(false);
    expect(byKey(requestFeatures(body, {}))).toBe(false);
    expect(byTeam(requestFeatures(body, {}))).toBe(false);
  });

  test('requires every condition it lists', () => {
    const when = compile({ language: 'de', tools: false, header: { 'x-tenant': 'acme' } });
    expect(when(chat(german, {}, { 'x-tenant': 'acme' }))).toBe(true);
    expect(when(chat(german, {}, { 'x-tenant': 'other' }))).toBe(false);
    expect(when(chat(english, {}, { 'x-tenant': 'acme' }))).toBe(false);
  });

  test('checks cheap conditions first: a failed header spares the token count and language detection', () => {
    let asked = 0;
    const features: RequestFeatures = {
      header: () => undefined,
      caller: undefined,
      metadata: undefined,
      promptTokens: () => {
        asked++;
        return 10;
      },
      language: () => {
        asked++;
        return 'de';
      },
      hasTools: false,
      hasImages: false,
      promptPrefix: () => '',
    };
    const when: WhenClause = { language: 'de', min_prompt_tokens: 1, header: { 'x-tenant': 'acme' } };
    expect(compileCondition(when)(features)).toBe(false);
    expect(asked).toBe(0);
  });
});

describe('whenSchema', () => {
  test('accepts every condition together', () => {
    expect(
      problems({
        header: { 'x-tenant': ['acme'] },
        metadata: { tier: 'gold' },
        min_prompt_tokens: 0,
        max_prompt_tokens: 8_000,
        language: ['de', 'fr'],
        tools: true,
        images: false,
      }),
    ).toEqual([]);
  });

  test('rejects an empty clause, naming the conditions there are', () => {
    expect(problems({})).toEqual([
      ': must hold at least one condition: header, metadata, key, team, min_prompt_tokens, max_prompt_tokens, language, tools or images',
    ]);
    expect(problems({ header: {} })).toEqual([
      'header: must name at least one header, such as {x-tenant: acme}',
    ]);
  });

  test('rejects unknown keys, so a misspelt condition never silently matches everything', () => {
    expect(problems({ langauge: 'de' })[0]).toMatch(/langauge/);
  });

  test('rejects a language detection never names', () => {
    expect(problems({ language: 'xx' })[0]).toMatch(/^language: must be an ISO 639-1 code .*\bde\b/);
    expect(problems({ language: ['de', 'deu'] })[0]).toMatch(/^language\.1: /);
    expect(problems({ language: [] })).toEqual(['language: must list at least one language']);
  });

  test('rejects token bounds that are negative, fractional or crossed', () => {
    expect(problems({ min_prompt_tokens: -1 })[0]).toMatch(/^min_prompt_tokens: /);
    expect(problems({ max_prompt_tokens: 1.5 })[0]).toMatch(/^max_prompt_tokens: /);
    expect(problems({ min_prompt_tokens: 10, max_prompt_tokens: 5 })).toEqual([
      'min_prompt_tokens: min_prompt_tokens must not exceed max_prompt_tokens',
    ]);
  });

  test('rejects a header name HTTP does not allow and an empty list of values', () => {
    expect(problems({ header: { 'x tenant': 'a' } })[0]).toMatch(
      /^header\.x tenant: must be a valid HTTP header name/,
    );
    expect(problems({ metadata: { tier: [] } })).toEqual(['metadata.tier: must list at least one value']);
  });

  test('rejects tools and images that are not true or false', () => {
    expect(problems({ tools: 'yes' })[0]).toMatch(/^tools: /);
    expect(problems({ images: 1 })[0]).toMatch(/^images: /);
  });
});
