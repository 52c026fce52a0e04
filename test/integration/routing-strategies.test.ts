import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';
import { seededRandom as seeded } from '../support/seeded-random.js';

/**
 * Issue 5: how a model's requests spread over its deployments, as a client sees it. Each
 * deployment is its own simulated upstream, so which one served a request is read from the
 * x-switchyard-target header and checked against what the upstreams received.
 */

const adminKey = 'routing-test-admin-key-3b9f41';
const admin = `admin:\n  key: ${adminKey}\n`;

async function startGateway(yaml: string, seed = 1): Promise<TestGateway> {
  return startTestGateway(yaml, { gateway: { random: seeded(seed) } });
}

function startUpstreams(count: number): Promise<MockUpstream[]> {
  return Promise.all(Array.from({ length: count }, () => startMockUpstream()));
}

/** One target, as YAML under a model's `targets:`; `fields` are more keys, flow-style values allowed. */
function target(name: string, upstream: MockUpstream, fields: Record<string, string | number> = {}): string {
  const lines = [`      - name: ${name}`, `        url: ${upstream.url}`];
  for (const [key, value] of Object.entries(fields)) lines.push(`        ${key}: ${value}`);
  return lines.join('\n');
}

interface Answer {
  readonly status: number;
  /** x-switchyard-target: the deployment that served the request. */
  readonly target: string | null;
  readonly version: string | null;
  readonly attempts: string | null;
  readonly contentType: string | null;
  readonly text: string;
}

const question = [{ role: 'user', content: 'What is the capital of France?' }];

async function chat(
  gateway: TestGateway,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Answer> {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ messages: question, ...body }),
    signal,
  });
  const text = await response.text();
  return {
    status: response.status,
    target: response.headers.get('x-switchyard-target'),
    version: response.headers.get('x-switchyard-version'),
    attempts: response.headers.get('x-switchyard-attempts'),
    contentType: response.headers.get('content-type'),
    text,
  };
}

/** `count` calls of `send`, at most `width` at a time, answers in call order. */
async function inBatches<T>(count: number, width: number, send: (index: number) => Promise<T>): Promise<T[]> {
  const answers: T[] = [];
  for (let start = 0; start < count; start += width) {
    const batch = Array.from({ length: Math.min(width, count - start) }, (_, offset) => send(start + offset));
    answers.push(...(await Promise.all(batch)));
  }
  return answers;
}

/** `count` calls of `send` one after another. */
async function inSequence<T>(count: number, send: (index: number) => Promise<T>): Promise<T[]> {
  const answers: T[] = [];
  for (let index = 0; index < count; index++) answers.push(await send(index));
  return answers;
}

function servedBy(answers: readonly Answer[], name: string): number {
  return answers.filter((answer) => answer.target === name).length;
}

interface DeploymentFigures {
  model: string;
  name: string;
  outstanding: number;
  healthy: boolean;
  load: { waiting: number; running: number } | null;
}

