import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { singleModelConfig, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startMockUpstream();
  gateway = await startTestGateway(singleModelConfig(upstream.url));
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const body = JSON.stringify({
  model: 'test-model',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
});

it('cancels the upstream request at once when the client disconnects mid-stream', async () => {
  upstream.setBehaviour({ kind: 'stall', afterChunks: 2 });
  const controller = new AbortController();
  const response = await request(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'cancel-me' },
    body,
    signal: controller.signal,
  });
  // Wait for the first bytes so the stream is really under way, then hang up.
  for await (const _chunk of response.body) break;
  const aborted = upstream.abortedSignal();
  controller.abort();
  await aborted;
  expect(upstream.aborted).toBe(1);
  await expect.poll(() => gateway.logs.find((log) => log.id === 'cancel-me')?.status).toBe(499);
});

it('cancels the upstream request when the client gives up before the first byte', async () => {
  upstream.setBehaviour({ kind: 'hang' });
  const aborted = upstream.abortedSignal();
  const controller = new AbortController();
  const pending = request(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'cancel-early' },
    body: body.replace('"stream":true', '"stream":false'),
    signal: controller.signal,
  }).catch(() => undefined);
  await expect.poll(() => upstream.requests.length).toBeGreaterThanOrEqual(2);
  controller.abort();
  await pending;
  await aborted;
  await expect.poll(() => gateway.logs.find((log) => log.id === 'cancel-early')?.status).toBe(499);
});
