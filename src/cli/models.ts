import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  createDemoModel,
  type DemoModelOptions,
  type DemoModelSize,
  demoModelSizes,
  demoTensorTypes,
  type WritableTensorType,
  writableTensorTypes,
} from '../runner/gguf/index.js';
import { openLocalModelStore } from '../runner/local-model-store.js';
import {
  formatBytes,
  formatProgress,
  formatProgressLine,
  isModelStoreError,
  type ModelManifest,
  type ModelStore,
  type PullProgress,
} from '../runner/store/index.js';
import { table } from './table.js';

const modelsUsage = `Usage:
  switchyard pull <ref> [--name NAME[:TAG]] [--sha256 HEX]
      ref: hf:<org>/<repo>/<file>.gguf (HF_TOKEN, SWITCHYARD_HF_ENDPOINT honoured),
           an http(s) URL, or a local path
  switchyard models ls
  switchyard models inspect NAME[:TAG]
  switchyard models rm NAME[:TAG]
  switchyard models import FILE.gguf --name NAME[:TAG] [--sha256 HEX]
  switchyard models create-demo [--size tiny|small|large] [--type q4_0|q8_0|f16|f32]
                                [--name NAME[:TAG]] [--seed N]
      A random-weight llama model for tests and demos: it answers with gibberish.
      Weights are Q4_0 for small, Q8_0 for tiny and large, unless --type says otherwise.
Models live under $SWITCHYARD_DATA_DIR/models (default ~/.local/share/switchyard/models).
`;

/** The store every command uses: under the data directory, with GGUF inspection. */
export function openModelStore(env: NodeJS.ProcessEnv = process.env): ModelStore {
  return openLocalModelStore(env);
}

/** `switchyard pull …`. */
export async function pullCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { name: { type: 'string' }, sha256: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) return usageError('pull takes exactly one ref');
  const store = openModelStore();
  const progress = progressReporter();
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted; run the same pull again to resume'));
  process.once('SIGINT', onSignal);
  try {
    const { manifest, outcome } = await store.pull(positionals[0]!, values.name, {
      sha256: values.sha256,
      onProgress: progress.report,
      signal: controller.signal,
    });
    progress.done();
    process.stdout.write(`${describeOutcome(outcome)} ${label(manifest)} (${manifest.digest})\n`);
    return 0;
  } catch (error) {
    progress.done();
    return failure(error);
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/** `switchyard models …`. */
export async function modelsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'ls':
      case 'list':
        return await list();
      case 'inspect':
        return await inspect(rest);
      case 'rm':
      case 'remove':
        return await remove(rest);
      case 'import':
        return await importModel(rest);
      case 'create-demo':
        return await createDemo(rest);
      default:
        process.stderr.write(
          sub === undefined ? modelsUsage : `switchyard: unknown models command "${sub}"\n\n${modelsUsage}`,
        );
        return 2;
    }
  } catch (error) {
    return failure(error);
  }
}

async function list(): Promise<number> {
  const manifests = await openModelStore().list();
  if (manifests.length === 0) {
    process.stdout.write('No models yet. Try `switchyard models create-demo` or `switchyard pull <ref>`.\n');
    return 0;
  }
  const rows = manifests.map((manifest) => {
    const facts = manifest.metadata;
    return [
      label(manifest),
      formatBytes(manifest.size),
      typeof facts.parameter_count === 'number' ? formatCount(facts.parameter_count) : '-',
      String(facts.quantization ?? '-'),
      manifest.digest.slice(7, 19),
      manifest.created_at.slice(0, 19).replace('T', ' '),
      facts.demo === true ? 'demo: random weights, answers gibberish' : '',
    ];
  });
  process.stdout.write(table(['NAME', 'SIZE', 'PARAMS', 'QUANT', 'DIGEST', 'CREATED', ''], rows));
  return 0;
}

async function inspect(args: string[]): Promise<number> {
  if (args.length !== 1) return usageError('inspect takes one model name');
  const manifest = await openModelStore().get(args[0]!);
  process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  return 0;
}

