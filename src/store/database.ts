import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import Sqlite from 'libsql';
import { migrationProvider } from './migrations/index.js';
import type { Database, PayloadCaptureRow, RequestLogRow } from './schema.js';
import { SqliteWriter } from './sqlite-writer.js';

/**
 * The persistent store: Kysely for queries and migrations, plus the few bulk writes that come
 * too often to pay for query building or to run on the event loop (a request-log row per
 * request), which go to a writer thread.
 */
export interface Store {
  readonly db: Kysely<Database>;
  /** Appends request-log rows in one transaction. */
  insertRequestLog(rows: readonly RequestLogRow[]): Promise<void>;
  /** Appends captured (encrypted) payloads in one transaction. */
  insertPayloadCapture(rows: readonly PayloadCaptureRow[]): Promise<void>;
  close(): Promise<void>;
}

const requestLogColumns = [
  'id',
  'started_at',
  'endpoint',
  'model',
  'target',
  'upstream_model',
  'status',
  'stream',
  'prompt_tokens',
  'completion_tokens',
  'total_tokens',
  'duration_ms',
  'upstream_ms',
  'first_byte_ms',
  'error_code',
  'deployment',
  'version',
  'attempts',
  'shadow',
] as const satisfies readonly (keyof RequestLogRow)[];

const payloadCaptureColumns = [
  'request_id',
  'captured_at',
  'key_id',
  'request_iv',
  'request_tag',
  'request_ct',
  'response_iv',
  'response_tag',
  'response_ct',
] as const satisfies readonly (keyof PayloadCaptureRow)[];

/**
 * Opens the embedded SQLite store and brings its schema up to date. libsql is the driver: SQLite
 * with better-sqlite3's API and prebuilt binaries on the npm registry, so installing needs no
 * compiler (docs/adr/0002-sqlite-driver.md).
 */
export async function openStore(path: string): Promise<Store> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  // The writer thread needs its own connection to the same database; for an in-memory one that
  // takes SQLite's shared cache under a name unique to this store.
  const location = path === ':memory:' ? `file:switchyard-${randomUUID()}?mode=memory&cache=shared` : path;
  const database = new Sqlite(location);
  // WAL lets readers (usage queries, the dashboard) run beside the batch writer; NORMAL
  // synchronous keeps commits durable across a process crash, which is the failure we expect.
  database.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: database as never }) });
  await migrate(db);

  const writer = new SqliteWriter(location);
  return {
    db,
    insertRequestLog(rows) {
      return writer.insert('request_log', requestLogColumns, rows);
    },
    insertPayloadCapture(rows) {
      return writer.insert('payload_capture', payloadCaptureColumns, rows);
    },
    async close() {
      await writer.close();
      // The in-memory database lives while a connection is open; Kysely's is the last.
      await db.destroy();
    },
  };
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
