import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { EngineModelStats } from '../runner/engine/index.js';
import { RunnerMetrics } from '../runner/server/runner-metrics.js';
import type { LoadReading } from './balancer.js';
import { LoadScraper, parseLoadMetrics } from './load-scraper.js';

const vllmPage = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.61
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.84
`;

/** vLLM before v0.10, which named the cache gauge after the GPU. */
const olderVllmPage = `# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="Qwen/Qwen2.5-7B-Instruct"} 6.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="Qwen/Qwen2.5-7B-Instruct"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-7B-Instruct"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="Qwen/Qwen2.5-7B-Instruct"} 0.25
`;

const llamaCppPage = `# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 10240
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 812.5
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:requests_processing Number of request processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of request deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 5
`;

/** A model as the runner's engine reports it; `change` adjusts it. */
function modelStats(change: Partial<EngineModelStats>): EngineModelStats {
  return {
    name: 'demo:small',
    loaded: true,
    running: 0,
    waiting: 0,
    parallel: 4,
    contextSize: 4096,
    loadSeconds: 0.4,
    memoryBytes: { ram: 1_000_000, vram: 0 },
    estimatedBytes: 1_000_000,
    keepAliveMs: Number.POSITIVE_INFINITY,
    unloads: 0,
    idleMs: null,
    unloadInMs: null,
    estimatedVramBytes: 0,
    processor: null,
    decodeSteps: 0,
    decodeStepSequences: 0,
    ...change,
  };
}

describe('parseLoadMetrics', () => {
  it('adds up vLLM’s queues across engines and keeps the fullest KV cache', () => {
    expect(parseLoadMetrics(vllmPage, 42)).toEqual({ waiting: 5, running: 5, cacheUsage: 0.61, at: 42 });
  });

  it('reads the cache gauge of older vLLM versions', () => {
    expect(parseLoadMetrics(olderVllmPage, 1)).toEqual({ waiting: 0, running: 6, cacheUsage: 0.25, at: 1 });
  });

  it('reads the llama.cpp server’s deferred and processing requests', () => {
    expect(parseLoadMetrics(llamaCppPage, 1)).toEqual({ waiting: 5, running: 2, cacheUsage: 0.125, at: 1 });
  });

  it('reads the page Switchyard’s runner serves, adding up its models', () => {
    const page = new RunnerMetrics().render(
      [
        modelStats({ name: 'llama:8b', running: 4, waiting: 3 }),
        modelStats({ name: 'odd "quoted" {name}', running: 1, waiting: 2 }),
      ],
      16_000_000_000,
    );
    expect(parseLoadMetrics(page, 1)).toEqual({ waiting: 5, running: 5, cacheUsage: undefined, at: 1 });
  });

  it('tolerates escaped quotes and braces in labels, timestamps, CRLF and non-finite samples', () => {
    const page = [
      '# a comment with vllm:num_requests_waiting 100',
      'vllm:num_requests_waiting{model_name="say \\"hi\\" } {",note="a\\\\b"} 2 1718000000000',
      'vllm:num_requests_waiting{model_name="nan"} NaN',
      'vllm:num_requests_waiting{model_name="inf"} +Inf',
      'vllm:num_requests_running {model_name="spaced"}\t3\r',
      'vllm:num_requests_running{model_name="cut',
      'vllm:num_requests_running',
      '',
    ].join('\n');
    expect(parseLoadMetrics(page, 1)).toEqual({ waiting: 2, running: 3, cacheUsage: undefined, at: 1 });
  });

  it('returns undefined for a page without any known load metric', () => {
    const page = '# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n';
    expect(parseLoadMetrics(page, 1)).toBeUndefined();
    expect(parseLoadMetrics('', 1)).toBeUndefined();
  });
});

describe('LoadScraper', () => {
  let server: Server | undefined;
  let scraper: LoadScraper | undefined;

  afterEach(async () => {
    scraper?.stop();
    scraper = undefined;
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    server = undefined;
  });

  /** A metrics server on a free port; `handle` answers each scrape. */
  async function serve(
    handle: (request: IncomingMessage, response: ServerResponse) => void,
  ): Promise<string> {
    server = createServer(handle);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  }

  /** Readings in the order reported; `next()` waits for the one after those already taken. */
  function readings() {
    const queue: (LoadReading | undefined)[] = [];
    const waiters: ((reading: LoadReading | undefined) => void)[] = [];
    return {
      onReading(reading: LoadReading | undefined) {
        const waiter = waiters.shift();
        if (waiter) waiter(reading);
        else queue.push(reading);
      },
      next(): Promise<LoadReading | undefined> {
        if (queue.length > 0) return Promise.resolve(queue.shift());
        return new Promise((resolve) => waiters.push(resolve));
      },
      get pending() {
        return queue.length;
      },
    };
  }

  function warnings() {
    const messages: string[] = [];
    return { messages, logger: { warn: (_: object, message: string) => messages.push(message) } };
  }

  const depthPage = (waiting: number) =>
    `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} ${waiting}\nvllm:num_requests_running{model_name="m"} 1\n`;

  it('scrapes at once on start, then follows the depth the server reports', async () => {
    let waiting = 2;
    const url = await serve((_, response) => response.end(depthPage(waiting)));
    const seen = readings();
    scraper = new LoadScraper({ url, interval: 20, timeout: 1_000, onReading: seen.onReading });
    scraper.start();
    expect(await seen.next()).toMatchObject({ waiting: 2, running: 1 });
    waiting = 7;
    let reading = await seen.next();
    // Scrapes answered before the change still report the old depth.
    while (reading?.waiting === 2) reading = await seen.next();
    expect(reading).toMatchObject({ waiting: 7, running: 1 });
  });

  it('sends the configured headers', async () => {
    let authorization: string | undefined;
    const url = await serve((request, response) => {
      authorization = request.headers.authorization;
      response.end(depthPage(0));
    });
    const seen = readings();
    scraper = new LoadScraper({
      url,
      headers: { authorization: 'Bearer metrics-token' },
      interval: 60_000,
      timeout: 1_000,
      onReading: seen.onReading,
    });
    scraper.start();
    await seen.next();
    expect(authorization).toBe('Bearer metrics-token');
  });

  it('reports undefined while scrapes fail, warning once per failure streak', async () => {
    let status = 200;
    const url = await serve((_, response) => {
      response.statusCode = status;
      response.end(status === 200 ? depthPage(1) : 'oops');
    });
    const seen = readings();
    const { messages, logger } = warnings();
    scraper = new LoadScraper({ url, interval: 10, timeout: 1_000, onReading: seen.onReading, logger });
    scraper.start();
    expect(await seen.next()).toMatchObject({ waiting: 1 });
    status = 503;
    while ((await seen.next()) !== undefined);
    expect(await seen.next()).toBeUndefined();
    expect(await seen.next()).toBeUndefined();
    expect(messages).toEqual([
      'load scrape failed: the metrics page answered 503; routing treats the deployment as unscraped until it recovers',
    ]);
    status = 200;
    while ((await seen.next()) === undefined);
    status = 500;
    while ((await seen.next()) !== undefined);
    expect(messages).toHaveLength(2);
  });

  it('reports undefined when nothing listens, and when the server is too slow', async () => {
    const closed = await serve(() => {});
    await new Promise((resolve) => server!.close(resolve));
    const refused = readings();
    scraper = new LoadScraper({
      url: closed,
      interval: 60_000,
      timeout: 1_000,
      onReading: refused.onReading,
    });
    scraper.start();
    expect(await refused.next()).toBeUndefined();
    scraper.stop();

    const url = await serve(() => {});
    const slow = readings();
    const { messages, logger } = warnings();
    scraper = new LoadScraper({ url, interval: 60_000, timeout: 50, onReading: slow.onReading, logger });
    scraper.start();
    expect(await slow.next()).toBeUndefined();
    expect(messages).toEqual([
      'load scrape failed: the metrics page could not be read; routing treats the deployment as unscraped until it recovers',
    ]);
  });

  it('never has two scrapes in flight, and stop() abandons the one in flight and ends scraping', async () => {
    let hits = 0;
    const held: ServerResponse[] = [];
    const url = await serve((_, response) => {
      hits++;
      held.push(response);
    });
    const seen = readings();
    scraper = new LoadScraper({ url, interval: 5, timeout: 5_000, onReading: seen.onReading });
    scraper.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hits).toBe(1);

    scraper.stop();
    for (const response of held) response.end(depthPage(3));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hits).toBe(1);
    expect(seen.pending).toBe(0);
  });
});
