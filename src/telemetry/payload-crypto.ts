import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Encryption at rest for captured prompts and responses (issue 6): AES-256-GCM, a fresh random
 * 96-bit IV per payload (NIST SP 800-38D §8.2.2; at 2^32 payloads per key the chance of an IV
 * repeating stays below 2^-32), and the key id stored beside each ciphertext so keys can rotate.
 */

const algorithm = 'aes-256-gcm';
const keyBytes = 32;
const ivBytes = 12;
const tagBytes = 16;
const keyIdPattern = /^[A-Za-z0-9._-]{1,64}$/;

/** The environment variable that `captureKeyRing` reads earlier keys from: "id:key,id:key". */
export const previousKeysVariable = 'SWITCHYARD_CAPTURE_PREVIOUS_KEYS';
export const defaultKeyVariable = 'SWITCHYARD_CAPTURE_KEY';
export const defaultKeyId = 'k1';

export type PayloadCryptoErrorCode =
  | 'capture_key_missing'
  | 'capture_key_invalid'
  | 'capture_key_unknown'
  | 'capture_decrypt_failed';

/** A key that is missing or malformed, or a payload that cannot be decrypted. Never holds key material. */
export class PayloadCryptoError extends Error {
  override readonly name = 'PayloadCryptoError';
  constructor(
    readonly code: PayloadCryptoErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface CaptureKey {
  /** Stored with every row the key encrypts: letters, digits, ".", "_" or "-", at most 64. */
  readonly id: string;
  /** 32 bytes. */
  readonly key: Buffer;
}

/**
 * The keys capture may use: `current` encrypts new rows; `previous` only decrypt old ones, so a
 * rotated-out key keeps its rows readable until retention purges them. Keys are held as
 * KeyObjects, which print and serialise without their bytes, so a ring that reaches a log line
 * leaks nothing.
 *
 * @example new KeyRing({ current: { id: 'k2', key: newKey }, previous: [{ id: 'k1', key: oldKey }] })
 */
export class KeyRing {
  readonly currentId: string;
  readonly #keys = new Map<string, KeyObject>();

  constructor(keys: { readonly current: CaptureKey; readonly previous?: readonly CaptureKey[] }) {
    for (const { id, key } of [keys.current, ...(keys.previous ?? [])]) {
      if (!keyIdPattern.test(id)) {
        throw new PayloadCryptoError(
          'capture_key_invalid',
          // Not repeated: a key pasted where its id belongs would land in the message.
          'a capture key id must be 1 to 64 letters, digits, ".", "_" or "-"',
        );
      }
      if (this.#keys.has(id)) {
        throw new PayloadCryptoError('capture_key_invalid', `capture key id "${id}" is given twice`);
      }
      if (key.length !== keyBytes) {
        throw new PayloadCryptoError(
          'capture_key_invalid',
          `capture key "${id}" must be ${keyBytes} bytes, got ${key.length}`,
        );
      }
      this.#keys.set(id, createSecretKey(key));
    }
    this.currentId = keys.current.id;
  }

  /** Every id, the current one first. */
  get ids(): string[] {
    return [...this.#keys.keys()];
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** @internal for encrypt and decrypt */
  key(id: string): KeyObject | undefined {
    return this.#keys.get(id);
  }

  toJSON(): { current: string; ids: string[] } {
    return { current: this.currentId, ids: this.ids };
  }
}

/** One encrypted payload: what a row stores, besides the request id that is its associated data. */
export interface SealedPayload {
  readonly keyId: string;
  /** 12 random bytes. */
  readonly iv: Buffer;
  /** The 16-byte GCM authentication tag. */
  readonly tag: Buffer;
  readonly ciphertext: Buffer;
}

/**
 * Encrypts with the ring's current key. `aad` is authenticated, not stored: decrypting needs the
 * same value, so a ciphertext copied under another request id fails (see `payloadAad`).
 *
 * @example const sealed = encrypt(Buffer.from(body), ring, payloadAad(requestId, 'request'));
 */
export function encrypt(plaintext: Buffer, ring: KeyRing, aad: Buffer | string): SealedPayload {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv(algorithm, ring.key(ring.currentId)!, iv, { authTagLength: tagBytes });
  cipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: ring.currentId, iv, tag: cipher.getAuthTag(), ciphertext };
}

/**
 * Decrypts with the key the payload names. Throws PayloadCryptoError `capture_key_unknown` when
 * the ring lacks that key, and `capture_decrypt_failed` when authentication fails: the
 * ciphertext, IV or tag was altered, the key under that id is not the one that encrypted it, or
 * `aad` differs (the payload was moved to another row).
 */
export function decrypt(sealed: SealedPayload, ring: KeyRing, aad: Buffer | string): Buffer {
  const key = ring.key(sealed.keyId);
  if (key === undefined) {
    throw new PayloadCryptoError(
      'capture_key_unknown',
      `the payload was encrypted with key "${sealed.keyId}", which is not in the key ring (${ring.ids.join(', ')}); ` +
        `add it to ${previousKeysVariable} as "${sealed.keyId}:<key>"`,
    );
  }
  if (sealed.iv.length !== ivBytes || sealed.tag.length !== tagBytes) {
    throw new PayloadCryptoError(
      'capture_decrypt_failed',
      `the payload's IV or tag has the wrong length (${sealed.iv.length} and ${sealed.tag.length} bytes)`,
    );
  }
  const decipher = createDecipheriv(algorithm, key, sealed.iv, { authTagLength: tagBytes });
  decipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
  decipher.setAuthTag(sealed.tag);
  try {
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    throw new PayloadCryptoError(
      'capture_decrypt_failed',
      `the payload failed authentication with key "${sealed.keyId}": it was altered, moved from another ` +
        'request, or that key id now holds a different key',
    );
  }
}

/**
 * The associated data of one half of a captured exchange: the request id binds the ciphertext to
 * its row, and the half's name keeps a row's request and response from being swapped.
 */
export function payloadAad(requestId: string, part: 'request' | 'response'): Buffer {
  return Buffer.from(`switchyard-capture-v1\0${requestId}\0${part}`, 'utf8');
}

/**
 * Reads a 32-byte key written as base64 (44 characters, standard or URL-safe alphabet) or as 64
 * hex digits, surrounding whitespace ignored. Errors say what `source` held and never repeat it.
 *
 * @example parseKeyMaterial(process.env.SWITCHYARD_CAPTURE_KEY ?? '', 'SWITCHYARD_CAPTURE_KEY')
 */
export function parseKeyMaterial(text: string, source = 'the capture key'): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  // Node's base64 decoder skips characters outside the alphabet, so check the text first.
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) {
    const key = Buffer.from(trimmed, 'base64');
    if (key.length === keyBytes) return key;
  }
  throw new PayloadCryptoError(
    'capture_key_invalid',
    `${source} must be ${keyBytes} bytes written as base64 (44 characters) or hex (64 characters), ` +
      `but it holds ${trimmed.length} characters; make one with "openssl rand -base64 32"`,
  );
}

/**
 * Where capture's keys come from; the gateway config's `capture` section has this shape.
 * YAML names in errors: key_id, key_env, key_file, previous_keys.
 */
export interface CaptureKeySettings {
  /** The current key's id; default "k1". */
  readonly keyId?: string | undefined;
  /** The environment variable holding the current key; default SWITCHYARD_CAPTURE_KEY. */
  readonly keyEnv?: string | undefined;
  /** A file holding the current key; when set, it is used and `keyEnv` is not read. */
  readonly keyFile?: string | undefined;
  /** Earlier keys in files, besides those in SWITCHYARD_CAPTURE_PREVIOUS_KEYS. */
  readonly previousKeys?: readonly { readonly id: string; readonly file: string }[] | undefined;
}

/**
 * Builds the key ring from settings and the environment: the current key from `keyFile`, else
 * the variable `keyEnv`; earlier keys from the files in `previousKeys` and from
 * SWITCHYARD_CAPTURE_PREVIOUS_KEYS ("k1:<key>,k0:<key>"). Pure but for reading the key files.
 * Errors (PayloadCryptoError) name the setting or variable at fault, never a key.
 *
 * @example captureKeyRing(config.capture, process.env)
 */
export function captureKeyRing(settings: CaptureKeySettings, env: NodeJS.ProcessEnv): KeyRing {
  const id = settings.keyId ?? defaultKeyId;
  let key: Buffer;
  if (settings.keyFile !== undefined) {
    key = parseKeyMaterial(
      readKeyFile(settings.keyFile, 'capture.key_file'),
      `capture.key_file (${settings.keyFile})`,
    );
  } else {
    const variable = settings.keyEnv ?? defaultKeyVariable;
    const text = env[variable];
    if (text === undefined || text.trim() === '') {
      throw new PayloadCryptoError(
        'capture_key_missing',
        `capture needs a key: set ${variable} (capture.key_env) to 32 bytes in base64, for example from ` +
          '"openssl rand -base64 32", or point capture.key_file at a file holding one',
      );
    }
    key = parseKeyMaterial(text, variable);
  }

  const previous: CaptureKey[] = (settings.previousKeys ?? []).map((entry, index) => {
    const setting = `capture.previous_keys[${index}].file`;
    return {
      id: entry.id,
      key: parseKeyMaterial(readKeyFile(entry.file, setting), `${setting} (${entry.file})`),
    };
  });
  const listed = env[previousKeysVariable]?.trim() ?? '';
  if (listed !== '') {
    for (const [index, entry] of listed.split(',').entries()) {
      const colon = entry.indexOf(':');
      const where = `${previousKeysVariable} entry ${index + 1}`;
      if (colon < 0) {
        throw new PayloadCryptoError('capture_key_invalid', `${where} must be written "id:key"`);
      }
      const entryId = entry.slice(0, colon).trim();
      if (!keyIdPattern.test(entryId)) {
        throw new PayloadCryptoError(
          'capture_key_invalid',
          `${where}: the id before ":" must be 1 to 64 letters, digits, ".", "_" or "-"`,
        );
      }
      previous.push({ id: entryId, key: parseKeyMaterial(entry.slice(colon + 1), where) });
    }
  }
  return new KeyRing({ current: { id, key }, previous });
}

function readKeyFile(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new PayloadCryptoError('capture_key_missing', `${setting}: cannot read ${path} (${code})`);
  }
}
