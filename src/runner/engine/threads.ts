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
