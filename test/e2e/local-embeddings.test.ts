import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RunningCli, startCli } from '../support/cli.js';

/**
 * The official OpenAI client asking `switchyard serve` for embeddings of the local demo model:
 * client → gateway → supervised runner → llama.cpp, started as a user starts it.
 */
let server: RunningCli;
let directory: string;
let client: OpenAI;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'switchyard-embeddings-'));
  // No config and no provider key: `serve` creates the demo model and serves it as `demo`.
  server = await startCli([], { SWITCHYARD_DATA_DIR: directory });
  // Until the supervised runner is ready, local models answer 503.
  await vi.waitFor(async () => expect((await fetch(`${server.url}/readyz`)).status).toBe(200), {
    timeout: 15_000,
    interval: 50,
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-until-keys-exist', maxRetries: 0 });
});

afterAll(async () => {
  await server?.stop();
  await rm(directory, { recursive: true, force: true });
});

describe('embeddings from the local demo model through the gateway', () => {
  it('embeds texts for the official client, in base64 by its default and as floats when asked, to the same vectors', async () => {
    const input = ['the people of the world', 'a quiet river'];
    // Without encoding_format the client asks for base64 and decodes it itself.
    const decoded = await client.embeddings.create({ model: 'demo', input });
    const floats = await client.embeddings.create({ model: 'demo', input, encoding_format: 'float' });
    // The gateway passes the runner's answer through, which names the stored model it serves.
    expect(decoded).toMatchObject({ object: 'list', model: expect.stringMatching(/^demo:/) });
    expect(decoded.data.map((item) => item.index)).toEqual([0, 1]);
    expect(decoded.data[0]!.embedding.length).toBeGreaterThan(0);
    expect(decoded.data[1]!.embedding).toHaveLength(decoded.data[0]!.embedding.length);
    expect(decoded.data.map((item) => item.embedding)).toEqual(floats.data.map((item) => item.embedding));
    expect(Math.hypot(...decoded.data[0]!.embedding)).toBeCloseTo(1, 5);
    expect(decoded.usage.prompt_tokens).toBeGreaterThan(input.length);
    expect(decoded.usage.total_tokens).toBe(decoded.usage.prompt_tokens);
  });

  it('raises BadRequestError naming input for an input longer than the model’s context', async () => {
    const error = await client.embeddings
      .create({ model: 'demo', input: 'the people '.repeat(3000) })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, param: 'input' });
    expect((error as Error).message).toMatch(
      /input is \d+ tokens long, more than the \d+ this model embeds at once/,
    );
  });
});
