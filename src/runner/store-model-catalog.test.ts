import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LlamaEngine } from './engine/index.js';
import { createDemoModel } from './gguf/index.js';
import { inspectGguf } from './model-inspector.js';
import { buildRunnerServer } from './server/index.js';
import { ModelStore } from './store/index.js';
import { StoreModelCatalog } from './store-model-catalog.js';

let directory: string;
let store: ModelStore;
let catalog: StoreModelCatalog;
let engine: LlamaEngine;
let app: ReturnType<typeof buildRunnerServer>;
let baseUrl: string;
/** Four tiny demo models with different weights, so that each has a blob of its own. */
const files: string[] = [];

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-catalog-'));
  store = new ModelStore({ root: join(directory, 'models'), inspect: inspectGguf });
  for (const seed of [1, 2, 3, 4]) {
    const path = join(directory, `tiny-${seed}.gguf`);
    await createDemoModel({ size: 'tiny', seed, path });
    files.push(path);
  }
  catalog = new StoreModelCatalog(store, (manifest) => ({
    path: store.blobPath(manifest.digest),
    contextSize: 512,
    parallel: 1,
    ...(manifest.metadata.demo === true ? { description: 'gibberish' } : {}),
  }));
  engine = new LlamaEngine({ threads: 1 });
  // Started with an empty store, as a runner is before anything is pulled.
  app = buildRunnerServer({ engine, models: await catalog.list(), catalog });
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app?.close();
  await engine?.close();
  await rm(directory, { recursive: true, force: true });
});

const chat = (model: string, fields: Record<string, unknown> = {}) =>
  fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, ...fields }),
  });

/** What a model answers at temperature 0, which tells demo models of different seeds apart. */
const answer = async (model: string, fields: Record<string, unknown> = {}) => {
  const response = await chat(model, { temperature: 0, max_tokens: 8, ...fields });
  expect(response.status).toBe(200);
  return ((await response.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message
    .content;
};

const listed = async () =>
  ((await (await fetch(`${baseUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.map(
    (model) => model.id,
  );

describe('StoreModelCatalog', () => {
  it('finds a model by its full name:tag, and nothing for other names', async () => {
    await store.importFile(files[0]!, 'org/first:q8', { link: false });
    expect(await catalog.find('org/first:q8')).toMatchObject({
      path: store.blobPath((await store.get('org/first:q8')).digest),
      description: 'gibberish',
    });
    // "latest" is not implied: one model under two names would load twice.
    expect(await catalog.find('org/first')).toBeUndefined();
    expect(await catalog.find('org/absent:q8')).toBeUndefined();
    expect(await catalog.find('Not A Name')).toBeUndefined();
    await store.remove('org/first:q8');
  });
});

describe('a runner with a catalog sees the store change without a restart', () => {
  it('serves a model imported after it started, on the first request naming it', async () => {
    expect((await chat('fresh:v1')).status).toBe(404);
    await store.importFile(files[0]!, 'fresh:v1', { link: false });
    const answer = await chat('fresh:v1');
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { model: string }).model).toBe('fresh:v1');
  });

  it('an unknown name gets 404 naming the model and how names are written', async () => {
    const answer = await chat('fresh');
    expect(answer.status).toBe(404);
    const { error } = (await answer.json()) as { error: { code: string; message: string; param: string } };
    expect(error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(error.message).toContain('The model fresh is not served by this runner nor in its model store');
    expect(error.message).toContain('name:tag');
  });

  it('lists the store as it is now in GET /v1/models, added and removed models included', async () => {
    await store.importFile(files[1]!, 'second:v1', { link: false });
    expect(await listed()).toEqual(['fresh:v1', 'second:v1']);
    await store.remove('second:v1');
    expect(await listed()).toEqual(['fresh:v1']);
    expect((await chat('second:v1')).status).toBe(404);
  });

  it('a known model removed from the store before it loaded answers 404, and is forgotten', async () => {
    await store.importFile(files[1]!, 'doomed:v1', { link: false });
    expect(await listed()).toContain('doomed:v1'); // the runner knows it now, without loading it
    await store.remove('doomed:v1'); // its blob goes with it: no other name shares it
    const answer = await chat('doomed:v1');
    expect(answer.status).toBe(404);
    const { error } = (await answer.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('model_not_found');
    expect(error.message).toContain('was removed from the model store');
    const again = (await (await chat('doomed:v1')).json()) as { error: { message: string } };
    expect(again.error.message).toContain('not served by this runner nor in its model store');
  });

  it('a known model pulled again with new content while unloaded, its old blob deleted, loads the new file', async () => {
    await store.importFile(files[2]!, 'repulled:v1', { link: false });
    await store.importFile(files[1]!, 'reference:v1', { link: false });
    const before = await answer('repulled:v1', { keep_alive: 0 }); // loads, then unloads once idle
    const oldBlob = store.blobPath((await store.get('repulled:v1')).digest);
    // Pulled again: the manifest names the new blob, and the old one, used by no other name, goes.
    await store.importFile(files[1]!, 'repulled:v1', { link: false });
    await expect(access(oldBlob)).rejects.toThrow();
    const after = await answer('repulled:v1');
    expect(after).toBe(await answer('reference:v1'));
    expect(after).not.toBe(before);
  });

  it('a known model pulled again while unloaded loads the new file even while the old blob stays for another name', async () => {
    await store.importFile(files[3]!, 'shared:v1', { link: false });
    await store.importFile(files[3]!, 'moving:v1', { link: false });
    await store.importFile(files[0]!, 'target:v1', { link: false });
    const before = await answer('moving:v1', { keep_alive: 0 });
    await store.importFile(files[0]!, 'moving:v1', { link: false });
    const after = await answer('moving:v1');
    expect(after).toBe(await answer('target:v1'));
    expect(after).not.toBe(before);
  });

  it('reads a manifest once per load: requests for a loaded model touch no disk', async () => {
    await store.importFile(files[0]!, 'steady:v1', { link: false });
    const find = vi.spyOn(catalog, 'find');
    try {
      // Requests arriving together for a cold model share one read.
      const cold = await Promise.all([chat('steady:v1'), chat('steady:v1'), chat('steady:v1')]);
      expect(cold.map((response) => response.status)).toEqual([200, 200, 200]);
      expect(find).toHaveBeenCalledTimes(1);
      expect((await chat('steady:v1')).status).toBe(200);
      expect(find).toHaveBeenCalledTimes(1);
    } finally {
      find.mockRestore();
    }
  });
});
