import { describe, expect, test } from 'vitest';
import {
  formatBytes,
  formatDuration,
  formatProgress,
  formatProgressLine,
  ProgressMeter,
  type PullProgress,
} from './progress.js';

const halfway: PullProgress = {
  phase: 'downloading',
  received: 1_230_000_000,
  total: 2_940_000_000,
  bytesPerSecond: 35_400_000,
  etaSeconds: 48.3,
};

describe('formatProgress', () => {
  test('draws percent, a bar, sizes, speed in MB/s and the ETA on one line', () => {
    expect(formatProgress(halfway, { barWidth: 20 })).toBe(
      'downloading  41% [████████░░░░░░░░░░░░]  1.23 GB / 2.94 GB  35.4 MB/s  ETA 0:49',
    );
  });

  test('shows a full bar and ETA 0:00 when done', () => {
    const done = { ...halfway, received: halfway.total!, etaSeconds: 0 };
    expect(formatProgress(done, { barWidth: 10 })).toBe(
      'downloading 100% [██████████]  2.94 GB / 2.94 GB  35.4 MB/s  ETA 0:00',
    );
  });

  test('shows bytes and speed without a bar when the size is unknown', () => {
    expect(formatProgress({ ...halfway, total: undefined, etaSeconds: undefined })).toBe(
      'downloading  1.23 GB  35.4 MB/s',
    );
  });
});

describe('formatProgressLine', () => {
  test('writes a plain sentence for logs', () => {
    expect(formatProgressLine(halfway)).toBe('downloading: 41% (1.23 GB of 2.94 GB) at 35.4 MB/s, ETA 0:49');
    expect(formatProgressLine({ ...halfway, etaSeconds: undefined, bytesPerSecond: 0 })).toBe(
      'downloading: 41% (1.23 GB of 2.94 GB) at 0.0 MB/s, ETA --:--',
    );
  });
});

describe('formatBytes and formatDuration', () => {
  test('use decimal units with three significant digits', () => {
    expect([0, 950, 1_000, 12_345_678, 123_456_789, 999_960_000].map(formatBytes)).toEqual([
      '0 B',
      '950 B',
      '1.00 kB',
      '12.3 MB',
      '123 MB',
      '1.00 GB',
    ]);
  });

  test('write minutes and seconds, and hours when needed', () => {
    expect([0, 59.2, 61, 3_600, 7_384].map(formatDuration)).toEqual([
      '0:00',
      '1:00',
      '1:01',
      '1:00:00',
      '2:03:04',
    ]);
    expect(formatDuration(undefined)).toBe('--:--');
  });
});

describe('ProgressMeter', () => {
  test('reports at most once per interval, with speed over the recent window and an ETA', () => {
    let now = 0;
    const meter = new ProgressMeter({ phase: 'downloading', total: 10_000, now: () => now, intervalMs: 200 });
    now = 100;
    expect(meter.advance(1_000)).toMatchObject({ received: 1_000, bytesPerSecond: 10_000, etaSeconds: 0.9 });
    now = 200;
    expect(meter.advance(1_000)).toBeUndefined();
    now = 400;
    expect(meter.advance(2_000)).toMatchObject({ received: 4_000, bytesPerSecond: 10_000, etaSeconds: 0.6 });
  });

  test('does not count resumed bytes toward the speed', () => {
    let now = 0;
    const meter = new ProgressMeter({ phase: 'downloading', total: 10_000, start: 8_000, now: () => now });
    now = 1_000;
    expect(meter.advance(1_000)).toMatchObject({ received: 9_000, bytesPerSecond: 1_000, etaSeconds: 1 });
  });

  test('forgets samples older than the window, so a slowdown shows', () => {
    let now = 0;
    const meter = new ProgressMeter({
      phase: 'downloading',
      total: undefined,
      now: () => now,
      windowMs: 1_000,
    });
    for (let step = 1; step <= 10; step += 1) {
      now = step * 100;
      meter.advance(10_000); // 100 kB/s for a second
    }
    for (let step = 11; step <= 30; step += 1) {
      now = step * 100;
      meter.advance(100); // then 1 kB/s for two seconds
    }
    const { bytesPerSecond, etaSeconds } = meter.snapshot();
    expect(bytesPerSecond).toBeLessThan(2_000);
    expect(etaSeconds).toBeUndefined();
  });
});
