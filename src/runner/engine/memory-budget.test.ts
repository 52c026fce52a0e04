import { describe, expect, it } from 'vitest';
import { autoMemoryBudget, formatBytes } from './memory-budget.js';

const gibibyte = 1024 ** 3;

describe('autoMemoryBudget', () => {
  it('gives the loaded models three quarters of the machine’s RAM', () => {
    expect(autoMemoryBudget({ totalMemory: 16 * gibibyte, constrainedMemory: 0 })).toBe(12 * gibibyte);
  });

  it('takes three quarters of a container’s memory limit instead, when it is below the machine’s RAM', () => {
    expect(autoMemoryBudget({ totalMemory: 64 * gibibyte, constrainedMemory: 8 * gibibyte })).toBe(
      6 * gibibyte,
    );
    // cgroup v2 without a limit reads as a huge number: the machine's RAM is then the bound.
    expect(autoMemoryBudget({ totalMemory: 16 * gibibyte, constrainedMemory: 2 ** 62 })).toBe(12 * gibibyte);
  });

  it('reads this machine when given nothing', () => {
    expect(autoMemoryBudget()).toBeGreaterThan(0);
    expect(Number.isInteger(autoMemoryBudget())).toBe(true);
  });
});

describe('formatBytes', () => {
  it('writes sizes in binary units with at most one decimal, as the budget messages show them', () => {
    expect(formatBytes(512)).toBe('512 bytes');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(7.44 * 1024 ** 2)).toBe('7.4 MiB');
    expect(formatBytes(gibibyte)).toBe('1 GiB');
    expect(formatBytes(1.25 * gibibyte)).toBe('1.3 GiB');
    expect(formatBytes(3 * 1024 ** 4)).toBe('3 TiB');
  });
});
