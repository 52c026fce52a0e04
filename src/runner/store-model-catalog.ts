import type { RunnerModel, RunnerModelCatalog } from './server/runner-server.js';
import {
  formatModelName,
  isModelStoreError,
  type ModelManifest,
  type ModelName,
  type ModelStore,
  parseModelName,
} from './store/index.js';

/**
 * The runner's view of the model store, read again when asked: `find` on a name the runner does
 * not know yet (a model pulled after it started), `list` when it refreshes GET /v1/models. Only
 * full `name:tag` names are served, as `switchyard models ls` writes them, so one model never
 * loads twice under two names.
 *
 * @example
 * const catalog = new StoreModelCatalog(openLocalModelStore(), (manifest) => ({ path: store.blobPath(manifest.digest) }));
 * await catalog.find('qwen:0.5b'); // the settings, or undefined when the store has no such model
 */
export class StoreModelCatalog implements RunnerModelCatalog {
  readonly #store: ModelStore;
  readonly #settings: (manifest: ModelManifest) => RunnerModel;

  /** `settings` turns a manifest into what the runner serves it with (path, context, keep-alive…). */
  constructor(store: ModelStore, settings: (manifest: ModelManifest) => RunnerModel) {
    this.#store = store;
    this.#settings = settings;
  }

  async find(name: string): Promise<RunnerModel | undefined> {
    let model: ModelName;
    try {
      model = parseModelName(name);
    } catch {
      return undefined; // not a name the store could hold: no file to read
    }
    if (formatModelName(model) !== name) return undefined;
    try {
      return this.#settings(await this.#store.get(name));
    } catch (error) {
      if (isModelStoreError(error, 'not_found')) return undefined;
      throw error;
    }
  }

  async list(): Promise<ReadonlyMap<string, RunnerModel>> {
    const manifests = await this.#store.list();
    return new Map(manifests.map((manifest) => [formatModelName(manifest), this.#settings(manifest)]));
  }
}
