import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors/index.js';
import type { AuditLog } from '../audit-log.js';

const defaultLimit = 100;
const maxLimit = 1000;

/**
 * The audit log:
 *
 * - GET /admin/audit?since=<seq>&limit=<n>: entries after `since` (default 0), oldest first, at
 *   most `limit` (default 100, at most 1000), `{ "object": "list", "data": [...], "has_more" }`;
 *   the next page starts after the last entry's seq;
 * - GET /admin/audit/verify: walks the whole hash chain, `{ "ok": true, "entries": n }` or
 *   `{ "ok": false, "seq": n, "problem": "…" }`, 200 either way: a broken chain is a finding,
 *   not a failed request.
 */
export function registerAdminAuditRoutes(app: FastifyInstance, audit: AuditLog): void {
  app.get('/audit', async (request) => {
    const query = request.query as Record<string, unknown>;
    const since = count(query.since, 'since', 0);
    const limit = count(query.limit, 'limit', defaultLimit);
    if (limit < 1 || limit > maxLimit) {
      throw new GatewayError('invalid_field', `limit must be from 1 to ${maxLimit}, got ${limit}.`, {
        param: 'limit',
      });
    }
    // One more than asked tells whether another page follows.
    const entries = await audit.list({ since, limit: limit + 1 });
    return { object: 'list', data: entries.slice(0, limit), has_more: entries.length > limit };
  });

  app.get('/audit/verify', async () => audit.verify());
}

function count(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) {
    throw new GatewayError('invalid_field', `${name} must be a whole number, got "${String(value)}".`, {
      param: name,
    });
  }
  return Number(value);
}
