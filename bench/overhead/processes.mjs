// Child processes for the benchmark: pinned to a CPU, tracked, and never left behind. Each child
// leads its own process group, so one signal to the group also reaches what it forked (nginx's
// worker), and a child that ignores SIGTERM is killed after a grace period.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// Handles stay here until stopProcess has killed their group: a leader that died on its own can
// leave members (an nginx worker) behind.
const groups = new Set();

/**
 * Starts `command` pinned to `cpu` with taskset (which execs, so the pid is the command's own).
 * Output goes to `logPath`, or is piped when `pipeStdout` is set.
 *
 * @example const mock = startPinned({ name: 'mock', cpu: 0, command: 'node', args: ['mock.mjs'], logPath });
 */
export function startPinned({ name, cpu, command, args, env, logPath, pipeStdout = false }) {
  const log = openSync(logPath, 'a');
  const child = spawn('taskset', ['-c', String(cpu), command, ...args], {
    detached: true,
    env: { ...process.env, ...env },
    stdio: ['ignore', pipeStdout ? 'pipe' : log, log],
  });
  closeSync(log);
  const handle = { name, child, pid: child.pid, logPath, error: undefined };
  handle.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => {
      handle.error = error;
      resolve({ code: null, signal: null, error });
    });
  });
  if (child.pid !== undefined) groups.add(handle);
  return handle;
}

function hasExited(handle) {
  return handle.error !== undefined || handle.child.exitCode !== null || handle.child.signalCode !== null;
}

function signalGroup(handle, signal) {
  try {
    process.kill(-handle.pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Asks a child to stop with `signal`, waiting up to `graceMs` before killing its whole group. */
export async function stopProcess(handle, { signal = 'SIGTERM', graceMs = 15_000 } = {}) {
  let outcome;
  if (hasExited(handle)) {
    outcome = await handle.exited;
  } else {
    handle.child.kill(signal);
    // Unreferenced, so that a child which exits promptly does not leave a timer holding this process.
    outcome = await Promise.race([handle.exited, sleep(graceMs, 'timeout', { ref: false })]);
    if (outcome === 'timeout') {
      process.stderr.write(`${handle.name} did not exit ${graceMs} ms after ${signal}; killing it\n`);
      signalGroup(handle, 'SIGKILL');
      outcome = await handle.exited;
    }
  }
  // Anything the child forked and left running goes with it.
  signalGroup(handle, 'SIGKILL');
  groups.delete(handle);
  return outcome;
}

/** Kills every child group still around; synchronous so that it also works from an 'exit' handler. */
export function killAllNow() {
  for (const handle of groups) signalGroup(handle, 'SIGKILL');
  groups.clear();
}

/**
 * Runs a benchmark's `main` so that no child outlives it, however it ends (error, Ctrl-C, kill):
 * `describe(error)` says what to print for a failure.
 */
export async function runBenchmark(name, main, describe = (error) => error.stack ?? String(error)) {
  process.on('exit', killAllNow);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ]) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping\n`);
      process.exit(code);
    });
  }
  try {
    await main();
  } catch (error) {
    process.stderr.write(`\n${name} failed: ${describe(error)}\n`);
    process.exitCode = 1;
  } finally {
    // A child stuck after a failure would keep the event loop, and so this process, alive.
    killAllNow();
  }
}

/** The last lines of a child's log, for error messages. */
export function logTail(handle, lines = 20) {
  try {
    const text = readFileSync(handle.logPath, 'utf8').trimEnd();
    return text === '' ? '(nothing logged)' : text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A port that was free on 127.0.0.1 a moment ago; readiness checks catch the rare race. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * One HTTP request on a fresh connection (no pool: an idle pooled connection would sit on the
 * proxy during the measured runs). Resolves to { status, headers, body }.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers, agent: false, timeout: 5_000 }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no response from ${url} within 5 s`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** Polls `url` until it answers 200, failing early if the process behind it exits. */
export async function waitUntilReady(url, handle, { timeoutMs = 20_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no answer yet';
  while (Date.now() < deadline) {
    if (hasExited(handle)) {
      const reason = handle.error?.message ?? handle.child.exitCode ?? handle.child.signalCode;
      throw new Error(
        `${handle.name} exited (${reason}) before it was ready; ` + `its log ends:\n${logTail(handle)}`,
      );
    }
    try {
      const response = await httpRequest(url);
      if (response.status === 200) return;
      lastProblem = `status ${response.status}`;
    } catch (error) {
      lastProblem = error.message;
    }
    await sleep(50);
  }
  throw new Error(
    `${handle.name} was not ready at ${url} after ${timeoutMs} ms (${lastProblem}); its log ends:\n${logTail(handle)}`,
  );
}
