import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimRunnerState,
  type RunnerState,
  readRunnerState,
  releaseRunnerState,
  runnerStatePath,
  runnerUrl,
} from './runner-state.js';

let directory: string;
let dataDirectories = 0;
/** A fresh state file path per test, in a data directory not yet created. */
const statePath = () =>
  runnerStatePath({ SWITCHYARD_DATA_DIR: join(directory, `data-${++dataDirectories}`) });

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-runner-state-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

const ours: RunnerState = {
  url: 'http://127.0.0.1:4100',
  pid: process.pid,
  started_at: '2025-06-01T09:30:00.000Z',
};
/** Another runner that is alive: the test process's parent stands in for its pid. */
const other: RunnerState = {
  url: 'http://127.0.0.1:4200',
  pid: process.ppid,
  started_at: '2025-06-01T09:00:00.000Z',
};

describe('the runner state file', () => {
  it('records a runner in the data directory, leaving nothing else there, and removes it on release', async () => {
    const path = statePath();
    expect(path.endsWith(join('data-1', 'runner.json'))).toBe(true);
    expect(await readRunnerState(path)).toBeUndefined();
    expect(await claimRunnerState(path, ours)).toEqual({ claimed: true });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(ours);
    expect(await readRunnerState(path)).toEqual(ours);
    expect(await readdir(join(path, '..'))).toEqual(['runner.json']);
    await releaseRunnerState(path, ours.pid);
    expect(await readRunnerState(path)).toBeUndefined();
  });

  it('leaves a live, answering runner’s record alone, and another runner’s release keeps it', async () => {
    const path = statePath();
    await claimRunnerState(path, other);
    const claim = await claimRunnerState(path, ours, async () => true);
    expect(claim).toEqual({ claimed: false, holder: other });
    await releaseRunnerState(path, ours.pid);
    expect(await readRunnerState(path)).toEqual(other);
    expect(await readdir(join(path, '..'))).toEqual(['runner.json']);
  });

  it('takes over a record whose process has exited, which reads as no runner', async () => {
    const path = statePath();
    const gone = { ...other, pid: await deadPid() };
    await claimRunnerState(path, gone);
    expect(await readRunnerState(path)).toBeUndefined();
    expect(await claimRunnerState(path, ours, async () => true)).toEqual({ claimed: true });
    expect(await readRunnerState(path)).toEqual(ours);
  });

  it('takes over a record whose process lives but whose URL does not answer, as when a pid is reused', async () => {
    const path = statePath();
    // Port 1 on loopback refuses connections: the real health check fails at once.
    await claimRunnerState(path, { ...other, url: 'http://127.0.0.1:1' });
    expect(await claimRunnerState(path, ours)).toEqual({ claimed: true });
    expect(await readRunnerState(path)).toEqual(ours);
  });

  it('reads a file that is not a runner record as no runner, and replaces it', async () => {
    const path = statePath();
    await claimRunnerState(path, ours);
    await writeFile(path, '{"url": 42}');
    expect(await readRunnerState(path)).toBeUndefined();
    expect(await claimRunnerState(path, ours)).toEqual({ claimed: true });
    expect(await readRunnerState(path)).toEqual(ours);
  });

  it('records a wildcard listening address as loopback, so a client here can reach it', () => {
    expect(runnerUrl({ address: '0.0.0.0', family: 'IPv4', port: 4100 })).toBe('http://127.0.0.1:4100');
    expect(runnerUrl({ address: '::', family: 'IPv6', port: 4100 })).toBe('http://[::1]:4100');
    expect(runnerUrl({ address: '::1', family: 'IPv6', port: 4100 })).toBe('http://[::1]:4100');
    expect(runnerUrl({ address: '127.0.0.1', family: 'IPv4', port: 4100 })).toBe('http://127.0.0.1:4100');
  });
});