async function remove(args: string[]): Promise<number> {
  if (args.length !== 1) return usageError('rm takes one model name');
  const { manifest, blobRemoved } = await openModelStore().remove(args[0]!);
  process.stdout.write(
    `removed ${label(manifest)}${blobRemoved ? '' : ' (its file is shared with another model and stays)'}\n`,
  );
  return 0;
}

async function importModel(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { name: { type: 'string' }, sha256: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1 || values.name === undefined)
    return usageError('import takes FILE and --name NAME[:TAG]');
  const progress = progressReporter();
  const manifest = await openModelStore().importFile(positionals[0]!, values.name, {
    sha256: values.sha256,
    onProgress: progress.report,
  });
  progress.done();
  process.stdout.write(`imported ${label(manifest)} (${manifest.digest})\n`);
  return 0;
}

async function createDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      size: { type: 'string', default: 'tiny' },
      type: { type: 'string' },
      name: { type: 'string' },
      seed: { type: 'string', default: '1' },
    },
  });
  const size = values.size as DemoModelSize;
  if (!demoModelSizes.includes(size)) return usageError('--size must be tiny, small or large');
  const type = (values.type?.toUpperCase() ?? demoTensorTypes[size]) as WritableTensorType;
  if (!writableTensorTypes.includes(type)) return usageError('--type must be q4_0, q8_0, f16 or f32');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) return usageError('--seed must be a whole number');
  const { demo, manifest } = await writeDemoModel(
    openModelStore(),
    { size, seed, tensorType: type },
    values.name ?? `demo:${size}`,
  );
  process.stdout.write(
    `created ${label(manifest)}: ${formatCount(demo.parameterCount)} parameters, ${formatBytes(demo.bytes)}. ` +
      'It has random weights and answers with gibberish; `switchyard pull <ref>` fetches a real model.\n',
  );
  return 0;
}

/** Creates the demo model under `nameTag` unless the store has it already. */
export async function ensureDemoModel(nameTag: string): Promise<void> {
  const store = openModelStore();
  try {
    await store.get(nameTag);
  } catch (error) {
    if (!isModelStoreError(error) || error.code !== 'not_found') throw error;
    await writeDemoModel(store, { size: nameTag.endsWith(':tiny') ? 'tiny' : 'small' }, nameTag);
  }
}

async function writeDemoModel(store: ModelStore, options: Omit<DemoModelOptions, 'path'>, nameTag: string) {
  await mkdir(store.root, { recursive: true });
  // Written inside the store's directory, so the import is a hard link on the same file system.
  const scratch = await mkdtemp(join(store.root, '.demo-'));
  try {
    const demo = await createDemoModel({ ...options, path: join(scratch, 'demo.gguf') });
    const manifest = await store.importFile(demo.path, nameTag);
    return { demo, manifest };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function progressReporter(): { report: (progress: PullProgress) => void; done: () => void } {
  const terminal = process.stderr.isTTY === true;
  let lastLine = 0;
  let shown = false;
  return {
    report(progress) {
      if (terminal) {
        process.stderr.write(`\r${formatProgress(progress)}\x1b[K`);
        shown = true;
        return;
      }
      // Plain lines for logs and pipes: at most one every two seconds.
      const now = Date.now();
      if (now - lastLine >= 2000) {
        lastLine = now;
        process.stderr.write(`${formatProgressLine(progress)}\n`);
      }
    },
    done() {
      if (shown) process.stderr.write('\n');
    },
  };
}

function describeOutcome(outcome: string): string {
  switch (outcome) {
    case 'present':
      return 'already present:';
    case 'resumed':
      return 'pulled (resumed)';
    case 'imported':
      return 'imported';
    default:
      return 'pulled';
  }
}

function label(manifest: ModelManifest): string {
  return `${manifest.name}:${manifest.tag}`;
}

function formatCount(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`;
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  if (count >= 1e3) return `${(count / 1e3).toFixed(1)}K`;
  return String(count);
}

function usageError(message: string): number {
  process.stderr.write(`switchyard: ${message}\n\n${modelsUsage}`);
  return 2;
}

function failure(error: unknown): number {
  if (isModelStoreError(error)) {
    process.stderr.write(`switchyard: ${error.message}\n`);
    return 1;
  }
  throw error;
}
