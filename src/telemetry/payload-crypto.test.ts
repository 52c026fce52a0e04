import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  captureKeyRing,
  decrypt,
  encrypt,
  KeyRing,
  PayloadCryptoError,
  parseKeyMaterial,
  payloadAad,
  type SealedPayload,
} from './payload-crypto.js';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);
const plaintext = Buffer.from('{"messages":[{"role":"user","content":"the secret plan"}]}');
const aad = payloadAad('request-1', 'request');

function flipped(buffer: Buffer, index = 0): Buffer {
  const copy = Buffer.from(buffer);
  copy[index]! ^= 0x01;
  return copy;
}

function failure(action: () => unknown): PayloadCryptoError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(PayloadCryptoError);
    return error as PayloadCryptoError;
  }
  throw new Error('expected a PayloadCryptoError');
}

describe('encrypt and decrypt', () => {
  const ring = new KeyRing({ current: { id: 'k1', key: oldKey } });

  it('round-trips a payload, with a fresh 12-byte IV and a 16-byte tag each time', () => {
    const first = encrypt(plaintext, ring, aad);
    const second = encrypt(plaintext, ring, aad);
    expect(first.keyId).toBe('k1');
    expect(first.iv).toHaveLength(12);
    expect(first.tag).toHaveLength(16);
    expect(first.iv.equals(second.iv)).toBe(false);
    expect(first.ciphertext.equals(second.ciphertext)).toBe(false);
    expect(first.ciphertext.includes(Buffer.from('secret'))).toBe(false);
    expect(decrypt(first, ring, aad).equals(plaintext)).toBe(true);
  });

  it('round-trips an empty payload', () => {
    expect(decrypt(encrypt(Buffer.alloc(0), ring, aad), ring, aad)).toHaveLength(0);
  });

  it('fails authentication under a different key with the same id', () => {
    const sealed = encrypt(plaintext, ring, aad);
    const impostor = new KeyRing({ current: { id: 'k1', key: newKey } });
    expect(failure(() => decrypt(sealed, impostor, aad)).code).toBe('capture_decrypt_failed');
  });

  it('names a key id the ring does not hold', () => {
    const sealed = encrypt(plaintext, ring, aad);
    const other = new KeyRing({ current: { id: 'k2', key: oldKey } });
    const error = failure(() => decrypt(sealed, other, aad));
    expect(error.code).toBe('capture_key_unknown');
    expect(error.message).toContain('"k1"');
    expect(error.message).toContain('SWITCHYARD_CAPTURE_PREVIOUS_KEYS');
  });

  it.each<[string, (sealed: SealedPayload) => SealedPayload]>([
    ['a ciphertext byte', (sealed) => ({ ...sealed, ciphertext: flipped(sealed.ciphertext, 5) })],
    ['a tag byte', (sealed) => ({ ...sealed, tag: flipped(sealed.tag) })],
    ['an IV byte', (sealed) => ({ ...sealed, iv: flipped(sealed.iv) })],
    ['the truncated tag', (sealed) => ({ ...sealed, tag: sealed.tag.subarray(0, 8) })],
  ])('fails when %s is altered', (_, tamper) => {
    const sealed = tamper(encrypt(plaintext, ring, aad));
    expect(failure(() => decrypt(sealed, ring, aad)).code).toBe('capture_decrypt_failed');
  });

  it('fails for a ciphertext moved to another request id', () => {
    const sealed = encrypt(plaintext, ring, payloadAad('request-1', 'request'));
    expect(failure(() => decrypt(sealed, ring, payloadAad('request-2', 'request'))).code).toBe(
      'capture_decrypt_failed',
    );
  });

  it("fails for a request's ciphertext read as its response", () => {
    const sealed = encrypt(plaintext, ring, payloadAad('request-1', 'request'));
    expect(() => decrypt(sealed, ring, payloadAad('request-1', 'response'))).toThrow(PayloadCryptoError);
  });
});

describe('key rotation', () => {
  it('encrypts new payloads under the new key and still decrypts old ones with the previous key', () => {
    const before = new KeyRing({ current: { id: 'k1', key: oldKey } });
    const old = encrypt(plaintext, before, aad);
    const after = new KeyRing({ current: { id: 'k2', key: newKey }, previous: [{ id: 'k1', key: oldKey }] });
    const fresh = encrypt(plaintext, after, aad);
    expect(fresh.keyId).toBe('k2');
    expect(decrypt(old, after, aad).equals(plaintext)).toBe(true);
    expect(decrypt(fresh, after, aad).equals(plaintext)).toBe(true);
    expect(failure(() => decrypt(fresh, before, aad)).code).toBe('capture_key_unknown');
  });

  it('refuses a ring that gives one id twice, or a key that is not 32 bytes', () => {
    expect(
      () => new KeyRing({ current: { id: 'k1', key: oldKey }, previous: [{ id: 'k1', key: newKey }] }),
    ).toThrow('given twice');
    expect(() => new KeyRing({ current: { id: 'k1', key: randomBytes(16) } })).toThrow('must be 32 bytes');
  });

  it('never shows its keys when printed or serialised', () => {
    const ring = new KeyRing({ current: { id: 'k2', key: newKey }, previous: [{ id: 'k1', key: oldKey }] });
    const shown = `${inspect(ring, { depth: 10, showHidden: true })}${JSON.stringify(ring)}`;
    for (const key of [oldKey, newKey]) {
      expect(shown).not.toContain(key.toString('base64'));
      expect(shown).not.toContain(key.toString('hex'));
    }
    expect(JSON.parse(JSON.stringify(ring))).toEqual({ current: 'k2', ids: ['k2', 'k1'] });
  });
});

