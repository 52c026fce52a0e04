import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import Sqlite from 'libsql';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Store = Kysely<Database>;

/**
 * Opens the embedded SQLite store and brings its schema up to date. libsql is used as the
 * driver: it is SQLite with a better-sqlite3-compatible API and prebuilt binaries on the npm
 * registry, so installing needs no compiler (docs/adr/0002-sqlite-driver.md).
 */
export async function openStore(path: string): Promise<Store> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new Sqlite(path);
  // WAL lets readers (usage queries, the dashboard) run beside the batch writer; NORMAL
  // synchronous keeps commits durable across a process crash, which is the failure we expect.
  database.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: database as never }) });
  await migrate(db);
  return db;
}

export async function migrate(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    throw new Error(`store migration ${failed ?? ''} failed: ${(error as Error).message ?? String(error)}`, {
      cause: error,
    });
  }
}
