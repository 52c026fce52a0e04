import { parseArgs } from 'node:util';
import type { RunningModel, RunningModelsResponse } from '../runner/server/running-models.js';
import { formatBytes } from '../runner/store/index.js';
import { readRunnerState, requestRunner, runnerStatePath } from './runner-state.js';
import { table } from './table.js';

const hint = 'start `switchyard serve` (or `switchyard runner`), or pass --runner URL';

/**
 * `switchyard ps [--runner URL] [--json]`: the models the local runner has loaded, with their
 * memory, processor, slots in use and idle time, like `ollama ps`. The runner is the one recorded
 * in `<data dir>/runner.json` (see runnerStatePath), or the one at --runner. Exits 1 when no
 * runner answers.
 */
export async function psCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { runner: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  let url: string;
  if (values.runner !== undefined) {
    if (!/^(https?:\/\/[^/]|unix:\/)/.test(values.runner)) {
      process.stderr.write(
        `switchyard: --runner must be the runner's URL, such as http://127.0.0.1:4100 or unix:/path/to/runner.sock, not "${values.runner}"\n`,
      );
      return 2;
    }
    url = values.runner.replace(/\/+$/, '');
  } else {
    const state = await readRunnerState(runnerStatePath());
    if (state === undefined) {
      process.stderr.write(`switchyard: no runner is running: ${hint}\n`);
      return 1;
    }
    url = state.url;
  }

  let status: number;
  let text: string;
  try {
    const response = await requestRunner(url, '/api/ps', { headersTimeout: 10_000, bodyTimeout: 10_000 });
    status = response.statusCode;
    text = response.text;
  } catch (error) {
    const reason = (error as { code?: unknown }).code ?? (error as Error).message;
    process.stderr.write(`switchyard: no runner answers at ${url} (${String(reason)}): ${hint}\n`);
    return 1;
  }
  let body: RunningModelsResponse | undefined;
  try {
    body = JSON.parse(text) as RunningModelsResponse;
  } catch {
    body = undefined;
  }
  if (status !== 200 || !Array.isArray(body?.models)) {
    process.stderr.write(`switchyard: ${url} answered GET /api/ps with ${status}${describeError(body)}\n`);
    return 1;
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(body, null, 2)}\n` : formatRunningModels(body.models, Date.now()),
  );
  return 0;
}

/**
 * The table `switchyard ps` prints, as of `now` (wall clock, milliseconds). SIZE is RAM and GPU
 * memory together, as in `ollama ps`; a VRAM column, the GPU's part of it, follows once any model
 * has layers on a GPU, so the table on a machine without one stays as narrow as before.
 *
 * @example
 * NAME        SIZE    PROCESSOR  CONTEXT  SLOTS  WAITING  IDLE  UNTIL
 * demo:small  111 MB  100% CPU   4096     0/2    0        12s   4 minutes from now
 */
export function formatRunningModels(models: readonly RunningModel[], now: number): string {
  if (models.length === 0) return 'No models are loaded. A model loads on its first request.\n';
  const onGpu = models.some((model) => model.size_vram > 0);
  const rows = models.map((model) => [
    model.name,
    formatBytes(model.size),
    ...(onGpu ? [formatBytes(model.size_vram)] : []),
    model.processor,
    String(model.context_length),
    `${model.slots_in_use}/${model.parallel}`,
    String(model.requests_waiting),
    model.idle_seconds === null ? 'busy' : shortDuration(model.idle_seconds),
    until(model, now),
  ]);
  const header = [
    'NAME',
    'SIZE',
    ...(onGpu ? ['VRAM'] : []),
    'PROCESSOR',
    'CONTEXT',
    'SLOTS',
    'WAITING',
    'IDLE',
    'UNTIL',
  ];
  return table(header, rows);
}

/** When the model unloads, in words, as `ollama ps` says it. */
function until(model: RunningModel, now: number): string {
  if (model.expires_at !== null) {
    const seconds = (Date.parse(model.expires_at) - now) / 1000;
    return seconds <= 0 ? 'any moment now' : `${longDuration(seconds)} from now`;
  }
  if (model.keep_alive_seconds === null) return 'forever';
  // Busy: the countdown starts when its last request ends.
  return model.keep_alive_seconds === 0
    ? 'when idle'
    : `${longDuration(model.keep_alive_seconds)} after idle`;
}

/** "12s", "3m", "2h", "4d": whole units, rounded down. */
function shortDuration(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3_600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** "less than a second", "1 second", "4 minutes", "2 hours", "3 days": whole units, rounded down. */
function longDuration(seconds: number): string {
  if (seconds < 1) return 'less than a second';
  const [count, unit] =
    seconds < 60
      ? [seconds, 'second']
      : seconds < 3_600
        ? [seconds / 60, 'minute']
        : seconds < 86_400
          ? [seconds / 3_600, 'hour']
          : [seconds / 86_400, 'day'];
  const whole = Math.floor(count);
  return `${whole} ${unit}${whole === 1 ? '' : 's'}`;
}

/** ": <message>" from an OpenAI error envelope, or nothing. */
function describeError(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? `: ${message}` : '';
}
