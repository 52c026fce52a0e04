import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { PayloadCapture } from '../../src/telemetry/payload-capture.js';
import { KeyRing } from '../../src/telemetry/payload-crypto.js';
import { runCli } from '../support/cli.js';

const marker = 'OKAPI-TANGERINE-4417';
const key = randomBytes(32).toString('base64');
const day = 86_400_000;
const request = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `remember ${marker}` }] });
const response = `data: {"choices":[{"delta":{"content":"${marker} remembered"}}]}\n\ndata: [DONE]\n\n`;

let directory: string;
let path: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-capture-cli-'));
  path = join(directory, 'switchyard.db');
  const store = await openStore(path);
  const ring = new KeyRing({ current: { id: 'k1', key: Buffer.from(key, 'base64') } });
  const capture = new PayloadCapture(store, { ring, retention: 30 * day }, pino({ level: 'silent' }));
  capture.capture('request-1', Buffer.from(request), Buffer.from(response), Date.now());
  capture.capture('request-old', Buffer.from('{}'), Buffer.from('{}'), Date.now() - 40 * day);
  await capture.close();
  await store.close();
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('switchyard capture show', () => {
  it('prints the captured request and response, decrypted with the key from the environment', async () => {
    const result = await runCli(['capture', 'show', 'request-1', '--store', path], {
      SWITCHYARD_CAPTURE_KEY: key,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^request request-1, captured \d{4}-\d\d-\d\dT[\d:.]+Z under key k1\n/);
    expect(result.stdout).toContain(`--- request\n${request}\n--- response\n${response}`);
  });

  it('fails with a clear message and exit 1 when the key is not set', async () => {
    const result = await runCli(['capture', 'show', 'request-1', '--store', path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('cannot decrypt the capture of request request-1');
    expect(result.stderr).toContain('set SWITCHYARD_CAPTURE_KEY');
  });

  it('fails without printing anything when the key is the wrong one', async () => {
    const result = await runCli(['capture', 'show', 'request-1', '--store', path], {
      SWITCHYARD_CAPTURE_KEY: randomBytes(32).toString('base64'),
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('failed authentication with key "k1"');
    expect(result.stderr).not.toContain(marker);
  });

  it('names a key id the environment lacks, and finds it among the previous keys', async () => {
    const rotated = { SWITCHYARD_CAPTURE_KEY: randomBytes(32).toString('base64') };
    const missing = await runCli(
      ['capture', 'show', 'request-1', '--store', path, '--key-id', 'k2'],
      rotated,
    );
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('encrypted with key "k1", which is not in the key ring');

    const found = await runCli(['capture', 'show', 'request-1', '--store', path, '--key-id', 'k2'], {
      ...rotated,
      SWITCHYARD_CAPTURE_PREVIOUS_KEYS: `k1:${key}`,
    });
    expect(found.code).toBe(0);
    expect(found.stdout).toContain(marker);
  });

  it('exits 1 for a request that was not captured, and for a missing store', async () => {
    const absent = await runCli(['capture', 'show', 'request-2', '--store', path], {
      SWITCHYARD_CAPTURE_KEY: key,
    });
    expect(absent).toMatchObject({
      code: 1,
      stderr: `switchyard: no capture of request request-2 in ${path}\n`,
    });
    const noStore = await runCli(['capture', 'show', 'request-1', '--store', join(directory, 'absent.db')]);
    expect(noStore.code).toBe(1);
    expect(noStore.stderr).toContain('there is no store at');
  });

  it('exits 2 on a bad command line', async () => {
    expect((await runCli(['capture', 'show'])).code).toBe(2);
    expect((await runCli(['capture', 'list'])).code).toBe(2);
    expect((await runCli(['capture', 'purge', '--store', path, '--older-than', 'soon'])).code).toBe(2);
  });
});

describe('switchyard capture purge', () => {
  it('deletes the captures older than --older-than, and needs no key', async () => {
    const result = await runCli(['capture', 'purge', '--store', path, '--older-than', '30d']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^purged 1 captured exchanges from before \d{4}-/);
    const store = await openStore(path);
    const left = await store.db.selectFrom('payload_capture').select('request_id').execute();
    await store.close();
    expect(left).toEqual([{ request_id: 'request-1' }]);
  });
});
