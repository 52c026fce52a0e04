import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'libsql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { singleModelConfig, startTestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;
let directory: string;

beforeAll(async () => {
  upstream = await startMockUpstream();
  directory = await mkdtemp(join(tmpdir(), 'switchyard-log-'));
});
afterAll(async () => {
  await upstream?.close();
  await rm(directory, { recursive: true, force: true });
});

it('writes one row per request to the SQLite request log, kept after the gateway stops', async () => {
  const path = join(directory, 'switchyard.db');
  const gateway = await startTestGateway(
    singleModelConfig(upstream.url, { model: 'public', upstreamModel: 'private' }),
    {
      storePath: path,
    },
  );
  const send = (body: unknown, id: string) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify(body),
    }).then((response) => response.text());
  const messages = [{ role: 'user', content: 'one two three' }];
  await send({ model: 'public', messages }, 'row-plain');
  await send({ model: 'public', messages, stream: true }, 'row-stream');
  await send({ model: 'missing', messages }, 'row-404');
  await gateway.close();

  const database = new Sqlite(path, { readonly: true });
  const rows = database.prepare('select * from request_log order by seq').all() as Record<string, unknown>[];
  database.close();
  expect(rows).toHaveLength(3);
  expect(rows[0]).toMatchObject({
    id: 'row-plain',
    endpoint: '/v1/chat/completions',
    model: 'public',
    upstream_model: 'private',
    status: 200,
    stream: 0,
    completion_tokens: 6,
  });
  expect(rows[0]!.prompt_tokens).toBeGreaterThan(0);
  expect(rows[0]!.duration_ms).toBeGreaterThan(0);
  expect(rows[1]).toMatchObject({ id: 'row-stream', stream: 1, status: 200, completion_tokens: 6 });
  expect(rows[2]).toMatchObject({
    id: 'row-404',
    status: 404,
    error_code: 'model_not_found',
    model: 'missing',
  });
});
