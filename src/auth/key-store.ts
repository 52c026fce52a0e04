import { randomBytes } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { GatewayError } from '../errors/index.js';
import type { ApiKeysTable, Database, TeamsTable, UsersTable } from '../store/schema.js';
import { generateApiKey, KeyTable } from './api-keys.js';
import {
  type ApiKey,
  type Budget,
  budgetPeriods,
  type Priority,
  priorities,
  type RateLimit,
  type Role,
  roles,
  type Team,
  type User,
} from './types.js';

/** A key as the control plane keeps it: the data plane's ApiKey, and what it was rotated from. */
export interface StoredApiKey extends ApiKey {
  /** The key this one replaced, when a rotation made it. */
  readonly rotatedFrom: string | undefined;
}

/** What a key's owner may set when creating it; absent fields take the defaults shown. */
export interface NewApiKey {
  /** Default "". */
  readonly name?: string | undefined;
  /** A team's id or name; default none. */
  readonly team?: string | undefined;
  /** A user's id or name; default none. */
  readonly user?: string | undefined;
  /** Model patterns; default [] (every model the team allows). */
  readonly models?: readonly string[] | undefined;
  readonly limits?: RateLimit | undefined;
  readonly budget?: Budget | undefined;
  /** Default 'normal'. */
  readonly priority?: Priority | undefined;
  readonly metadata?: Readonly<Record<string, string>> | undefined;
  readonly tags?: readonly string[] | undefined;
  /** Milliseconds since the epoch; default never. */
  readonly expiresAt?: number | undefined;
}

/** A rate limit change: a number sets, null removes, absent keeps. */
export interface LimitChanges {
  readonly rpm?: number | null | undefined;
  readonly tpm?: number | null | undefined;
}

/** What PATCH may change on a key: absent keeps, null clears. Its team and user are fixed. */
export interface ApiKeyChanges {
  readonly name?: string | undefined;
  readonly models?: readonly string[] | undefined;
  readonly limits?: LimitChanges | undefined;
  readonly budget?: Budget | null | undefined;
  readonly priority?: Priority | undefined;
  readonly metadata?: Readonly<Record<string, string>> | undefined;
  readonly tags?: readonly string[] | undefined;
  readonly expiresAt?: number | null | undefined;
}

export interface NewTeam {
  readonly name: string;
  readonly models?: readonly string[] | undefined;
  readonly limits?: RateLimit | undefined;
  readonly budget?: Budget | undefined;
  readonly metadata?: Readonly<Record<string, string>> | undefined;
}

export interface TeamChanges {
  readonly name?: string | undefined;
  readonly models?: readonly string[] | undefined;
  readonly limits?: LimitChanges | undefined;
  readonly budget?: Budget | null | undefined;
  readonly metadata?: Readonly<Record<string, string>> | undefined;
}

export interface NewUser {
  readonly name: string;
  readonly role: Role;
  /** A team's id or name. */
  readonly team?: string | undefined;
}

export interface UserChanges {
  readonly name?: string | undefined;
  readonly role?: Role | undefined;
  /** A team's id or name; null takes the user out of their team. */
  readonly team?: string | null | undefined;
}

/** An object before and after a change, for the audit log and the answer. */
export interface Change<T> {
  readonly before: T;
  readonly after: T;
}

/** A key as the admin API shows it: its state at an instant, from its timestamps. */
export type KeyStatus = 'active' | 'rotating' | 'expired' | 'revoked';

/** 'rotating': rotated, still valid until its grace period ends (revokedAt, in the future). */
export function keyStatus(key: ApiKey, now: number): KeyStatus {
  if (key.revokedAt !== undefined) return now >= key.revokedAt ? 'revoked' : 'rotating';
  if (key.expiresAt !== undefined && now >= key.expiresAt) return 'expired';
  return 'active';
}

/**
 * Revoked keys stay in the compiled table this long, so a client still sending one hears
 * "revoked" rather than "unknown"; older ones drop out and the table stays the size of the
 * keys in use.
 */
const revokedKeysKept = 7 * 86_400_000;

export interface KeyStoreOptions {
  /** Milliseconds since the epoch; injected in tests. */
  readonly now?: () => number;
  /** The CSPRNG for keys and ids; injected in tests. */
  readonly random?: (size: number) => Buffer;
}

