import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dataDirectory } from '../config/defaults.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { verifyAuditChain } from '../control/audit-log.js';
import { openStore } from '../store/database.js';

const usage = 'Usage: switchyard audit verify [--store PATH | --config FILE]\n';

/**
 * `switchyard audit verify [--store PATH | --config FILE]`: walks the audit log's hash chain in
 * the gateway's store (--store, else the config's store.path, else <data dir>/switchyard.db).
 * Exits 0 when every entry chains, 1 naming the first broken entry, 2 on a bad command line.
 */
export async function auditCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') {
    process.stderr.write(usage);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: { store: { type: 'string' }, config: { type: 'string', short: 'c' } },
    strict: true,
  });
  let path = values.store;
  if (path === undefined && values.config !== undefined) {
    try {
      path = (await loadConfigFile(values.config)).store.path;
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(`switchyard: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  }
  path ??= join(dataDirectory(), 'switchyard.db');
  // Opening a missing file would create an empty store, and "verified: 0 entries" would hide a
  // wrong path.
  if (!existsSync(path)) {
    process.stderr.write(`switchyard: there is no store at ${path}; pass --store PATH or --config FILE\n`);
    return 1;
  }
  const store = await openStore(path);
  try {
    const result = await verifyAuditChain(store.db);
    if (result.ok) {
      process.stdout.write(`audit log verified: ${result.entries} entries\n`);
      return 0;
    }
    process.stdout.write(`audit log broken at entry ${result.seq}: ${result.problem}\n`);
    return 1;
  } finally {
    await store.close();
  }
}
