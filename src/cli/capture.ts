import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dataDirectory } from '../config/defaults.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { parseDuration } from '../config/units.js';
import { openStore } from '../store/database.js';
import { purgePayloadCaptures, readPayloadCapture } from '../telemetry/payload-capture.js';
import { type CaptureKeySettings, captureKeyRing, PayloadCryptoError } from '../telemetry/payload-crypto.js';

const usage = `Usage:
  switchyard capture show <request-id> [--store PATH | --config FILE] [--key-id ID]
  switchyard capture purge [--older-than 30d] [--store PATH | --config FILE]
`;

const defaultOlderThan = '30d';

/**
 * `switchyard capture show|purge`: reads the gateway's store directly (--store, else the config's
 * store.path, else <data dir>/switchyard.db), as `audit verify` does.
 *
 * - `show <request-id>` decrypts a captured exchange with the key ring from the environment
 *   (SWITCHYARD_CAPTURE_KEY, SWITCHYARD_CAPTURE_PREVIOUS_KEYS; with --config, its capture
 *   section's key_env, key_file and key_id) and prints the request and the response.
 * - `purge` deletes captures older than --older-than (default: the config's capture.retention,
 *   else 30d); it needs no key.
 *
 * Exits 0 done, 1 failed (no store, no such capture, no key or the wrong one), 2 bad command line.
 */
export async function captureCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'show' && sub !== 'purge') {
    process.stderr.write(usage);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      store: { type: 'string' },
      config: { type: 'string', short: 'c' },
      'key-id': { type: 'string' },
      'older-than': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const requestId = positionals[0];
  const misused =
    sub === 'show'
      ? positionals.length !== 1 || values['older-than'] !== undefined
      : positionals.length !== 0 || values['key-id'] !== undefined;
  if (misused) {
    process.stderr.write(usage);
    return 2;
  }

  let config: GatewayConfig | undefined;
  if (values.config !== undefined) {
    try {
      config = await loadConfigFile(values.config);
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(`switchyard: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  }
  const path = values.store ?? config?.store.path ?? join(dataDirectory(), 'switchyard.db');
  // Opening a missing file would create an empty store and hide a wrong path.
  if (!existsSync(path)) {
    process.stderr.write(`switchyard: there is no store at ${path}; pass --store PATH or --config FILE\n`);
    return 1;
  }

  if (sub === 'purge') {
    const text = values['older-than'];
    const olderThan =
      text === undefined
        ? (config?.capture.retention ?? parseDuration(defaultOlderThan)!)
        : parseDuration(text);
    if (olderThan === undefined) {
      process.stderr.write(
        `switchyard: --older-than must be a duration such as 30d, 12h or 90m, got "${text}"\n`,
      );
      return 2;
    }
    const before = Date.now() - olderThan;
    const store = await openStore(path);
    try {
      const deleted = await purgePayloadCaptures(store.db, before);
      process.stdout.write(
        `purged ${deleted} captured exchanges from before ${new Date(before).toISOString()}\n`,
      );
      return 0;
    } finally {
      await store.close();
    }
  }

  const settings: CaptureKeySettings = {
    ...config?.capture,
    keyId: values['key-id'] ?? config?.capture.keyId,
  };
  const store = await openStore(path);
  try {
    const ring = captureKeyRing(settings, process.env);
    const exchange = await readPayloadCapture(store.db, requestId!, ring);
    if (exchange === undefined) {
      process.stderr.write(`switchyard: no capture of request ${requestId} in ${path}\n`);
      return 1;
    }
    process.stdout.write(
      `request ${exchange.requestId}, captured ${new Date(exchange.capturedAt).toISOString()} under key ${exchange.keyId}\n` +
        `--- request\n${withNewline(exchange.request.toString('utf8'))}` +
        `--- response\n${withNewline(exchange.response.toString('utf8'))}`,
    );
    return 0;
  } catch (error) {
    if (error instanceof PayloadCryptoError) {
      process.stderr.write(
        `switchyard: cannot decrypt the capture of request ${requestId}: ${error.message}\n`,
      );
      return 1;
    }
    throw error;
  } finally {
    await store.close();
  }
}

function withNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
