import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Sqlite from 'libsql';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { type Answer, send, sseEvents, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, rateLimited, startMockUpstream } from '../support/mock-upstream.js';
import { seededRandom as seeded } from '../support/seeded-random.js';

/**
 * Routing and reliability through the real gateway (issue 5): retries on the model, the global
 * retry budget, fallbacks by failure class, circuit breakers, health checks, streams that fail
 * before and after their first byte, per-request timeouts and hot reload. Only the upstreams are
 * simulated; timings are kept short and asserted only as loose lower bounds.
 */

const adminKey = 'reliability-admin-key-0123456789';
const chatPath = '/v1/chat/completions';
const messages = [{ role: 'user', content: 'hi' }];

function chat(
  gateway: TestGateway,
  model: string,
  fields: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<Answer> {
  return send(gateway, 'POST', chatPath, { model, messages, ...fields }, headers);
}

interface DeploymentView {
  model: string;
  name: string;
  breaker: string;
  healthy: boolean;
  outstanding: number;
}

async function deployment(gateway: TestGateway, model: string, name?: string): Promise<DeploymentView> {
  const response = await fetch(`${gateway.url}/admin/deployments`, {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  expect(response.status).toBe(200);
  const { data } = (await response.json()) as { data: DeploymentView[] };
  const found = data.find((entry) => entry.model === model && (name === undefined || entry.name === name));
  if (found === undefined) throw new Error(`no deployment ${model}/${name ?? '*'} in /admin/deployments`);
  return found;
}

/** Polls until `check` holds; background work (cooldowns, health checks) has no event to await. */
async function until(check: () => Promise<boolean> | boolean, what: string, limit = 5_000): Promise<void> {
  const deadline = performance.now() + limit;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** The config a reload reads, with the overrides startTestGateway applies. */
function testConfig(yaml: string): GatewayConfig {
  const parsed = parseConfigText(yaml, {});
  return {
    ...parsed,
    server: { ...parsed.server, host: '127.0.0.1', port: 0 },
    store: { ...parsed.store, path: ':memory:' },
  };
}

const upstreams: MockUpstream[] = [];
async function upstream(options: Parameters<typeof startMockUpstream>[0] = {}): Promise<MockUpstream> {
  const started = await startMockUpstream(options);
  upstreams.push(started);
  return started;
}
afterAll(async () => {
  await Promise.all(upstreams.map((started) => started.close()));
});

describe('a failure before any byte reached the client is retried on the model', () => {
  let gateway: TestGateway;
  let one: MockUpstream;
  let first: MockUpstream;
  let second: MockUpstream;

  beforeAll(async () => {
    [one, first, second] = await Promise.all([upstream(), upstream(), upstream()]);
    gateway = await startTestGateway(
      `
models:
  - name: single
    retries: { attempts: 2, backoff: 10ms }
    breaker: false
    targets:
      - url: ${one.url}
        name: only
        timeouts: { first_byte: 200ms, total: 5s }
  - name: pair
    retries: { attempts: 2, backoff: 10ms }
    breaker: false
    targets:
      - url: ${first.url}
        name: east
        priority: 0
      - url: ${second.url}
        name: west
        priority: 1
`,
      { gateway: { random: seeded(1) } },
    );
  });
  afterAll(() => gateway?.close());
  afterEach(() => {
    for (const started of [one, first, second]) started.reset();
  });

  const failures = [
    { name: 'a 500', behaviour: { kind: 'error', status: 500 } },
    { name: 'a connection reset', behaviour: { kind: 'reset' } },
    { name: 'a first byte later than timeouts.first_byte', behaviour: { kind: 'delay', ms: 2_000 } },
  ] as const;
  for (const failure of failures) {
    it(`answers 200 after ${failure.name} on a single target, in 2 attempts`, async () => {
      one.setSchedule([failure.behaviour]);
      const before = one.count(chatPath);
      const answer = await chat(gateway, 'single');
      expect(answer.status).toBe(200);
      expect(answer.json.choices[0].message.content).toBe('Hello from the mock upstream.');
      expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
      expect(answer.headers.get('x-switchyard-target')).toBe('only');
      expect(one.count(chatPath) - before).toBe(2);
    });
  }

  it('does not retry a 400, which would fail the same way again', async () => {
    one.setBehaviour({ kind: 'error', status: 400 });
    const before = one.count(chatPath);
    const answer = await chat(gateway, 'single');
    expect(answer.status).toBe(400);
    expect(answer.json.error.message).toBe('Mock upstream error 400.');
    expect(answer.headers.get('x-switchyard-attempts')).toBe('1');
    expect(one.count(chatPath) - before).toBe(1);
  });

  it('retries on the other deployment first, at once', async () => {
    first.setBehaviour({ kind: 'error', status: 503 });
    const answer = await chat(gateway, 'pair');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    expect(answer.headers.get('x-switchyard-target')).toBe('west');
    expect(first.requests.length).toBe(1);
    expect(second.requests.length).toBe(1);
  });
});

describe('a 429 is retried after its Retry-After only when that fits max_backoff', () => {
  let gateway: TestGateway;
  let limited: MockUpstream;
  let backup: MockUpstream;

  beforeAll(async () => {
    [limited, backup] = await Promise.all([upstream(), upstream()]);
    gateway = await startTestGateway(
      `
models:
  - name: patient
    retries: { attempts: 2, backoff: 10ms, max_backoff: 2s }
    breaker: false
    targets:
      - url: ${limited.url}
  - name: hasty
    retries: { attempts: 2, backoff: 10ms, max_backoff: 500ms }
    breaker: false
    targets:
      - url: ${limited.url}
  - name: hasty-with-backup
    retries: { attempts: 2, backoff: 10ms, max_backoff: 500ms }
    breaker: false
    fallbacks: [backup]
    targets:
      - url: ${limited.url}
  - name: backup
    breaker: false
    targets:
      - url: ${backup.url}
        name: backup-deployment
`,
      { gateway: { random: seeded(2) } },
    );
  });
  afterAll(() => gateway?.close());
  afterEach(() => limited.reset());

  it('waits the second the upstream asked for, then succeeds on the same target', async () => {
    limited.setSchedule([rateLimited({ retryAfter: 1 })]);
    const before = limited.count(chatPath);
    const answer = await chat(gateway, 'patient');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    expect(answer.elapsed).toBeGreaterThanOrEqual(900);
    expect(limited.count(chatPath) - before).toBe(2);
  });

  it('passes the 429 on with its Retry-After when the wait is longer than max_backoff', async () => {
    limited.setSchedule([rateLimited({ retryAfter: 1 })]);
    const before = limited.count(chatPath);
    const answer = await chat(gateway, 'hasty');
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(answer.json.error.code).toBe('rate_limit_exceeded');
    expect(limited.count(chatPath) - before).toBe(1);
  });

  it('goes to the fallback instead when the model has one', async () => {
    limited.setSchedule([rateLimited({ retryAfter: 1 })]);
    const before = limited.count(chatPath);
    const answer = await chat(gateway, 'hasty-with-backup');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    expect(answer.headers.get('x-switchyard-target')).toBe('backup-deployment');
    expect(limited.count(chatPath) - before).toBe(1);
    expect(backup.requests.length).toBe(1);
  });
});

describe('the retry budget caps how much retries add to the load on a failing upstream', () => {
  let gateway: TestGateway;
  let broken: MockUpstream;

  beforeAll(async () => {
    broken = await upstream();
    broken.setBehaviour({ kind: 'error', status: 500 });
    gateway = await startTestGateway(
      `
routing:
  retry_budget: { ratio: 0.1, min_per_second: 0 }
models:
  - name: failing
    retries: { attempts: 2, backoff: 1ms }
    breaker: false
    targets:
      - url: ${broken.url}
`,
      { gateway: { random: seeded(3) } },
    );
  });
  afterAll(() => gateway?.close());

  it('lets 100 failing requests make at most 10% more upstream requests, not 200%', async () => {
    const statuses = new Set<number>();
    for (let index = 0; index < 100; index++) statuses.add((await chat(gateway, 'failing')).status);
    expect([...statuses]).toEqual([502]);
    const sent = broken.count(chatPath);
    expect(sent).toBeGreaterThan(100);
    expect(sent).toBeLessThanOrEqual(100 + 10 + 1);
  });
});

describe('fallbacks', () => {
  let gateway: TestGateway;
  let primary: MockUpstream;
  let secondary: MockUpstream;

  beforeAll(async () => {
    [primary, secondary] = await Promise.all([upstream(), upstream()]);
    gateway = await startTestGateway(
      `
models:
  - name: a
    retries: 0
    breaker: false
    fallbacks: [b]
    targets:
      - url: ${primary.url}
        name: a-east
  - name: b
    retries: 0
    breaker: false
    targets:
      - url: ${secondary.url}
        name: b-west
  - name: small
    retries: 0
    breaker: false
    context_window_fallbacks: [large]
    targets:
      - url: ${primary.url}
        name: small-deployment
  - name: large
    retries: 0
    breaker: false
    targets:
      - url: ${secondary.url}
        name: large-deployment
`,
      { gateway: { random: seeded(4) } },
    );
  });
  afterAll(() => gateway?.close());
  afterEach(() => {
    primary.reset();
    secondary.reset();
  });

  it('answers one error naming every attempt when the whole chain fails, with the last status', async () => {
    primary.setBehaviour({ kind: 'error', status: 500 });
    secondary.setBehaviour({ kind: 'error', status: 503 });
    const answer = await chat(gateway, 'a');
    // An upstream 503 from an OpenAI-compatible target is upstream_error, a 502 (the catalogue).
    expect(answer.status).toBe(502);
    expect(answer.json.error.code).toBe('upstream_error');
    expect(answer.json.error.message).toMatch(
      /^All 2 attempts failed\. \(1\) a\/a-east: .*500.* \(2\) b\/b-west: .*503/,
    );
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    expect(answer.headers.get('x-switchyard-target')).toBe('b-west');
  });

  it('sends a prompt too long for the context window to the context_window_fallbacks', async () => {
    primary.setBehaviour({
      kind: 'error',
      status: 400,
      body: {
        error: {
          message: "This model's maximum context length is 8192 tokens.",
          type: 'invalid_request_error',
          param: 'messages',
          code: 'context_length_exceeded',
        },
      },
    });
    const answer = await chat(gateway, 'small');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-target')).toBe('large-deployment');
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    expect(secondary.requests.at(-1)?.json.model).toBe('large');
  });

  it('passes any other 400 on as it came, without a fallback', async () => {
    const body = {
      error: {
        message: 'Invalid value for temperature.',
        type: 'invalid_request_error',
        param: 'temperature',
        code: 'invalid_value',
      },
    };
    primary.setBehaviour({ kind: 'error', status: 400, body });
    const before = secondary.count(chatPath);
    const answer = await chat(gateway, 'small');
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual(body);
    expect(secondary.count(chatPath)).toBe(before);
  });
});

describe('circuit breakers', () => {
  let gateway: TestGateway;
  let fragile: MockUpstream;
  let dead: MockUpstream;

  beforeAll(async () => {
    [fragile, dead] = await Promise.all([upstream(), upstream()]);
    gateway = await startTestGateway(
      `
admin:
  key: ${adminKey}
models:
  - name: fragile
    retries: 0
    breaker: { consecutive_failures: 3, cooldown: 300ms }
    targets:
      - url: ${fragile.url}
        name: fragile-deployment
  - name: defaults
    retries: { backoff: 20ms }
    targets:
      - url: ${dead.url}
        name: dead-deployment
`,
      { gateway: { random: seeded(5) } },
    );
  });
  afterAll(() => gateway?.close());

  it('opens after consecutive failures, answering 503 without reaching the upstream', async () => {
    fragile.setBehaviour({ kind: 'error', status: 500 });
    for (let index = 0; index < 3; index++) expect((await chat(gateway, 'fragile')).status).toBe(502);
    expect((await deployment(gateway, 'fragile')).breaker).toBe('open');
    const before = fragile.count(chatPath);
    const refused = await chat(gateway, 'fragile');
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('no_healthy_target');
    expect(refused.json.error.message).toContain('fragile-deployment: circuit open');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(fragile.count(chatPath)).toBe(before);
  });

  it('lets a probe through after the cooldown, and closes when it succeeds', async () => {
    fragile.setBehaviour({ kind: 'ok' });
    await until(async () => (await deployment(gateway, 'fragile')).breaker === 'half-open', 'half-open');
    const before = fragile.count(chatPath);
    const probe = await chat(gateway, 'fragile');
    expect(probe.status).toBe(200);
    expect(fragile.count(chatPath) - before).toBe(1);
    expect((await deployment(gateway, 'fragile')).breaker).toBe('closed');
  });

  it('re-opens when the probe fails', async () => {
    fragile.setBehaviour({ kind: 'error', status: 500 });
    for (let index = 0; index < 3; index++) await chat(gateway, 'fragile');
    expect((await deployment(gateway, 'fragile')).breaker).toBe('open');
    await until(async () => (await deployment(gateway, 'fragile')).breaker === 'half-open', 'half-open');
    const before = fragile.count(chatPath);
    expect((await chat(gateway, 'fragile')).status).toBe(502);
    expect(fragile.count(chatPath) - before).toBe(1);
    expect((await deployment(gateway, 'fragile')).breaker).toBe('open');
    expect((await chat(gateway, 'fragile')).json.error.code).toBe('no_healthy_target');
    expect(fragile.count(chatPath) - before).toBe(1);
  });

  it('keeps a dead single target from costing three attempts per request once the breaker opens', async () => {
    await dead.pause();
    const answers: Answer[] = [];
    for (let index = 0; index < 6; index++) answers.push(await chat(gateway, 'defaults'));
    // The first request tries three times (retries: 2), and the default breaker opens after five
    // failures in a row; from then on requests fail fast, before any upstream attempt.
    expect(answers[0]!.status).toBe(502);
    expect(answers[0]!.json.error.message).toMatch(/^All 3 attempts failed\./);
    const attempts = answers.map((answer) => Number(answer.headers.get('x-switchyard-attempts')));
    expect(attempts.reduce((sum, count) => sum + count, 0)).toBe(5);
    for (const answer of answers.slice(2)) {
      expect(answer.status).toBe(503);
      expect(answer.json.error.code).toBe('no_healthy_target');
      expect(answer.headers.get('retry-after')).not.toBeNull();
      expect(answer.headers.get('x-switchyard-attempts')).toBe('0');
    }
    expect((await deployment(gateway, 'defaults')).breaker).toBe('open');
  });
});

describe('active health checks', () => {
  let gateway: TestGateway;
  let east: MockUpstream;
  let west: MockUpstream;

  beforeAll(async () => {
    [east, west] = await Promise.all([upstream(), upstream()]);
    const check = '{ path: /health, interval: 50ms, unhealthy_threshold: 1 }';
    gateway = await startTestGateway(
      `
admin:
  key: ${adminKey}
models:
  - name: checked
    breaker: false
    targets:
      - url: ${east.url}
        name: east
        health_check: ${check}
      - url: ${west.url}
        name: west
        health_check: ${check}
`,
      { gateway: { random: seeded(6) } },
    );
  });
  afterAll(() => gateway?.close());

  it('takes a deployment out of rotation while its health check fails, and back when it passes', async () => {
    east.setHealthy(false);
    await until(async () => !(await deployment(gateway, 'checked', 'east')).healthy, 'east is unhealthy');
    const before = east.count(chatPath);
    for (let index = 0; index < 20; index++) {
      const answer = await chat(gateway, 'checked');
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-switchyard-target')).toBe('west');
    }
    expect(east.count(chatPath)).toBe(before);

    east.setHealthy(true);
    await until(async () => (await deployment(gateway, 'checked', 'east')).healthy, 'east is healthy');
    const targets = new Set<string | null>();
    for (let index = 0; index < 20; index++) {
      targets.add((await chat(gateway, 'checked')).headers.get('x-switchyard-target'));
    }
    expect(targets).toContain('east');
  });
});

describe('streams', () => {
  let gateway: TestGateway;
  let streaming: MockUpstream;

  beforeAll(async () => {
    streaming = await upstream({ chunkDelayMs: 2 });
    gateway = await startTestGateway(
      `
models:
  - name: streamer
    retries: { attempts: 2, backoff: 10ms }
    breaker: false
    targets:
      - url: ${streaming.url}
`,
      { gateway: { random: seeded(7) } },
    );
  });
  afterAll(() => gateway?.close());
  afterEach(() => streaming.reset());

  it('ends a stream cut after its first events with an error event, and does not retry it', async () => {
    streaming.setBehaviour({ kind: 'cut', afterChunks: 2 });
    const before = streaming.count(chatPath);
    const answer = await chat(gateway, 'streamer', { stream: true });
    expect(answer.status).toBe(200);
    const data = sseEvents(answer.text).map((event) => event.data);
    expect(data).toHaveLength(3);
    expect(JSON.parse(data[1]!).choices[0].delta.content).toBe('Hello');
    expect(JSON.parse(data[2]!).error.code).toMatch(/^upstream_(connection_reset|stream_failed)$/);
    expect(streaming.count(chatPath) - before).toBe(1);
  });

  it('retries a stream that failed before its first event, and the client sees a normal stream', async () => {
    streaming.setSchedule([{ kind: 'reset' }]);
    const before = streaming.count(chatPath);
    const answer = await chat(gateway, 'streamer', { stream: true });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    const data = sseEvents(answer.text).map((event) => event.data);
    expect(data.at(-1)).toBe('[DONE]');
    expect(data.join('')).not.toContain('"error"');
    expect(streaming.count(chatPath) - before).toBe(2);
  });

  const anthropicRequest = {
    model: 'streamer',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
  };

  it('retries an Anthropic stream that failed before its first byte', async () => {
    streaming.setSchedule([{ kind: 'error', status: 500 }]);
    const answer = await send(gateway, 'POST', '/v1/messages', anthropicRequest);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-switchyard-attempts')).toBe('2');
    const names = sseEvents(answer.text).map((event) => event.event);
    expect(names[0]).toBe('message_start');
    expect(names.at(-1)).toBe('message_stop');
    expect(names).not.toContain('error');
  });

  it('ends an Anthropic stream cut mid-way with an Anthropic error event', async () => {
    streaming.setBehaviour({ kind: 'cut', afterChunks: 3 });
    const before = streaming.count(chatPath);
    const answer = await send(gateway, 'POST', '/v1/messages', anthropicRequest);
    expect(answer.status).toBe(200);
    const received = sseEvents(answer.text);
    expect(received[0]?.event).toBe('message_start');
    expect(received.map((event) => event.event)).not.toContain('message_stop');
    const last = received.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data)).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(streaming.count(chatPath) - before).toBe(1);
  });
});

describe('per-request timeout headers only ever shorten the model timeouts', () => {
  let gateway: TestGateway;
  let slow: MockUpstream;

  beforeAll(async () => {
    slow = await upstream();
    gateway = await startTestGateway(
      `
models:
  - name: roomy
    retries: 0
    breaker: false
    targets:
      - url: ${slow.url}
        timeouts: { total: 10s }
  - name: brief
    retries: 0
    breaker: false
    targets:
      - url: ${slow.url}
        timeouts: { total: 300ms }
`,
      { gateway: { random: seeded(8) } },
    );
  });
  afterAll(() => gateway?.close());
  afterEach(() => slow.reset());

  it('answers 504 soon after x-switchyard-timeout, well before the model total', async () => {
    slow.setBehaviour({ kind: 'hang' });
    const answer = await chat(gateway, 'roomy', {}, { 'x-switchyard-timeout': '150ms' });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('request_timeout');
    expect(answer.elapsed).toBeGreaterThanOrEqual(140);
    expect(answer.elapsed).toBeLessThan(5_000);
  });

  it('answers 504 after x-switchyard-first-byte-timeout when the first byte is late', async () => {
    slow.setBehaviour({ kind: 'delay', ms: 3_000 });
    const answer = await chat(gateway, 'roomy', {}, { 'x-switchyard-first-byte-timeout': '100' });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_first_byte_timeout');
    expect(answer.elapsed).toBeLessThan(2_500);
  });

  it('refuses an unreadable timeout header with 400 invalid_header, before any upstream request', async () => {
    const before = slow.count(chatPath);
    const answer = await chat(gateway, 'roomy', {}, { 'x-switchyard-timeout': 'banana' });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe('invalid_header');
    expect(answer.json.error.message).toContain('x-switchyard-timeout');
    expect(slow.count(chatPath)).toBe(before);
  });

  it('keeps the model total when the header asks for longer', async () => {
    slow.setBehaviour({ kind: 'hang' });
    const answer = await chat(gateway, 'brief', {}, { 'x-switchyard-timeout': '60s' });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('request_timeout');
    expect(answer.elapsed).toBeGreaterThanOrEqual(250);
    expect(answer.elapsed).toBeLessThan(5_000);
  });
});

describe('hot reload', () => {
  let gateway: TestGateway;
  let before: MockUpstream;
  let after: MockUpstream;
  let steady: MockUpstream;
  let yaml: string;

  const config = (movingUrl: string, extra = '') => `
admin:
  key: ${adminKey}
models:
  - name: moving
    retries: 0
    breaker: false
    targets:
      - url: ${movingUrl}
  - name: steady
    retries: 0
    breaker: { consecutive_failures: 1, cooldown: 60s }
    targets:
      - url: ${steady.url}
        name: steady-deployment
${extra}`;

  const reload = () =>
    fetch(`${gateway.url}/admin/config/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}` },
    });

  beforeAll(async () => {
    [before, after, steady] = await Promise.all([upstream(), upstream(), upstream()]);
    yaml = config(before.url);
    gateway = await startTestGateway(yaml, {
      gateway: { random: seeded(9), loadConfig: async () => testConfig(yaml) },
    });
  });
  afterAll(() => gateway?.close());

  it('finishes a request in flight on the old config while new requests go where the new one says', async () => {
    before.setBehaviour({ kind: 'delay', ms: 500 });
    const inFlight = chat(gateway, 'moving');
    await until(() => before.requests.length === 1, 'the slow request reached the first upstream');
    yaml = config(after.url);
    const response = await reload();
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ reloaded: true, models: 2 });

    const fresh = await chat(gateway, 'moving');
    expect(fresh.status).toBe(200);
    expect(after.requests).toHaveLength(1);
    const slow = await inFlight;
    expect(slow.status).toBe(200);
    expect(slow.json.choices[0].message.content).toBe('Hello from the mock upstream.');
    expect(before.requests).toHaveLength(1);
  });

  it('keeps serving on the old config when the new one is invalid, answering 422', async () => {
    const good = yaml;
    yaml = `${good}\nunknown_setting: true\n`;
    const response = await reload();
    expect(response.status).toBe(422);
    const body = (await response.json()) as any;
    expect(body.error.code).toBe('invalid_config');
    expect(body.error.message).toContain('unknown_setting');
    yaml = good;
    const sent = after.count(chatPath);
    expect((await chat(gateway, 'moving')).status).toBe(200);
    expect(after.count(chatPath) - sent).toBe(1);
  });

  it('carries the breaker of a deployment that stays over a reload', async () => {
    steady.setBehaviour({ kind: 'error', status: 500 });
    expect((await chat(gateway, 'steady')).status).toBe(502);
    expect((await deployment(gateway, 'steady')).breaker).toBe('open');
    yaml = config(after.url, `  - name: newcomer\n    targets:\n      - url: ${after.url}\n`);
    expect((await reload()).status).toBe(200);
    expect((await deployment(gateway, 'steady')).breaker).toBe('open');
    const sent = steady.count(chatPath);
    expect((await chat(gateway, 'steady')).json.error.code).toBe('no_healthy_target');
    expect(steady.count(chatPath)).toBe(sent);
  });

  it('answers 409 reload_unavailable on a gateway started without a config to read again', async () => {
    const fixed = await startTestGateway(yaml);
    try {
      const response = await fetch(`${fixed.url}/admin/config/reload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}` },
      });
      expect(response.status).toBe(409);
      expect(((await response.json()) as any).error.code).toBe('reload_unavailable');
    } finally {
      await fixed.close();
    }
  });
});

describe('the request log', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'switchyard-reliability-'));
  });
  afterAll(() => rm(directory, { recursive: true, force: true }));

  it('records the attempts a retried request took and the deployment that answered', async () => {
    const [failing, healthy] = await Promise.all([upstream(), upstream()]);
    failing.setBehaviour({ kind: 'error', status: 500 });
    const path = join(directory, 'switchyard.db');
    const gateway = await startTestGateway(
      `
models:
  - name: logged
    breaker: false
    targets:
      - url: ${failing.url}
        name: first-choice
        priority: 0
      - url: ${healthy.url}
        name: second-choice
        version: v2
        priority: 1
`,
      { storePath: path, gateway: { random: seeded(10) } },
    );
    try {
      const answer = await chat(gateway, 'logged', {}, { 'x-request-id': 'retried-request' });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-switchyard-version')).toBe('v2');
    } finally {
      await gateway.close();
    }
    const database = new Sqlite(path, { readonly: true });
    const rows = database.prepare('select * from request_log').all() as Record<string, unknown>[];
    database.close();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: 'retried-request',
      model: 'logged',
      status: 200,
      attempts: 2,
      deployment: 'second-choice',
      version: 'v2',
    });
  });
});
