import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { looksLikeJwt, OidcVerifier, type OidcVerifierOptions, type TokenError } from './jwt.js';

/** A fixed clock: 2025-06-15T12:00:00Z. */
const nowMs = Date.UTC(2025, 5, 15, 12, 0, 0);
const nowSeconds = nowMs / 1000;
const issuer = 'https://idp.example.test/realms/ops';
const audience = 'switchyard';

interface TestKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256' | 'EdDSA';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function rsaKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, publicKey };
}

function ecKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, publicKey };
}

function edKey(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { kid, alg: 'EdDSA', privateKey, publicKey };
}

const rsa = rsaKey('rsa-1');
const ec = ecKey('ec-1');
const ed = edKey('ed-1');
/** Another RSA key published nowhere, for forged signatures. */
const impostor = rsaKey('rsa-1');
const rotated = rsaKey('rsa-2');

/** A JWKS server on 127.0.0.1: publishes `published`, counts its fetches. */
let server: Server;
let baseUrl: string;
let published: TestKey[];
let fetches = 0;

function jwks(keys: readonly TestKey[]) {
  return {
    keys: keys.map((key) => ({
      ...key.publicKey.export({ format: 'jwk' }),
      kid: key.kid,
      alg: key.alg,
      use: 'sig',
    })),
  };
}

beforeAll(async () => {
  server = createServer((request, response) => {
    if (request.url === '/certs') {
      fetches++;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks(published)));
      return;
    }
    response.writeHead(503).end('down for maintenance');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  published = [rsa, ec, ed];
  fetches = 0;
});

function verifier(
  settings: Partial<ConstructorParameters<typeof OidcVerifier>[0]> = {},
  options: OidcVerifierOptions = {},
) {
  return new OidcVerifier(
    { issuer, audience, jwksUrl: `${baseUrl}/certs`, ...settings },
    { now: () => nowMs, ...options },
  );
}

/** A token valid for five minutes from the fixed clock, with `claims` over the defaults. */
function sign(key: TestKey, claims: JWTPayload = {}, header: { kid?: string; alg?: string } = {}) {
  return new SignJWT({ role: 'developer', team: 'team-a', ...claims })
    .setProtectedHeader({ alg: header.alg ?? key.alg, kid: header.kid ?? key.kid, typ: 'JWT' })
    .setIssuer(typeof claims.iss === 'string' ? claims.iss : issuer)
    .setAudience(claims.aud ?? audience)
    .setSubject('alice@example.test')
    .setIssuedAt(nowSeconds - 60)
    .setExpirationTime(typeof claims.exp === 'number' ? claims.exp : nowSeconds + 300)
    .sign(key.privateKey);
}

async function refusal(promise: Promise<unknown>): Promise<TokenError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, 'the token was accepted').toBeDefined();
  expect((error as Error).name).toBe('TokenError');
  return error as TokenError;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('OidcVerifier: accepted tokens', () => {
  it('accepts an RS256 token and maps its subject, role and team', async () => {
    const verified = await verifier().verify(await sign(rsa, { role: 'operator', team: 'infra' }));
    expect(verified).toMatchObject({ subject: 'alice@example.test', role: 'operator', team: 'infra' });
    expect(verified.claims).toMatchObject({ iss: issuer, aud: audience, role: 'operator' });
    expect(Object.isFrozen(verified.claims)).toBe(true);
  });

  it('accepts an ES256 token', async () => {
    const verified = await verifier().verify(await sign(ec, { role: 'viewer', team: 'research' }));
    expect(verified).toMatchObject({ role: 'viewer', team: 'research' });
  });

  it('accepts an EdDSA token', async () => {
    const verified = await verifier().verify(await sign(ed, { role: 'admin' }));
    expect(verified.role).toBe('admin');
  });

  it('accepts a token whose audience array includes the configured one', async () => {
    const token = await sign(rsa, { aud: ['account', audience] });
    expect((await verifier().verify(token)).role).toBe('developer');
  });

  it('accepts a token for any of several configured audiences', async () => {
    const token = await sign(rsa, { aud: 'dashboard' });
    expect((await verifier({ audience: ['switchyard', 'dashboard'] }).verify(token)).role).toBe('developer');
  });

  it('takes the highest role from an array role claim and ignores names it does not know', async () => {
    const token = await sign(rsa, { role: ['offline_access', 'viewer', 'operator', 'developer'] });
    expect((await verifier().verify(token)).role).toBe('operator');
  });

  it('reads the role from a dotted path into nested claims', async () => {
    const token = await sign(rsa, {
      role: undefined,
      realm_access: { roles: ['uma_authorization', 'admin'] },
    });
    expect((await verifier({ roleClaim: 'realm_access.roles' }).verify(token)).role).toBe('admin');
  });

  it('reads a namespaced claim whose name holds dots as one claim', async () => {
    const token = await sign(rsa, { role: undefined, 'https://switchyard.example/roles': ['viewer'] });
    const verified = await verifier({ roleClaim: 'https://switchyard.example/roles' }).verify(token);
    expect(verified.role).toBe('viewer');
  });

  it('reads the team from a configured claim, and from an array holding exactly one team', async () => {
    const named = await sign(rsa, { team: undefined, groups: ['platform'] });
    expect((await verifier({ teamClaim: 'groups' }).verify(named)).team).toBe('platform');
    const several = await sign(rsa, { team: ['platform', 'research'] });
    expect((await verifier().verify(several)).team).toBeUndefined();
    const none = await sign(rsa, { team: undefined });
    expect((await verifier().verify(none)).team).toBeUndefined();
  });

  it('accepts a token expired less than the clock skew ago', async () => {
    const token = await sign(rsa, { exp: nowSeconds - 30 });
    expect((await verifier({ clockSkewMs: 60_000 }).verify(token)).role).toBe('developer');
  });
});

