import { describe, expect, it } from 'vitest';
import { currentPoolThreads, defaultThreadCount, runnerPoolThreads } from './threads.js';

describe('defaultThreadCount', () => {
  it('uses one thread on two cores or fewer and leaves one core free on bigger machines', () => {
    expect(defaultThreadCount(1)).toBe(1);
    expect(defaultThreadCount(2)).toBe(1);
    expect(defaultThreadCount(4)).toBe(3);
    expect(defaultThreadCount(16)).toBe(15);
  });
});

describe('runnerPoolThreads', () => {
  it("keeps every step on one thread on two cores or fewer, and libuv's four on bigger machines", () => {
    expect(runnerPoolThreads(undefined, undefined, 1)).toBe(1);
    expect(runnerPoolThreads(undefined, undefined, 2)).toBe(1);
    expect(runnerPoolThreads(undefined, undefined, 3)).toBe(4);
    expect(runnerPoolThreads(undefined, undefined, 16)).toBe(4);
  });

  it('takes the configured size first, then UV_THREADPOOL_SIZE', () => {
    expect(runnerPoolThreads(6, '8', 2)).toBe(6);
    expect(runnerPoolThreads(undefined, '8', 2)).toBe(8);
    expect(runnerPoolThreads(undefined, '2', 16)).toBe(2);
  });

  it('ignores an environment value libuv would not take as a size', () => {
    for (const value of ['', 'four', '0', '-1', '1.5']) {
      expect(runnerPoolThreads(undefined, value, 2)).toBe(1);
    }
  });
});

describe('currentPoolThreads', () => {
  it("reads UV_THREADPOOL_SIZE as libuv does: libuv's four when unset or invalid, at most 1,024", () => {
    expect(currentPoolThreads(undefined)).toBe(4);
    expect(currentPoolThreads('zero')).toBe(4);
    expect(currentPoolThreads('1')).toBe(1);
    expect(currentPoolThreads('5000')).toBe(1024);
  });
});
