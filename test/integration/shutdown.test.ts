import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { singleModelConfig, startTestGateway } from '../support/gateway.js';
import { type MockUpstream, startMockUpstream } from '../support/mock-upstream.js';

let upstream: MockUpstream;

beforeAll(async () => {
  upstream = await startMockUpstream({ chunkDelayMs: 60 });
});
afterAll(async () => {
  await upstream?.close();
});

const chat = (stream: boolean) =>
  JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream });

it('while draining, finishes the stream in flight and refuses new connections', async () => {
  const gateway = await startTestGateway(singleModelConfig(upstream.url));
  const response = await request(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: chat(true),
  });
  const closed = gateway.close();
  const attempt = await fetch(`${gateway.url}/healthz`).then(
    (answer) => answer.status,
    () => 'refused',
  );
  expect(attempt).toBe('refused');
  const text = await response.body.text();
  expect(text.trim().endsWith('data: [DONE]')).toBe(true);
  await closed;
});

it('closes streams still open when the drain timeout runs out', async () => {
  upstream.setBehaviour({ kind: 'stall', afterChunks: 2 });
  const gateway = await startTestGateway(
    singleModelConfig(upstream.url, { top: 'server:\n  drain_timeout: 200ms' }),
  );
  const response = await request(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: chat(true),
  });
  const started = performance.now();
  await gateway.close();
  expect(performance.now() - started).toBeLessThan(5_000);
  await expect(response.body.text()).rejects.toThrow();
  upstream.setBehaviour({ kind: 'ok' });
});