describe('OidcVerifier: refused tokens', () => {
  it('refuses a token signed by another key under a published key id', async () => {
    const error = await refusal(verifier().verify(await sign(impostor)));
    expect(error.reason).toBe('bad_signature');
    expect(error.message).toContain('"rsa-1"');
  });

  it('refuses a token whose payload was altered after signing', async () => {
    const [head, , signature] = (await sign(rsa, { role: 'viewer' })).split('.');
    const altered = `${head}.${base64url({ iss: issuer, aud: audience, sub: 'mallory', exp: nowSeconds + 300, role: 'admin' })}.${signature}`;
    expect((await refusal(verifier().verify(altered))).reason).toBe('bad_signature');
  });

  it('refuses an expired token, saying when it expired', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { exp: nowSeconds - 120 })));
    expect(error.reason).toBe('expired');
    expect(error.message).toContain('2025-06-15T11:58:00.000Z');
  });

  it('refuses a token expired by more than the clock skew', async () => {
    const token = await sign(rsa, { exp: nowSeconds - 30 });
    expect((await refusal(verifier({ clockSkewMs: 10_000 }).verify(token))).reason).toBe('expired');
  });

  it('refuses a token that is not valid yet', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { nbf: nowSeconds + 600 })));
    expect(error.reason).toBe('not_yet_valid');
    expect(error.message).toContain('2025-06-15T12:10:00.000Z');
  });

  it('accepts a token whose nbf is within the clock skew', async () => {
    expect((await verifier().verify(await sign(rsa, { nbf: nowSeconds + 30 }))).role).toBe('developer');
  });

  it('refuses a token for another audience', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { aud: 'grafana' })));
    expect(error.reason).toBe('wrong_audience');
    expect(error.message).toContain('"grafana"');
  });

  it('refuses a token from another issuer', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { iss: 'https://evil.example.test' })));
    expect(error.reason).toBe('wrong_issuer');
    expect(error.message).toContain('"https://evil.example.test"');
  });

  it('refuses a token whose key id is not published', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, {}, { kid: 'rsa-404' })));
    expect(error.reason).toBe('unknown_key');
    expect(error.message).toContain('"rsa-404"');
  });

  it('refuses an unsecured token (alg none)', async () => {
    const token = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ iss: issuer, aud: audience, sub: 'mallory', exp: nowSeconds + 300, role: 'admin' })}.`;
    expect(looksLikeJwt(token)).toBe(true);
    expect((await refusal(verifier().verify(token))).reason).toBe('algorithm_not_allowed');
  });

  it('refuses an HS256 token, even one keyed with the published public key', async () => {
    const secret = new Uint8Array(rsa.publicKey.export({ format: 'der', type: 'spki' }));
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject('mallory')
      .setExpirationTime(nowSeconds + 300)
      .sign(secret);
    const error = await refusal(verifier().verify(token));
    expect(error.reason).toBe('algorithm_not_allowed');
    expect(error.message).toContain('"HS256"');
  });

  it('refuses an algorithm that is allowed in general but not configured', async () => {
    const error = await refusal(verifier({ algorithms: ['RS256'] }).verify(await sign(ec)));
    expect(error.reason).toBe('algorithm_not_allowed');
  });

  it('refuses a token with no role claim', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { role: undefined })));
    expect(error.reason).toBe('no_role');
    expect(error.message).toContain('"role"');
  });

  it('refuses a token whose role claim names no known role', async () => {
    const error = await refusal(verifier().verify(await sign(rsa, { role: ['superuser', 'Admin'] })));
    expect(error.reason).toBe('unknown_role');
    expect(error.message).toContain('superuser');
  });

  it('refuses a token without an expiry', async () => {
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject('alice@example.test')
      .sign(rsa.privateKey);
    const error = await refusal(verifier().verify(token));
    expect(error.reason).toBe('missing_claim');
    expect(error.message).toContain('"exp"');
  });

  it('refuses a string that is not a JWT', async () => {
    expect((await refusal(verifier().verify('not.a.jwt'))).reason).toBe('malformed');
  });
});

describe('OidcVerifier: the key set', () => {
  it('fetches the key set once and serves later tokens from its cache', async () => {
    const shared = verifier();
    await shared.verify(await sign(rsa));
    await shared.verify(await sign(ec));
    await shared.verify(await sign(rsa));
    expect(fetches).toBe(1);
  });

  it('finds a rotated key by fetching the key set again, and drops the retired one', async () => {
    const shared = verifier({}, { jwksCooldownMs: 0 });
    expect((await shared.verify(await sign(rsa))).role).toBe('developer');
    published = [rotated, ec];
    expect((await shared.verify(await sign(rotated, { role: 'admin' }))).role).toBe('admin');
    expect(fetches).toBe(2);
    expect((await refusal(shared.verify(await sign(rsa)))).reason).toBe('unknown_key');
  });

  it('does not refetch for an unknown key id within the cooldown', async () => {
    const shared = verifier();
    await shared.verify(await sign(rsa));
    for (const kid of ['junk-1', 'junk-2', 'junk-3']) {
      expect((await refusal(shared.verify(await sign(rsa, {}, { kid })))).reason).toBe('unknown_key');
    }
    expect(fetches).toBe(1);
  });

  it('says the keys could not be fetched when the provider fails', async () => {
    const error = await refusal(verifier({ jwksUrl: `${baseUrl}/down` }).verify(await sign(rsa)));
    expect(error.reason).toBe('jwks_unavailable');
    expect(error.message).toContain(`${baseUrl}/down`);
  });
});

describe('OidcVerifier: settings', () => {
  it.each([
    [{ algorithms: ['none'] }, /"none" is not accepted/],
    [{ algorithms: ['HS256'] }, /"HS256" is not accepted/],
    [{ algorithms: [] }, /at least one algorithm/],
    [{ clockSkewMs: 300_001 }, /clockSkewMs must be an integer from 0 to 300000/],
    [{ clockSkewMs: -1 }, /clockSkewMs/],
    [{ jwksUrl: 'http://idp.example.test/certs' }, /https:/],
    [{ jwksUrl: 'certs' }, /not a URL/],
    [{ issuer: '' }, /issuer must be a non-empty string/],
    [{ audience: [] }, /at least one audience/],
    [{ roleClaim: '' }, /roleClaim/],
  ])('refuses %j', (settings, message) => {
    expect(() => verifier(settings as never)).toThrow(message);
  });

  it('accepts a skew of exactly five minutes, and plain http on a loopback host', () => {
    expect(() => verifier({ clockSkewMs: 300_000, jwksUrl: 'http://localhost:1/certs' })).not.toThrow();
  });

  it('refuses JWKS cache tuning out of bounds', () => {
    expect(() => verifier({}, { jwksTimeoutMs: 0 })).toThrow(/jwksTimeoutMs/);
    expect(() => verifier({}, { jwksCacheMaxAgeMs: Number.POSITIVE_INFINITY })).toThrow(/jwksCacheMaxAgeMs/);
  });
});

describe('looksLikeJwt', () => {
  it('tells a JWT from an admin key', async () => {
    expect(looksLikeJwt(await sign(rsa))).toBe(true);
    expect(looksLikeJwt('sk-sy-Ab12Cd34Ef56Gh78')).toBe(false);
    expect(looksLikeJwt('test-admin-key-9c41e07b')).toBe(false);
    expect(looksLikeJwt('a.b')).toBe(false);
    expect(looksLikeJwt('a.b.c.d')).toBe(false);
    expect(looksLikeJwt('a+b.c/d.e=')).toBe(false);
    expect(looksLikeJwt('')).toBe(false);
  });
});