/** GET /admin/deployments: the live figures routing decides by. */
async function deployments(gateway: TestGateway, model: string): Promise<Record<string, DeploymentFigures>> {
  const response = await fetch(`${gateway.url}/admin/deployments`, {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  expect(response.status).toBe(200);
  const { data } = (await response.json()) as { data: DeploymentFigures[] };
  return Object.fromEntries(
    data.filter((entry) => entry.model === model).map((entry) => [entry.name, entry]),
  );
}

async function logRows(gateway: TestGateway, id: string) {
  await gateway.requestLog!.flush();
  return gateway.store.db.selectFrom('request_log').selectAll().where('id', '=', id).orderBy('seq').execute();
}

const poll = { timeout: 5_000, interval: 25 };

describe('weighted', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [heavy, light] = upstreams as [MockUpstream, MockUpstream];
    gateway = await startGateway(`
models:
  - name: weighted
    targets:
${target('heavy', heavy, { weight: 3 })}
${target('light', light, { weight: 1 })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('sends traffic in proportion to the weights', async () => {
    const answers = await inBatches(400, 20, () => chat(gateway, { model: 'weighted' }));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    const heavy = servedBy(answers, 'heavy');
    expect(heavy + servedBy(answers, 'light')).toBe(400);
    expect(heavy / 400).toBeGreaterThanOrEqual(0.68);
    expect(heavy / 400).toBeLessThanOrEqual(0.82);
    expect(upstreams[0]!.requests).toHaveLength(heavy);
    expect(upstreams[1]!.requests).toHaveLength(400 - heavy);
  });
});

describe('round-robin', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(3);
    const [a, b, c] = upstreams as [MockUpstream, MockUpstream, MockUpstream];
    gateway = await startGateway(`
models:
  - name: rotating
    strategy: round-robin
    targets:
${target('a', a)}
${target('b', b)}
${target('c', c)}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('takes the deployments in turn, in config order', async () => {
    const answers = await inSequence(9, () => chat(gateway, { model: 'rotating' }));
    expect(answers.map((answer) => answer.target)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
    for (const upstream of upstreams) expect(upstream.requests).toHaveLength(3);
  });
});

describe('least-outstanding', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [slow, fast] = upstreams as [MockUpstream, MockUpstream];
    slow.setBehaviour({ kind: 'delay', ms: 300 });
    gateway = await startGateway(`
models:
  - name: busy
    strategy: least-outstanding
    targets:
${target('slow', slow)}
${target('fast', fast)}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('sends most of a concurrent load to the deployment that finishes its requests sooner', async () => {
    // Six clients, each sending its next request as soon as its last is answered, share 60
    // requests: a client held up by the slow deployment leaves the rest to the fast one.
    const answers: Answer[] = [];
    let left = 60;
    const client = async () => {
      while (left > 0) {
        left--;
        answers.push(await chat(gateway, { model: 'busy' }));
      }
    };
    await Promise.all(Array.from({ length: 6 }, client));
    expect(answers).toHaveLength(60);
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(servedBy(answers, 'fast') / answers.length).toBeGreaterThanOrEqual(0.7);
  });
});

describe('latency', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [sluggish, brisk] = upstreams as [MockUpstream, MockUpstream];
    sluggish.setFaults({ errorRate: 0, seed: 7, latency: { p50: 80 } });
    gateway = await startGateway(`
models:
  - name: timed
    strategy: latency
    targets:
${target('sluggish', sluggish)}
${target('brisk', brisk)}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('tries each deployment, then sends most requests to the one that answers sooner', async () => {
    // An unmeasured deployment scores best, so the first two requests measure both.
    const warmUp = await inSequence(2, () => chat(gateway, { model: 'timed' }));
    expect(new Set(warmUp.map((answer) => answer.target))).toEqual(new Set(['sluggish', 'brisk']));
    const answers = await inSequence(60, () => chat(gateway, { model: 'timed' }));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect(servedBy(answers, 'brisk') / answers.length).toBeGreaterThan(0.7);
  });
});

describe('cost', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [premium, budget] = upstreams as [MockUpstream, MockUpstream];
    // The expensive one comes first, so that only the price can explain the choice.
    gateway = await startGateway(`
models:
  - name: thrifty
    strategy: cost
    latency_objective: 100ms
    targets:
${target('premium', premium, { price: '{ input: 5, output: 15 }' })}
${target('budget', budget, { price: '{ input: 0.5, output: 1.5 }' })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('sends everything to the cheaper deployment while it meets the latency objective', async () => {
    const answers = await inSequence(10, () => chat(gateway, { model: 'thrifty' }));
    expect(answers.map((answer) => answer.target)).toEqual(Array(10).fill('budget'));
    expect(upstreams[0]!.requests).toHaveLength(0);
  });

  it('moves to the faster deployment once the cheaper one’s average duration misses the objective', async () => {
    const [premium, budget] = upstreams as [MockUpstream, MockUpstream];
    budget.setBehaviour({ kind: 'delay', ms: 300 });
    // Each slow answer moves the average a fifth of the way to 300 ms; from a few ms it passes
    // 100 ms on the second.
    let slowAnswers = 0;
    for (let sent = 0; sent < 6; sent++) {
      const answer = await chat(gateway, { model: 'thrifty' });
      if (answer.target === 'premium') break;
      slowAnswers++;
    }
    expect(slowAnswers).toBeGreaterThan(0);
    expect(slowAnswers).toBeLessThanOrEqual(3);
    expect(premium.requests).toHaveLength(1);
    const after = await inSequence(5, () => chat(gateway, { model: 'thrifty' }));
    expect(after.map((answer) => answer.target)).toEqual(Array(5).fill('premium'));
  });
});

describe('load', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [queued, idle] = upstreams as [MockUpstream, MockUpstream];
    queued.setLoad({ waiting: 20 });
    gateway = await startGateway(`${admin}
models:
  - name: scraped
    strategy: load
    targets:
${target('queued', queued)}
${target('idle', idle)}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  /** Waits until the gateway's readings of both deployments' queues are `waiting`. */
  const readingsAre = (waiting: Record<string, number>) =>
    vi.waitFor(async () => {
      const figures = await deployments(gateway, 'scraped');
      for (const [name, queue] of Object.entries(waiting)) expect(figures[name]?.load?.waiting).toBe(queue);
    }, poll);

  it('sends requests to the deployment whose metrics show the shorter queue, and follows when the queues change', async () => {
    const [queued, idle] = upstreams as [MockUpstream, MockUpstream];
    await readingsAre({ queued: 20, idle: 0 });
    const before = await inSequence(20, () => chat(gateway, { model: 'scraped' }));
    expect(servedBy(before, 'idle')).toBeGreaterThanOrEqual(18);

    queued.setLoad({ waiting: 0 });
    idle.setLoad({ waiting: 20 });
    await readingsAre({ queued: 0, idle: 20 });
    const after = await inSequence(20, () => chat(gateway, { model: 'scraped' }));
    expect(servedBy(after, 'queued')).toBeGreaterThanOrEqual(18);
  });
});

describe('affinity', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;
  const healthCheck = '{ path: /health, interval: 50ms, unhealthy_threshold: 1 }';

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [left, right] = upstreams as [MockUpstream, MockUpstream];
    gateway = await startGateway(`${admin}
models:
  - name: sessions
    strategy: affinity
    affinity:
      header: x-session-id
      prompt_prefix: 400
    targets:
${target('left', left, { health_check: healthCheck })}
${target('right', right, { health_check: healthCheck })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  const inSession = (session: string) => chat(gateway, { model: 'sessions' }, { 'x-session-id': session });
  const sessions = Array.from({ length: 10 }, (_, index) => `session-${index}`);

  it('keeps every request of a session on one deployment, and spreads sessions over the deployments', async () => {
    const homes = new Set<string | null>();
    for (const session of sessions) {
      const answers = await inSequence(5, () => inSession(session));
      const served = new Set(answers.map((answer) => answer.target));
      expect(served.size, session).toBe(1);
      homes.add(answers[0]!.target);
    }
    expect(homes).toEqual(new Set(['left', 'right']));
  });

  it('moves a session off a deployment that goes down, and back when it recovers', async () => {
    const session = sessions[0]!;
    const home = (await inSession(session)).target!;
    const other = home === 'left' ? 'right' : 'left';
    const upstream = upstreams[home === 'left' ? 0 : 1]!;

    await upstream.pause();
    try {
      await vi.waitFor(
        async () => expect((await deployments(gateway, 'sessions'))[home]?.healthy).toBe(false),
        poll,
      );
      const away = await inSequence(3, () => inSession(session));
      expect(away.map((answer) => answer.target)).toEqual([other, other, other]);
      expect(away.map((answer) => answer.attempts)).toEqual(['1', '1', '1']);
    } finally {
      await upstream.resume();
    }
    await vi.waitFor(
      async () => expect((await deployments(gateway, 'sessions'))[home]?.healthy).toBe(true),
      poll,
    );
    const back = await inSequence(3, () => inSession(session));
    expect(back.map((answer) => answer.target)).toEqual([home, home, home]);
  });

  it('keeps requests that share a long prompt prefix on one deployment when there is no session header', async () => {
    const instructions = (topic: string) =>
      `You are a patient tutor for ${topic}. `.repeat(20) +
      'Answer in short paragraphs, check understanding, and never give the final answer away.';
    const ask = (topic: string, content: string) =>
      chat(gateway, {
        model: 'sessions',
        messages: [
          { role: 'system', content: instructions(topic) },
          { role: 'user', content },
        ],
      });
    const questions = ['What is a derivative?', 'Why does the chain rule work?', 'What is an integral?'];
    const sameTutor = await inSequence(6, (index) => ask('calculus', questions[index % 3]!));
    expect(new Set(sameTutor.map((answer) => answer.target)).size).toBe(1);

    const topics = ['algebra', 'biology', 'chemistry', 'history', 'music', 'physics', 'poetry', 'geology'];
    const tutors = await inSequence(topics.length, (index) => ask(topics[index]!, 'Where do we start?'));
    expect(new Set(tutors.map((answer) => answer.target))).toEqual(new Set(['left', 'right']));
  });
});

describe('sticky split', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(2);
    const [control, candidate] = upstreams as [MockUpstream, MockUpstream];
    gateway = await startGateway(`
models:
  - name: experiment
    targets:
${target('control', control)}
${target('candidate', candidate, { split: 20, version: 'v2' })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('keeps each user on one side of the split, and sends the candidate its share of users', async () => {
    const users = Array.from({ length: 300 }, (_, index) => `user-${index}`);
    const answers = await inBatches(600, 30, (index) =>
      chat(gateway, { model: 'experiment' }, { 'x-session-id': users[index % 300]! }),
    );
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    for (let index = 0; index < 300; index++) {
      expect(answers[index + 300]!.target, users[index]).toBe(answers[index]!.target);
    }
    const candidateUsers = servedBy(answers.slice(0, 300), 'candidate');
    expect(candidateUsers / 300).toBeGreaterThanOrEqual(0.13);
    expect(candidateUsers / 300).toBeLessThanOrEqual(0.27);
    for (const answer of answers) expect(answer.version).toBe(answer.target === 'candidate' ? 'v2' : null);
  });

  it('splits requests with no user to stick to at random, in the same proportion', async () => {
    const answers = await inBatches(200, 20, () => chat(gateway, { model: 'experiment' }));
    const share = servedBy(answers, 'candidate') / 200;
    expect(share).toBeGreaterThanOrEqual(0.13);
    expect(share).toBeLessThanOrEqual(0.27);
  });
});

describe('shadow', () => {
  let live: MockUpstream;
  let candidate: MockUpstream;
  let gateway: TestGateway;

  beforeAll(async () => {
    live = await startMockUpstream();
    candidate = await startMockUpstream({ chunks: ['from', ' the', ' shadow'] });
    gateway = await startGateway(`
models:
  - name: mirrored
    targets:
${target('live', live)}
${target('candidate', candidate, { shadow: 100 })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([live.close(), candidate.close()]);
  });

  /** The shadow's request-log row for `id`, once its answer has come back. */
  const shadowRow = async (id: string) => {
    let row: Awaited<ReturnType<typeof logRows>>[number] | undefined;
    await vi.waitFor(async () => {
      row = (await logRows(gateway, id)).find((entry) => entry.shadow === 1);
      expect(row).toBeDefined();
    }, poll);
    return row!;
  };

  it('answers from the serving deployment before the shadow has answered, and records the shadow apart', async () => {
    candidate.setBehaviour({ kind: 'delay', ms: 600 });
    const answer = await chat(gateway, { model: 'mirrored' }, { 'x-request-id': 'shadow-ok' });
    expect(answer).toMatchObject({ status: 200, target: 'live', attempts: '1' });
    expect(JSON.parse(answer.text).choices[0].message.content).toBe('Hello from the mock upstream.');

    // The shadow has its copy of the request, but the client's answer came first.
    await vi.waitFor(() => expect(candidate.requests).toHaveLength(1), poll);
    expect(candidate.requests[0]!.headers['x-request-id']).toBe('shadow-ok');
    const early = await logRows(gateway, 'shadow-ok');
    expect(early.map((row) => [row.deployment, row.shadow])).toEqual([['live', 0]]);

    const row = await shadowRow('shadow-ok');
    expect(row).toMatchObject({
      model: 'mirrored',
      deployment: 'candidate',
      status: 200,
      stream: 0,
      completion_tokens: 3,
      error_code: null,
    });
    const rows = await logRows(gateway, 'shadow-ok');
    expect(rows.map((entry) => [entry.deployment, entry.shadow, entry.attempts])).toEqual([
      ['live', 0, 1],
      ['candidate', 1, 1],
    ]);
  });

  it('answers the client as usual when the shadow fails', async () => {
    candidate.setBehaviour({ kind: 'error', status: 500 });
    const answer = await chat(gateway, { model: 'mirrored' }, { 'x-request-id': 'shadow-failing' });
    expect(answer).toMatchObject({ status: 200, target: 'live', attempts: '1' });
    expect(JSON.parse(answer.text).choices[0].message.content).toBe('Hello from the mock upstream.');
    const row = await shadowRow('shadow-failing');
    expect(row).toMatchObject({ deployment: 'candidate', status: 500 });
    expect(row.error_code).not.toBeNull();
  });

  it('mirrors a streamed request as a non-streamed one', async () => {
    candidate.setBehaviour({ kind: 'ok' });
    const answer = await chat(
      gateway,
      { model: 'mirrored', stream: true, stream_options: { include_usage: true } },
      { 'x-request-id': 'shadow-stream' },
    );
    expect(answer).toMatchObject({ status: 200, target: 'live' });
    expect(answer.contentType).toContain('text/event-stream');
    expect(answer.text).toContain('data: [DONE]');
    const row = await shadowRow('shadow-stream');
    expect(row).toMatchObject({ deployment: 'candidate', status: 200, stream: 0 });
    const copy = candidate.requests.find((request) => request.headers['x-request-id'] === 'shadow-stream');
    expect(copy?.json.stream).toBe(false);
    expect(copy?.json).not.toHaveProperty('stream_options');
    const real = live.requests.at(-1)!;
    expect(real.json.stream).toBe(true);
  });
});

describe('conditional routes', () => {
  let upstream: MockUpstream;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startMockUpstream();
    const served = (model: string, name: string) => `
  - name: ${model}
    targets:
      - name: ${name}
        url: ${upstream.url}
        model: ${name}-upstream`;
    gateway = await startGateway(`
models:
  - name: assistant
    routes:
      - when: { header: { x-tenant: acme } }
        model: dedicated
      - when: { tools: true }
        model: tool-user
      - when: { min_prompt_tokens: 1000 }
        model: long-context
      - when: { language: [de] }
        model: german
    targets:
      - name: general
        url: ${upstream.url}
        model: general-upstream
${served('dedicated', 'acme-only')}
${served('tool-user', 'tool-caller')}
${served('long-context', 'long-reader')}
${served('german', 'deutsch')}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  const german =
    'Kannst du mir bitte einen einfachen Plan für die ersten drei Tage in Berlin vorschlagen? Ich möchte gern Museen besuchen und abends gut essen gehen.';
  const english =
    'Could you please suggest a simple plan for my first three days in Berlin? I would like to visit museums and eat well in the evenings.';
  const tools = [
    {
      type: 'function',
      function: { name: 'lookup', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
    },
  ];

  it.each<{ case: string; body: Record<string, unknown>; headers: Record<string, string>; served: string }>([
    { case: 'a matching header', body: {}, headers: { 'x-tenant': 'acme' }, served: 'acme-only' },
    { case: 'a header with another value', body: {}, headers: { 'x-tenant': 'globex' }, served: 'general' },
    { case: 'tools offered', body: { tools }, headers: {}, served: 'tool-caller' },
    {
      case: 'a long prompt',
      body: { messages: [{ role: 'user', content: english.repeat(40) }] },
      headers: {},
      served: 'long-reader',
    },
    {
      case: 'a German prompt',
      body: { messages: [{ role: 'user', content: german }] },
      headers: {},
      served: 'deutsch',
    },
    {
      case: 'an English prompt that no route matches',
      body: { messages: [{ role: 'user', content: english }] },
      headers: {},
      served: 'general',
    },
  ])('routes a request with $case to $served', async ({ body, headers, served }) => {
    const answer = await chat(gateway, { model: 'assistant', ...body }, headers);
    expect(answer).toMatchObject({ status: 200, target: served });
    expect(upstream.requests.at(-1)!.json.model).toBe(`${served}-upstream`);
  });
});

describe('response headers and priority tiers', () => {
  let upstreams: MockUpstream[];
  let gateway: TestGateway;

  beforeAll(async () => {
    upstreams = await startUpstreams(5);
    const [blue, primary, overflow, guarded, standby] = upstreams as [
      MockUpstream,
      MockUpstream,
      MockUpstream,
      MockUpstream,
      MockUpstream,
    ];
    gateway = await startGateway(`${admin}
models:
  - name: versioned
    targets:
${target('blue', blue, { version: '2024-06-01' })}
  - name: tiered
    targets:
${target('primary', primary, { max_concurrency: 1 })}
${target('overflow', overflow, { priority: 1 })}
  - name: guarded
    breaker:
      consecutive_failures: 1
      cooldown: 60s
    targets:
${target('primary', guarded)}
${target('standby', standby, { priority: 1 })}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  it('names the deployment, its version and the attempts in the response headers', async () => {
    const answer = await chat(gateway, { model: 'versioned' });
    expect(answer).toMatchObject({ status: 200, target: 'blue', version: '2024-06-01', attempts: '1' });
    const streamed = await chat(gateway, { model: 'versioned', stream: true });
    expect(streamed).toMatchObject({ status: 200, target: 'blue', version: '2024-06-01', attempts: '1' });
  });

  it('sends to a priority-1 deployment only while the priority-0 one is at its max_concurrency', async () => {
    const [, primary, overflow] = upstreams as [MockUpstream, MockUpstream, MockUpstream];
    const first = await inSequence(5, () => chat(gateway, { model: 'tiered' }));
    expect(first.map((answer) => answer.target)).toEqual(Array(5).fill('primary'));
    expect(overflow.requests).toHaveLength(0);

    // One request held open on the primary fills its single slot.
    primary.setSchedule([{ kind: 'hang' }]);
    const hold = new AbortController();
    const held = chat(gateway, { model: 'tiered' }, {}, hold.signal).catch((error: unknown) => error);
    await vi.waitFor(() => expect(primary.requests).toHaveLength(6), poll);
    const spilled = await chat(gateway, { model: 'tiered' });
    expect(spilled).toMatchObject({ status: 200, target: 'overflow', version: null, attempts: '1' });

    hold.abort();
    await held;
    await vi.waitFor(
      async () => expect((await deployments(gateway, 'tiered')).primary?.outstanding).toBe(0),
      poll,
    );
    const after = await chat(gateway, { model: 'tiered' });
    expect(after).toMatchObject({ status: 200, target: 'primary' });
    expect(overflow.requests).toHaveLength(1);
  });

  it('sends to a priority-1 deployment while the priority-0 one’s breaker is open', async () => {
    const [, , , guarded, standby] = upstreams as MockUpstream[];
    guarded!.setSchedule([{ kind: 'error', status: 500 }]);
    const retried = await chat(gateway, { model: 'guarded' });
    expect(retried).toMatchObject({ status: 200, target: 'standby', attempts: '2' });
    const next = await inSequence(3, () => chat(gateway, { model: 'guarded' }));
    expect(next.map((answer) => [answer.target, answer.attempts])).toEqual(Array(3).fill(['standby', '1']));
    expect(guarded!.requests).toHaveLength(1);
    expect(standby!.requests).toHaveLength(4);
  });
});
