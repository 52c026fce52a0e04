import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'libsql';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { warmUp } from '../../src/gateway/warm-up.js';
import { capturingLogger, singleModelConfig, startTestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;
let directory: string;

beforeAll(async () => {
  upstream = await startMockUpstream();
  directory = await mkdtemp(join(tmpdir(), 'switchyard-warm-test-'));
});
afterAll(async () => {
  await upstream?.close();
  await rm(directory, { recursive: true, force: true });
});

const config = () => parseConfigText(singleModelConfig(upstream.url, { model: 'public' }), {});

it('sends its chat, streamed chat and Anthropic requests through a gateway of its own, all answered', async () => {
  const { logger, lines } = capturingLogger('debug');
  await warmUp(config(), logger);
  expect(lines.filter((line) => (line.level as number) >= 40)).toEqual([]);
  expect(lines.find((line) => line.msg === 'request path warmed up')).toBeDefined();
  // Its upstream is its own: the config's upstreams hear nothing.
  expect(upstream.requests).toHaveLength(0);
});

it('leaves no trace a client or operator could see: upstreams, request log, limits', async () => {
  const path = join(directory, 'switchyard.db');
  // One request a minute: had the warm-up been counted, the client's first request would be refused.
  const gateway = await startTestGateway(
    singleModelConfig(upstream.url, {
      model: 'public',
      top: 'limits:\n  models:\n    public: { rpm: 1 }\n',
    }),
    { storePath: path },
  );
  expect(upstream.requests).toHaveLength(0);
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'first-client-request' },
    body: JSON.stringify({ model: 'public', messages: [{ role: 'user', content: 'hello' }] }),
  });
  expect(response.status).toBe(200);
  await response.text();
  await gateway.close();
  expect(upstream.requests).toHaveLength(1);

  const database = new Sqlite(path, { readonly: true });
  const rows = database.prepare('select id from request_log').all() as { id: string }[];
  const usage = database.prepare('select model, requests from usage_daily').all();
  database.close();
  expect(rows).toEqual([{ id: 'first-client-request' }]);
  // Requests without a key are accounted under none; the warm-up's model never appears.
  expect(usage).toEqual([{ model: 'public', requests: 1 }]);
  expect(gateway.logs.filter((line) => String(line.msg).includes('warm'))).toEqual([]);
});

it('never stops a start: a warm-up that cannot run is logged and skipped', async () => {
  const { logger, lines } = capturingLogger('debug');
  const saved = process.env.TMPDIR;
  // Its upstream's socket goes in the temporary directory; one that does not exist fails it.
  process.env.TMPDIR = join(directory, 'missing');
  try {
    await warmUp(config(), logger);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  const warning = lines.find((line) => line.level === 40);
  expect(warning?.msg).toBe('warming up the request path failed; the first requests will run slower');
  expect(String((warning?.err as { message?: string })?.message)).toContain('ENOENT');
});