/**
 * Virtual keys, teams and users in the store: the control plane's side of issue 6. Keys are kept
 * as their sha256 and display prefix only; the key text exists once, in the answer to create or
 * rotate. `table()` compiles what the data plane authenticates against, so it never reads the
 * store per request.
 *
 * Every failure a caller can cause is a GatewayError naming the request field: `invalid_field`
 * (400) for a bad value, an unknown team or a taken name, `not_found` (404) for an unknown id.
 *
 * @example
 * const keys = new KeyStore(store.db);
 * const { key, record } = await keys.createKey({ team: 'search', models: ['gpt-4o'], limits: { rpm: 60 } });
 * const table = await keys.table(Date.now());
 */
export class KeyStore {
  readonly #db: Kysely<Database>;
  readonly #now: () => number;
  readonly #random: (size: number) => Buffer;

  constructor(db: Kysely<Database>, options: KeyStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? randomBytes;
  }

  // Keys.

  /** Creates a key; `key` is its text, which is not stored and cannot be shown again. */
  async createKey(input: NewApiKey): Promise<{ key: string; record: StoredApiKey }> {
    const now = this.#now();
    const settings = checkKeySettings(input, now);
    return this.#db.transaction().execute(async (transaction) => {
      const teamId = input.team === undefined ? undefined : (await teamByRef(transaction, input.team)).id;
      const userId = input.user === undefined ? undefined : (await userByRef(transaction, input.user)).id;
      const generated = generateApiKey(this.#random);
      const id = this.#id('key');
      const record: StoredApiKey = {
        id,
        ...settings,
        prefix: generated.prefix,
        hash: generated.hash,
        teamId,
        userId,
        createdAt: now,
        revokedAt: undefined,
        rotatedFrom: undefined,
        lineage: id,
      };
      await transaction.insertInto('api_keys').values(keyRow(record)).execute();
      return { key: generated.key, record };
    });
  }

  /** Every key, oldest first, revoked ones included; or a team's (by id or name). */
  async listKeys(filter: { team?: string | undefined } = {}): Promise<StoredApiKey[]> {
    let query = this.#db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id');
    if (filter.team !== undefined) {
      const team = await teamByRef(this.#db, filter.team);
      query = query.where('team_id', '=', team.id);
    }
    return (await query.execute()).map(toKey);
  }

  async getKey(id: string): Promise<StoredApiKey> {
    return keyById(this.#db, id);
  }

  async updateKey(id: string, changes: ApiKeyChanges): Promise<Change<StoredApiKey>> {
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const before = await keyById(transaction, id);
      const after: StoredApiKey = {
        ...before,
        ...checkKeySettings(
          {
            name: changes.name ?? before.name,
            models: changes.models ?? before.models,
            limits: changedLimits(before.limits, changes.limits),
            budget: changes.budget === undefined ? before.budget : (changes.budget ?? undefined),
            priority: changes.priority ?? before.priority,
            metadata: changes.metadata ?? before.metadata,
            tags: changes.tags ?? before.tags,
            expiresAt: changes.expiresAt === undefined ? before.expiresAt : (changes.expiresAt ?? undefined),
          },
          // Only a new expiry must lie in the future; an unchanged past one may stay.
          changes.expiresAt === undefined || changes.expiresAt === null ? undefined : now,
        ),
      };
      await transaction.updateTable('api_keys').set(keyRow(after)).where('id', '=', id).execute();
      return { before, after };
    });
  }

  /** Revokes a key now; one already revoked keeps its first revocation time. */
  async revokeKey(id: string): Promise<Change<StoredApiKey>> {
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const before = await keyById(transaction, id);
      const after: StoredApiKey = { ...before, revokedAt: Math.min(before.revokedAt ?? now, now) };
      await transaction
        .updateTable('api_keys')
        .set({ revoked_at: after.revokedAt })
        .where('id', '=', id)
        .execute();
      return { before, after };
    });
  }

  /**
   * Replaces a key with a new one of the same settings. The old key stays valid for `grace`
   * milliseconds (0: revoked at once), so clients can move over without an outage; its
   * revoked_at is then the end of that grace, never later than an earlier revocation.
   */
  async rotateKey(
    id: string,
    grace: number,
  ): Promise<{ key: string; record: StoredApiKey; previous: Change<StoredApiKey> }> {
    if (!Number.isFinite(grace) || grace < 0) {
      throw new GatewayError('invalid_field', `grace must be a duration of 0 or more, got ${grace}.`, {
        param: 'grace',
      });
    }
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const before = await keyById(transaction, id);
      const status = keyStatus(before, now);
      if (status === 'revoked' || status === 'expired') {
        throw new GatewayError(
          'invalid_field',
          `Key ${id} is ${status}, so it cannot be rotated. Create a new key with POST /admin/keys.`,
          { param: 'id' },
        );
      }
      const generated = generateApiKey(this.#random);
      const record: StoredApiKey = {
        ...before,
        id: this.#id('key'),
        prefix: generated.prefix,
        hash: generated.hash,
        createdAt: now,
        revokedAt: undefined,
        rotatedFrom: before.id,
        lineage: before.lineage,
      };
      const after: StoredApiKey = {
        ...before,
        revokedAt: Math.min(before.revokedAt ?? now + grace, now + grace),
      };
      await transaction.insertInto('api_keys').values(keyRow(record)).execute();
      await transaction
        .updateTable('api_keys')
        .set({ revoked_at: after.revokedAt })
        .where('id', '=', id)
        .execute();
      return { key: generated.key, record, previous: { before, after } };
    });
  }

  // Teams.

  async createTeam(input: NewTeam): Promise<Team> {
    const team: Team = {
      id: this.#id('team'),
      ...checkTeamSettings(input),
      createdAt: this.#now(),
    };
    return this.#db.transaction().execute(async (transaction) => {
      await nameIsFree(transaction, 'teams', team.name);
      await transaction.insertInto('teams').values(teamRow(team)).execute();
      return team;
    });
  }

  async listTeams(): Promise<Team[]> {
    return (await this.#db.selectFrom('teams').selectAll().orderBy('created_at').orderBy('id').execute()).map(
      toTeam,
    );
  }

  /** A team by its id or its name. */
  async getTeam(ref: string): Promise<Team> {
    return teamByRef(this.#db, ref, 'id');
  }

  async updateTeam(ref: string, changes: TeamChanges): Promise<Change<Team>> {
    return this.#db.transaction().execute(async (transaction) => {
      const before = await teamByRef(transaction, ref, 'id');
      const after: Team = {
        ...before,
        ...checkTeamSettings({
          name: changes.name ?? before.name,
          models: changes.models ?? before.models,
          limits: changedLimits(before.limits, changes.limits),
          budget: changes.budget === undefined ? before.budget : (changes.budget ?? undefined),
          metadata: changes.metadata ?? before.metadata,
        }),
      };
      if (after.name !== before.name) await nameIsFree(transaction, 'teams', after.name);
      await transaction.updateTable('teams').set(teamRow(after)).where('id', '=', before.id).execute();
      return { before, after };
    });
  }

  /**
   * Deletes a team that no live key and no user belongs to. Refusing is safer than cascading: a
   * key that silently lost its team would lose the team's model scope and limits with it.
   */
  async deleteTeam(ref: string): Promise<Team> {
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const team = await teamByRef(transaction, ref, 'id');
      const keys = await transaction
        .selectFrom('api_keys')
        .select('id')
        .where('team_id', '=', team.id)
        .where((where) => where.or([where('revoked_at', 'is', null), where('revoked_at', '>', now)]))
        .execute();
      const users = await transaction
        .selectFrom('users')
        .select('id')
        .where('team_id', '=', team.id)
        .execute();
      if (keys.length > 0 || users.length > 0) {
        throw new GatewayError(
          'invalid_field',
          `Team "${team.name}" still has ${keys.length} unrevoked key(s) and ${users.length} user(s). ` +
            'Revoke its keys (DELETE /admin/keys/{id}) and move or delete its users first.',
          { param: 'id' },
        );
      }
      await transaction.deleteFrom('teams').where('id', '=', team.id).execute();
      return team;
    });
  }

  // Users.

  async createUser(input: NewUser): Promise<User> {
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const name = checkName(input.name, 'name');
      await nameIsFree(transaction, 'users', name);
      const user: User = {
        id: this.#id('user'),
        name,
        role: checkRole(input.role),
        teamId: input.team === undefined ? undefined : (await teamByRef(transaction, input.team)).id,
        createdAt: now,
      };
      await transaction.insertInto('users').values(userRow(user)).execute();
      return user;
    });
  }

  async listUsers(): Promise<User[]> {
    return (await this.#db.selectFrom('users').selectAll().orderBy('created_at').orderBy('id').execute()).map(
      toUser,
    );
  }

  /** A user by id or name. */
  async getUser(ref: string): Promise<User> {
    return userByRef(this.#db, ref, 'id');
  }

  /** A user by login name, or undefined: what admin authorisation asks of a token's subject. */
  async findUser(name: string): Promise<User | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? undefined : toUser(row);
  }

  async updateUser(ref: string, changes: UserChanges): Promise<Change<User>> {
    return this.#db.transaction().execute(async (transaction) => {
      const before = await userByRef(transaction, ref, 'id');
      const name = changes.name === undefined ? before.name : checkName(changes.name, 'name');
      if (name !== before.name) await nameIsFree(transaction, 'users', name);
      let teamId = before.teamId;
      if (changes.team === null) teamId = undefined;
      else if (changes.team !== undefined) teamId = (await teamByRef(transaction, changes.team)).id;
      const after: User = { ...before, name, role: checkRole(changes.role ?? before.role), teamId };
      await transaction.updateTable('users').set(userRow(after)).where('id', '=', before.id).execute();
      return { before, after };
    });
  }

  /** Deletes a user who owns no unrevoked key. */
  async deleteUser(ref: string): Promise<User> {
    const now = this.#now();
    return this.#db.transaction().execute(async (transaction) => {
      const user = await userByRef(transaction, ref, 'id');
      const keys = await transaction
        .selectFrom('api_keys')
        .select('id')
        .where('user_id', '=', user.id)
        .where((where) => where.or([where('revoked_at', 'is', null), where('revoked_at', '>', now)]))
        .execute();
      if (keys.length > 0) {
        throw new GatewayError(
          'invalid_field',
          `User "${user.name}" still owns ${keys.length} unrevoked key(s). Revoke them (DELETE /admin/keys/{id}) first.`,
          { param: 'id' },
        );
      }
      await transaction.deleteFrom('users').where('id', '=', user.id).execute();
      return user;
    });
  }

  // The data plane's table.

  /**
   * Compiles the table the data plane authenticates against, as of `now`: every key not revoked
   * more than a week ago, and every team.
   */
  async table(now: number = this.#now()): Promise<KeyTable> {
    const [keys, teams] = await Promise.all([
      this.#db
        .selectFrom('api_keys')
        .selectAll()
        .where((where) =>
          where.or([where('revoked_at', 'is', null), where('revoked_at', '>', now - revokedKeysKept)]),
        )
        .execute(),
      this.#db.selectFrom('teams').selectAll().execute(),
    ]);
    return new KeyTable(keys.map(toKey), teams.map(toTeam));
  }

  #id(kind: 'key' | 'team' | 'user'): string {
    return `${kind}_${this.#random(9).toString('base64url')}`;
  }
}

