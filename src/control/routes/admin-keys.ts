import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type KeyStore, keyStatus, type StoredApiKey } from '../../auth/key-store.js';
import type { Budget, BudgetPeriod, Priority, Role, Team, User } from '../../auth/types.js';
import { parseDuration } from '../../config/units.js';
import { GatewayError, isGatewayError } from '../../errors/index.js';
import type { AdminContext } from '../admin-api.js';
import { AdminBody } from '../admin-fields.js';

/** What the key routes need beyond the admin context. */
export interface AdminKeysOptions {
  readonly store: KeyStore;
  /** Called after every successful change, so the gateway recompiles its key table. */
  readonly changed: () => void | Promise<void>;
  /** Milliseconds since the epoch, for key status; injected in tests. */
  readonly now?: () => number;
}

const keyFields = [
  'name',
  'models',
  'rpm',
  'tpm',
  'budget',
  'priority',
  'metadata',
  'tags',
  'expires_at',
  'expires_in',
];
const teamFields = ['name', 'models', 'rpm', 'tpm', 'budget', 'metadata'];
const userFields = ['name', 'role', 'team'];

/**
 * Virtual keys, teams and users, as `switchyard keys | teams | users`:
 *
 * - POST /admin/keys `{ name?, team?, user?, models?, rpm?, tpm?, budget?: { amount, period, soft? },
 *   priority?, metadata?, tags?, expires_at? | expires_in? }`: 201 with the key's record and, this
 *   once, the key itself in `key`; only its sha256 and prefix are stored;
 * - GET /admin/keys[?team=id|name], GET /admin/keys/{id}: records, never a key or its hash;
 * - PATCH /admin/keys/{id}: name, models, rpm, tpm, budget, priority, metadata, tags, expires_at or
 *   expires_in; null clears rpm, tpm, budget and expires_at;
 * - DELETE /admin/keys/{id}: revokes it at once, 200 with its record;
 * - POST /admin/keys/{id}/rotate `{ grace?: "1h" | seconds }`: 201 with a new key of the same
 *   settings (shown once); the old one stays valid for the grace period (default 0: none);
 * - POST, GET, PATCH, DELETE /admin/teams[/{id|name}] (names unique) and /admin/users[/{id|name}]
 *   (`role` one of admin, operator, developer, viewer). A team or user that still has unrevoked
 *   keys is not deleted.
 *
 * A caller whose role holds key permissions only within its own team (a developer, see
 * control/rbac.ts) lists, shows, creates, rotates and revokes its own team's keys only: another
 * team's key answers 404 as an unknown one would, and creating one in another team 403.
 *
 * Times are ISO 8601 in answers; `expires_in` and `grace` take a duration ("30d", "1h") or a
 * number of seconds. Every change is audited (key.create, key.update, key.revoke, key.rotate,
 * team.*, user.*) with the records before and after, the key's prefix but never the key or its
 * hash; then `changed` is called.
 */
