import type { Kysely, Migration, MigrationProvider } from 'kysely';

/**
 * Versioned migrations, applied in name order and recorded by Kysely's migrator. Never edit one
 * that has shipped: add the next. Each is written once for SQLite and Postgres alike.
 */
const migrations: Record<string, Migration> = {
  '0001-request-log': {
    // One row per request, written in batches. Only `started_at` is indexed: every index costs
    // each of those rows (about 2 µs for a UUID index, measured), and look-ups by request id are
    // rare, operator-driven and bounded by retention.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('request_log')
        .addColumn('seq', 'integer', (column) => column.primaryKey())
        .addColumn('id', 'text', (column) => column.notNull())
        .addColumn('started_at', 'bigint', (column) => column.notNull())
        .addColumn('endpoint', 'text', (column) => column.notNull())
        .addColumn('model', 'text')
        .addColumn('target', 'text')
        .addColumn('upstream_model', 'text')
        .addColumn('status', 'integer', (column) => column.notNull())
        .addColumn('stream', 'integer', (column) => column.notNull().defaultTo(0))
        .addColumn('prompt_tokens', 'integer')
        .addColumn('completion_tokens', 'integer')
        .addColumn('total_tokens', 'integer')
        .addColumn('duration_ms', 'real', (column) => column.notNull())
        .addColumn('upstream_ms', 'real')
        .addColumn('first_byte_ms', 'real')
        .addColumn('error_code', 'text')
        .execute();
      await db.schema.createIndex('request_log_started_at').on('request_log').column('started_at').execute();
    },
  },
  '0002-request-log-routing': {
    // Which deployment served a request, its version, after how many attempts, and whether it
    // was a shadow copy: what comparing the arms of a split or a shadow needs.
    async up(db: Kysely<unknown>) {
      for (const [name, type] of [
        ['deployment', 'text'],
        ['version', 'text'],
        ['attempts', 'integer'],
        ['shadow', 'integer'],
      ] as const) {
        await db.schema.alterTable('request_log').addColumn(name, type).execute();
      }
    },
  },
  '0003-audit-log': {
    // Admin actions and admin authentication failures, hash-chained (control/audit-log.ts). Rows
    // are only ever inserted; `seq` is assigned by the writer, not the database, because it is part
    // of what each row's hash covers.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'integer', (column) => column.primaryKey())
        .addColumn('at', 'bigint', (column) => column.notNull())
        .addColumn('actor', 'text', (column) => column.notNull())
        .addColumn('action', 'text', (column) => column.notNull())
        .addColumn('target', 'text')
        .addColumn('before', 'text')
        .addColumn('after', 'text')
        .addColumn('source', 'text')
        .addColumn('request_id', 'text')
        .addColumn('outcome', 'text', (column) => column.notNull())
        .addColumn('prev_hash', 'text', (column) => column.notNull())
        .addColumn('hash', 'text', (column) => column.notNull())
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
