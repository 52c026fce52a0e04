import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { HealthChecker, type HealthCheckSettings } from './health-check.js';

interface Upstream {
  readonly server: Server;
  readonly url: string;
  /** The status the next check gets. */
  status: number | 'no answer';
  /** Checks received, and the most that were in flight at once. */
  readonly seen: { requests: number; concurrent: number; maxConcurrent: number; lastHeaders: object };
  /** How long each answer is held back, ms. */
  delay: number;
}

const servers: Server[] = [];
const checkers: HealthChecker[] = [];

afterEach(async () => {
  for (const checker of checkers.splice(0)) checker.stop();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

async function startUpstream(status: number | 'no answer'): Promise<Upstream> {
  const upstream: Upstream = {
    server: createServer(),
    url: '',
    status,
    seen: { requests: 0, concurrent: 0, maxConcurrent: 0, lastHeaders: {} },
    delay: 0,
  };
  const server = upstream.server;
  server.on('request', (request, response) => {
    const { seen } = upstream;
    seen.requests++;
    seen.concurrent++;
    seen.maxConcurrent = Math.max(seen.maxConcurrent, seen.concurrent);
    seen.lastHeaders = request.headers;
    response.on('close', () => seen.concurrent--);
    const status = upstream.status;
    if (status === 'no answer') return;
    setTimeout(() => response.writeHead(status).end('{"status":"ok"}'), upstream.delay);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(upstream, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`,
  });
}

interface Change {
  readonly healthy: boolean;
  readonly reason: string;
}

/** Starts a checker whose transitions can be awaited one by one. */
function startChecker(
  settings: Omit<HealthCheckSettings, 'onChange' | 'interval' | 'timeout'> & {
    interval?: number;
    timeout?: number;
  },
) {
  const pending: Change[] = [];
  let wake: (() => void) | undefined;
  const checker = new HealthChecker({
    interval: 20,
    timeout: 2_000,
    ...settings,
    onChange: (healthy, reason) => {
      pending.push({ healthy, reason });
      wake?.();
    },
  });
  checkers.push(checker);
  checker.start();
  const nextChange = async (): Promise<Change> => {
    while (pending.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return pending.shift()!;
  };
  return { checker, nextChange };
}

describe('HealthChecker', () => {
  test('starts healthy before any check has answered', () => {
    const checker = new HealthChecker({
      url: 'http://127.0.0.1:9/health',
      interval: 1_000,
      timeout: 1_000,
      onChange: () => {},
    });
    expect(checker.healthy).toBe(true);
    expect(checker.lastReason).toBeUndefined();
  });

  test('turns unhealthy when the target answers 503, and healthy again when it answers 200', async () => {
    const upstream = await startUpstream(200);
    const { checker, nextChange } = startChecker({ url: upstream.url });
    upstream.status = 503;
    expect(await nextChange()).toEqual({ healthy: false, reason: 'HTTP 503' });
    expect(checker.healthy).toBe(false);
    expect(checker.lastReason).toBe('HTTP 503');
    upstream.status = 204;
    expect(await nextChange()).toEqual({ healthy: true, reason: 'HTTP 204' });
    expect(checker.healthy).toBe(true);
  });

  test('needs unhealthyThreshold failures in a row, the first check made at once', async () => {
    const upstream = await startUpstream(500);
    const { nextChange } = startChecker({ url: upstream.url, unhealthyThreshold: 2 });
    expect(await nextChange()).toEqual({ healthy: false, reason: 'HTTP 500' });
    expect(upstream.seen.requests).toBe(2);
  });

  test('needs healthyThreshold passes in a row to come back', async () => {
    const upstream = await startUpstream(500);
    const { nextChange } = startChecker({ url: upstream.url, unhealthyThreshold: 1, healthyThreshold: 3 });
    expect((await nextChange()).healthy).toBe(false);
    const before = upstream.seen.requests;
    upstream.status = 200;
    expect(await nextChange()).toEqual({ healthy: true, reason: 'HTTP 200' });
    expect(upstream.seen.requests - before).toBe(3);
  });

  test('sends the configured headers', async () => {
    const upstream = await startUpstream(503);
    const { nextChange } = startChecker({
      url: upstream.url,
      unhealthyThreshold: 1,
      headers: { authorization: 'Bearer health-token' },
    });
    await nextChange();
    expect(upstream.seen.lastHeaders).toMatchObject({ authorization: 'Bearer health-token' });
  });

  test('reports a closed port as connection refused', async () => {
    const upstream = await startUpstream(200);
    servers.pop();
    upstream.server.close();
    await once(upstream.server, 'close');
    const { checker, nextChange } = startChecker({ url: upstream.url });
    expect(await nextChange()).toEqual({ healthy: false, reason: 'connection refused' });
    expect(checker.lastReason).toBe('connection refused');
  });

  test('reports a target that does not answer in time as timed out', async () => {
    const upstream = await startUpstream('no answer');
    const { nextChange } = startChecker({ url: upstream.url, timeout: 50, unhealthyThreshold: 1 });
    expect(await nextChange()).toEqual({ healthy: false, reason: 'timed out after 50 ms' });
  });

  test('never overlaps checks, even when one takes longer than the interval', async () => {
    const upstream = await startUpstream(200);
    upstream.delay = 60;
    const { nextChange } = startChecker({ url: upstream.url, interval: 10, unhealthyThreshold: 3 });
    upstream.status = 503;
    await nextChange();
    expect(upstream.seen.requests).toBeGreaterThanOrEqual(3);
    expect(upstream.seen.maxConcurrent).toBe(1);
  });

  test('a listener that throws does not stop the checks', async () => {
    const upstream = await startUpstream(503);
    let calls = 0;
    let recovered: () => void = () => {};
    const done = new Promise<void>((resolve) => (recovered = resolve));
    const checker = new HealthChecker({
      url: upstream.url,
      interval: 20,
      timeout: 2_000,
      unhealthyThreshold: 1,
      onChange: (healthy) => {
        calls++;
        if (!healthy) {
          upstream.status = 200;
          throw new Error('listener bug');
        }
        recovered();
      },
    });
    checkers.push(checker);
    checker.start();
    await done;
    expect(calls).toBe(2);
  });

  test('stop ends the checks and abandons one in flight', async () => {
    const upstream = await startUpstream('no answer');
    const { checker } = startChecker({ url: upstream.url, unhealthyThreshold: 1 });
    const [, response] = await once(upstream.server, 'request');
    checker.stop();
    await once(response, 'close');
    // Several intervals with nothing sent; a failure here is never a matter of timing.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(upstream.seen.requests).toBe(1);
    expect(checker.healthy).toBe(true);
    expect(checker.lastReason).toBeUndefined();
  });
});