export function registerAdminKeyRoutes(
  app: FastifyInstance,
  context: AdminContext,
  options: AdminKeysOptions,
): void {
  const { store } = options;
  const now = options.now ?? Date.now;
  const audited = async <T>(
    request: FastifyRequest,
    action: string,
    target: string | null,
    work: () => Promise<{ result: T; target?: string; before?: unknown; after?: unknown }>,
  ): Promise<T> => {
    let done: Awaited<ReturnType<typeof work>>;
    try {
      done = await work();
    } catch (error) {
      await context.audit(request, {
        action,
        target,
        after: { error: isGatewayError(error) ? error.code : 'internal_error' },
        outcome: 'failed',
      });
      throw error;
    }
    await context.audit(request, {
      action,
      target: done.target ?? target,
      before: done.before,
      after: done.after,
      outcome: 'ok',
    });
    try {
      // Awaited: the change is in force on this gateway before the caller hears of it.
      await options.changed();
    } catch (error) {
      // The change is committed and audited; the gateway keeps its last good table.
      context.logger.error({ err: error, id: request.id, action }, 'key table not recompiled');
    }
    return done.result;
  };

  /**
   * The team id a caller is confined to, for a role that holds a key permission only within its
   * own team (a developer: control/rbac.ts); undefined for one that reaches every team.
   */
  const confinedTeam = async (request: FastifyRequest): Promise<string | undefined> => {
    const principal = request.adminPrincipal;
    if (principal === undefined || principal.scope !== 'team') return undefined;
    const refused = new GatewayError(
      'forbidden',
      "Your role reaches only your own team's keys, and you belong to no team here. Ask an admin to set your team.",
    );
    if (principal.team === undefined) throw refused;
    try {
      return (await store.getTeam(principal.team)).id;
    } catch (error) {
      throw isGatewayError(error) && error.code === 'not_found' ? refused : error;
    }
  };
  /** A key the caller may reach; another team's reads as unknown, so its existence stays hidden. */
  const reachableKey = async (request: FastifyRequest, id: string): Promise<StoredApiKey> => {
    const team = await confinedTeam(request);
    const key = await store.getKey(id);
    if (team !== undefined && key.teamId !== team) {
      throw new GatewayError('not_found', `There is no key "${id}". GET /admin/keys lists them.`, {
        param: 'id',
      });
    }
    return key;
  };

  // Keys.

  app.post('/keys', async (request, reply) => {
    const fields = new Fields(request.body, [...keyFields, 'team', 'user']);
    const input = {
      ...keySettings(fields, now()),
      team: fields.string('team') ?? undefined,
      user: fields.string('user') ?? undefined,
    };
    const confined = await confinedTeam(request);
    if (confined !== undefined) {
      if (input.team === undefined) input.team = confined;
      else if ((await store.getTeam(input.team).catch(() => undefined))?.id !== confined) {
        throw new GatewayError('forbidden', 'Your role creates keys only in your own team.', {
          param: 'team',
        });
      }
      // Nor for a user of another team: the key would be theirs, outside this caller's reach.
      if (input.user !== undefined) {
        const user = await store.getUser(input.user).catch(() => undefined);
        if (user !== undefined && user.teamId !== confined) {
          throw new GatewayError('forbidden', 'Your role creates keys only for users of your own team.', {
            param: 'user',
          });
        }
      }
    }
    const created = await audited(request, 'key.create', input.team ?? null, async () => {
      const { key, record } = await store.createKey({
        ...input,
        budget: input.budget ?? undefined,
        expiresAt: input.expiresAt ?? undefined,
        limits: { rpm: input.limits?.rpm ?? undefined, tpm: input.limits?.tpm ?? undefined },
      });
      const shown = keyRecord(record, now());
      return { result: { key, ...shown }, target: record.id, after: shown };
    });
    void reply.code(201);
    return created;
  });

  app.get('/keys', async (request) => {
    const team = (request.query as Record<string, unknown>).team;
    if (team !== undefined && (typeof team !== 'string' || team === '')) {
      throw new GatewayError('invalid_field', 'team must be a team id or name.', { param: 'team' });
    }
    const confined = await confinedTeam(request);
    if (confined !== undefined && team !== undefined && (await store.getTeam(team)).id !== confined) {
      throw new GatewayError('forbidden', "Your role lists only your own team's keys.", { param: 'team' });
    }
    const at = now();
    const keys = await store.listKeys({ team: confined ?? team });
    return { object: 'list', data: keys.map((key) => keyRecord(key, at)) };
  });

  app.get('/keys/:id', async (request) => keyRecord(await reachableKey(request, pathId(request)), now()));

  app.patch('/keys/:id', async (request) => {
    const id = pathId(request);
    const settings = keySettings(new Fields(request.body, keyFields), now());
    return audited(request, 'key.update', id, async () => {
      await reachableKey(request, id);
      const { before, after } = await store.updateKey(id, settings);
      const shown = keyRecord(after, now());
      return { result: shown, before: keyRecord(before, now()), after: shown };
    });
  });

  app.delete('/keys/:id', async (request) => {
    const id = pathId(request);
    return audited(request, 'key.revoke', id, async () => {
      await reachableKey(request, id);
      const { before, after } = await store.revokeKey(id);
      const shown = keyRecord(after, now());
      return { result: shown, before: keyRecord(before, now()), after: shown };
    });
  });

  app.post('/keys/:id/rotate', async (request, reply) => {
    const id = pathId(request);
    const fields = new Fields(request.body ?? {}, ['grace']);
    const grace = fields.duration('grace') ?? 0;
    const rotated = await audited(request, 'key.rotate', id, async () => {
      await reachableKey(request, id);
      const { key, record, previous } = await store.rotateKey(id, grace);
      const shown = keyRecord(record, now());
      const old = keyRecord(previous.after, now());
      return {
        result: { key, ...shown, previous: old },
        before: keyRecord(previous.before, now()),
        after: { previous: old, new: shown, grace_seconds: grace / 1000 },
      };
    });
    void reply.code(201);
    return rotated;
  });

  // Teams.

  app.post('/teams', async (request, reply) => {
    const fields = new Fields(request.body, teamFields);
    const settings = teamSettings(fields);
    const name = fields.string('name');
    if (name === undefined || name === null) {
      throw new GatewayError('missing_field', 'name is required: the team name, unique.', { param: 'name' });
    }
    const team = await audited(request, 'team.create', name, async () => {
      const created = teamRecord(
        await store.createTeam({
          ...settings,
          name,
          budget: settings.budget ?? undefined,
          limits: { rpm: settings.limits?.rpm ?? undefined, tpm: settings.limits?.tpm ?? undefined },
        }),
      );
      return { result: created, target: created.id, after: created };
    });
    void reply.code(201);
    return team;
  });

  app.get('/teams', async () => ({ object: 'list', data: (await store.listTeams()).map(teamRecord) }));

  app.get('/teams/:id', async (request) => teamRecord(await store.getTeam(pathId(request))));

  app.patch('/teams/:id', async (request) => {
    const id = pathId(request);
    const fields = new Fields(request.body, teamFields);
    const changes = { ...teamSettings(fields), name: fields.string('name') ?? undefined };
    return audited(request, 'team.update', id, async () => {
      const { before, after } = await store.updateTeam(id, changes);
      const shown = teamRecord(after);
      return { result: shown, target: after.id, before: teamRecord(before), after: shown };
    });
  });

  app.delete('/teams/:id', async (request) => {
    const id = pathId(request);
    return audited(request, 'team.delete', id, async () => {
      const shown = teamRecord(await store.deleteTeam(id));
      return { result: { ...shown, deleted: true }, target: shown.id, before: shown };
    });
  });

  // Users.

  app.post('/users', async (request, reply) => {
    const fields = new Fields(request.body, userFields);
    const name = fields.string('name');
    if (name === undefined || name === null) {
      throw new GatewayError('missing_field', 'name is required: the login name or e-mail.', {
        param: 'name',
      });
    }
    const role = fields.string('role');
    if (role === undefined || role === null) {
      throw new GatewayError('missing_field', 'role is required: admin, operator, developer or viewer.', {
        param: 'role',
      });
    }
    const team = fields.string('team') ?? undefined;
    const user = await audited(request, 'user.create', name, async () => {
      const shown = userRecord(await store.createUser({ name, role: role as Role, team }));
      return { result: shown, target: shown.id, after: shown };
    });
    void reply.code(201);
    return user;
  });

  app.get('/users', async () => ({ object: 'list', data: (await store.listUsers()).map(userRecord) }));

  app.get('/users/:id', async (request) => userRecord(await store.getUser(pathId(request))));

  app.patch('/users/:id', async (request) => {
    const id = pathId(request);
    const fields = new Fields(request.body, userFields);
    const changes = {
      name: fields.string('name') ?? undefined,
      role: (fields.string('role') ?? undefined) as Role | undefined,
      team: fields.string('team'),
    };
    return audited(request, 'user.update', id, async () => {
      const { before, after } = await store.updateUser(id, changes);
      const shown = userRecord(after);
      return { result: shown, target: after.id, before: userRecord(before), after: shown };
    });
  });

  app.delete('/users/:id', async (request) => {
    const id = pathId(request);
    return audited(request, 'user.delete', id, async () => {
      const shown = userRecord(await store.deleteUser(id));
      return { result: { ...shown, deleted: true }, target: shown.id, before: shown };
    });
  });
}

