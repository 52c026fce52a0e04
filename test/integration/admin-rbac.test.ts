import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JWTPayload, SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Role, roles } from '../../src/auth/types.js';
import { parseConfigText } from '../../src/config/load.js';
import { adminRoutes, routeAccess } from '../../src/control/rbac.js';
import { inspectGguf } from '../../src/runner/model-inspector.js';
import { ModelStore } from '../../src/runner/store/index.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

/**
 * Issue 6: who may call which admin route, checked through a real gateway with the credentials
 * people actually hold: the admin key, and single-sign-on tokens signed by an identity provider
 * whose keys (JWKS) are served on loopback, one per role.
 */

const adminKey = 'test-admin-key-rbac-7c41e9a02d';
const issuer = 'https://idp.switchyard.test/realms/ops';
const audience = 'switchyard-admin';

/**
 * The policy as a caller meets it, one line per admin route: `all` (any team's resources), `team`
 * (its own team's only) or `-` (refused, 403). Written out by hand so that a change to
 * control/rbac.ts shows up here as a diff someone has to agree with; a test below holds it to
 * `routeAccess` and to the routes the gateway registers.
 */
const policy = `
  method  route                         admin  operator  developer  viewer
  GET     /admin/models                 all    all       all        all
  GET     /admin/models/*               all    all       all        all
  DELETE  /admin/models/*               all    all       -          -
  POST    /admin/models/pull            all    all       -          -
  POST    /admin/models/import          all    all       -          -
  GET     /admin/ps                     all    all       -          all
  GET     /admin/deployments            all    all       all        all
  POST    /admin/config/reload          all    all       -          -
  GET     /admin/audit                  all    all       -          -
  GET     /admin/audit/verify           all    all       -          -
  GET     /admin/keys                   all    all       team       -
  POST    /admin/keys                   all    all       team       -
  GET     /admin/keys/:id               all    all       team       -
  PATCH   /admin/keys/:id               all    all       -          -
  DELETE  /admin/keys/:id               all    all       team       -
  POST    /admin/keys/:id/rotate        all    all       team       -
  GET     /admin/teams                  all    all       -          -
  POST    /admin/teams                  all    all       -          -
  GET     /admin/teams/:id              all    all       -          -
  PATCH   /admin/teams/:id              all    all       -          -
  DELETE  /admin/teams/:id              all    all       -          -
  GET     /admin/users                  all    -         -          -
  POST    /admin/users                  all    -         -          -
  GET     /admin/users/:id              all    -         -          -
  PATCH   /admin/users/:id              all    -         -          -
  DELETE  /admin/users/:id              all    -         -          -
  GET     /admin/usage                  all    all       team       all
`;

type Access = 'all' | 'team' | 'none';

/** The policy table above as `"METHOD /path" → access per role, in the order of \`roles\``. */
function writtenPolicy(): Record<string, Access[]> {
  const [header, ...lines] = policy.trim().split('\n');
  expect(header?.trim().split(/\s+/).slice(2)).toEqual([...roles]);
  return Object.fromEntries(
    lines.map((line) => {
      const [method, path, ...access] = line.trim().split(/\s+/);
      return [`${method} ${path}`, access.map((cell) => (cell === '-' ? 'none' : cell) as Access)];
    }),
  );
}

const routeName = (route: { method: string; path: string }) => `${route.method} ${route.path}`;

// The identity provider: a signing key it publishes, and keys it does not.

interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function signingKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, privateKey, publicKey };
}

/** The provider's key, the only one its JWKS publishes. */
const trusted = signingKey('ops-2025');
/** Another key under the same key id: what a forger holding no private key of ours would sign with. */
const forged = signingKey('ops-2025');
/** Another provider's key, under a key id ours does not publish. */
const foreign = signingKey('elsewhere-1');

interface TokenOptions {
  readonly key?: SigningKey;
  readonly issuer?: string;
  readonly audience?: string;
  /** Seconds since the epoch; default ten minutes from now. */
  readonly expiresAt?: number;
}