type Reader = Kysely<Database> | Transaction<Database>;

async function keyById(db: Reader, id: string): Promise<StoredApiKey> {
  const row = await db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) {
    throw new GatewayError('not_found', `There is no key "${id}". GET /admin/keys lists them.`, {
      param: 'id',
    });
  }
  return toKey(row);
}

/**
 * A team by id, else by name. An unknown one is a 404 when the path named it (`param` 'id'), and
 * a 400 on the body or query field otherwise.
 */
async function teamByRef(db: Reader, ref: string, param = 'team'): Promise<Team> {
  const row =
    (await db.selectFrom('teams').selectAll().where('id', '=', ref).executeTakeFirst()) ??
    (await db.selectFrom('teams').selectAll().where('name', '=', ref).executeTakeFirst());
  if (row === undefined) {
    throw new GatewayError(
      param === 'id' ? 'not_found' : 'invalid_field',
      `There is no team "${ref}" (by id or name). GET /admin/teams lists them; POST /admin/teams creates one.`,
      { param },
    );
  }
  return toTeam(row);
}

async function userByRef(db: Reader, ref: string, param = 'user'): Promise<User> {
  const row =
    (await db.selectFrom('users').selectAll().where('id', '=', ref).executeTakeFirst()) ??
    (await db.selectFrom('users').selectAll().where('name', '=', ref).executeTakeFirst());
  if (row === undefined) {
    throw new GatewayError(
      param === 'id' ? 'not_found' : 'invalid_field',
      `There is no user "${ref}" (by id or name). GET /admin/users lists them; POST /admin/users creates one.`,
      { param },
    );
  }
  return toUser(row);
}

