import { type ParseArgsConfig, parseArgs } from 'node:util';
import { defaultHost, defaultPort } from '../config/defaults.js';
import { table } from './table.js';

const keysUsage = `Usage:
  switchyard keys create [--team TEAM] [--user USER] [--models gpt-4o,local/*] [--rpm N] [--tpm N]
                         [--budget 50/month] [--soft-budget 40] [--priority high|normal|low]
                         [--expires 30d|2030-01-31] [--name NAME] [--tag T]... [--meta K=V]... [--json]
      Creates a virtual key and prints it once: it is not stored and cannot be shown again.
  switchyard keys ls [--team TEAM] [--json]
  switchyard keys show ID
  switchyard keys update ID [the flags of create but --team and --user] (--rpm none, --budget none,
                         --expires never clear them)
  switchyard keys revoke ID
  switchyard keys rotate ID [--grace 1h] [--json]
      A new key with the same settings; the old one keeps working for the grace period (default none).
  switchyard teams create NAME [--models …] [--rpm N] [--tpm N] [--budget 500/month] [--soft-budget N] [--json]
  switchyard teams ls [--json] | teams rm NAME|ID
  switchyard users create NAME --role admin|operator|developer|viewer [--team TEAM] [--json]
  switchyard users ls [--json] | users rm NAME|ID
They talk to a running gateway's admin API: --url URL (default $SWITCHYARD_URL, else
http://${defaultHost}:${defaultPort}) and the admin key from $SWITCHYARD_ADMIN_KEY (or --admin-key KEY,
which other users of this machine can see in its process list).
`;

