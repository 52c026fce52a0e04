import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Agent, request } from 'undici';
import { dataDirectory } from '../config/defaults.js';

/**
 * What `<data dir>/runner.json` says about the runner that `switchyard ps` talks to.
 *
 * @example { "url": "http://127.0.0.1:41877", "pid": 48213, "started_at": "2025-06-01T09:30:00.000Z" }
 * A runner started with --socket records "unix:/path/to/runner.sock" as its url.
 */
export interface RunnerState {
  /** Where the runner answers, on an address a client on this machine can reach. */
  readonly url: string;
  /** The runner's own process, not the gateway's: it is the one that must be alive. */
  readonly pid: number;
  readonly started_at: string;
}

/**
 * Where a runner records itself for `switchyard ps`: `<data dir>/runner.json`.
 *
 * The runner records itself, rather than `serve` recording its child: a supervised runner is
 * restarted with a new pid and port after a crash, and one code path then covers it and a runner
 * started on its own.
 *
 * Ownership: the first live runner keeps the file. Another runner on the same data directory (a
 * standalone one beside serve's, say) leaves it alone and logs where it is, so `ps` never
 * switches between runners behind the user's back; `switchyard ps --runner URL` reaches the
 * other. A file whose process is gone, or whose URL no longer answers (its pid reused by some
 * other process, common in containers), is stale and taken over. A runner removes the file on a
 * clean stop only if it still names that runner.
 */
export function runnerStatePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dataDirectory(env), 'runner.json');
}

export type RunnerStateClaim =
  | { readonly claimed: true }
  | { readonly claimed: false; readonly holder: RunnerState };

/**
 * Records `state` at `path` unless another live, answering runner holds it. The file appears
 * whole or not at all: it is written aside, then linked into place (which fails if one is there)
 * or renamed over a stale one.
 */
export async function claimRunnerState(
  path: string,
  state: RunnerState,
  answers: (url: string) => Promise<boolean> = runnerAnswers,
): Promise<RunnerStateClaim> {
  await mkdir(dirname(path), { recursive: true });
  const aside = `${path}.${state.pid}.tmp`;
  await writeFile(aside, `${JSON.stringify(state)}\n`);
  try {
    try {
      await link(aside, path);
      return { claimed: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readRunnerState(path);
    if (holder !== undefined && holder.pid !== state.pid && (await answers(holder.url))) {
      return { claimed: false, holder };
    }
    await rename(aside, path);
    return { claimed: true };
  } finally {
    await rm(aside, { force: true });
  }
}

/** The runner recorded at `path`; undefined when there is none, the file is unreadable, or its process is gone. */
export async function readRunnerState(path: string): Promise<RunnerState | undefined> {
  const state = await readRecorded(path);
  return state !== undefined && processAlive(state.pid) ? state : undefined;
}

/** Removes the file if it names `pid`; another runner's record, or none, is left as it is. */
export async function releaseRunnerState(path: string, pid: number = process.pid): Promise<void> {
  const state = await readRecorded(path);
  if (state?.pid === pid) await rm(path, { force: true });
}

/** The URL to reach a server listening at `address` from this machine: a wildcard address means loopback. */
export function runnerUrl(address: AddressInfo): string {
  const host =
    address.address === '0.0.0.0'
      ? '127.0.0.1'
      : address.address === '::'
        ? '[::1]'
        : address.family === 'IPv6'
          ? `[${address.address}]`
          : address.address;
  return `http://${host}:${address.port}`;
}

async function readRecorded(path: string): Promise<RunnerState | undefined> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    // Missing, or not JSON (written by hand, or truncated by a full disk): nothing to go on.
    return undefined;
  }
  const { url, pid, started_at } = (value ?? {}) as Partial<Record<keyof RunnerState, unknown>>;
  if (typeof url !== 'string' || !/^(https?:\/\/|unix:\/)/.test(url)) return undefined;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return undefined;
  return { url, pid, started_at: typeof started_at === 'string' ? started_at : '' };
}

function processAlive(pid: number): boolean {
  try {
    // Signal 0 checks only that the process exists; EPERM means it does, under another user.
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a runner answers its health check at `url` within a second. */
async function runnerAnswers(url: string): Promise<boolean> {
  try {
    const response = await requestRunner(url, '/healthz', { headersTimeout: 1_000, bodyTimeout: 1_000 });
    return response.statusCode === 200;
  } catch {
    return false;
  }
}

/** The URL recorded for a runner listening on a Unix socket: "unix:" and the socket's path. */
export function unixRunnerUrl(socketPath: string): string {
  return `unix:${socketPath}`;
}

/**
 * GETs `path` from a runner at `url` (http(s)://host:port, or unix:/path/to.sock for a runner
 * started with --socket) and reads the whole answer.
 */
export async function requestRunner(
  url: string,
  path: string,
  timeouts: { headersTimeout: number; bodyTimeout: number },
): Promise<{ statusCode: number; text: string }> {
  const socketPath = url.startsWith('unix:') ? url.slice('unix:'.length) : undefined;
  const dispatcher = socketPath === undefined ? undefined : new Agent({ connect: { socketPath } });
  try {
    const response = await request(socketPath === undefined ? `${url}${path}` : `http://localhost${path}`, {
      ...timeouts,
      reset: true,
      ...(dispatcher === undefined ? {} : { dispatcher }),
    });
    return { statusCode: response.statusCode, text: await response.body.text() };
  } finally {
    await dispatcher?.close();
  }
}
