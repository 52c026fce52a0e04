import type { Generated } from 'kysely';

/** Table types as Kysely sees them; each migration that changes a table changes its type here. */
export interface Database {
  request_log: RequestLogTable;
  audit_log: AuditLogTable;
  teams: TeamsTable;
  users: UsersTable;
  api_keys: ApiKeysTable;
  payload_capture: PayloadCaptureTable;
  usage_daily: UsageDailyTable;
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

/**
 * One captured exchange, encrypted (telemetry/payload-capture.ts): binary fields are base64. Each
 * half is AES-256-GCM under `key_id` with the request id and the half's name as associated data.
 */
export interface PayloadCaptureTable {
  seq: Generated<number>;
  request_id: string;
  /** Milliseconds since the epoch. */
  captured_at: number;
  key_id: string;
  request_iv: string;
  request_tag: string;
  /** The request body as received. */
  request_ct: string;
  response_iv: string;
  response_tag: string;
  /** The response body as sent; for a stream, its text concatenated. */
  response_ct: string;
}

/** A payload-capture row as written; `seq` is assigned by the database. */
export type PayloadCaptureRow = Omit<PayloadCaptureTable, 'seq'>;

/**
 * Running totals per UTC day, key, team and model (telemetry/usage-ledger.ts); '' for no key or
 * no team.
 */
export interface UsageDailyTable {
  /** YYYY-MM-DD, UTC. */
  day: string;
  key_id: string;
  team_id: string;
  model: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Part of prompt_tokens, read from the provider's cache. */
  cached_tokens: number;
  /** US dollars. */
  cost: number;
}

/** A team (auth/types.ts Team); JSON columns as written by auth/key-store.ts. */
export interface TeamsTable {
  id: string;
  name: string;
  /** JSON array of model patterns; [] is every model. */
  models: string;
  /** JSON `{ rpm?, tpm? }`. */
  limits: string;
  /** JSON `{ amount, period, soft? }`, or null for none. */
  budget: string | null;
  /** JSON object of strings. */
  metadata: string;
  /** Milliseconds since the epoch. */
  created_at: number;
}

/** A person on the admin API (auth/types.ts User). */
export interface UsersTable {
  id: string;
  name: string;
  role: string;
  team_id: string | null;
  created_at: number;
}

/** A virtual API key (auth/types.ts ApiKey): never the key, only its sha256 and display prefix. */
export interface ApiKeysTable {
  id: string;
  name: string;
  prefix: string;
  /** sha256 of the key, lowercase hex. */
  hash: string;
  team_id: string | null;
  user_id: string | null;
  models: string;
  limits: string;
  budget: string | null;
  priority: string;
  metadata: string;
  /** JSON array of strings. */
  tags: string;
  created_at: number;
  expires_at: number | null;
  /** In the future while a rotated key's grace period runs. */
  revoked_at: number | null;
  /** The key this one replaced, when made by a rotation. */
  rotated_from: string | null;
  /** The first key of its rotation chain (its own id for a key never rotated). */
  lineage_id: string;
}