describe('parseKeyMaterial', () => {
  it('reads 32 bytes as base64, URL-safe base64 or hex, ignoring surrounding whitespace', () => {
    expect(parseKeyMaterial(`${oldKey.toString('base64')}\n`).equals(oldKey)).toBe(true);
    expect(parseKeyMaterial(oldKey.toString('base64url')).equals(oldKey)).toBe(true);
    expect(parseKeyMaterial(`  ${oldKey.toString('hex').toUpperCase()}`).equals(oldKey)).toBe(true);
  });

  it.each([
    ['16 bytes of base64', randomBytes(16).toString('base64')],
    ['48 bytes of base64', randomBytes(48).toString('base64')],
    ['62 hex digits', randomBytes(31).toString('hex')],
    ['a passphrase', 'correct horse battery staple, used as a key!'],
    ['base64 with a stray character', `${oldKey.toString('base64').slice(0, 42)}*=`],
  ])('refuses %s without repeating it', (_, text) => {
    const error = failure(() => parseKeyMaterial(text, 'SWITCHYARD_CAPTURE_KEY'));
    expect(error.code).toBe('capture_key_invalid');
    expect(error.message).toContain('SWITCHYARD_CAPTURE_KEY must be 32 bytes');
    expect(error.message).not.toContain(text);
    expect(error.message).not.toContain(text.slice(0, 12));
  });
});

describe('captureKeyRing', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'switchyard-capture-keys-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('takes the current key from SWITCHYARD_CAPTURE_KEY under id k1 by default', () => {
    const ring = captureKeyRing({}, { SWITCHYARD_CAPTURE_KEY: oldKey.toString('base64') });
    expect(ring.ids).toEqual(['k1']);
    const sealed = encrypt(plaintext, ring, aad);
    expect(decrypt(sealed, new KeyRing({ current: { id: 'k1', key: oldKey } }), aad).equals(plaintext)).toBe(
      true,
    );
  });

  it('reads the variable that key_env names, and earlier keys from SWITCHYARD_CAPTURE_PREVIOUS_KEYS', () => {
    const ring = captureKeyRing(
      { keyId: 'k3', keyEnv: 'MY_KEY' },
      {
        MY_KEY: newKey.toString('hex'),
        SWITCHYARD_CAPTURE_PREVIOUS_KEYS: `k2:${oldKey.toString('base64')}, k1:${randomBytes(32).toString('hex')}`,
      },
    );
    expect(ring.ids).toEqual(['k3', 'k2', 'k1']);
    expect(ring.currentId).toBe('k3');
  });

  it('reads the current and earlier keys from files', async () => {
    const current = join(directory, 'current.key');
    const previous = join(directory, 'previous.key');
    await writeFile(current, `${newKey.toString('base64')}\n`);
    await writeFile(previous, oldKey.toString('hex'));
    const ring = captureKeyRing(
      { keyId: 'k2', keyFile: current, previousKeys: [{ id: 'k1', file: previous }] },
      { SWITCHYARD_CAPTURE_KEY: randomBytes(32).toString('base64') },
    );
    const sealed = encrypt(plaintext, new KeyRing({ current: { id: 'k1', key: oldKey } }), aad);
    expect(decrypt(sealed, ring, aad).equals(plaintext)).toBe(true);
    expect(encrypt(plaintext, ring, aad).keyId).toBe('k2');
    const onlyNew = new KeyRing({ current: { id: 'k2', key: newKey } });
    expect(decrypt(encrypt(plaintext, ring, aad), onlyNew, aad).equals(plaintext)).toBe(true);
  });

  it('says which setting to set when there is no key', () => {
    const error = failure(() => captureKeyRing({ keyEnv: 'MY_KEY' }, {}));
    expect(error.code).toBe('capture_key_missing');
    expect(error.message).toContain('set MY_KEY (capture.key_env)');
  });

  it('names the setting whose key is malformed, and not the key', async () => {
    const file = join(directory, 'short.key');
    const short = randomBytes(20).toString('base64');
    await writeFile(file, short);
    const fromFile = failure(() => captureKeyRing({ keyFile: file }, {}));
    expect(fromFile.message).toContain('capture.key_file');
    expect(fromFile.message).not.toContain(short);

    const fromEnv = failure(() => captureKeyRing({}, { SWITCHYARD_CAPTURE_KEY: short }));
    expect(fromEnv.message).toContain('SWITCHYARD_CAPTURE_KEY must be 32 bytes');
    expect(fromEnv.message).not.toContain(short);

    const previous = failure(() =>
      captureKeyRing(
        {},
        {
          SWITCHYARD_CAPTURE_KEY: newKey.toString('base64'),
          SWITCHYARD_CAPTURE_PREVIOUS_KEYS: `k1:${short}`,
        },
      ),
    );
    expect(previous.message).toContain('SWITCHYARD_CAPTURE_PREVIOUS_KEYS entry 1');
    expect(previous.message).not.toContain(short);
  });

  it('refuses a previous key written without its id, without repeating it', () => {
    const key = oldKey.toString('base64');
    const error = failure(() =>
      captureKeyRing(
        {},
        { SWITCHYARD_CAPTURE_KEY: newKey.toString('base64'), SWITCHYARD_CAPTURE_PREVIOUS_KEYS: key },
      ),
    );
    expect(error.message).toContain('must be written "id:key"');
    expect(error.message).not.toContain(key);
  });

  it('names a key file it cannot read', () => {
    const missing = join(directory, 'absent.key');
    expect(() =>
      captureKeyRing(
        { previousKeys: [{ id: 'k0', file: missing }] },
        {
          SWITCHYARD_CAPTURE_KEY: newKey.toString('base64'),
        },
      ),
    ).toThrow(`capture.previous_keys[0].file: cannot read ${missing} (ENOENT)`);
  });
});
