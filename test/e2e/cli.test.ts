import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, runCli, startCli } from '../support/cli.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let directory: string;
let upstream: MockUpstream;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-cli-'));
  upstream = await startMockUpstream({ chunkDelayMs: 100 });
});
afterAll(async () => {
  await upstream?.close();
  await rm(directory, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const file = join(directory, name);
  await writeFile(file, text);
  return file;
}

describe('switchyard config validate', () => {
  it('accepts a valid file and says what it holds', async () => {
    const file = await configFile(
      'good.yaml',
      `models:\n  - name: a\n    targets:\n      - url: http://127.0.0.1:1/v1\n`,
    );
    const result = await runCli(['config', 'validate', file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('valid (1 models, 1 targets)');
  });

  it('rejects an invalid file, naming each path and the fix', async () => {
    const file = await configFile(
      'bad.yaml',
      `models:
  - name: a
    targets:
      - url: http://127.0.0.1:1/v1
  - name: b
    targets:
      - url: http://127.0.0.1:1/v1
  - name: c
    targets:
      - url: ftp://example
        timeout: 5
`,
    );
    const result = await runCli(['config', 'validate', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('models[2].targets[0].url: must be an http(s) URL');
    expect(result.stderr).toContain('models[2].targets[0].timeout: unknown key');
  });

  it('names an unset environment variable', async () => {
    const file = await configFile(
      'env.yaml',
      `models:\n  - name: a\n    targets:\n      - url: http://127.0.0.1:1/v1\n        api_key: \${NOT_SET_ANYWHERE}\n`,
    );
    const result = await runCli(['config', 'validate', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'models[0].targets[0].api_key: environment variable NOT_SET_ANYWHERE is not set',
    );
  });
});

describe('switchyard serve', () => {
  it('refuses to start on an invalid config, exiting 1 with the problem', async () => {
    const file = await configFile('broken.yaml', 'server:\n  port: "eighty"\n');
    const child = await runCli(['serve', '--config', file, '--port', '0']);
    expect(child.code).toBe(1);
    expect(child.stderr).toContain('server.port: must be a number');
  });

  // Two cold loads of the demo model and a runner restart: longer than the default timeout.
  it('with no config and no provider, serves the demo model through the supervised runner, which `ps` shows', async () => {
    const env = { SWITCHYARD_DATA_DIR: directory };
    const server = await startCli([], env);
    await expect
      .poll(async () => (await fetch(`${server.url}/readyz`)).status, { timeout: 15_000 })
      .toBe(200);
    const ask = () =>
      fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'demo',
          messages: [{ role: 'user', content: 'Hello' }],
          max_tokens: 5,
        }),
      });
    const answer = await ask();
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as any;
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(server.output.join('\n')).toContain(
      'a demo model with random weights that answers with gibberish',
    );

    // `switchyard ps` finds the supervised runner through the record it left in the data directory.
    const ps = await runCli(['ps'], env);
    expect(ps.code).toBe(0);
    const [header, row, ...rest] = ps.stdout.split('\n');
    expect(header).toMatch(/^NAME\s+SIZE\s+PROCESSOR\s+CONTEXT\s+SLOTS\s+WAITING\s+IDLE\s+UNTIL$/);
    expect(row).toMatch(/^demo:small\s+[\d.]+ MB\s+100% CPU\s+\d+\s+0\/2\s+0\s+\d+s\s+4 minutes from now$/);
    expect(rest).toEqual(['']);
    const json = JSON.parse((await runCli(['ps', '--json'], env)).stdout);
    expect(json).toEqual({
      models: [
        expect.objectContaining({
          name: 'demo:small',
          processor: '100% CPU',
          parallel: 2,
          slots_in_use: 0,
          requests_waiting: 0,
          keep_alive_seconds: 300,
        }),
      ],
    });
    expect(json.models[0].idle_seconds).toBeGreaterThanOrEqual(0);

    // A runner crash never takes the gateway down: a request sent at once is retried until the
    // restarted runner answers it, or gets 503 runner_unavailable with Retry-After meanwhile.
    const started = server.output.find((line) => line.includes('"runner started"'))!;
    process.kill(JSON.parse(started).child_pid, 'SIGKILL');
    const during = await ask();
    if (during.status !== 200) {
      expect(during.status).toBe(503);
      expect(((await during.json()) as any).error.code).toBe('runner_unavailable');
      expect(during.headers.get('retry-after')).toBe('1');
    }
    await expect.poll(async () => (await ask()).status, { timeout: 15_000 }).toBe(200);
    // The restarted runner takes over the record its killed predecessor left behind.
    await expect
      .poll(async () => (await runCli(['ps'], env)).stdout, { timeout: 5_000 })
      .toContain('demo:small');
    expect(await server.stop()).toBe(0);
    // Stopped cleanly, the runner removed its record.
    const stopped = await runCli(['ps'], env);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('no runner is running');
  }, 45_000);

  it('passes runner settings through, keep_alive -1, preload, max_memory and pool_threads included, and serves the local model', async () => {
    const env = { SWITCHYARD_DATA_DIR: join(directory, 'runner-settings') };
    expect((await runCli(['models', 'create-demo', '--name', 'local:tiny'], env)).code).toBe(0);
    const file = await configFile(
      'runner-settings.yaml',
      `store:\n  path: ${join(directory, 'runner-settings.db')}\nrunner:\n  keep_alive: -1\n  preload: [local:tiny]\n  parallel: 1\n  max_memory: 1GiB\n  pool_threads: 3\nmodels:\n  - name: tiny\n    targets:\n      - kind: local\n        model: local:tiny\n`,
    );
    const server = await startCli(['--config', file], env);
    await expect
      .poll(async () => (await fetch(`${server.url}/readyz`)).status, { timeout: 15_000 })
      .toBe(200);
    const answer = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 }),
    });
    expect(answer.status).toBe(200);
    // The runner logs to the gateway's stdout. It listens on a Unix socket only its user may
    // open, since it has no authentication of its own; its /metrics shows the budget it was given.
    const listening = JSON.parse(server.output.find((line) => line.includes('"runner listening"'))!);
    expect(listening.url).toMatch(/^unix:\//);
    // libuv sizes its pool from the environment the runner starts with.
    expect(listening.poolThreads).toBe(3);
    const socketPath = listening.url.slice('unix:'.length);
    expect(statSync(socketPath).isSocket()).toBe(true);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    const agent = new Agent({ connect: { socketPath } });
    const metrics = await (await request('http://localhost/metrics', { dispatcher: agent })).body.text();
    await agent.close();
    expect(metrics).toContain(`\nswitchyard_runner_memory_budget_bytes ${1024 ** 3}\n`);
    expect(await server.stop()).toBe(0);
    // Its directory goes with the gateway.
    expect(existsSync(socketPath)).toBe(false);
  });

  it('takes providers from the environment when no config file is given', async () => {
    const server = await startCli([], {
      SWITCHYARD_DATA_DIR: directory,
      OPENAI_API_KEY: 'sk-env',
      OPENAI_BASE_URL: upstream.url,
    });
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(response.status).toBe(200);
    expect(upstream.requests.at(-1)!.json.model).toBe('gpt-4o-mini');
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer sk-env');
    expect(await server.stop()).toBe(0);
  });

  it('on SIGTERM finishes a stream in flight, refuses new work, then exits 0', async () => {
    const file = await configFile(
      'drain.yaml',
      `store:\n  path: ${join(directory, 'drain.db')}\nmodels:\n  - name: slow\n    targets:\n      - url: ${upstream.url}\n`,
    );
    const server = await startCli(['--config', file]);
    const response = await request(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    expect(response.statusCode).toBe(200);
    // About 700 ms of chunks remain when the signal lands.
    server.child.kill('SIGTERM');
    let text = '';
    for await (const chunk of response.body) text += chunk;
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(text).toContain('upstream');
    expect(await server.exited).toBe(0);
    const refused = await fetch(`${server.url}/healthz`).then(
      () => 'answered',
      () => 'refused',
    );
    expect(refused).toBe('refused');
  });
});

describe('switchyard ps', () => {
  it('with no runner running, says how to start one and exits 1', async () => {
    const result = await runCli(['ps'], { SWITCHYARD_DATA_DIR: join(directory, 'no-runner') });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'switchyard: no runner is running: start `switchyard serve` (or `switchyard runner`), or pass --runner URL\n',
    );
  });

  it('exits 1 when nothing answers at --runner, and 2 when --runner is not a URL', async () => {
    // Port 1 on loopback refuses connections.
    const refused = await runCli(['ps', '--runner', 'http://127.0.0.1:1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('switchyard: no runner answers at http://127.0.0.1:1 (ECONNREFUSED)');
    const malformed = await runCli(['ps', '--runner', 'localhost:4100']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("--runner must be the runner's URL");
  });
});

describe('switchyard runner', () => {
  it('serves on a Unix socket only its user can open, which ps and clients reach', async () => {
    const dataDirectory = join(directory, 'socket-runner');
    const env = { SWITCHYARD_DATA_DIR: dataDirectory };
    expect((await runCli(['models', 'create-demo', '--size', 'tiny'], env)).code).toBe(0);
    const socketPath = join(dataDirectory, 'runner.sock');
    const runner = spawn(process.execPath, [cliPath, 'runner', '--socket', socketPath, '--threads', '1'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: 'ignore',
    });
    const dispatcher = new Agent({ connect: { socketPath } });
    try {
      for (let attempt = 0; attempt < 200 && !existsSync(socketPath); attempt++) await sleep(50);
      expect(statSync(socketPath).mode & 0o777).toBe(0o600);
      const answer = await request('http://localhost/v1/chat/completions', {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'demo:tiny',
          messages: [{ role: 'user', content: 'Hi' }],
          max_tokens: 4,
        }),
      });
      expect(answer.statusCode).toBe(200);
      expect(
        ((await answer.body.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens,
      ).toBe(4);
      // ps finds it through the state file, which records unix:<path>.
      const ps = await runCli(['ps'], env);
      expect(ps.code).toBe(0);
      expect(ps.stdout).toContain('demo:tiny');
      const explicit = await runCli(['ps', '--runner', `unix:${socketPath}`, '--json'], env);
      expect(JSON.parse(explicit.stdout).models[0].name).toBe('demo:tiny');
      // A second runner on the same socket refuses rather than stealing it.
      const second = await runCli(['runner', '--socket', socketPath], env);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`another runner is listening on ${socketPath}`);
    } finally {
      await dispatcher.close();
      runner.kill('SIGTERM');
      await new Promise((resolve) => runner.once('exit', resolve));
    }
  });

  it('leaves the socket of a runner that is still warming up (503 on /healthz) alone', async () => {
    const socketPath = join(directory, 'warming.sock');
    const warming = createServer((_request, response) => {
      response.writeHead(503, { 'content-type': 'application/json' }).end('{"status":"warming"}');
    });
    await new Promise<void>((resolve) => warming.listen(socketPath, resolve));
    try {
      const second = await runCli(['runner', '--socket', socketPath], {
        SWITCHYARD_DATA_DIR: join(directory, 'warming-runner'),
      });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`another runner is listening on ${socketPath}`);
      expect(existsSync(socketPath)).toBe(true);
    } finally {
      await new Promise((resolve) => warming.close(resolve));
    }
  });

  it('refuses a keep-alive or memory budget it cannot read, and more preloads than it keeps loaded, exiting 2', async () => {
    const keepAlive = await runCli(['runner', '--port', '0', '--keep-alive', 'soon']);
    expect(keepAlive.code).toBe(2);
    expect(keepAlive.stderr).toContain('--keep-alive must be a duration such as "5m"');
    const preload = await runCli([
      'runner',
      '--port',
      '0',
      '--preload',
      'a:1,b:1',
      '--max-loaded-models',
      '1',
    ]);
    expect(preload.code).toBe(2);
    expect(preload.stderr).toContain('--preload names 2 models, more than --max-loaded-models 1');
    const memory = await runCli(['runner', '--port', '0', '--max-memory', 'lots']);
    expect(memory.code).toBe(2);
    expect(memory.stderr).toContain(
      '--max-memory must be "auto" or a size such as "8GiB" or "512mb", got "lots"',
    );
  });

  it('answers a flag it does not know, or one missing its value, with the message alone and exit 2', async () => {
    const unknown = await runCli(['runner', '--colour']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--colour'");
    const missing = await runCli(['runner', '--port']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("Option '--port <value>' argument missing");
    expect(missing.stderr).not.toContain('    at ');
  });

  it('takes "--keep-alive -1" (keep forever, as Ollama writes it) as a value, not as a flag', async () => {
    // A later bad flag stops the runner before it listens; the keep-alive was read by then.
    const dashed = await runCli(['runner', '--keep-alive', '-1', '--max-memory', 'lots']);
    expect(dashed.code).toBe(2);
    expect(dashed.stderr).not.toContain('--keep-alive');
    expect(dashed.stderr).toContain('--max-memory must be');
  });
});