async function nameIsFree(db: Reader, table: 'teams' | 'users', name: string): Promise<void> {
  const taken = await db.selectFrom(table).select('id').where('name', '=', name).executeTakeFirst();
  if (taken !== undefined) {
    throw new GatewayError(
      'invalid_field',
      `A ${table === 'teams' ? 'team' : 'user'} named "${name}" already exists (${taken.id}); names are unique.`,
      { param: 'name' },
    );
  }
}

// Validation: every value is checked here, whichever way it came in, so the store never holds
// one the data plane could misread.

const maxListLength = 1000;
const maxTextLength = 256;

type KeySettings = Pick<
  StoredApiKey,
  'name' | 'models' | 'limits' | 'budget' | 'priority' | 'metadata' | 'tags' | 'expiresAt'
>;

/** `now`: refuse an expiry not after it; undefined: do not check the expiry's time. */
function checkKeySettings(input: Omit<NewApiKey, 'team' | 'user'>, now: number | undefined): KeySettings {
  const expiresAt = input.expiresAt;
  if (expiresAt !== undefined) {
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) {
      throw new GatewayError('invalid_field', 'expires_at must be a time (ISO 8601).', {
        param: 'expires_at',
      });
    }
    if (now !== undefined && expiresAt <= now) {
      throw new GatewayError(
        'invalid_field',
        `expires_at must be in the future, got ${new Date(expiresAt).toISOString()}.`,
        { param: 'expires_at' },
      );
    }
  }
  const priority = input.priority ?? 'normal';
  if (!priorities.includes(priority)) {
    throw new GatewayError(
      'invalid_field',
      `priority must be one of ${priorities.join(', ')}, got "${priority}".`,
      {
        param: 'priority',
      },
    );
  }
  return {
    name: input.name === undefined || input.name === '' ? '' : checkName(input.name, 'name'),
    models: checkModels(input.models ?? []),
    limits: checkLimits(input.limits ?? {}),
    budget: checkBudget(input.budget),
    priority,
    metadata: checkMetadata(input.metadata ?? {}),
    tags: checkStrings(input.tags ?? [], 'tags'),
    expiresAt,
  };
}

