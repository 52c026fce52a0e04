import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

// Certificates are made for each run rather than committed, so none can expire in the repository.
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) console.warn('test/integration/tls.test.ts skipped: the openssl CLI is not installed');

interface Pair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly fingerprint: string;
}

let directory: string;
let first: Pair;
let second: Pair;

function generatePair(name: string): Pair {
  const cert = join(directory, `${name}-cert.pem`);
  const key = join(directory, `${name}-key.pem`);
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      ...['-keyout', key, '-out', cert],
    ],
    { stdio: 'ignore' },
  );
  const pem = readFileSync(cert);
  return { cert: pem, key: readFileSync(key), fingerprint: new X509Certificate(pem).fingerprint256 };
}

/** Replaces a file the way certbot and most editors do: write beside it, then rename over it. */
function replace(path: string, contents: Buffer | string): void {
  writeFileSync(`${path}.tmp`, contents);
  renameSync(`${path}.tmp`, path);
}

/** The fingerprint of the certificate a fresh connection is shown. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? 'none';
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

function tlsConfig(live: string): string {
  return `server:\n  tls:\n    cert: ${join(live, 'cert.pem')}\n    key: ${join(live, 'key.pem')}\n`;
}

beforeAll(() => {
  if (!hasOpenssl) return;
  directory = mkdtempSync(join(tmpdir(), 'switchyard-tls-'));
  first = generatePair('first');
  second = generatePair('second');
});
afterAll(() => {
  if (directory) rmSync(directory, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl)('HTTPS', () => {
  let live: string;
  let gateway: TestGateway | undefined;

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  /** A directory of its own per test, holding the first pair as cert.pem and key.pem. */
  function livePair(): string {
    live = mkdtempSync(join(directory, 'live-'));
    writeFileSync(join(live, 'cert.pem'), first.cert);
    writeFileSync(join(live, 'key.pem'), first.key);
    return live;
  }

  it('answers /healthz over HTTPS with the configured certificate, and logs which one', async () => {
    gateway = await startTestGateway(tlsConfig(livePair()));
    expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new Agent({ connect: { ca: first.cert } });
    const response = await request(`${gateway.url}/healthz`, { dispatcher });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    await dispatcher.close();
    expect(await servedFingerprint(gateway.url)).toBe(first.fingerprint);
    const started = gateway.logs.find((line) => line.msg === 'serving HTTPS');
    expect(started).toMatchObject({
      level: 30,
      cert: join(live, 'cert.pem'),
      subject: 'CN=first',
      fingerprint256: first.fingerprint,
    });
    expect(JSON.stringify(gateway.logs)).not.toContain('PRIVATE KEY');
  });

  it('serves new connections the new certificate once the files are replaced', async () => {
    gateway = await startTestGateway(tlsConfig(livePair()));
    const url = gateway.url;
    replace(join(live, 'key.pem'), second.key);
    replace(join(live, 'cert.pem'), second.cert);
    await vi.waitFor(async () => expect(await servedFingerprint(url)).toBe(second.fingerprint), {
      timeout: 5_000,
      interval: 50,
    });
    expect(gateway.logs.find((line) => line.msg === 'TLS certificate reloaded')).toMatchObject({
      level: 30,
      subject: 'CN=second',
      fingerprint256: second.fingerprint,
    });
    expect(JSON.stringify(gateway.logs)).not.toContain('PRIVATE KEY');
  });

  it('keeps serving the old certificate when a new file is broken, and takes the next good one', async () => {
    gateway = await startTestGateway(tlsConfig(livePair()));
    const { url, logs } = gateway;
    replace(join(live, 'cert.pem'), '-----BEGIN CERTIFICATE-----\nhalf writ');
    await vi.waitFor(() => expect(logs.some((line) => line.level === 50)).toBe(true), {
      timeout: 5_000,
      interval: 50,
    });
    expect(logs.find((line) => line.level === 50)).toMatchObject({
      msg: 'TLS certificate not reloaded; still serving the previous one',
      cert: join(live, 'cert.pem'),
    });
    expect(await servedFingerprint(url)).toBe(first.fingerprint);

    replace(join(live, 'key.pem'), second.key);
    replace(join(live, 'cert.pem'), second.cert);
    await vi.waitFor(async () => expect(await servedFingerprint(url)).toBe(second.fingerprint), {
      timeout: 5_000,
      interval: 50,
    });
  });
});

describe.skipIf(!hasOpenssl)('server.tls in the config', () => {
  const noEnv = {};
  const problems = (text: string) => {
    try {
      parseConfigText(text, noEnv);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
    throw new Error('the config was accepted');
  };

  it('is refused when a file is missing, naming the file', () => {
    const missing = join(directory, 'nowhere', 'cert.pem');
    writeFileSync(join(directory, 'key.pem'), first.key);
    expect(
      problems(`server:\n  tls:\n    cert: ${missing}\n    key: ${join(directory, 'key.pem')}\n`),
    ).toEqual([{ path: 'server.tls.cert', message: `cannot read "${missing}": file not found` }]);
  });

  it('is refused when the key is not the certificate’s, naming both files', () => {
    const cert = join(directory, 'mismatched-cert.pem');
    const key = join(directory, 'mismatched-key.pem');
    writeFileSync(cert, first.cert);
    writeFileSync(key, second.key);
    const [issue, ...rest] = problems(`server:\n  tls: { cert: ${cert}, key: ${key} }\n`);
    expect(rest).toEqual([]);
    expect(issue?.path).toBe('server.tls');
    expect(issue?.message).toContain(`"${cert}" and "${key}" are not a usable certificate and key`);
  });

  it('needs both cert and key', () => {
    expect(problems('server:\n  tls: { cert: c.pem }\n')).toEqual([
      { path: 'server.tls.key', message: 'is required (string)' },
    ]);
  });
});
