import { readFile, rm, writeFile } from 'node:fs/promises';
import { ModelStoreError, systemErrorCode } from './errors.js';
import { KeyedLock } from './in-flight.js';

// One per process: two stores opened on the same directory still take turns.
const inProcess = new KeyedLock();

/**
 * Gives `body` sole use of one partial download: in this process through a queue, across
 * processes (a CLI pull while the server pulls) through `<partial>.lock` holding the owner's pid.
 * A lock whose process has gone (a crash, a killed pull) is taken over rather than left to block
 * the store forever.
 */
export function withPartialLock<Value>(partialPath: string, body: () => Promise<Value>): Promise<Value> {
  return inProcess.run(partialPath, async () => {
    const lockPath = `${partialPath}.lock`;
    await acquire(lockPath);
    try {
      return await body();
    } finally {
      await rm(lockPath, { force: true });
    }
  });
}

async function acquire(lockPath: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await writeFile(lockPath, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (error) {
      if (systemErrorCode(error) !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    // Our own pid in the file is a leftover of an earlier process that had it (containers reuse
    // pids); the queue above means no one else in this process holds it.
    if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
      throw new ModelStoreError(
        'pull_in_progress',
        `Another process (pid ${holder}) is downloading this model. Wait for it to finish, or delete ` +
          `${lockPath} if that process is not a Switchyard pull.`,
      );
    }
    await rm(lockPath, { force: true });
  }
  throw new ModelStoreError('pull_in_progress', `Could not take the lock ${lockPath}; try the pull again.`);
}

function isAlive(pid: number): boolean {
  try {
    // Signal 0 checks existence and permission without delivering anything.
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return systemErrorCode(error) === 'EPERM';
  }
}