// Answers: snake_case, times in ISO 8601, a key never with its hash.

/** A key as the admin API shows it. */
export function keyRecord(key: StoredApiKey, now: number) {
  return {
    object: 'api_key' as const,
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    status: keyStatus(key, now),
    team_id: key.teamId ?? null,
    user_id: key.userId ?? null,
    models: key.models,
    rpm: key.limits.rpm ?? null,
    tpm: key.limits.tpm ?? null,
    budget: key.budget ?? null,
    priority: key.priority,
    metadata: key.metadata,
    tags: key.tags,
    created_at: isoTime(key.createdAt),
    expires_at: key.expiresAt === undefined ? null : isoTime(key.expiresAt),
    revoked_at: key.revokedAt === undefined ? null : isoTime(key.revokedAt),
    rotated_from: key.rotatedFrom ?? null,
    // Limits, budget spend and usage (GET /admin/usage?group_by=key) are kept under this id.
    lineage_id: key.lineage,
  };
}

export function teamRecord(team: Team) {
  return {
    object: 'team' as const,
    id: team.id,
    name: team.name,
    models: team.models,
    rpm: team.limits.rpm ?? null,
    tpm: team.limits.tpm ?? null,
    budget: team.budget ?? null,
    metadata: team.metadata,
    created_at: isoTime(team.createdAt),
  };
}

export function userRecord(user: User) {
  return {
    object: 'user' as const,
    id: user.id,
    name: user.name,
    role: user.role,
    team_id: user.teamId ?? null,
    created_at: isoTime(user.createdAt),
  };
}

function isoTime(milliseconds: number): string {
  return new Date(milliseconds).toISOString();
}