function checkTeamSettings(input: NewTeam): Omit<Team, 'id' | 'createdAt'> {
  return {
    name: checkName(input.name, 'name'),
    models: checkModels(input.models ?? []),
    limits: checkLimits(input.limits ?? {}),
    budget: checkBudget(input.budget),
    metadata: checkMetadata(input.metadata ?? {}),
  };
}

function checkName(name: string, param: string): string {
  const trimmed = name.trim();
  if (trimmed === '' || trimmed.length > maxTextLength || /\p{Cc}/u.test(trimmed)) {
    throw new GatewayError(
      'invalid_field',
      `${param} must be 1 to ${maxTextLength} printable characters, got "${name}".`,
      { param },
    );
  }
  return trimmed;
}

function checkRole(role: Role): Role {
  if (!roles.includes(role)) {
    throw new GatewayError('invalid_field', `role must be one of ${roles.join(', ')}, got "${role}".`, {
      param: 'role',
    });
  }
  return role;
}

/** Model patterns: names with `*` wildcards, no spaces. */
function checkModels(models: readonly string[]): readonly string[] {
  for (const model of checkStrings(models, 'models')) {
    if (/\s/.test(model)) {
      throw new GatewayError(
        'invalid_field',
        `models holds "${model}": a model name or pattern ("gpt-4o", "openai/*", "*") has no spaces.`,
        { param: 'models' },
      );
    }
  }
  return [...new Set(models)];
}

function checkStrings(values: readonly string[], param: string): readonly string[] {
  if (values.length > maxListLength) {
    throw new GatewayError('invalid_field', `${param} may hold at most ${maxListLength} entries.`, { param });
  }
  for (const value of values) {
    if (typeof value !== 'string' || value === '' || value.length > maxTextLength) {
      throw new GatewayError(
        'invalid_field',
        `${param} must be a list of non-empty strings of at most ${maxTextLength} characters.`,
        { param },
      );
    }
  }
  return [...values];
}

function checkLimits(limits: RateLimit): RateLimit {
  const checked: { rpm?: number; tpm?: number } = {};
  for (const name of ['rpm', 'tpm'] as const) {
    const value = limits[name];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new GatewayError('invalid_field', `${name} must be a whole number of 1 or more, got ${value}.`, {
        param: name,
      });
    }
    checked[name] = value;
  }
  return checked;
}

function changedLimits(before: RateLimit, changes: LimitChanges | undefined): RateLimit {
  if (changes === undefined) return before;
  const pick = (name: 'rpm' | 'tpm') =>
    changes[name] === undefined ? before[name] : (changes[name] ?? undefined);
  const limits: { rpm?: number; tpm?: number } = {};
  const rpm = pick('rpm');
  const tpm = pick('tpm');
  if (rpm !== undefined) limits.rpm = rpm;
  if (tpm !== undefined) limits.tpm = tpm;
  return limits;
}