const connectionOptions = {
  url: { type: 'string' },
  'admin-key': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const satisfies ParseArgsConfig['options'];

const limitOptions = {
  models: { type: 'string' },
  rpm: { type: 'string' },
  tpm: { type: 'string' },
  budget: { type: 'string' },
  'soft-budget': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const keyOptions = {
  ...connectionOptions,
  ...limitOptions,
  priority: { type: 'string' },
  expires: { type: 'string' },
  name: { type: 'string' },
  tag: { type: 'string', multiple: true },
  meta: { type: 'string', multiple: true },
} as const satisfies ParseArgsConfig['options'];

/** A bad command line: exit 2 with the usage. */
class UsageError extends Error {}

/** The gateway refused or could not be reached: exit 1 with its message. */
class AdminFailure extends Error {}

interface Connection {
  readonly url: string;
  readonly key: string;
}

/** `switchyard keys …`. */
export function keysCommand(args: string[]): Promise<number> {
  return run(args, 'keys', {
    create: createKey,
    ls: listKeys,
    list: listKeys,
    show: showKey,
    update: updateKey,
    revoke: revokeKey,
    rotate: rotateKey,
  });
}

/** `switchyard teams …`. */
export function teamsCommand(args: string[]): Promise<number> {
  return run(args, 'teams', { create: createTeam, ls: listTeams, list: listTeams, rm: removeTeam });
}

/** `switchyard users …`. */
export function usersCommand(args: string[]): Promise<number> {
  return run(args, 'users', { create: createUser, ls: listUsers, list: listUsers, rm: removeUser });
}

type Subcommand = (args: string[]) => Promise<number>;

async function run(args: string[], noun: string, subcommands: Record<string, Subcommand>): Promise<number> {
  const [sub, ...rest] = args;
  const subcommand = sub === undefined ? undefined : subcommands[sub];
  if (subcommand === undefined) {
    process.stderr.write(
      sub === undefined ? keysUsage : `switchyard: unknown ${noun} command "${sub}"\n\n${keysUsage}`,
    );
    return 2;
  }
  try {
    return await subcommand(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`switchyard: ${error.message}\n\n${keysUsage}`);
      return 2;
    }
    if (error instanceof AdminFailure) {
      process.stderr.write(`switchyard: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

// Keys.

async function createKey(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...keyOptions,
    team: { type: 'string' },
    user: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError('keys create takes flags only');
  const body = {
    ...keyBody(values, 'create'),
    ...(values.team === undefined ? {} : { team: values.team }),
    ...(values.user === undefined ? {} : { user: values.user }),
  };
  const created = (await call(connection(values), 'POST', '/admin/keys', body)) as KeyRecord & {
    key: string;
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(
    `created key ${created.id}${created.name ? ` "${created.name}"` : ''}${values.team ? ` for team ${values.team}` : ''}\n\n` +
      `  ${created.key}\n\n` +
      'Copy it now: it will not be shown again (the gateway keeps only its hash).\n',
  );
  return 0;
}

async function listKeys(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...connectionOptions, team: { type: 'string' } });
  if (positionals.length > 0) throw new UsageError('keys ls takes no arguments');
  const target = connection(values);
  const query = values.team === undefined ? '' : `?team=${encodeURIComponent(values.team)}`;
  const { data } = (await call(target, 'GET', `/admin/keys${query}`)) as { data: KeyRecord[] };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return 0;
  }
  if (data.length === 0) {
    process.stdout.write('No keys yet. Create one with `switchyard keys create`.\n');
    return 0;
  }
  const teams = new Map(
    ((await call(target, 'GET', '/admin/teams')) as { data: TeamRecord[] }).data.map((team) => [
      team.id,
      team.name,
    ]),
  );
  const rows = data.map((key) => [
    key.id,
    key.name || '-',
    `${key.prefix}…`,
    key.team_id === null ? '-' : (teams.get(key.team_id) ?? key.team_id),
    models(key.models),
    limits(key),
    budget(key.budget),
    key.expires_at === null ? 'never' : key.expires_at.slice(0, 16).replace('T', ' '),
    key.status,
  ]);
  process.stdout.write(
    table(['ID', 'NAME', 'PREFIX', 'TEAM', 'MODELS', 'LIMITS', 'BUDGET', 'EXPIRES', 'STATUS'], rows),
  );
  return 0;
}

async function showKey(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  const id = oneId(positionals, 'keys show');
  const key = await call(connection(values), 'GET', `/admin/keys/${encodeURIComponent(id)}`);
  process.stdout.write(`${JSON.stringify(key, null, 2)}\n`);
  return 0;
}

async function updateKey(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, keyOptions);
  const id = oneId(positionals, 'keys update');
  const body = keyBody(values, 'update');
  if (Object.keys(body).length === 0) throw new UsageError('keys update needs at least one change');
  const key = (await call(
    connection(values),
    'PATCH',
    `/admin/keys/${encodeURIComponent(id)}`,
    body,
  )) as KeyRecord;
  process.stdout.write(values.json ? `${JSON.stringify(key, null, 2)}\n` : `updated key ${key.id}\n`);
  return 0;
}

async function revokeKey(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  const id = oneId(positionals, 'keys revoke');
  const key = (await call(
    connection(values),
    'DELETE',
    `/admin/keys/${encodeURIComponent(id)}`,
  )) as KeyRecord;
  process.stdout.write(
    values.json ? `${JSON.stringify(key, null, 2)}\n` : `revoked key ${key.id} (${key.prefix}…)\n`,
  );
  return 0;
}

async function rotateKey(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...connectionOptions, grace: { type: 'string' } });
  const id = oneId(positionals, 'keys rotate');
  const body = values.grace === undefined ? {} : { grace: values.grace };
  const rotated = (await call(
    connection(values),
    'POST',
    `/admin/keys/${encodeURIComponent(id)}/rotate`,
    body,
  )) as KeyRecord & { key: string; previous: KeyRecord };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rotated, null, 2)}\n`);
    return 0;
  }
  const until = rotated.previous.revoked_at;
  process.stdout.write(
    `rotated key ${id} to ${rotated.id}\n\n  ${rotated.key}\n\n` +
      'Copy it now: it will not be shown again (the gateway keeps only its hash).\n' +
      `The old key ${until !== null && Date.parse(until) > Date.now() ? `works until ${until}` : 'no longer works'}.\n`,
  );
  return 0;
}

/** The JSON body of keys create or update from its flags. */
function keyBody(values: Record<string, unknown>, mode: 'create' | 'update'): Record<string, unknown> {
  const body: Record<string, unknown> = { ...limitsBody(values, mode) };
  if (typeof values.name === 'string') body.name = values.name;
  if (typeof values.priority === 'string') body.priority = values.priority;
  if (Array.isArray(values.tag)) body.tags = values.tag;
  if (Array.isArray(values.meta)) body.metadata = metadata(values.meta as string[]);
  const expires = values.expires;
  if (typeof expires === 'string') {
    if (mode === 'update' && expires === 'never') body.expires_at = null;
    else if (/^\d{4}-\d{2}-\d{2}/.test(expires)) body.expires_at = expires;
    else body.expires_in = expires;
  }
  return body;
}

// Teams.

async function createTeam(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...connectionOptions, ...limitOptions });
  const name = oneId(positionals, 'teams create', 'NAME');
  const team = (await call(connection(values), 'POST', '/admin/teams', {
    name,
    ...limitsBody(values, 'create'),
  })) as TeamRecord;
  process.stdout.write(
    values.json ? `${JSON.stringify(team, null, 2)}\n` : `created team ${team.name} (${team.id})\n`,
  );
  return 0;
}