// Requests.

function pathId(request: FastifyRequest): string {
  const id = (request.params as { id?: string }).id ?? '';
  if (id === '') throw new GatewayError('invalid_field', 'The path must name an id.', { param: 'id' });
  return id;
}

/** What keys and teams share, from a body: undefined absent, null cleared. */
interface Settings {
  readonly models: readonly string[] | undefined;
  readonly limits: { rpm?: number | null; tpm?: number | null } | undefined;
  readonly budget: Budget | null | undefined;
  readonly metadata: Record<string, string> | undefined;
}

function teamSettings(fields: Fields): Settings {
  const rpm = fields.number('rpm');
  const tpm = fields.number('tpm');
  return {
    models: fields.strings('models') ?? undefined,
    limits: rpm === undefined && tpm === undefined ? undefined : { rpm, tpm },
    budget: fields.budget('budget'),
    metadata: fields.metadata('metadata') ?? undefined,
  };
}

function keySettings(fields: Fields, now: number) {
  const priority = fields.string('priority') ?? undefined;
  const expiresAt = fields.time('expires_at');
  const expiresIn = fields.duration('expires_in');
  if (expiresAt !== undefined && expiresIn !== undefined) {
    throw new GatewayError('invalid_field', 'Send expires_at or expires_in, not both.', {
      param: 'expires_in',
    });
  }
  return {
    ...teamSettings(fields),
    name: fields.string('name') ?? undefined,
    priority: priority as Priority | undefined,
    tags: fields.strings('tags') ?? undefined,
    expiresAt: expiresIn === undefined ? expiresAt : now + expiresIn,
  };
}

/**
 * An admin body's fields by JSON type, each error a 400 naming its field. Unknown fields are
 * refused (AdminBody). A field's value is undefined when absent and null when sent as null,
 * which PATCH reads as "clear it".
 */
class Fields {
  readonly #body: Record<string, unknown>;

  constructor(body: unknown, fields: readonly string[]) {
    new AdminBody(body, fields);
    this.#body = body as Record<string, unknown>;
  }

  string(name: string): string | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    if (typeof value !== 'string') throw invalid(name, 'a string');
    return value;
  }

  number(name: string): number | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    if (typeof value !== 'number') throw invalid(name, 'a number');
    return value;
  }

  strings(name: string): string[] | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
      throw invalid(name, 'a list of strings');
    }
    return value as string[];
  }

  metadata(name: string): Record<string, string> | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    if (!isPlainObject(value) || !Object.values(value).every((item) => typeof item === 'string')) {
      throw invalid(name, 'an object of strings');
    }
    return value as Record<string, string>;
  }

  budget(name: string): Budget | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    if (!isPlainObject(value)) {
      throw invalid(name, 'an object { amount, period, soft? }, such as { "amount": 50, "period": "month" }');
    }
    for (const key of Object.keys(value)) {
      if (!['amount', 'period', 'soft'].includes(key)) {
        throw new GatewayError(
          'invalid_field',
          `${name}.${key} is not a field of a budget: amount, period, soft.`,
          {
            param: `${name}.${key}`,
          },
        );
      }
    }
    const { amount, period, soft } = value;
    if (typeof amount !== 'number') throw invalid(`${name}.amount`, 'a number of US dollars');
    if (typeof period !== 'string') throw invalid(`${name}.period`, 'day, week or month');
    if (soft !== undefined && soft !== null && typeof soft !== 'number') {
      throw invalid(`${name}.soft`, 'a number of US dollars below the amount');
    }
    return { amount, period: period as BudgetPeriod, soft: soft ?? undefined };
  }

  /** An ISO 8601 time, in milliseconds since the epoch. */
  time(name: string): number | null | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return value;
    const parsed =
      typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
    if (!Number.isFinite(parsed)) throw invalid(name, 'an ISO 8601 time such as "2030-01-31T00:00:00Z"');
    return parsed;
  }

  /** "30d", "1h", "90s", or a number of seconds; in milliseconds. */
  duration(name: string): number | undefined {
    const value = this.#body[name];
    if (value === undefined || value === null) return undefined;
    let milliseconds: number | undefined;
    if (typeof value === 'number') milliseconds = value >= 0 ? value * 1000 : undefined;
    else if (typeof value === 'string')
      milliseconds = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : parseDuration(value);
    if (milliseconds === undefined || !Number.isFinite(milliseconds)) {
      throw invalid(name, 'a duration such as "30d", "1h" or "90s", or a number of seconds');
    }
    return Math.round(milliseconds);
  }
}

function invalid(name: string, expected: string): GatewayError {
  return new GatewayError('invalid_field', `${name} must be ${expected}.`, { param: name });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
