import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { roles } from '../auth/types.js';
import { createLogger } from '../telemetry/logger.js';
import { registerAdminApi } from './admin-api.js';
import type { AuditLog } from './audit-log.js';
import {
  adminRoutes,
  can,
  grants,
  permissions,
  requiredPermission,
  routeAccess,
  scopeOf,
  teamScoped,
} from './rbac.js';

type Access = 'all' | 'team' | 'none';

/**
 * The whole policy, written out: a change to the table in rbac.ts must show up here as a diff
 * someone reads. `team`: only on the caller's own team's resources.
 */
// biome-ignore format: a table reads as a table
const matrix: readonly (readonly [method: string, path: string, admin: Access, operator: Access, developer: Access, viewer: Access])[] = [
  //  method    path                          admin   operator  developer  viewer
  ['GET',    '/admin/models',               'all',  'all',    'all',     'all'],
  ['GET',    '/admin/models/*',             'all',  'all',    'all',     'all'],
  ['DELETE', '/admin/models/*',             'all',  'all',    'none',    'none'],
  ['POST',   '/admin/models/pull',          'all',  'all',    'none',    'none'],
  ['POST',   '/admin/models/import',        'all',  'all',    'none',    'none'],
  ['GET',    '/admin/ps',                   'all',  'all',    'none',    'all'],
  ['GET',    '/admin/deployments',          'all',  'all',    'all',     'all'],
  ['POST',   '/admin/config/reload',        'all',  'all',    'none',    'none'],
  ['GET',    '/admin/audit',                'all',  'all',    'none',    'none'],
  ['GET',    '/admin/audit/verify',         'all',  'all',    'none',    'none'],
  ['GET',    '/admin/keys',                 'all',  'all',    'team',    'none'],
  ['POST',   '/admin/keys',                 'all',  'all',    'team',    'none'],
  ['GET',    '/admin/keys/:id',             'all',  'all',    'team',    'none'],
  ['PATCH',  '/admin/keys/:id',             'all',  'all',    'none',    'none'],
  ['DELETE', '/admin/keys/:id',             'all',  'all',    'team',    'none'],
  ['POST',   '/admin/keys/:id/rotate',      'all',  'all',    'team',    'none'],
  ['GET',    '/admin/teams',                'all',  'all',    'none',    'none'],
  ['POST',   '/admin/teams',                'all',  'all',    'none',    'none'],
  ['GET',    '/admin/teams/:id',            'all',  'all',    'none',    'none'],
  ['PATCH',  '/admin/teams/:id',            'all',  'all',    'none',    'none'],
  ['DELETE', '/admin/teams/:id',            'all',  'all',    'none',    'none'],
  ['GET',    '/admin/users',                'all',  'none',   'none',    'none'],
  ['POST',   '/admin/users',                'all',  'none',   'none',    'none'],
  ['GET',    '/admin/users/:id',            'all',  'none',   'none',    'none'],
  ['PATCH',  '/admin/users/:id',            'all',  'none',   'none',    'none'],
  ['DELETE', '/admin/users/:id',            'all',  'none',   'none',    'none'],
  ['GET',    '/admin/usage',                'all',  'all',    'team',    'all'],
];

const cases = matrix.flatMap(([method, path, ...access]) =>
  roles.map((role, index) => ({ role, method, path, expected: access[index] as Access })),
);

describe('the admin role matrix', () => {
  it.each(cases)('$role on $method $path: $expected', ({ role, method, path, expected }) => {
    expect(routeAccess(role, method, path)).toBe(expected);
    const permission = requiredPermission(method, path);
    expect(permission).toBeDefined();
    expect(can(role, permission!)).toBe(expected !== 'none');
  });

  it('covers every route in the table, and no route twice', () => {
    const written = matrix.map(([method, path]) => `${method} ${path}`);
    expect(new Set(written).size).toBe(written.length);
    expect([...written].sort()).toEqual(adminRoutes.map(({ method, path }) => `${method} ${path}`).sort());
  });

  it('gives every permission to admin, and leaves none unused by a route', () => {
    for (const permission of permissions) {
      expect(scopeOf('admin', permission)).toBe('all');
      expect(adminRoutes.some((route) => route.permission === permission)).toBe(true);
    }
  });

  it('marks as team-scoped exactly what developers may do only within their team', () => {
    expect(permissions.filter(teamScoped)).toEqual([
      'keys:read',
      'keys:create',
      'keys:rotate',
      'keys:revoke',
      'usage:read',
    ]);
    expect(Object.values(grants.developer).filter((scope) => scope === 'team')).toHaveLength(5);
  });
});

describe('unknown routes fail closed', () => {
  it.each([
    ['GET', '/admin/secrets'],
    ['PUT', '/admin/keys/:id'],
    ['POST', '/admin/models'],
    ['GET', '/admin/keys/123'],
    ['GET', '/admin/keys/'],
    ['OPTIONS', '/admin/keys'],
    ['GET', ''],
  ])('%s %j needs a permission no table knows, and every role is refused', (method, path) => {
    expect(requiredPermission(method, path)).toBeUndefined();
    for (const role of roles) expect(routeAccess(role, method, path)).toBe('none');
  });

  it('refuses a role or permission the tables do not hold, even one named like a built-in', () => {
    expect(scopeOf('toString' as never, 'models:read')).toBeUndefined();
    expect(scopeOf('viewer', 'toString' as never)).toBeUndefined();
    expect(can('__proto__' as never, 'constructor' as never)).toBe(false);
  });

  it('answers HEAD as GET, and reads methods in any case', () => {
    expect(requiredPermission('HEAD', '/admin/models')).toBe('models:read');
    expect(requiredPermission('head', '/admin/audit')).toBe('audit:read');
    expect(requiredPermission('post', '/admin/keys/:id/rotate')).toBe('keys:rotate');
  });
});

describe('the routes the admin API registers', () => {
  it('each have an entry in the table', async () => {
    const app = Fastify();
    const registered: string[] = [];
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) registered.push(`${method} ${route.url}`);
    });
    registerAdminApi(app, {
      key: 'unused',
      modelStore: () => Promise.reject(new Error('not opened by this test')),
      runner: undefined,
      routing: { deployments: () => [], reload: undefined },
      logger: createLogger('silent'),
      // Only registered, never written to: the audit routes exist only when a log is given.
      audit: {} as AuditLog,
    });
    await app.ready();
    await app.close();
    const admin = registered.filter((route) => route.split(' ')[1]!.startsWith('/admin'));
    expect(admin.length).toBeGreaterThanOrEqual(10);
    const missing = admin.filter((route) => {
      const [method, path] = route.split(' ') as [string, string];
      return requiredPermission(method, path) === undefined;
    });
    expect(missing).toEqual([]);
  });
});
