import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

let directory: string;
const env = () => ({ SWITCHYARD_DATA_DIR: directory });

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-models-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('switchyard models', () => {
  it('creates a demo model, lists it as gibberish-producing, inspects and removes it', async () => {
    const created = await runCli(['models', 'create-demo', '--name', 'demo:test'], env());
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('random weights and answers with gibberish');

    const listed = await runCli(['models', 'ls'], env());
    expect(listed.stdout).toMatch(/demo:test\s+1\.20 MB\s+1\.1M\s+Q8_0/);
    expect(listed.stdout).toContain('answers gibberish');

    const inspected = await runCli(['models', 'inspect', 'demo:test'], env());
    const manifest = JSON.parse(inspected.stdout);
    expect(manifest.metadata).toMatchObject({ architecture: 'llama', demo: true, quantization: 'Q8_0' });
    expect(manifest.metadata.chat_template).toContain('<|im_start|>');

    const removed = await runCli(['models', 'rm', 'demo:test'], env());
    expect(removed.stdout).toContain('removed demo:test');
    const missing = await runCli(['models', 'inspect', 'demo:test'], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('There is no model "demo:test"');
  });

  it('writes a demo model in the weight type --type names, and refuses one it cannot write', async () => {
    const created = await runCli(['models', 'create-demo', '--type', 'q4_0', '--name', 'demo:four'], env());
    expect(created.code).toBe(0);
    expect((await runCli(['models', 'ls'], env())).stdout).toMatch(/demo:four\s+[\d.]+ kB\s+1\.1M\s+Q4_0/);
    const inspected = JSON.parse((await runCli(['models', 'inspect', 'demo:four'], env())).stdout);
    expect(inspected.metadata).toMatchObject({ demo: true, quantization: 'Q4_0' });

    const refused = await runCli(['models', 'create-demo', '--type', 'q5_k'], env());
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--type must be q4_0, q8_0, f16 or f32');
  });

  it('pulls a model over HTTP, verifying its sha256, and refuses a wrong one', async () => {
    const created = await runCli(['models', 'create-demo', '--name', 'source:one'], env());
    expect(created.code).toBe(0);
    const manifest = JSON.parse((await runCli(['models', 'inspect', 'source:one'], env())).stdout);
    const bytes = await readFile(join(directory, 'models', 'blobs', manifest.digest.replace(':', '-')));
    const server: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny.gguf`;
    // A second, empty store, so the pull really downloads.
    const other = { SWITCHYARD_DATA_DIR: join(directory, 'other') };
    try {
      const wrong = await runCli(['pull', url, '--name', 'pulled:bad', '--sha256', '0'.repeat(64)], other);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain(manifest.digest.slice(7));
      expect((await runCli(['models', 'ls'], other)).stdout).not.toContain('pulled:bad');

      const good = ['pull', url, '--name', 'pulled:good', '--sha256', manifest.digest.slice(7)];
      const pulled = await runCli(good, other);
      expect(pulled.code).toBe(0);
      expect(pulled.stdout).toBe(`pulled pulled:good (${manifest.digest})\n`);
      expect(pulled.stderr).toMatch(/downloading/);
      expect((await runCli(['models', 'ls'], other)).stdout).toMatch(/pulled:good\s+1\.20 MB/);
    } finally {
      server.close();
    }
  });

  it('refuses to import a file that is not a GGUF model', async () => {
    const result = await runCli(['models', 'import', '/etc/hostname', '--name', 'bad:one'], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('not a usable GGUF model');
  });
});
