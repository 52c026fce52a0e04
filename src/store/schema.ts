import type { Generated } from 'kysely';

/** Table types as Kysely sees them; each migration that changes a table changes its type here. */
export interface Database {
  request_log: RequestLogTable;
  audit_log: AuditLogTable;
}

/** One admin action or authentication failure; see control/audit-log.ts for the hash chain. */
export interface AuditLogTable {
  /** 1, 2, 3…: assigned by the writer, and covered by the hash. */
  seq: number;
  /** Milliseconds since the epoch. */
  at: number;
  actor: string;
  action: string;
  target: string | null;
  /** JSON, secrets removed. */
  before: string | null;
  /** JSON, secrets removed. */
  after: string | null;
  /** The client's address. */
  source: string | null;
  request_id: string | null;
  outcome: 'ok' | 'denied' | 'failed';
  /** The previous row's hash; 64 zeros for the first row. */
  prev_hash: string;
  /** sha256 hex of prev_hash, a newline and the row's canonical JSON. */
  hash: string;
}

export interface RequestLogTable {
  /** The request id: the client's x-request-id, or one the gateway generated. */
  id: string;
  /** Milliseconds since the epoch when the request arrived. */
  started_at: number;
  endpoint: string;
  model: string | null;
  target: string | null;
  upstream_model: string | null;
  status: number;
  stream: number;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  duration_ms: number;
  upstream_ms: number | null;
  first_byte_ms: number | null;
  error_code: string | null;
  /** The deployment (target of the model) that served the last attempt. */
  deployment: string | null;
  version: string | null;
  /** Attempts made, retries and fallbacks included. */
  attempts: number | null;
  /** 1 for a shadow copy of a request: recorded, never returned to the client. */
  shadow: number | null;
  seq: Generated<number>;
}

/** A request-log row as written; `seq` is assigned by the database. */
export type RequestLogRow = Omit<RequestLogTable, 'seq'>;