async function listTeams(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  if (positionals.length > 0) throw new UsageError('teams ls takes no arguments');
  const { data } = (await call(connection(values), 'GET', '/admin/teams')) as { data: TeamRecord[] };
  if (values.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (data.length === 0)
    process.stdout.write('No teams yet. Create one with `switchyard teams create NAME`.\n');
  else {
    const rows = data.map((team) => [
      team.id,
      team.name,
      models(team.models),
      limits(team),
      budget(team.budget),
    ]);
    process.stdout.write(table(['ID', 'NAME', 'MODELS', 'LIMITS', 'BUDGET'], rows));
  }
  return 0;
}

async function removeTeam(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  const ref = oneId(positionals, 'teams rm', 'NAME|ID');
  const team = (await call(
    connection(values),
    'DELETE',
    `/admin/teams/${encodeURIComponent(ref)}`,
  )) as TeamRecord;
  process.stdout.write(`removed team ${team.name} (${team.id})\n`);
  return 0;
}

// Users.

async function createUser(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...connectionOptions,
    role: { type: 'string' },
    team: { type: 'string' },
  });
  const name = oneId(positionals, 'users create', 'NAME');
  if (values.role === undefined)
    throw new UsageError('users create needs --role admin|operator|developer|viewer');
  const user = (await call(connection(values), 'POST', '/admin/users', {
    name,
    role: values.role,
    ...(values.team === undefined ? {} : { team: values.team }),
  })) as UserRecord;
  process.stdout.write(
    values.json
      ? `${JSON.stringify(user, null, 2)}\n`
      : `created user ${user.name} (${user.id}), ${user.role}\n`,
  );
  return 0;
}

async function listUsers(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  if (positionals.length > 0) throw new UsageError('users ls takes no arguments');
  const target = connection(values);
  const { data } = (await call(target, 'GET', '/admin/users')) as { data: UserRecord[] };
  if (values.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (data.length === 0)
    process.stdout.write('No users yet. Create one with `switchyard users create NAME --role ROLE`.\n');
  else {
    const teams = new Map(
      ((await call(target, 'GET', '/admin/teams')) as { data: TeamRecord[] }).data.map((team) => [
        team.id,
        team.name,
      ]),
    );
    const rows = data.map((user) => [
      user.id,
      user.name,
      user.role,
      user.team_id === null ? '-' : (teams.get(user.team_id) ?? user.team_id),
    ]);
    process.stdout.write(table(['ID', 'NAME', 'ROLE', 'TEAM'], rows));
  }
  return 0;
}

async function removeUser(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, connectionOptions);
  const ref = oneId(positionals, 'users rm', 'NAME|ID');
  const user = (await call(
    connection(values),
    'DELETE',
    `/admin/users/${encodeURIComponent(ref)}`,
  )) as UserRecord;
  process.stdout.write(`removed user ${user.name} (${user.id})\n`);
  return 0;
}

// The admin API's records, as far as the commands print them.

interface Limits {
  readonly rpm: number | null;
  readonly tpm: number | null;
}

interface BudgetRecord {
  readonly amount: number;
  readonly period: string;
  readonly soft?: number;
}

interface KeyRecord extends Limits {
  readonly id: string;
  readonly name: string;
  readonly prefix: string;
  readonly status: string;
  readonly team_id: string | null;
  readonly models: string[];
  readonly budget: BudgetRecord | null;
  readonly expires_at: string | null;
  readonly revoked_at: string | null;
}

interface TeamRecord extends Limits {
  readonly id: string;
  readonly name: string;
  readonly models: string[];
  readonly budget: BudgetRecord | null;
}

interface UserRecord {
  readonly id: string;
  readonly name: string;
  readonly role: string;
  readonly team_id: string | null;
}

// Flags.

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function oneId(positionals: string[], command: string, what = 'ID'): string {
  if (positionals.length !== 1) throw new UsageError(`${command} takes one ${what}`);
  return positionals[0]!;
}

