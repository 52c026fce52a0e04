import { describe, expect, it } from 'vitest';
import type { RunningModel } from '../runner/server/running-models.js';
import { formatRunningModels } from './ps.js';

const now = Date.parse('2025-06-01T09:30:00.000Z');

/** A loaded, idle model as GET /api/ps reports it; `change` adjusts it. */
function running(change: Partial<RunningModel> = {}): RunningModel {
  return {
    name: 'demo:small',
    model: 'demo:small',
    size: 25_100_000,
    size_vram: 0,
    processor: '100% CPU',
    gpu: null,
    context_length: 2048,
    parallel: 2,
    slots_in_use: 0,
    requests_waiting: 0,
    idle_seconds: 12.4,
    keep_alive_seconds: 300,
    expires_at: '2025-06-01T09:34:47.600Z',
    load_seconds: 0.2,
    ...change,
  };
}

describe('the table `switchyard ps` prints', () => {
  it('shows each model’s size, processor, context, slots in use, waiting requests, idle time and unload time', () => {
    const text = formatRunningModels(
      [
        running(),
        running({
          name: 'llama:8b',
          size: 6_200_000_000,
          processor: '100% GPU',
          slots_in_use: 4,
          parallel: 4,
          requests_waiting: 3,
          idle_seconds: null,
          expires_at: null,
        }),
        running({
          name: 'kept:1',
          idle_seconds: 7_200,
          keep_alive_seconds: null,
          expires_at: null,
        }),
      ],
      now,
    );
    expect(text).toBe(
      [
        'NAME        SIZE     PROCESSOR  CONTEXT  SLOTS  WAITING  IDLE  UNTIL',
        'demo:small  25.1 MB  100% CPU   2048     0/2    0        12s   4 minutes from now',
        'llama:8b    6.20 GB  100% GPU   2048     4/4    3        busy  5 minutes after idle',
        'kept:1      25.1 MB  100% CPU   2048     0/2    0        2h    forever',
        '',
      ].join('\n'),
    );
  });

  it('adds the GPU’s part of each model’s size once a model has layers on a GPU', () => {
    const text = formatRunningModels(
      [
        running(),
        running({
          name: 'llama:8b',
          size: 6_200_000_000,
          size_vram: 5_900_000_000,
          processor: '100% GPU',
          gpu: 'cuda',
        }),
      ],
      now,
    );
    expect(text.split('\n').slice(0, 3)).toEqual([
      'NAME        SIZE     VRAM     PROCESSOR  CONTEXT  SLOTS  WAITING  IDLE  UNTIL',
      'demo:small  25.1 MB  0 B      100% CPU   2048     0/2    0        12s   4 minutes from now',
      'llama:8b    6.20 GB  5.90 GB  100% GPU   2048     0/2    0        12s   4 minutes from now',
    ]);
  });

  it('counts down in the largest whole unit, and says when an unload is due', () => {
    const until = (expiresAt: string) =>
      formatRunningModels([running({ expires_at: expiresAt })], now)
        .split('\n')[1]!
        .split(/ {2,}/)
        .at(-1);
    expect(until('2025-06-01T09:30:00.500Z')).toBe('less than a second from now');
    expect(until('2025-06-01T09:30:01.000Z')).toBe('1 second from now');
    expect(until('2025-06-01T10:30:00.000Z')).toBe('1 hour from now');
    expect(until('2025-06-03T09:30:00.000Z')).toBe('2 days from now');
    expect(until('2025-06-01T09:29:59.000Z')).toBe('any moment now');
  });

  it('says so when no model is loaded', () => {
    expect(formatRunningModels([], now)).toBe('No models are loaded. A model loads on its first request.\n');
  });
});