/** A token for `subject` as the provider would issue it, `claims` (role, team, email) included. */
function token(subject: string, claims: JWTPayload, options: TokenOptions = {}): Promise<string> {
  const key = options.key ?? trusted;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(options.issuer ?? issuer)
    .setAudience(options.audience ?? audience)
    .setSubject(subject)
    .setIssuedAt(now - 60)
    .setExpirationTime(options.expiresAt ?? now + 600)
    .sign(key.privateKey);
}

/** Each role's caller: its actor in the audit log and the credential it sends. */
const subjects: Record<Exclude<Role, 'admin'>, string> = {
  operator: 'olivia.ops',
  developer: 'dana.dev',
  viewer: 'victor.view',
};
const actors: Record<Role, string> = {
  admin: 'admin',
  operator: `oidc:${subjects.operator}`,
  developer: `oidc:${subjects.developer}`,
  viewer: `oidc:${subjects.viewer}`,
};
const credentials = {} as Record<Role, string>;

let directory: string;
let jwks: Server;
let provider: MockUpstream;
let gateway: TestGateway;
/** The two teams, as the admin API answered their creation. */
const teams = {} as Record<'search' | 'ads', { id: string; name: string }>;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-admin-rbac-'));
  jwks = createServer((request, response) => {
    if (request.url !== '/certs') {
      response.writeHead(404).end();
      return;
    }
    const published = {
      ...trusted.publicKey.export({ format: 'jwk' }),
      kid: trusted.kid,
      alg: 'ES256',
      use: 'sig',
    };
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ keys: [published] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/certs`;
  provider = await startMockUpstream();

  const yaml = `admin:
  key: \${ADMIN_KEY}
auth:
  oidc:
    issuer: ${issuer}
    audience: ${audience}
    jwks_url: ${jwksUrl}
models:
  - name: public
    targets:
      - url: ${provider.url}
        api_key: upstream-secret
        model: mock-model
`;
  const env = { ADMIN_KEY: adminKey };
  const models = new ModelStore({ root: join(directory, 'models'), inspect: inspectGguf });
  gateway = await startTestGateway(yaml, {
    env,
    gateway: { modelStore: async () => models, loadConfig: async () => parseConfigText(yaml, env) },
  });

  credentials.admin = adminKey;
  credentials.operator = await token(subjects.operator, { role: 'operator' });
  credentials.developer = await token(subjects.developer, { role: 'developer', team: 'search' });
  credentials.viewer = await token(subjects.viewer, { role: 'viewer' });

  for (const name of ['search', 'ads'] as const) {
    const created = await send('POST', '/admin/teams', { name });
    expect(created.status, created.text).toBe(201);
    teams[name] = created.body;
  }
});

afterAll(async () => {
  await gateway?.close();
  await provider?.close();
  await new Promise((resolve) => jwks?.close(resolve));
  await rm(directory, { recursive: true, force: true });
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  readonly text: string;
  /** The gateway's id for the request, as the audit log records it. */
  readonly requestId: string | null;
}

/** One call to the gateway; `credential` null sends no Authorization header at all. */
async function send(
  method: string,
  path: string,
  body?: unknown,
  credential: string | null = adminKey,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (credential !== null) headers.authorization = `Bearer ${credential}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return {
    status: response.status,
    headers: response.headers,
    body: parsed,
    text,
    requestId: response.headers.get('x-request-id'),
  };
}

/** The audit entries written while answering one request. */
async function auditOf(answer: Answer): Promise<any[]> {
  expect(answer.requestId, 'the answer carries x-request-id').toBeTruthy();
  const entries: any[] = [];
  for (let since = 0; ; ) {
    const page = await send('GET', `/admin/audit?since=${since}&limit=1000`);
    expect(page.status, page.text).toBe(200);
    entries.push(...page.body.data);
    if (!page.body.has_more) break;
    since = page.body.data.at(-1).seq;
  }
  return entries.filter((entry) => entry.request_id === answer.requestId);
}

let serial = 0;
const unique = (stem: string) => `${stem}-${++serial}`;

/** A fresh key in `team`, made with the admin key. */
async function keyIn(team: 'search' | 'ads'): Promise<{ id: string; key: string }> {
  const created = await send('POST', '/admin/keys', { name: unique(`${team}-key`), team });
  expect(created.status, created.text).toBe(201);
  return created.body;
}

async function freshTeam(): Promise<string> {
  const created = await send('POST', '/admin/teams', { name: unique('scratch-team') });
  expect(created.status, created.text).toBe(201);
  return created.body.id;
}

async function freshUser(): Promise<string> {
  const created = await send('POST', '/admin/users', { name: unique('scratch-user'), role: 'viewer' });
  expect(created.status, created.text).toBe(201);
  return created.body.id;
}

interface Probe {
  readonly path: string;
  readonly body?: unknown;
}

/**
 * For the routes where a made-up id or no body would only test the route's 404 or 400: a real
 * resource (fresh for every call, so a call that deletes one does not spoil the next) and a body
 * that passes validation. Any other route is called with made-up ids (see `probe`).
 */
const probes: Record<string, () => Promise<Probe>> = {
  'POST /admin/models/pull': async () => ({
    path: '/admin/models/pull',
    body: { ref: join(directory, 'absent.gguf'), name: 'matrix/pulled:v1' },
  }),
  'POST /admin/models/import': async () => ({
    path: '/admin/models/import',
    body: { path: join(directory, 'absent.gguf'), name: 'matrix/imported:v1' },
  }),
  'POST /admin/keys': async () => ({ path: '/admin/keys', body: { name: unique('matrix'), team: 'search' } }),
  'GET /admin/keys/:id': async () => ({ path: `/admin/keys/${(await keyIn('search')).id}` }),
  'PATCH /admin/keys/:id': async () => ({
    path: `/admin/keys/${(await keyIn('search')).id}`,
    body: { tags: ['renamed'] },
  }),
  'DELETE /admin/keys/:id': async () => ({ path: `/admin/keys/${(await keyIn('search')).id}` }),
  'POST /admin/keys/:id/rotate': async () => ({ path: `/admin/keys/${(await keyIn('search')).id}/rotate` }),
  'POST /admin/teams': async () => ({ path: '/admin/teams', body: { name: unique('matrix-team') } }),
  'GET /admin/teams/:id': async () => ({ path: `/admin/teams/${teams.search.id}` }),
  'PATCH /admin/teams/:id': async () => ({
    path: `/admin/teams/${await freshTeam()}`,
    body: { metadata: { owner: 'matrix' } },
  }),
  'DELETE /admin/teams/:id': async () => ({ path: `/admin/teams/${await freshTeam()}` }),
  'POST /admin/users': async () => ({
    path: '/admin/users',
    body: { name: unique('matrix-user'), role: 'viewer' },
  }),
  'GET /admin/users/:id': async () => ({ path: `/admin/users/${await freshUser()}` }),
  'PATCH /admin/users/:id': async () => ({
    path: `/admin/users/${await freshUser()}`,
    body: { role: 'developer' },
  }),
  'DELETE /admin/users/:id': async () => ({ path: `/admin/users/${await freshUser()}` }),
};

/** The route's path with its parameters filled by made-up values. */
function madeUpPath(path: string): string {
  return path.replace(':id', 'matrix-unknown-id').replace('*', 'matrix/unknown:v1');
}

async function probe(route: { method: string; path: string }): Promise<Probe> {
  return (await probes[routeName(route)]?.()) ?? { path: madeUpPath(route.path) };
}

describe('the written policy', () => {
  it('names every admin route the gateway registers, and agrees with the role grants', () => {
    const actual = Object.fromEntries(
      adminRoutes.map((route) => [
        routeName(route),
        roles.map((role) => routeAccess(role, route.method, route.path)),
      ]),
    );
    expect(actual).toEqual(writtenPolicy());
  });

  it('lists only routes the running gateway serves', () => {
    const missing = adminRoutes.filter(
      (route) => !gateway.app.hasRoute({ method: route.method, url: route.path }),
    );
    expect(missing.map(routeName)).toEqual([]);
  });
});

describe('every admin route, for every role', () => {
  const cases = adminRoutes.flatMap((route) =>
    roles.map((role) => {
      const access = routeAccess(role, route.method, route.path);
      const verdict = access === 'none' ? 'is refused with 403' : `gets through (${access})`;
      return { route, role, access, name: `${role}: ${routeName(route)} ${verdict}` };
    }),
  );

  it.each(cases)('$name', async ({ route, role, access }) => {
    const { path, body } = await probe(route);
    const answer = await send(route.method, path, body, credentials[role]);
    if (access === 'none') {
      expect(answer.status, answer.text).toBe(403);
      expect(answer.body.error).toMatchObject({ code: 'forbidden', type: 'permission_error' });
      expect(answer.body.error.message).toContain(`The ${role} role may not ${route.method} ${route.path}`);
      // Refused before the route ran: the refusal is on record, and nothing else is.
      expect(await auditOf(answer)).toEqual([
        expect.objectContaining({
          actor: actors[role],
          action: 'auth.failure',
          target: path,
          outcome: 'denied',
          after: { method: route.method, reason: 'forbidden', detail: `${role} on ${routeName(route)}` },
        }),
      ]);
    } else {
      // Whatever the route then says (200, 201, 404 for a made-up id, 503 with no runner), the
      // authorisation stage let the caller through.
      expect([401, 403], `${answer.status} ${answer.text}`).not.toContain(answer.status);
    }
  });
});

describe('callers without a valid credential', () => {
  const bad: { name: string; credential: () => Promise<string | null>; reason: string; detail?: RegExp }[] = [
    { name: 'no Authorization header', credential: async () => null, reason: 'no bearer key' },
    { name: 'a wrong admin key', credential: async () => 'test-admin-key-rbac-wrong', reason: 'wrong key' },
    {
      name: 'a token with a forged signature',
      credential: () => token(subjects.operator, { role: 'admin' }, { key: forged }),
      reason: 'bad token',
      detail: /^bad_signature: token refused: its signature does not verify with key "ops-2025"/,
    },
    {
      name: 'an expired token',
      credential: () =>
        token(subjects.operator, { role: 'admin' }, { expiresAt: Math.floor(Date.now() / 1000) - 3600 }),
      reason: 'bad token',
      detail: /^expired: token refused: it expired at /,
    },
    {
      name: 'a token for another audience',
      credential: () => token(subjects.operator, { role: 'admin' }, { audience: 'grafana' }),
      reason: 'bad token',
      detail: /^wrong_audience: token refused: audience "grafana" does not include "switchyard-admin"/,
    },
    {
      name: 'a token naming another issuer, signed with our provider key',
      credential: () => token(subjects.operator, { role: 'admin' }, { issuer: 'https://idp.elsewhere.test' }),
      reason: 'bad token',
      detail: /^wrong_issuer: token refused: issuer "https:\/\/idp.elsewhere.test" is not the configured/,
    },
    {
      name: "a token from another issuer, signed with that issuer's key",
      credential: () =>
        token(subjects.operator, { role: 'admin' }, { key: foreign, issuer: 'https://idp.elsewhere.test' }),
      reason: 'bad token',
      detail:
        /^unknown_key: token refused: no key in http:\/\/127\.0\.0\.1:\d+\/certs matches key id "elsewhere-1"/,
    },
  ];

  it.each(bad)('$name gets 401 unauthorized with a challenge on every route', async ({ credential }) => {
    const sent = await credential();
    for (const route of adminRoutes) {
      const answer = await send(route.method, madeUpPath(route.path), undefined, sent);
      expect(answer.status, `${routeName(route)}: ${answer.text}`).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="switchyard-admin"');
      // The same answer whatever was wrong, so a caller learns nothing about which check failed.
      expect(answer.body).toEqual({
        error: {
          message: 'Missing or invalid admin key. Send the configured key as Authorization: Bearer <key>.',
          type: 'authentication_error',
          param: null,
          code: 'unauthorized',
        },
      });
    }
  });

  it.each(bad)(
    '$name is audited as an anonymous auth.failure naming the cause',
    async ({ credential, reason, detail }) => {
      const sent = await credential();
      const answer = await send('GET', '/admin/keys', undefined, sent);
      expect(answer.status).toBe(401);
      const [entry, ...rest] = await auditOf(answer);
      expect(rest).toEqual([]);
      expect(entry).toMatchObject({
        actor: 'anonymous',
        action: 'auth.failure',
        target: '/admin/keys',
        outcome: 'denied',
        after: { method: 'GET', reason },
      });
      if (detail === undefined) expect(entry.after.detail).toBeUndefined();
      else expect(entry.after.detail).toMatch(detail);
      // The credential itself never reaches the log.
      if (sent !== null) expect(JSON.stringify(entry)).not.toContain(sent);
    },
  );

  it('audits a forbidden call with the token subject as the actor', async () => {
    const answer = await send('POST', '/admin/teams', { name: 'viewers-team' }, credentials.viewer);
    expect(answer.status).toBe(403);
    expect(await auditOf(answer)).toEqual([
      expect.objectContaining({
        actor: 'oidc:victor.view',
        action: 'auth.failure',
        target: '/admin/teams',
        outcome: 'denied',
        after: { method: 'POST', reason: 'forbidden', detail: 'viewer on POST /admin/teams' },
      }),
    ]);
    expect((await send('GET', '/admin/teams/viewers-team')).status).toBe(404);
  });
});

describe('a developer is confined to its own team', () => {
  let adsKey: { id: string; key: string };
  let searchKey: { id: string; key: string };

  beforeAll(async () => {
    adsKey = await keyIn('ads');
    searchKey = await keyIn('search');
  });

  const asDeveloper = (method: string, path: string, body?: unknown) =>
    send(method, path, body, credentials.developer);

  it('creates keys in its team, by name or by default, and the audit log names it as the actor', async () => {
    const named = await asDeveloper('POST', '/admin/keys', { name: 'dana-ci', team: 'search' });
    expect(named.status, named.text).toBe(201);
    expect(named.body).toMatchObject({ object: 'api_key', name: 'dana-ci', team_id: teams.search.id });
    expect(named.body.key).toMatch(/^sk-sy-/);
    expect(await auditOf(named)).toEqual([
      expect.objectContaining({ actor: 'oidc:dana.dev', action: 'key.create', outcome: 'ok' }),
    ]);

    const unnamed = await asDeveloper('POST', '/admin/keys', { name: 'dana-laptop' });
    expect(unnamed.status, unnamed.text).toBe(201);
    expect(unnamed.body.team_id).toBe(teams.search.id);
  });

  it('may not create a key in another team', async () => {
    const answer = await asDeveloper('POST', '/admin/keys', { name: 'sneaky', team: 'ads' });
    expect(answer.status, answer.text).toBe(403);
    expect(answer.body.error).toMatchObject({ code: 'forbidden', param: 'team' });
    const adsKeys = await send('GET', '/admin/keys?team=ads');
    expect(adsKeys.body.data.map((key: any) => key.name)).not.toContain('sneaky');
  });

  it('may not create a key for a user of another team, but may for one of its own', async () => {
    const outsider = await send('POST', '/admin/users', {
      name: unique('ads-user'),
      role: 'viewer',
      team: 'ads',
    });
    const colleague = await send('POST', '/admin/users', {
      name: unique('search-user'),
      role: 'viewer',
      team: 'search',
    });
    expect(outsider.status, outsider.text).toBe(201);
    const refused = await asDeveloper('POST', '/admin/keys', { name: 'for-ads', user: outsider.body.id });
    expect(refused.status, refused.text).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'forbidden', param: 'user' });
    const allowed = await asDeveloper('POST', '/admin/keys', { name: 'for-search', user: colleague.body.id });
    expect(allowed.status, allowed.text).toBe(201);
  });

  it("lists only its team's keys, and may not ask for another team's", async () => {
    const all = await send('GET', '/admin/keys');
    expect(new Set(all.body.data.map((key: any) => key.team_id))).toEqual(
      new Set([teams.search.id, teams.ads.id]),
    );

    const mine = await asDeveloper('GET', '/admin/keys');
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.data.length).toBeGreaterThan(0);
    expect(mine.body.data.every((key: any) => key.team_id === teams.search.id)).toBe(true);
    expect(mine.body.data.map((key: any) => key.id)).toContain(searchKey.id);
    expect(mine.body.data.map((key: any) => key.id)).not.toContain(adsKey.id);

    expect((await asDeveloper('GET', '/admin/keys?team=search')).status).toBe(200);
    const theirs = await asDeveloper('GET', '/admin/keys?team=ads');
    expect(theirs.status, theirs.text).toBe(403);
    expect(theirs.body.error.code).toBe('forbidden');
  });

  it("sees another team's key as unknown, and can neither rotate nor revoke it", async () => {
    for (const [method, path] of [
      ['GET', `/admin/keys/${adsKey.id}`],
      ['POST', `/admin/keys/${adsKey.id}/rotate`],
      ['DELETE', `/admin/keys/${adsKey.id}`],
    ] as const) {
      const answer = await asDeveloper(method, path);
      expect(answer.status, `${method} ${path}: ${answer.text}`).toBe(404);
      expect(answer.body.error.code).toBe('not_found');
    }
    const untouched = await send('GET', `/admin/keys/${adsKey.id}`);
    expect(untouched.body).toMatchObject({ status: 'active', revoked_at: null });
    // Still serving requests on the data plane.
    expect((await chat(adsKey.key)).status).toBe(200);
  });

  it("rotates and revokes its own team's key", async () => {
    const rotated = await asDeveloper('POST', `/admin/keys/${searchKey.id}/rotate`);
    expect(rotated.status, rotated.text).toBe(201);
    expect(rotated.body).toMatchObject({ team_id: teams.search.id, rotated_from: searchKey.id });
    expect(rotated.body.key).not.toBe(searchKey.key);

    const revoked = await asDeveloper('DELETE', `/admin/keys/${rotated.body.id}`);
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.body).toMatchObject({ id: rotated.body.id, status: 'revoked' });
    expect((await chat(rotated.body.key)).status).toBe(401);
  });

  it("reads only its team's usage", async () => {
    const searching = await keyIn('search');
    expect((await chat(searching.key)).status).toBe(200);
    expect((await chat(adsKey.key)).status).toBe(200);

    const everyone = await send('GET', '/admin/usage?group_by=team');
    expect(everyone.status, everyone.text).toBe(200);
    expect(everyone.body.data.map((row: any) => row.group).sort()).toEqual(
      [teams.ads.id, teams.search.id].sort(),
    );

    const mine = await asDeveloper('GET', '/admin/usage?group_by=team');
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.data.map((row: any) => row.group)).toEqual([teams.search.id]);
    expect((await asDeveloper('GET', '/admin/usage?team=search')).status).toBe(200);

    const theirs = await asDeveloper('GET', '/admin/usage?team=ads');
    expect(theirs.status, theirs.text).toBe(403);
    expect(theirs.body.error).toMatchObject({ code: 'forbidden', param: 'team' });
    const byId = await asDeveloper('GET', `/admin/usage?team=${teams.ads.id}`);
    expect(byId.status, byId.text).toBe(403);
  });
});

