import { availableParallelism } from 'node:os';

/**
 * The generation thread count to use when none is configured: one on machines with two cores or
 * fewer, otherwise all cores but one (left for the event loop and the HTTP server). llama.cpp's
 * own default oversubscribes small machines: on a 2-vCPU box, 2 threads generated 10–45× slower
 * than 1, and node-llama-cpp's pick of 4 was 30–150× slower (issue 3).
 *
 * @example
 * defaultThreadCount(2); // 1
 * defaultThreadCount(16); // 15
 */
export function defaultThreadCount(cores: number = availableParallelism()): number {
  return cores <= 2 ? 1 : cores - 1;
}

/** libuv's own thread pool size, which Node uses unless UV_THREADPOOL_SIZE says otherwise. */
const libuvDefaultPoolThreads = 4;

/**
 * The runner's libuv thread pool size: node-llama-cpp runs every decode and sampling step as a
 * work item on this pool. With one thread, each step runs on the thread (and the core, with its
 * cache) the last one ran on; with libuv's four, the steps and the per-sequence sampling items
 * hop between threads and cores. On a 2-vCPU machine one thread streamed 27–36% more tokens a
 * second at 8 concurrent requests than four (paired runs, BENCHMARKS.md). The price: a model load
 * is a work item too, so while one loads, other models' generation waits for it. With more cores
 * the parallel sampling and the spare threads are worth more, and it stays at libuv's default.
 *
 * Taken in order: the configured size, then `UV_THREADPOOL_SIZE` from the environment, then the
 * default for the machine.
 *
 * @example
 * runnerPoolThreads(undefined, undefined, 2); // 1
 * runnerPoolThreads(undefined, undefined, 16); // 4
 * runnerPoolThreads(undefined, '8', 2); // 8
 */
export function runnerPoolThreads(
  configured: number | undefined,
  environment: string | undefined,
  cores: number = availableParallelism(),
): number {
  return configured ?? poolSizeIn(environment) ?? (cores <= 2 ? 1 : libuvDefaultPoolThreads);
}

/** The pool size this process runs with, as libuv reads UV_THREADPOOL_SIZE (at most 1,024). */
export function currentPoolThreads(environment: string | undefined = process.env.UV_THREADPOOL_SIZE): number {
  return Math.min(poolSizeIn(environment) ?? libuvDefaultPoolThreads, 1024);
}

function poolSizeIn(environment: string | undefined): number | undefined {
  const size = Number(environment);
  return environment !== undefined && Number.isInteger(size) && size > 0 ? size : undefined;
}