function checkBudget(budget: Budget | undefined): Budget | undefined {
  if (budget === undefined) return undefined;
  if (!Number.isFinite(budget.amount) || budget.amount <= 0) {
    throw new GatewayError(
      'invalid_field',
      `budget.amount must be a number of US dollars above 0, got ${budget.amount}.`,
      { param: 'budget.amount' },
    );
  }
  if (!budgetPeriods.includes(budget.period)) {
    throw new GatewayError(
      'invalid_field',
      `budget.period must be one of ${budgetPeriods.join(', ')}, got "${budget.period}".`,
      { param: 'budget.period' },
    );
  }
  if (
    budget.soft !== undefined &&
    !(Number.isFinite(budget.soft) && budget.soft > 0 && budget.soft < budget.amount)
  ) {
    throw new GatewayError(
      'invalid_field',
      `budget.soft must be above 0 and below budget.amount (${budget.amount}), got ${budget.soft}.`,
      { param: 'budget.soft' },
    );
  }
  return budget.soft === undefined
    ? { amount: budget.amount, period: budget.period }
    : { amount: budget.amount, period: budget.period, soft: budget.soft };
}

function checkMetadata(metadata: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const entries = Object.entries(metadata);
  if (entries.length > maxListLength) {
    throw new GatewayError('invalid_field', `metadata may hold at most ${maxListLength} entries.`, {
      param: 'metadata',
    });
  }
  for (const [name, value] of entries) {
    if (name === '' || typeof value !== 'string' || value.length > maxTextLength * 16) {
      throw new GatewayError(
        'invalid_field',
        `metadata must map names to strings; "${name}" does not hold one.`,
        { param: 'metadata' },
      );
    }
  }
  return Object.fromEntries(entries);
}

// Rows.

function json(value: unknown): string {
  return JSON.stringify(value);
}

function keyRow(key: StoredApiKey): ApiKeysTable {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    hash: key.hash,
    team_id: key.teamId ?? null,
    user_id: key.userId ?? null,
    models: json(key.models),
    limits: json(key.limits),
    budget: key.budget === undefined ? null : json(key.budget),
    priority: key.priority,
    metadata: json(key.metadata),
    tags: json(key.tags),
    created_at: key.createdAt,
    expires_at: key.expiresAt ?? null,
    revoked_at: key.revokedAt ?? null,
    rotated_from: key.rotatedFrom ?? null,
    lineage_id: key.lineage,
  };
}

function toKey(row: Selectable<ApiKeysTable>): StoredApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    hash: row.hash,
    teamId: row.team_id ?? undefined,
    userId: row.user_id ?? undefined,
    models: JSON.parse(row.models) as string[],
    limits: JSON.parse(row.limits) as RateLimit,
    budget: row.budget === null ? undefined : (JSON.parse(row.budget) as Budget),
    priority: row.priority as Priority,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    tags: JSON.parse(row.tags) as string[],
    // SQLite hands back bigint columns as numbers; Number() also covers a driver that gives strings.
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
    rotatedFrom: row.rotated_from ?? undefined,
    lineage: row.lineage_id,
  };
}

function teamRow(team: Team): TeamsTable {
  return {
    id: team.id,
    name: team.name,
    models: json(team.models),
    limits: json(team.limits),
    budget: team.budget === undefined ? null : json(team.budget),
    metadata: json(team.metadata),
    created_at: team.createdAt,
  };
}

function toTeam(row: Selectable<TeamsTable>): Team {
  return {
    id: row.id,
    name: row.name,
    models: JSON.parse(row.models) as string[],
    limits: JSON.parse(row.limits) as RateLimit,
    budget: row.budget === null ? undefined : (JSON.parse(row.budget) as Budget),
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    createdAt: Number(row.created_at),
  };
}

function userRow(user: User): UsersTable {
  return {
    id: user.id,
    name: user.name,
    role: user.role,
    team_id: user.teamId ?? null,
    created_at: user.createdAt,
  };
}

function toUser(row: Selectable<UsersTable>): User {
  return {
    id: row.id,
    name: row.name,
    role: row.role as Role,
    teamId: row.team_id ?? undefined,
    createdAt: Number(row.created_at),
  };
}