/** --models, --rpm, --tpm, --budget, --soft-budget as body fields; on update "none" clears. */
function limitsBody(values: Record<string, unknown>, mode: 'create' | 'update'): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const cleared = (value: unknown) => mode === 'update' && value === 'none';
  if (typeof values.models === 'string') {
    body.models = values.models
      .split(',')
      .map((model) => model.trim())
      .filter((model) => model !== '');
  }
  for (const name of ['rpm', 'tpm'] as const) {
    const value = values[name];
    if (typeof value !== 'string') continue;
    body[name] = cleared(value) ? null : wholeNumber(value, `--${name}`);
  }
  const soft = values['soft-budget'];
  if (typeof values.budget === 'string') {
    if (cleared(values.budget)) body.budget = null;
    else {
      const match = /^\$?(\d+(?:\.\d+)?)\s*\/\s*(day|week|month)$/.exec(values.budget.trim());
      if (match === null)
        throw new UsageError(`--budget must be AMOUNT/PERIOD such as 50/month, not "${values.budget}"`);
      body.budget = {
        amount: Number(match[1]),
        period: match[2],
        ...(typeof soft === 'string' ? { soft: amount(soft, '--soft-budget') } : {}),
      };
    }
  } else if (typeof soft === 'string') {
    throw new UsageError('--soft-budget goes with --budget AMOUNT/PERIOD');
  }
  return body;
}

function wholeNumber(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
  return Number(value);
}

function amount(value: string, flag: string): number {
  if (!/^\$?\d+(\.\d+)?$/.test(value))
    throw new UsageError(`${flag} must be an amount in dollars, not "${value}"`);
  return Number(value.replace('$', ''));
}

function metadata(pairs: readonly string[]): Record<string, string> {
  const entries = pairs.map((pair) => {
    const equals = pair.indexOf('=');
    if (equals < 1) throw new UsageError(`--meta must be NAME=VALUE, not "${pair}"`);
    return [pair.slice(0, equals), pair.slice(equals + 1)] as const;
  });
  return Object.fromEntries(entries);
}

// Printing.

function models(list: readonly string[]): string {
  return list.length === 0 ? 'all' : list.join(',');
}

function limits(record: Limits): string {
  const parts = [
    ...(record.rpm === null ? [] : [`${record.rpm} rpm`]),
    ...(record.tpm === null ? [] : [`${record.tpm} tpm`]),
  ];
  return parts.length === 0 ? '-' : parts.join(', ');
}

function budget(record: BudgetRecord | null): string {
  if (record === null) return '-';
  return `$${record.amount}/${record.period}${record.soft === undefined ? '' : ` (alert at $${record.soft})`}`;
}

// The admin API.

function connection(values: { url?: string | undefined; 'admin-key'?: string | undefined }): Connection {
  const url = (values.url ?? process.env.SWITCHYARD_URL ?? `http://${defaultHost}:${defaultPort}`).replace(
    /\/+$/,
    '',
  );
  if (!/^https?:\/\/[^/]/.test(url)) {
    throw new UsageError(
      `--url must be the gateway's URL, such as http://127.0.0.1:${defaultPort}, not "${url}"`,
    );
  }
  const key = values['admin-key'] ?? process.env.SWITCHYARD_ADMIN_KEY;
  if (key === undefined || key === '') {
    throw new UsageError('no admin key: set SWITCHYARD_ADMIN_KEY (or pass --admin-key KEY)');
  }
  return { url, key };
}

/** One admin API call; its JSON answer, or an AdminFailure carrying the gateway's own message. */
async function call(target: Connection, method: string, path: string, body?: unknown): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${target.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${target.key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause?.code ?? (error as Error).message;
    throw new AdminFailure(
      `no gateway answers at ${target.url} (${String(cause)}): start \`switchyard serve\`, or pass --url URL`,
    );
  }
  const text = await response.text();
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (!response.ok) {
    const error = (answer as { error?: { message?: unknown; code?: unknown } } | undefined)?.error;
    const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200);
    if (response.status === 404 && (error === undefined || error.code === 'route_not_found')) {
      throw new AdminFailure(
        `${target.url} has no ${path.split('?')[0]}: is it a Switchyard gateway with keys enabled?`,
      );
    }
    throw new AdminFailure(`${method} ${path.split('?')[0]} answered ${response.status}: ${message}`);
  }
  if (answer === undefined)
    throw new AdminFailure(`${method} ${path} answered with something other than JSON`);
  return answer;
}
