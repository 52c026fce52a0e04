import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuditLogTable, Database } from '../store/schema.js';

/** The prev_hash of the first entry. */
export const genesisHash = '0'.repeat(64);

export type AuditOutcome = AuditLogTable['outcome'];

/** What a caller records; the log adds seq, time and the hashes. */
export interface AuditRecord {
  /** Who acted: 'admin' for the admin key, 'anonymous' for a refused caller. */
  readonly actor: string;
  /** noun.verb: 'model.pull', 'model.delete', 'model.import', 'config.reload', 'auth.failure'. */
  readonly action: string;
  /** What was acted on: a model name, a path. */
  readonly target?: string | null | undefined;
  /** The state before and after, as plain JSON values; secrets are removed before writing. */
  readonly before?: unknown;
  readonly after?: unknown;
  /** The client's address. */
  readonly source?: string | null | undefined;
  readonly requestId?: string | null | undefined;
  readonly outcome: AuditOutcome;
}

/** A stored entry, as the admin API answers it: before and after parsed back. */
export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly target: string | null;
  readonly before: unknown;
  readonly after: unknown;
  readonly source: string | null;
  readonly request_id: string | null;
  readonly outcome: AuditOutcome;
  readonly prev_hash: string;
  readonly hash: string;
}

export type AuditVerification =
  | { readonly ok: true; readonly entries: number }
  | { readonly ok: false; readonly seq: number; readonly problem: string };

/**
 * The tamper-evident audit log (issue 6): one row per admin action and per refused admin request,
 * each carrying the sha256 of the row before it, so editing, deleting or reordering a row breaks
 * the chain that `verifyAuditChain` walks.
 *
 * Appends are serialised through a promise chain and each reads the last row inside its own
 * transaction, so concurrent appends never fork the chain, and a restarted gateway continues the
 * chain it left. Each append is awaited before the admin answer goes out: an entry is committed
 * (WAL, synchronous=normal: it survives a process crash) before the caller hears of the action.
 *
 * @example const entry = await audit.append({ actor: 'admin', action: 'model.delete', target: 'qwen:0.5b', outcome: 'ok' });
 */
export class AuditLog {
  readonly #db: Kysely<Database>;
  readonly #now: () => number;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(db: Kysely<Database>, options: { now?: () => number } = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  append(record: AuditRecord): Promise<AuditEntry> {
    const appended = this.#tail.then(() => this.#write(record));
    // A failed append must not stop the ones queued behind it.
    this.#tail = appended.catch(() => undefined);
    return appended;
  }

  /** Entries after `since` (a seq), oldest first, at most `limit`. */
  async list(options: { since?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    const rows = await this.#db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', options.since ?? 0)
      .orderBy('seq')
      .limit(options.limit ?? 100)
      .execute();
    return rows.map(toEntry);
  }

  /** Walks the whole chain; see verifyAuditChain. */
  verify(): Promise<AuditVerification> {
    return verifyAuditChain(this.#db);
  }

  async #write(record: AuditRecord): Promise<AuditEntry> {
    return this.#db.transaction().execute(async (transaction) => {
      const last = await transaction
        .selectFrom('audit_log')
        .select(['seq', 'hash'])
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      const fields: Omit<AuditLogTable, 'prev_hash' | 'hash'> = {
        seq: (last?.seq ?? 0) + 1,
        at: this.#now(),
        actor: record.actor,
        action: record.action,
        target: record.target ?? null,
        before: storedJson(record.before),
        after: storedJson(record.after),
        source: record.source ?? null,
        request_id: record.requestId ?? null,
        outcome: record.outcome,
      };
      const prevHash = last?.hash ?? genesisHash;
      const row: AuditLogTable = { ...fields, prev_hash: prevHash, hash: entryHash(prevHash, fields) };
      await transaction.insertInto('audit_log').values(row).execute();
      return toEntry(row);
    });
  }
}

/**
 * Walks every entry in seq order and reports the first break: a row whose contents no longer
 * match its hash (edited, or moved to another seq), a missing seq (deleted), or a prev_hash that
 * is not the previous row's hash (deleted, inserted or reordered). Deleting the newest entries
 * leaves a valid shorter chain; only a copy of the last hash kept elsewhere can show that.
 */
export async function verifyAuditChain(db: Kysely<Database>): Promise<AuditVerification> {
  const page = 1000;
  let expectedSeq = 1;
  let prevHash = genesisHash;
  let entries = 0;
  for (;;) {
    const rows = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>=', expectedSeq)
      .orderBy('seq')
      .limit(page)
      .execute();
    for (const row of rows) {
      if (row.seq !== expectedSeq) {
        const missing =
          row.seq - expectedSeq === 1
            ? `entry ${expectedSeq} is`
            : `entries ${expectedSeq} to ${row.seq - 1} are`;
        return { ok: false, seq: row.seq, problem: `${missing} missing (deleted)` };
      }
      if (row.prev_hash !== prevHash) {
        return {
          ok: false,
          seq: row.seq,
          problem: `its prev_hash is not the hash of entry ${row.seq - 1}: entries were deleted, inserted or reordered`,
        };
      }
      if (entryHash(row.prev_hash, row) !== row.hash) {
        return {
          ok: false,
          seq: row.seq,
          problem: 'its contents do not match its hash: it was edited or moved',
        };
      }
      prevHash = row.hash;
      expectedSeq += 1;
      entries += 1;
    }
    if (rows.length < page) return { ok: true, entries };
  }
}

/** sha256 hex of the previous hash, a newline, and the entry's fields as JSON in a fixed order. */
export function entryHash(prevHash: string, row: Omit<AuditLogTable, 'prev_hash' | 'hash'>): string {
  // An array fixes the order whatever order the object's keys came in; before and after are
  // hashed as the JSON text stored, so verifying never re-serialises them.
  const canonical = JSON.stringify([
    row.seq,
    row.at,
    row.actor,
    row.action,
    row.target,
    row.before,
    row.after,
    row.source,
    row.request_id,
    row.outcome,
  ]);
  return createHash('sha256').update(`${prevHash}\n${canonical}`, 'utf8').digest('hex');
}

function toEntry(row: AuditLogTable): AuditEntry {
  return {
    ...row,
    before: row.before === null ? null : JSON.parse(row.before),
    after: row.after === null ? null : JSON.parse(row.after),
  };
}

function storedJson(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(withoutSecrets(value));
}

/** Field names whose values are credentials: dropped wherever they appear. */
const secretName = /key|token|secret|password|passwd|authorization|credential|signature|^sig$/i;

/**
 * The value with every secret removed: fields named like a credential, and the user info and
 * credential query parameters of URLs (a pull's source may be a signed or authenticated URL).
 */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (typeof value === 'string') return withoutUrlSecrets(value);
  if (typeof value !== 'object' || value === null) return value;
  const clean: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    if (!secretName.test(name)) clean[name] = withoutSecrets(field);
  }
  return clean;
}

function withoutUrlSecrets(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  let changed = false;
  if (url.username !== '' || url.password !== '') {
    url.username = '';
    url.password = '';
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (secretName.test(name)) {
      url.searchParams.delete(name);
      changed = true;
    }
  }
  return changed ? url.toString() : text;
}
