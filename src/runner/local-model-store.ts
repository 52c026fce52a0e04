import { join } from 'node:path';
import { dataDirectory } from '../config/defaults.js';
import { inspectGguf } from './model-inspector.js';
import { ModelStore } from './store/index.js';

/**
 * The one model store every part of Switchyard uses, so that the CLI, the runner and the admin
 * API see the same models: `<data dir>/models` ($SWITCHYARD_DATA_DIR), with GGUF inspection.
 *
 * @example const manifests = await openLocalModelStore().list();
 */
export function openLocalModelStore(env: NodeJS.ProcessEnv = process.env): ModelStore {
  return new ModelStore({ root: join(dataDirectory(env), 'models'), inspect: inspectGguf });
}
