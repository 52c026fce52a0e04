import type { AdminApiOptions } from '../../src/control/admin-api.js';
import { createLogger } from '../../src/telemetry/logger.js';

/**
 * registerAdminApi's options for a test: no runner, a config that cannot be reloaded, a silent
 * logger and a model store that refuses to open, unless the test gives its own (`key` always).
 */
export function adminApiOptions(
  options: Pick<AdminApiOptions, 'key'> & Partial<AdminApiOptions>,
): AdminApiOptions {
  return {
    modelStore: () => Promise.reject(new Error('no model store in this test')),
    runner: undefined,
    routing: { deployments: () => [], reload: undefined },
    logger: createLogger('silent'),
    ...options,
  };
}
