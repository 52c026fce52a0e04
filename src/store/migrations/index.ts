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
  '0004-keys-teams-users': {
    // Virtual API keys, their teams and the admin API's users (auth/key-store.ts). A key is kept
    // only as its sha256 and a display prefix. Lists, limits, budgets and metadata are JSON text:
    // they are read whole when the key table is compiled, never queried into. A rotated key's old
    // half gets a revoked_at in the future: the end of its grace period.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('teams')
        .addColumn('id', 'text', (column) => column.primaryKey())
        .addColumn('name', 'text', (column) => column.notNull().unique())
        .addColumn('models', 'text', (column) => column.notNull())
        .addColumn('limits', 'text', (column) => column.notNull())
        .addColumn('budget', 'text')
        .addColumn('metadata', 'text', (column) => column.notNull())
        .addColumn('created_at', 'bigint', (column) => column.notNull())
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (column) => column.primaryKey())
        .addColumn('name', 'text', (column) => column.notNull().unique())
        .addColumn('role', 'text', (column) => column.notNull())
        .addColumn('team_id', 'text')
        .addColumn('created_at', 'bigint', (column) => column.notNull())
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (column) => column.primaryKey())
        .addColumn('name', 'text', (column) => column.notNull())
        .addColumn('prefix', 'text', (column) => column.notNull())
        .addColumn('hash', 'text', (column) => column.notNull().unique())
        .addColumn('team_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('models', 'text', (column) => column.notNull())
        .addColumn('limits', 'text', (column) => column.notNull())
        .addColumn('budget', 'text')
        .addColumn('priority', 'text', (column) => column.notNull())
        .addColumn('metadata', 'text', (column) => column.notNull())
        .addColumn('tags', 'text', (column) => column.notNull())
        .addColumn('created_at', 'bigint', (column) => column.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .addColumn('rotated_from', 'text')
        // The first key of its rotation chain: limits, budgets and usage follow it across rotations.
        .addColumn('lineage_id', 'text', (column) => column.notNull())
        .execute();
      await db.schema.createIndex('api_keys_team_id').on('api_keys').column('team_id').execute();
    },
  },
  '0006-payload-capture': {
    // Captured prompts and responses (telemetry/payload-capture.ts), encrypted with AES-256-GCM:
    // each half has its own IV and tag (one IV under one key must never encrypt twice), stored
    // as base64 text so rows cross to the writer thread as JSON and read the same on Postgres.
    // `request_id` is indexed, unlike request_log's id: showing a capture is this table's purpose,
    // and an index is small beside the payloads each row carries. `captured_at` serves the purge.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('payload_capture')
        .addColumn('seq', 'integer', (column) => column.primaryKey())
        .addColumn('request_id', 'text', (column) => column.notNull())
        .addColumn('captured_at', 'bigint', (column) => column.notNull())
        .addColumn('key_id', 'text', (column) => column.notNull())
        .addColumn('request_iv', 'text', (column) => column.notNull())
        .addColumn('request_tag', 'text', (column) => column.notNull())
        .addColumn('request_ct', 'text', (column) => column.notNull())
        .addColumn('response_iv', 'text', (column) => column.notNull())
        .addColumn('response_tag', 'text', (column) => column.notNull())
        .addColumn('response_ct', 'text', (column) => column.notNull())
        .execute();
      await db.schema
        .createIndex('payload_capture_captured_at')
        .on('payload_capture')
        .column('captured_at')
        .execute();
      await db.schema
        .createIndex('payload_capture_request_id')
        .on('payload_capture')
        .column('request_id')
        .execute();
    },
  },
  '0005-usage': {
    // Spend and tokens per UTC day, key, team and model (telemetry/usage-ledger.ts): the usage API
    // reads it, and budgets rebuild their current periods from it at start. Upserted in batches,
    // so a row is a running total. '' stands for no key or no team: a NULL would never conflict
    // in the unique key, and each upsert would add a row. The key starts with `day`, which
    // serves every query's date range.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('usage_daily')
        .addColumn('day', 'text', (column) => column.notNull())
        .addColumn('key_id', 'text', (column) => column.notNull().defaultTo(''))
        .addColumn('team_id', 'text', (column) => column.notNull().defaultTo(''))
        .addColumn('model', 'text', (column) => column.notNull())
        .addColumn('requests', 'bigint', (column) => column.notNull().defaultTo(0))
        .addColumn('prompt_tokens', 'bigint', (column) => column.notNull().defaultTo(0))
        .addColumn('completion_tokens', 'bigint', (column) => column.notNull().defaultTo(0))
        .addColumn('cached_tokens', 'bigint', (column) => column.notNull().defaultTo(0))
        // Dollars. Double precision: Postgres's `real` keeps only about 7 digits, too few for sums
        // of fractions of a cent (SQLite's REAL is a double either way).
        .addColumn('cost', 'double precision', (column) => column.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('usage_daily_pk', ['day', 'key_id', 'team_id', 'model'])
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
