import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface RunningCli {
  readonly child: ChildProcess;
  readonly url: string;
  /** stdout and stderr lines so far. */
  readonly output: string[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function assertBuilt(): void {
  if (!existsSync(cliPath))
    throw new Error(`${cliPath} is missing: run "npm run build" (npm test does it first)`);
}

/** Runs `switchyard serve …` as a user would, and waits until it says it is listening. */
export async function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningCli> {
  assertBuilt();
  const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`switchyard did not start:\n${output.join('\n')}`)),
      15_000,
    );
    const onLine = (line: string) => {
      output.push(line);
      if (line.includes('"switchyard listening"')) {
        clearTimeout(timer);
        resolve(JSON.parse(line).url);
      }
    };
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = '';
      stream.on('data', (chunk: Buffer) => {
        const lines = (pending + chunk.toString()).split('\n');
        pending = lines.pop()!;
        lines.forEach(onLine);
      });
    }
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`switchyard exited with ${code} before listening:\n${output.join('\n')}`));
    });
  });
  return {
    child,
    url,
    output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a short switchyard command to completion. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}
