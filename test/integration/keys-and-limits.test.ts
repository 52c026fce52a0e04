import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { readPayloadCapture } from '../../src/telemetry/payload-capture.js';
import { captureKeyRing } from '../../src/telemetry/payload-crypto.js';
import { type Answer, send, sseEvents, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

/**
 * The data plane's keys, limits, budgets, usage and payload capture (issue 6, ADR 0008), end to
 * end: a real gateway on loopback, keys made through its own admin API, and a simulated upstream.
 */

const adminKey = 'keys-and-limits-admin-key-5c1e8a';
const chatPath = '/v1/chat/completions';
/** Two words: the mock upstream counts words as prompt tokens and answers six completion tokens. */
const messages = [{ role: 'user', content: 'Say hello' }];
const promptTokens = 2;
const completionTokens = 6;
/** How OpenAI writes x-ratelimit-reset-*: Go's time.Duration, "1m0s", "1.2s", "340ms". */
const goDuration = /^(\d+h)?(\d+m)?\d+(\.\d+)?(ms|s)$/;

function chat(
  gateway: TestGateway,
  key: string | undefined,
  model = 'mock-model',
  fields: Record<string, unknown> = {},
): Promise<Answer> {
  return send(gateway, 'POST', chatPath, { model, messages, ...fields }, bearer(key));
}

function bearer(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

function admin(gateway: TestGateway, method: string, path: string, body?: unknown): Promise<Answer> {
  return send(gateway, method, `/admin${path}`, body, { authorization: `Bearer ${adminKey}` });
}

interface CreatedKey {
  key: string;
  id: string;
  [field: string]: unknown;
}

async function createKey(gateway: TestGateway, settings: Record<string, unknown> = {}): Promise<CreatedKey> {
  const answer = await admin(gateway, 'POST', '/keys', settings);
  expect(answer.status, answer.text).toBe(201);
  return answer.json;
}

async function createTeam(gateway: TestGateway, settings: Record<string, unknown>): Promise<{ id: string }> {
  const answer = await admin(gateway, 'POST', '/teams', settings);
  expect(answer.status, answer.text).toBe(201);
  return answer.json;
}

/** A number header, failing the test when it is missing. */
function numberHeader(answer: Answer, name: string): number {
  const value = answer.headers.get(name);
  expect(value, `${name} on a ${answer.status}`).not.toBeNull();
  return Number(value);
}

/** One model per entry, each served by its own target on `upstream`. */
function modelsYaml(upstream: MockUpstream, names: readonly string[]): string {
  return names
    .map(
      (name) => `  - name: ${name}
    retries: 0
    targets:
      - name: ${name.replace(/\W/g, '-')}-target
        url: ${upstream.url}
        api_key: upstream-secret
        model: ${name}
`,
    )
    .join('');
}

const upstreams: MockUpstream[] = [];
const gateways: TestGateway[] = [];

async function upstream(options: Parameters<typeof startMockUpstream>[0] = {}): Promise<MockUpstream> {
  const started = await startMockUpstream(options);
  upstreams.push(started);
  return started;
}

async function gateway(yaml: string, options: Parameters<typeof startTestGateway>[1] = {}) {
  const started = await startTestGateway(`admin:\n  key: ${adminKey}\n${yaml}`, options);
  gateways.push(started);
  return started;
}

afterAll(async () => {
  await Promise.all(gateways.map((started) => started.close()));
  await Promise.all(upstreams.map((started) => started.close()));
});

describe('virtual keys on the data plane', () => {
  let provider: MockUpstream;
  let switchyard: TestGateway;
  let first: CreatedKey;

  beforeAll(async () => {
    provider = await upstream();
    switchyard = await gateway(`models:\n${modelsYaml(provider, ['mock-model', 'gpt-4o', 'local/tiny'])}`);
  });

  it('serves requests without a key until the first key exists, then requires one', async () => {
    expect((await chat(switchyard, undefined)).status).toBe(200);

    first = await createKey(switchyard, { name: 'first' });
    const refused = await chat(switchyard, undefined);
    expect(refused.status, refused.text).toBe(401);
    expect(refused.json).toEqual({
      error: {
        message: expect.stringContaining('Authorization: Bearer'),
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    const unknown = await chat(switchyard, 'sk-sy-not-a-key-anyone-was-given');
    expect(unknown.json.error.code).toBe('invalid_api_key');
  });

  it('requires the key on a path the router decodes to a data-plane endpoint', async () => {
    // "%76" is "v" and "%31" is "1": the router serves these as /v1/chat/completions and /v1/models.
    const encoded = await send(switchyard, 'POST', '/%761/chat/completions', {
      model: 'mock-model',
      messages,
    });
    expect(encoded.status, encoded.text).toBe(401);
    expect(encoded.json.error.code).toBe('invalid_api_key');
    expect((await send(switchyard, 'GET', '/v%31/models')).status).toBe(401);
  });

  it('takes the key as Authorization: Bearer or as x-api-key', async () => {
    expect((await chat(switchyard, first.key)).status).toBe(200);
    const viaHeader = await send(
      switchyard,
      'POST',
      chatPath,
      { model: 'mock-model', messages },
      {
        'x-api-key': first.key,
      },
    );
    expect(viaHeader.status, viaHeader.text).toBe(200);
    expect(viaHeader.json.choices[0].message.content).toBe('Hello from the mock upstream.');
  });

  it("answers Anthropic's Messages API with x-api-key, and refuses a missing key in Anthropic's envelope", async () => {
    const body = { model: 'mock-model', max_tokens: 50, messages: [{ role: 'user', content: 'Say hello' }] };
    const served = await send(switchyard, 'POST', '/v1/messages', body, {
      'x-api-key': first.key,
      'anthropic-version': '2023-06-01',
    });
    expect(served.status, served.text).toBe(200);
    expect(served.json).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'Hello from the mock upstream.' }],
    });

    const refused = await send(switchyard, 'POST', '/v1/messages', body, {
      'anthropic-version': '2023-06-01',
    });
    expect(refused.status).toBe(401);
    expect(refused.json).toEqual({
      type: 'error',
      error: { type: 'authentication_error', message: expect.stringContaining('x-api-key') },
    });
  });

  it("sends the upstream its configured credential, never the client's key", () => {
    expect(provider.requests.length).toBeGreaterThanOrEqual(4);
    for (const request of provider.requests) {
      expect(request.headers.authorization).toBe('Bearer upstream-secret');
      expect(request.headers['x-api-key']).toBeUndefined();
      expect(JSON.stringify(request.headers)).not.toContain(first.key);
      expect(request.body).not.toContain(first.key);
    }
  });

  it("refuses a model outside the key's scope with 403 naming it, and lists only the models it may call", async () => {
    const scoped = await createKey(switchyard, { name: 'scoped', models: ['gpt-4o', 'local/*'] });
    expect((await chat(switchyard, scoped.key, 'gpt-4o')).status).toBe(200);
    expect((await chat(switchyard, scoped.key, 'local/tiny')).status).toBe(200);

    const refused = await chat(switchyard, scoped.key, 'mock-model');
    expect(refused.status, refused.text).toBe(403);
    expect(refused.json.error).toMatchObject({
      code: 'model_not_allowed',
      type: 'permission_error',
      param: 'model',
      message: expect.stringContaining('"mock-model"'),
    });

    const listed = await send(switchyard, 'GET', '/v1/models', undefined, bearer(scoped.key));
    expect(listed.status).toBe(200);
    expect(listed.json.data.map((model: { id: string }) => model.id).sort()).toEqual([
      'gpt-4o',
      'local/tiny',
    ]);
    const hidden = await send(switchyard, 'GET', '/v1/models/mock-model', undefined, bearer(scoped.key));
    expect(hidden.status).toBe(404);
  });

  it("keeps Anthropic's endpoints, token counting included, to the key's models", async () => {
    const scoped = await createKey(switchyard, { name: 'scoped-anthropic', models: ['gpt-4o'] });
    const headers = { 'x-api-key': scoped.key, 'anthropic-version': '2023-06-01' };
    const prompt = { model: 'mock-model', messages: [{ role: 'user', content: 'Say hello' }] };
    for (const [path, body] of [
      ['/v1/messages', { ...prompt, max_tokens: 50 }],
      ['/v1/messages/count_tokens', prompt],
    ] as const) {
      const refused = await send(switchyard, 'POST', path, body, headers);
      expect(refused.status, `${path}: ${refused.text}`).toBe(403);
      expect(refused.json).toEqual({
        type: 'error',
        error: { type: 'permission_error', message: expect.stringContaining('"mock-model"') },
      });
    }
    const counted = await send(
      switchyard,
      'POST',
      '/v1/messages/count_tokens',
      { ...prompt, model: 'gpt-4o' },
      headers,
    );
    expect(counted.status, counted.text).toBe(200);
    expect(counted.json.input_tokens).toBeGreaterThan(0);
  });

  it("narrows a key's models to its team's", async () => {
    await createTeam(switchyard, { name: 'narrow', models: ['gpt-4o'] });
    const member = await createKey(switchyard, {
      name: 'member',
      team: 'narrow',
      models: ['gpt-4o', 'local/*'],
    });
    expect((await chat(switchyard, member.key, 'gpt-4o')).status).toBe(200);
    const refused = await chat(switchyard, member.key, 'local/tiny');
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('model_not_allowed');
    const listed = await send(switchyard, 'GET', '/v1/models', undefined, bearer(member.key));
    expect(listed.json.data.map((model: { id: string }) => model.id)).toEqual(['gpt-4o']);
  });

  it('refuses a revoked key, saying it is revoked', async () => {
    const doomed = await createKey(switchyard, { name: 'doomed' });
    expect((await chat(switchyard, doomed.key)).status).toBe(200);
    expect((await admin(switchyard, 'DELETE', `/keys/${doomed.id}`)).status).toBe(200);
    const refused = await chat(switchyard, doomed.key);
    expect(refused.status).toBe(401);
    expect(refused.json.error).toMatchObject({
      code: 'invalid_api_key',
      message: expect.stringContaining('revoked'),
    });
  });

  it('refuses an expired key, saying it has expired', async () => {
    const lapsed = await createKey(switchyard, { name: 'lapsed', expires_in: '30d' });
    expect((await chat(switchyard, lapsed.key)).status).toBe(200);
    // Thirty days on: its expiry has passed (the table is recompiled after any admin change).
    await switchyard.store.db
      .updateTable('api_keys')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', lapsed.id)
      .execute();
    await createTeam(switchyard, { name: 'thirty-days-later' });
    const refused = await chat(switchyard, lapsed.key);
    expect(refused.status).toBe(401);
    expect(refused.json.error).toMatchObject({
      code: 'invalid_api_key',
      message: expect.stringContaining('expired'),
    });
  });

  it('rotates without grace: the old key is refused at once and the new one works', async () => {
    const old = await createKey(switchyard, { name: 'rotate-now' });
    const rotated = await admin(switchyard, 'POST', `/keys/${old.id}/rotate`, { grace: 0 });
    expect(rotated.status, rotated.text).toBe(201);
    const refused = await chat(switchyard, old.key);
    expect(refused.status).toBe(401);
    expect(refused.json.error.message).toContain('revoked');
    expect((await chat(switchyard, rotated.json.key)).status).toBe(200);
  });

  it('rotates with a grace period: the old and the new key both work', async () => {
    const old = await createKey(switchyard, { name: 'rotate-later' });
    const rotated = await admin(switchyard, 'POST', `/keys/${old.id}/rotate`, { grace: '1h' });
    expect(rotated.status, rotated.text).toBe(201);
    expect((await chat(switchyard, old.key)).status).toBe(200);
    expect((await chat(switchyard, rotated.json.key)).status).toBe(200);
  });

  it('knows every key made by concurrent admin calls as soon as each call has answered', async () => {
    const made = await Promise.all(
      Array.from({ length: 20 }, (_, index) => createKey(switchyard, { name: `concurrent-${index}` })),
    );
    const answers = await Promise.all(made.map(({ key }) => chat(switchyard, key)));
    expect(answers.map((answer) => answer.status)).toEqual(made.map(() => 200));
  });
});

describe('a gateway whose every key was revoked', () => {
  it('still requires a key once the revoked keys have aged out of the key table', async () => {
    const provider = await upstream();
    const switchyard = await gateway(`models:\n${modelsYaml(provider, ['mock-model'])}`);
    const only = await createKey(switchyard, { name: 'only' });
    expect((await admin(switchyard, 'DELETE', `/keys/${only.id}`)).status).toBe(200);
    expect((await chat(switchyard, undefined)).status).toBe(401);

    // A week on, the key table no longer carries the revoked key; no key was ever deleted.
    await switchyard.store.db
      .updateTable('api_keys')
      .set({ revoked_at: Date.now() - 8 * 86_400_000 })
      .where('id', '=', only.id)
      .execute();
    await createTeam(switchyard, { name: 'any-change-recompiles-the-table' });
    const refused = await chat(switchyard, undefined);
    expect(refused.status, refused.text).toBe(401);
    expect(refused.json.error.code).toBe('invalid_api_key');
    expect((await chat(switchyard, only.key)).status).toBe(401);
  });
});

describe('rate limits', () => {
  let provider: MockUpstream;
  let switchyard: TestGateway;
  /** While set, the gateway's clock stands still there, so no bucket refills mid-burst. */
  let heldAt: number | undefined;

  beforeAll(async () => {
    provider = await upstream();
    switchyard = await gateway(`models:\n${modelsYaml(provider, ['mock-model'])}`, {
      gateway: { now: () => heldAt ?? Date.now() },
    });
  });

  it('admits exactly rpm of 200 concurrent requests and refuses the rest with 429, headers on every answer', async () => {
    const { key } = await createKey(switchyard, { name: 'burst', rpm: 50, tpm: 1_000_000 });
    // The bucket refills a request every 1.2 s: hold the clock so a slow machine counts the same.
    heldAt = Date.now();
    let answers: Answer[];
    try {
      answers = await Promise.all(Array.from({ length: 200 }, () => chat(switchyard, key)));
    } finally {
      heldAt = undefined;
    }
    const served = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status === 429);
    expect(served).toHaveLength(50);
    expect(refused).toHaveLength(150);
    for (const answer of answers) {
      expect(answer.headers.get('x-ratelimit-limit-requests')).toBe('50');
      expect(numberHeader(answer, 'x-ratelimit-remaining-requests')).toBeGreaterThanOrEqual(0);
      expect(answer.headers.get('x-ratelimit-reset-requests')).toMatch(goDuration);
      expect(answer.headers.get('x-ratelimit-limit-tokens')).toBe('1000000');
      expect(numberHeader(answer, 'x-ratelimit-remaining-tokens')).toBeGreaterThan(0);
      expect(answer.headers.get('x-ratelimit-reset-tokens')).toMatch(goDuration);
    }
    // Each admission took one: the remaining counts of the successes are 49 down to 0, once each.
    const remaining = served.map((answer) => numberHeader(answer, 'x-ratelimit-remaining-requests'));
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, index) => index));
    for (const answer of refused) {
      expect(answer.json.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
      expect(answer.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Refused requests never went upstream.
    expect(provider.count(chatPath)).toBe(50);
  });

  it('puts the limit headers on errors the gateway answers itself, and refunds their tokens', async () => {
    const { key } = await createKey(switchyard, { name: 'typo', rpm: 10, tpm: 5000 });
    const missing = await chat(switchyard, key, 'no-such-model', { max_tokens: 100 });
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('model_not_found');
    expect(missing.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(missing.headers.get('x-ratelimit-remaining-requests')).toBe('9');
    const reserved = 5000 - numberHeader(missing, 'x-ratelimit-remaining-tokens');
    const next = await chat(switchyard, key, 'mock-model', { max_tokens: 100 });
    // The 404 used no tokens: the next request, of the same size, finds the bucket as it did.
    expect(numberHeader(next, 'x-ratelimit-remaining-tokens')).toBeGreaterThanOrEqual(5000 - reserved);
  });

  it("shares a team's limit among its keys, on top of each key's own", async () => {
    await createTeam(switchyard, { name: 'small', rpm: 3 });
    const one = await createKey(switchyard, { name: 'one', team: 'small', rpm: 2 });
    const two = await createKey(switchyard, { name: 'two', team: 'small' });
    const statuses = [];
    for (const key of [one.key, one.key, one.key, two.key, two.key])
      statuses.push(await chat(switchyard, key));
    expect(statuses.map((answer) => answer.status)).toEqual([200, 200, 429, 200, 429]);
    expect(statuses[2]!.json.error.message).toContain('the key "');
    expect(statuses[2]!.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(statuses[4]!.json.error.message).toContain('the team "');
    expect(statuses[4]!.headers.get('x-ratelimit-limit-requests')).toBe('3');
  });

  it('applies the global and per-model limits from the config, taking all or nothing', async () => {
    const limited = await gateway(
      `limits:
  global: { rpm: 10 }
  models:
    mock-b: { rpm: 3 }
models:
${modelsYaml(provider, ['mock-a', 'mock-b'])}`,
    );
    const toB = [];
    for (let index = 0; index < 4; index++) toB.push(await chat(limited, undefined, 'mock-b'));
    expect(toB.map((answer) => answer.status)).toEqual([200, 200, 200, 429]);
    expect(toB[3]!.json.error.message).toContain('model "mock-b"');
    expect(toB[3]!.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(toB[3]!.headers.get('retry-after')).not.toBeNull();

    // The refused request took nothing from the global bucket: 7 of its 10 are left.
    const toA = [];
    for (let index = 0; index < 8; index++) toA.push(await chat(limited, undefined, 'mock-a'));
    expect(toA.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200, 200, 200, 429]);
    expect(toA[0]!.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(toA[6]!.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(toA[7]!.json.error).toMatchObject({
      code: 'rate_limit_exceeded',
      message: expect.stringContaining('the gateway'),
    });
  });
});

describe('token limits settle to what was used', () => {
  let provider: MockUpstream;
  let switchyard: TestGateway;
  const tpm = 6000;
  /** What `messages` with max_tokens 500 reserves: its 9 characters, message and reply framing, 500. */
  const estimate = Math.ceil(9 / 4) + 3 + 3 + 500;
  /** Tokens the bucket may refill between two answers, a tenth of a token a millisecond at 6000 tpm. */
  const refill = (milliseconds: number) => Math.ceil((milliseconds * tpm) / 60_000) + 1;

  beforeAll(async () => {
    provider = await upstream();
    switchyard = await gateway(`models:\n${modelsYaml(provider, ['mock-model'])}`);
  });

  afterEach(() => provider.reset());

  it("corrects a streamed request's reservation to the usage in its final chunk", async () => {
    const { key } = await createKey(switchyard, { name: 'streamer', tpm });
    const started = performance.now();
    // The client does not ask for usage: the gateway asks the upstream for it, for accounting.
    const streamed = await chat(switchyard, key, 'mock-model', { stream: true, max_tokens: 500 });
    expect(streamed.status, streamed.text).toBe(200);
    expect(numberHeader(streamed, 'x-ratelimit-remaining-tokens')).toBe(tpm - estimate);
    const chunks = sseEvents(streamed.text).filter((event) => event.data !== '[DONE]');
    expect(chunks.map((event) => JSON.parse(event.data).usage ?? null)).toEqual(chunks.map(() => null));
    expect(provider.requests.at(-1)!.json.stream_options).toEqual({ include_usage: true });

    const next = await chat(switchyard, key, 'mock-model', { max_tokens: 500 });
    const elapsed = performance.now() - started;
    // Had the estimate stood, two estimates would be gone; the stream used only 8 tokens.
    const expected = tpm - (promptTokens + completionTokens) - estimate;
    const remaining = numberHeader(next, 'x-ratelimit-remaining-tokens');
    expect(remaining).toBeGreaterThanOrEqual(expected);
    expect(remaining).toBeLessThanOrEqual(Math.min(tpm - estimate, expected + refill(elapsed)));
  });

  it("corrects an Anthropic stream's reservation to the usage its message_delta reports", async () => {
    const { key } = await createKey(switchyard, { name: 'claude-client', tpm });
    const body = {
      model: 'mock-model',
      max_tokens: 500,
      stream: true,
      messages: [{ role: 'user', content: 'Say hello' }],
    };
    const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' };
    const started = performance.now();
    const streamed = await send(switchyard, 'POST', '/v1/messages', body, headers);
    expect(streamed.status, streamed.text).toBe(200);
    const reserved = tpm - numberHeader(streamed, 'x-ratelimit-remaining-tokens');
    expect(reserved).toBeGreaterThan(500);
    const delta = sseEvents(streamed.text).find((event) => event.event === 'message_delta');
    expect(JSON.parse(delta!.data).usage).toMatchObject({ output_tokens: completionTokens });

    const next = await send(switchyard, 'POST', '/v1/messages', { ...body, stream: false }, headers);
    const elapsed = performance.now() - started;
    const expected = tpm - (promptTokens + completionTokens) - reserved;
    const remaining = numberHeader(next, 'x-ratelimit-remaining-tokens');
    expect(remaining).toBeGreaterThanOrEqual(expected);
    expect(remaining).toBeLessThanOrEqual(expected + refill(elapsed));
  });

  it('gives a failed request its reservation back', async () => {
    const { key } = await createKey(switchyard, { name: 'unlucky', tpm });
    provider.setBehaviour({ kind: 'error', status: 500 });
    const started = performance.now();
    const failed = await chat(switchyard, key, 'mock-model', { max_tokens: 500 });
    expect(failed.status, failed.text).toBe(502);
    const afterFailure = numberHeader(failed, 'x-ratelimit-remaining-tokens');
    expect(afterFailure).toBe(tpm - estimate);

    provider.reset();
    const next = await chat(switchyard, key, 'mock-model', { max_tokens: 500 });
    const elapsed = performance.now() - started;
    expect(next.status).toBe(200);
    // Refunded, the next request finds the bucket as the failed one did.
    const remaining = numberHeader(next, 'x-ratelimit-remaining-tokens');
    expect(remaining).toBeGreaterThanOrEqual(tpm - estimate);
    expect(remaining).toBeLessThanOrEqual(tpm - estimate + refill(elapsed));
  });
});

describe('budgets and usage', () => {
  let provider: MockUpstream;
  let switchyard: TestGateway;
  /** $1000 per million tokens each way: one request (8 tokens) costs $0.008. */
  const requestCost = (promptTokens + completionTokens) * 0.001;

  beforeAll(async () => {
    provider = await upstream();
    switchyard = await gateway(`pricing:
  mock-model: { input: 1000, output: 1000 }
models:
${modelsYaml(provider, ['mock-model'])}`);
  });

  it("refuses a key with 429 budget_exceeded once its day's budget is spent", async () => {
    const { key } = await createKey(switchyard, { name: 'thrifty', budget: { amount: 0.02, period: 'day' } });
    const statuses = [];
    for (let index = 0; index < 3; index++) statuses.push((await chat(switchyard, key)).status);
    expect(statuses).toEqual([200, 200, 200]);
    const refused = await chat(switchyard, key);
    expect(refused.status, refused.text).toBe(429);
    expect(refused.json.error).toMatchObject({ code: 'budget_exceeded', type: 'insufficient_quota' });
    expect(refused.json.error.message).toContain('$0.02 a day');
    expect(refused.headers.get('x-should-retry')).toBe('false');
    expect(provider.count(chatPath)).toBe(3);
  });

  it('keeps what a key has spent, and its rate limit, across a rotation', async () => {
    const old = await createKey(switchyard, {
      name: 'rotated-spender',
      rpm: 1000,
      budget: { amount: 0.02, period: 'day' },
    });
    for (let index = 0; index < 3; index++) expect((await chat(switchyard, old.key)).status).toBe(200);
    const rotated = await admin(switchyard, 'POST', `/keys/${old.id}/rotate`, { grace: 0 });
    expect(rotated.status, rotated.text).toBe(201);
    expect(rotated.json.lineage_id).toBe(old.id);
    // A fresh key would have its whole budget; the rotated one has none left.
    const refused = await chat(switchyard, rotated.json.key);
    expect(refused.status, refused.text).toBe(429);
    expect(refused.json.error.code).toBe('budget_exceeded');
    // Usage stays under one id, the lineage's.
    const usage = await admin(switchyard, 'GET', `/usage?group_by=key&key=${old.id}`);
    expect(usage.json.total.requests).toBe(3);
  });

  it('warns with x-switchyard-budget-warning once spend passes the soft amount', async () => {
    const { key } = await createKey(switchyard, {
      name: 'warned',
      budget: { amount: 1, period: 'day', soft: 0.005 },
    });
    const quiet = await chat(switchyard, key);
    expect(quiet.status).toBe(200);
    expect(quiet.headers.get('x-switchyard-budget-warning')).toBeNull();
    const warned = await chat(switchyard, key);
    expect(warned.status).toBe(200);
    expect(warned.headers.get('x-switchyard-budget-warning')).toBe('key budget: $0.01 of $1 this day spent');
    const streamed = await chat(switchyard, key, 'mock-model', { stream: true });
    expect(streamed.headers.get('x-switchyard-budget-warning')).toContain('key budget');
  });

  it("blocks every key of a team once the team's budget is spent by one of them", async () => {
    await createTeam(switchyard, { name: 'shared', budget: { amount: 0.01, period: 'day' } });
    const spender = await createKey(switchyard, { name: 'spender', team: 'shared' });
    const other = await createKey(switchyard, { name: 'other', team: 'shared' });
    expect((await chat(switchyard, spender.key)).status).toBe(200);
    expect((await chat(switchyard, spender.key)).status).toBe(200);
    const refused = await chat(switchyard, other.key);
    expect(refused.status, refused.text).toBe(429);
    expect(refused.json.error).toMatchObject({
      code: 'budget_exceeded',
      message: expect.stringContaining('team "shared"'),
    });
  });

  it('reports requests, tokens and cost per key in GET /admin/usage', async () => {
    const light = await createKey(switchyard, { name: 'light' });
    const heavy = await createKey(switchyard, { name: 'heavy' });
    expect((await chat(switchyard, light.key)).status).toBe(200);
    for (let index = 0; index < 3; index++) expect((await chat(switchyard, heavy.key)).status).toBe(200);

    const usage = await admin(switchyard, 'GET', '/usage?group_by=key');
    expect(usage.status, usage.text).toBe(200);
    const row = (id: string) => usage.json.data.find((entry: { group: string }) => entry.group === id);
    expect(row(light.id)).toMatchObject({
      requests: 1,
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    });
    expect(row(light.id).cost).toBeCloseTo(requestCost, 10);
    expect(row(heavy.id)).toMatchObject({
      requests: 3,
      prompt_tokens: 3 * promptTokens,
      completion_tokens: 3 * completionTokens,
    });
    expect(row(heavy.id).cost).toBeCloseTo(3 * requestCost, 10);
  });
});

describe('routes by team', () => {
  it("sends a team's requests to its conditional route and everyone else's to the default", async () => {
    const general = await upstream();
    const research = await upstream();
    const switchyard = await gateway(`models:
  - name: assistant
    routes:
      - when: { team: research }
        model: assistant-research
    targets:
      - url: ${general.url}
        api_key: upstream-secret
        model: general-model
  - name: assistant-research
    targets:
      - url: ${research.url}
        api_key: upstream-secret
        model: research-model
`);
    await createTeam(switchyard, { name: 'research' });
    await createTeam(switchyard, { name: 'sales' });
    const researcher = await createKey(switchyard, { name: 'researcher', team: 'research' });
    const seller = await createKey(switchyard, { name: 'seller', team: 'sales' });

    expect((await chat(switchyard, researcher.key, 'assistant')).status).toBe(200);
    expect(research.requests.map((request) => request.json.model)).toEqual(['research-model']);
    expect(general.requests).toHaveLength(0);

    expect((await chat(switchyard, seller.key, 'assistant')).status).toBe(200);
    expect(general.requests.map((request) => request.json.model)).toEqual(['general-model']);
    expect(research.requests).toHaveLength(1);
  });
});

describe('auth.mode: open', () => {
  it('serves requests without a key even when keys exist', async () => {
    const provider = await upstream();
    const switchyard = await gateway(`auth:\n  mode: open\nmodels:\n${modelsYaml(provider, ['mock-model'])}`);
    await createKey(switchyard, { name: 'unneeded' });
    const served = await chat(switchyard, undefined);
    expect(served.status, served.text).toBe(200);
    expect(switchyard.logs.some((line) => String(line.msg).includes('auth.mode is open'))).toBe(true);
  });
});

describe('payload capture', () => {
  const variable = 'SWITCHYARD_CAPTURE_KEY';
  const saved = process.env[variable];
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'switchyard-capture-'));
    process.env[variable] = randomBytes(32).toString('base64');
  });

  afterAll(async () => {
    if (saved === undefined) delete process.env[variable];
    else process.env[variable] = saved;
    await rm(directory, { recursive: true, force: true });
  });

  it('stores the prompt and the answer sealed, readable only with the capture key', async () => {
    const promptMarker = 'zebra-prompt-marker-4f1d';
    const answerMarker = 'quokka-answer-marker-9b2e';
    const provider = await upstream({ chunks: [answerMarker] });
    const storePath = join(directory, 'switchyard.db');
    const switchyard = await startTestGateway(
      `capture:\n  enabled: true\nmodels:\n${modelsYaml(provider, ['mock-model'])}`,
      { storePath },
    );
    const answers: Answer[] = [];
    try {
      for (const stream of [false, true]) {
        const answer = await send(switchyard, 'POST', chatPath, {
          model: 'mock-model',
          stream,
          messages: [{ role: 'user', content: `Repeat ${promptMarker}` }],
        });
        expect(answer.status, answer.text).toBe(200);
        expect(answer.text).toContain(answerMarker);
        answers.push(answer);
      }
    } finally {
      // Closing writes what capture still holds.
      await switchyard.close();
    }

    const store = await openStore(storePath);
    try {
      const rows = await store.db.selectFrom('payload_capture').selectAll().execute();
      expect(rows.map((row) => row.request_id).sort()).toEqual(
        answers.map((answer) => answer.headers.get('x-request-id')).sort(),
      );
      const stored = JSON.stringify(rows);
      for (const marker of [promptMarker, answerMarker, 'zebra', 'quokka'])
        expect(stored).not.toContain(marker);

      const ring = captureKeyRing({ keyId: 'k1', keyEnv: variable, keyFile: undefined }, process.env);
      for (const answer of answers) {
        const captured = await readPayloadCapture(store.db, answer.headers.get('x-request-id')!, ring);
        expect(captured).toBeDefined();
        expect(JSON.parse(captured!.request.toString('utf8')).messages[0].content).toBe(
          `Repeat ${promptMarker}`,
        );
        // What the client received, byte for byte, the stream's events included.
        expect(captured!.response.toString('utf8')).toBe(answer.text);
      }
    } finally {
      await store.close();
    }
  });
});
