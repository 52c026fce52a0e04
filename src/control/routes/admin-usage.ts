import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import {
  type UsageGroup,
  type UsageInterval,
  type UsageLedger,
  usageGroups,
  usageIntervals,
} from '../../telemetry/usage-ledger.js';

const parameters = ['group_by', 'from', 'to', 'interval', 'key', 'team', 'model'] as const;

/**
 * Usage and cost:
 *
 * - GET /admin/usage?group_by=key|team|model|day&from=YYYY-MM-DD&to=YYYY-MM-DD&interval=day|total
 *   [&key=&team=&model=]: requests, tokens and dollars per group over whole UTC days, both ends
 *   included, `{ "object": "list", "group_by", "interval", "from", "to", "data": [...], "total" }`.
 *   Defaults: group_by=model, interval=total, from the 1st of this month to today (the budgets'
 *   month). Each row carries `group` (null for requests made without a key or team) and, by day,
 *   `day`. Every bad or unknown parameter is a 400 that names it.
 *
 * @example GET /admin/usage?group_by=team&from=2025-06-01&to=2025-06-30&interval=day
 */
export function registerAdminUsageRoutes(
  app: FastifyInstance,
  usage: UsageLedger,
  now: () => number = Date.now,
  teamId: (ref: string) => Promise<string | undefined> = async () => undefined,
): void {
  app.get('/usage', async (request) => {
    const query = request.query as Record<string, unknown>;
    // A developer reads their own team's usage only (control/rbac.ts).
    let confined: string | undefined;
    const principal = request.adminPrincipal;
    if (principal?.scope === 'team') {
      confined = principal.team === undefined ? undefined : await teamId(principal.team);
      if (confined === undefined) {
        throw new GatewayError(
          'forbidden',
          "Your role reads only your own team's usage, and you belong to no team here. Ask an admin to set your team.",
        );
      }
      const asked = text(query, 'team');
      if (asked !== undefined && asked !== confined && (await teamId(asked)) !== confined) {
        throw new GatewayError('forbidden', "Your role reads only your own team's usage.", { param: 'team' });
      }
    }
    return answer(query, confined);
  });

  const answer = async (query: Record<string, unknown>, confined: string | undefined) => {
    for (const name of Object.keys(query)) {
      if (!(parameters as readonly string[]).includes(name)) {
        throw new GatewayError(
          'invalid_field',
          `${name} is not a parameter of /admin/usage; it takes ${parameters.join(', ')}.`,
          { param: name },
        );
      }
    }
    const today = new Date(now()).toISOString().slice(0, 10);
    const groupBy = choice<UsageGroup>(query, 'group_by', usageGroups, 'model');
    const interval = choice<UsageInterval>(query, 'interval', usageIntervals, 'total');
    const to = day(query, 'to') ?? today;
    const from = day(query, 'from') ?? `${to.slice(0, 8)}01`;
    if (from > to) {
      throw new GatewayError('invalid_field', `from (${from}) must not be after to (${to}).`, {
        param: 'from',
      });
    }
    const report = await usage.query({
      groupBy,
      interval,
      from,
      to,
      key: text(query, 'key'),
      team: confined ?? text(query, 'team'),
      model: text(query, 'model'),
    });
    return { object: 'list', group_by: groupBy, interval, from, to, data: report.data, total: report.total };
  };
}

function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw new GatewayError('invalid_field', `${name} must be given once.`, { param: name });
  }
  return value;
}

function choice<Value extends string>(
  query: Record<string, unknown>,
  name: string,
  values: readonly Value[],
  fallback: Value,
): Value {
  const value = single(query, name);
  if (value === undefined) return fallback;
  if (!(values as readonly string[]).includes(value)) {
    throw new GatewayError('invalid_field', `${name} must be one of ${values.join(', ')}, got "${value}".`, {
      param: name,
    });
  }
  return value as Value;
}

/** A real calendar day as YYYY-MM-DD: "2025-02-30" is refused, not read as 2 March. */
function day(query: Record<string, unknown>, name: string): string | undefined {
  const value = single(query, name);
  if (value === undefined) return undefined;
  const time = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : Number.NaN;
  if (Number.isNaN(time) || new Date(time).toISOString().slice(0, 10) !== value) {
    throw new GatewayError('invalid_field', `${name} must be a date as YYYY-MM-DD (UTC), got "${value}".`, {
      param: name,
    });
  }
  return value;
}

function text(query: Record<string, unknown>, name: string): string | undefined {
  const value = single(query, name);
  if (value === '') {
    throw new GatewayError('invalid_field', `${name} must not be empty; leave it out for every ${name}.`, {
      param: name,
    });
  }
  return value;
}