describe('a user record overrides what a token claims', () => {
  it('treats a token claiming admin as the viewer its user record says', async () => {
    const user = await send('POST', '/admin/users', { name: 'mallory@example.test', role: 'viewer' });
    expect(user.status, user.text).toBe(201);
    const claimsAdmin = await token('mallory@example.test', { role: 'admin' });

    const answer = await send('POST', '/admin/teams', { name: 'mallory-team' }, claimsAdmin);
    expect(answer.status, answer.text).toBe(403);
    expect(answer.body.error.message).toContain('The viewer role may not POST /admin/teams');
    expect((await send('GET', '/admin/deployments', undefined, claimsAdmin)).status).toBe(200);
  });

  it("finds the user record by the token's verified e-mail when its subject names none", async () => {
    const user = await send('POST', '/admin/users', { name: 'erin@example.test', role: 'viewer' });
    expect(user.status, user.text).toBe(201);
    const claimsAdmin = await token('00u1a2b3c4', {
      role: 'admin',
      email: 'erin@example.test',
      email_verified: true,
    });

    const answer = await send('GET', '/admin/audit', undefined, claimsAdmin);
    expect(answer.status, answer.text).toBe(403);
    expect(answer.body.error.message).toContain('The viewer role may not GET /admin/audit');
  });

  it("does not lend someone else's user record to a token whose e-mail is unverified", async () => {
    // OpenID Connect Core §5.7: the e-mail is no identifier, and some providers let a user set it
    // to anything ("nOAuth"); only the provider's word that it was verified makes it one.
    const boss = await send('POST', '/admin/users', { name: 'boss@example.test', role: 'admin' });
    expect(boss.status, boss.text).toBe(201);
    for (const verified of [false, undefined]) {
      const intruder = await token('intruder-42', {
        role: 'viewer',
        email: 'boss@example.test',
        ...(verified === undefined ? {} : { email_verified: verified }),
      });
      const answer = await send('POST', '/admin/users', { name: 'intruder-admin', role: 'admin' }, intruder);
      expect(answer.status, `email_verified ${verified}: ${answer.text}`).toBe(403);
      expect(answer.body.error.message).toContain('The viewer role may not POST /admin/users');
    }
  });

  it("takes the team from the user record, not the token's team claim", async () => {
    const user = await send('POST', '/admin/users', { name: 'frank.dev', role: 'developer', team: 'ads' });
    expect(user.status, user.text).toBe(201);
    const claimsSearch = await token('frank.dev', { role: 'developer', team: 'search' });

    const listed = await send('GET', '/admin/keys', undefined, claimsSearch);
    expect(listed.status, listed.text).toBe(200);
    expect(listed.body.data.length).toBeGreaterThan(0);
    expect(listed.body.data.every((key: any) => key.team_id === teams.ads.id)).toBe(true);
    const created = await send('POST', '/admin/keys', { name: 'frank', team: 'search' }, claimsSearch);
    expect(created.status, created.text).toBe(403);
  });
});

describe('a failure while looking up the caller', () => {
  it('answers 500 rather than leaving a token holder waiting when the user records cannot be read', async () => {
    await sql`alter table users rename to users_away`.execute(gateway.store.db);
    try {
      const response = await fetch(`${gateway.url}/admin/deployments`, {
        headers: { authorization: `Bearer ${credentials.viewer}` },
        signal: AbortSignal.timeout(5_000),
      });
      expect(response.status).toBe(500);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('internal_error');
    } finally {
      await sql`alter table users_away rename to users`.execute(gateway.store.db);
    }
    expect((await send('GET', '/admin/deployments', undefined, credentials.viewer)).status).toBe(200);
  });
});

/** One chat completion on the data plane with a virtual key. */
async function chat(key: string) {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'public', messages: [{ role: 'user', content: 'Say hello' }] }),
  });
  await response.text();
  return { status: response.status };
}
