import type { Role } from '../auth/types.js';

/**
 * Who may call what on the admin API, as data: every route maps to one permission, every role
 * holds a set of permissions, some only within its own team. The authorisation stage looks a
 * request's route up here after it knows the caller's role; a route missing from the table is
 * refused, whoever asks (fail closed), and a test holds the table to the routes registered.
 */

/** Everything the admin API lets a caller do. */
export const permissions = [
  'models:read',
  'models:write',
  'runner:read',
  'deployments:read',
  'config:reload',
  'audit:read',
  'keys:read',
  'keys:create',
  'keys:update',
  'keys:rotate',
  'keys:revoke',
  'teams:read',
  'teams:write',
  'users:read',
  'users:write',
  'usage:read',
] as const;
export type Permission = (typeof permissions)[number];

/**
 * How far a role's permission reaches: `all` over every team's resources, `team` over its own
 * team's only (the route must filter by, or check, the caller's team).
 */
export type Scope = 'all' | 'team';

export type AdminMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface AdminRoute {
  readonly method: AdminMethod;
  /** The route pattern as Fastify registers it under /admin (`request.routeOptions.url`). */
  readonly path: string;
  readonly permission: Permission;
}

/** Every admin route and the permission it needs. */
export const adminRoutes: readonly AdminRoute[] = Object.freeze(
  (
    [
      // The model store and the runner (src/control/routes/admin-models.ts, -pull, -import, -ps).
      ['GET', '/admin/models', 'models:read'],
      ['GET', '/admin/models/*', 'models:read'],
      ['DELETE', '/admin/models/*', 'models:write'],
      ['POST', '/admin/models/pull', 'models:write'],
      ['POST', '/admin/models/import', 'models:write'],
      ['GET', '/admin/ps', 'runner:read'],
      // Routing (admin-routing.ts).
      ['GET', '/admin/deployments', 'deployments:read'],
      ['POST', '/admin/config/reload', 'config:reload'],
      // The audit log (admin-audit.ts): who did what is not for everyone who can read models.
      ['GET', '/admin/audit', 'audit:read'],
      ['GET', '/admin/audit/verify', 'audit:read'],
      // Virtual keys. DELETE revokes; PATCH changes a key's models, limits and budget, which is
      // why it is a permission of its own that developers do not hold.
      ['GET', '/admin/keys', 'keys:read'],
      ['POST', '/admin/keys', 'keys:create'],
      ['GET', '/admin/keys/:id', 'keys:read'],
      ['PATCH', '/admin/keys/:id', 'keys:update'],
      ['DELETE', '/admin/keys/:id', 'keys:revoke'],
      ['POST', '/admin/keys/:id/rotate', 'keys:rotate'],
      // Teams.
      ['GET', '/admin/teams', 'teams:read'],
      ['POST', '/admin/teams', 'teams:write'],
      ['GET', '/admin/teams/:id', 'teams:read'],
      ['PATCH', '/admin/teams/:id', 'teams:write'],
      ['DELETE', '/admin/teams/:id', 'teams:write'],
      // Users: creating one, or changing one's role, is granting access; admins only.
      ['GET', '/admin/users', 'users:read'],
      ['POST', '/admin/users', 'users:write'],
      ['GET', '/admin/users/:id', 'users:read'],
      ['PATCH', '/admin/users/:id', 'users:write'],
      ['DELETE', '/admin/users/:id', 'users:write'],
      // Usage and spend.
      ['GET', '/admin/usage', 'usage:read'],
    ] as const
  ).map(([method, path, permission]) => Object.freeze({ method, path, permission })),
);

/**
 * What each role holds. Admin holds everything by definition; the others are listed, so that a
 * new permission is granted to no one but admins until someone writes it in here.
 */
export const grants: Readonly<Record<Role, Readonly<Partial<Record<Permission, Scope>>>>> = Object.freeze({
  admin: Object.freeze(Object.fromEntries(permissions.map((permission) => [permission, 'all' as const]))),
  operator: Object.freeze({
    'models:read': 'all',
    'models:write': 'all',
    'runner:read': 'all',
    'deployments:read': 'all',
    'config:reload': 'all',
    'audit:read': 'all',
    'keys:read': 'all',
    'keys:create': 'all',
    'keys:update': 'all',
    'keys:rotate': 'all',
    'keys:revoke': 'all',
    'teams:read': 'all',
    'teams:write': 'all',
    'usage:read': 'all',
  }),
  developer: Object.freeze({
    'models:read': 'all',
    'deployments:read': 'all',
    'keys:read': 'team',
    'keys:create': 'team',
    'keys:rotate': 'team',
    'keys:revoke': 'team',
    'usage:read': 'team',
  }),
  viewer: Object.freeze({
    'models:read': 'all',
    'runner:read': 'all',
    'deployments:read': 'all',
    'usage:read': 'all',
  }),
});

const byRoute = new Map(adminRoutes.map((route) => [`${route.method} ${route.path}`, route.permission]));
const teamScopedPermissions = new Set(
  Object.values(grants).flatMap((held) =>
    Object.entries(held)
      .filter(([, scope]) => scope === 'team')
      .map(([permission]) => permission),
  ),
);

/**
 * The permission a route needs, or undefined for a route the table does not know (refuse it).
 * HEAD is answered as GET (Fastify registers a HEAD route beside each GET), so it needs GET's.
 *
 * @example requiredPermission('POST', '/admin/keys/:id/rotate') // 'keys:rotate'
 */
export function requiredPermission(method: string, routePattern: string): Permission | undefined {
  const verb = method.toUpperCase();
  return byRoute.get(`${verb === 'HEAD' ? 'GET' : verb} ${routePattern}`);
}

/** How far `role` holds `permission`: over every team, over its own, or not at all. */
export function scopeOf(role: Role, permission: Permission): Scope | undefined {
  // Own properties only: a role or permission read from outside as 'toString' must not find
  // Object.prototype's and pass.
  if (!Object.hasOwn(grants, role)) return undefined;
  const held = grants[role];
  return Object.hasOwn(held, permission) ? held[permission] : undefined;
}

/** Whether `role` holds `permission` at all (perhaps only within its own team: see scopeOf). */
export function can(role: Role, permission: Permission): boolean {
  return scopeOf(role, permission) !== undefined;
}

/**
 * Whether some role holds `permission` only within its own team: a route needing it must then
 * check the caller's scope and confine what it reads or writes to the caller's team.
 *
 * @example teamScoped('keys:rotate') // true: a developer rotates only their own team's keys
 */
export function teamScoped(permission: Permission): boolean {
  return teamScopedPermissions.has(permission);
}

/**
 * What `role` may do on a route: `all`, `team` (only on its own team's resources), or `none`,
 * which is also the answer for a route the table does not know.
 *
 * @example routeAccess('developer', 'GET', '/admin/keys') // 'team'
 */
export function routeAccess(role: Role, method: string, routePattern: string): Scope | 'none' {
  const permission = requiredPermission(method, routePattern);
  return (permission === undefined ? undefined : scopeOf(role, permission)) ?? 'none';
}
