import { describe, expect, test } from 'vitest';
import { backoffDelay, retryAfterDelay } from './backoff.js';

describe('backoffDelay', () => {
  const settings = { base: 100, max: 1_000 };

  test('the ceiling doubles with each attempt and stops at max', () => {
    const highest = () => 1;
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, settings, highest))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  test('full jitter: the delay is the random share of the ceiling, down to zero', () => {
    expect(backoffDelay(3, settings, () => 0)).toBe(0);
    expect(backoffDelay(3, settings, () => 0.25)).toBe(100);
    for (let i = 0; i < 100; i++) {
      const delay = backoffDelay(4, settings, Math.random);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(800);
    }
  });

  test('an attempt far beyond the doubling range still stays at max', () => {
    expect(backoffDelay(5_000, settings, () => 1)).toBe(1_000);
  });
});

describe('retryAfterDelay', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  test.each<[string, Record<string, string>, number]>([
    ['retry-after in seconds', { 'retry-after': '2' }, 2_000],
    ['retry-after of zero', { 'retry-after': '0' }, 0],
    ['retry-after with a fraction', { 'retry-after': '1.5' }, 1_500],
    ['retry-after as an IMF-fixdate', { 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, 30_000],
    ['retry-after as an RFC 850 date', { 'retry-after': 'Wednesday, 01-Jan-25 00:01:00 GMT' }, 60_000],
    ['retry-after as an asctime date, which means GMT', { 'retry-after': 'Wed Jan  1 00:00:05 2025' }, 5_000],
    ['retry-after-ms', { 'retry-after-ms': '250' }, 250],
    ['x-ratelimit-reset-requests in seconds', { 'x-ratelimit-reset-requests': '1s' }, 1_000],
    ['x-ratelimit-reset-tokens in minutes and seconds', { 'x-ratelimit-reset-tokens': '6m0s' }, 360_000],
    ['x-ratelimit-reset-requests in milliseconds', { 'x-ratelimit-reset-requests': '20ms' }, 20],
    ['a duration with hours and a fraction', { 'x-ratelimit-reset-tokens': '1h2m3.5s' }, 3_723_500],
  ])('reads %s', (_name, headers, expected) => {
    expect(retryAfterDelay(headers, now)).toBe(expected);
  });

  test('takes the later of the two rate-limit resets', () => {
    const headers = { 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' };
    expect(retryAfterDelay(headers, now)).toBe(360_000);
    expect(retryAfterDelay({ ...headers, 'x-ratelimit-reset-requests': '7m' }, now)).toBe(420_000);
  });

  test('an explicit retry-after-ms or retry-after wins over the rate-limit resets', () => {
    const resets = { 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' };
    expect(retryAfterDelay({ ...resets, 'retry-after': '3' }, now)).toBe(3_000);
    expect(retryAfterDelay({ ...resets, 'retry-after': '3', 'retry-after-ms': '2500' }, now)).toBe(2_500);
  });

  test('a date in the past means now', () => {
    expect(retryAfterDelay({ 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }, now)).toBe(0);
  });

  test('reads the first of repeated headers', () => {
    expect(retryAfterDelay({ 'retry-after': ['4', '9'] }, now)).toBe(4_000);
  });

  test('no headers, or none that say, gives undefined', () => {
    expect(retryAfterDelay(undefined, now)).toBeUndefined();
    expect(retryAfterDelay({}, now)).toBeUndefined();
    expect(
      retryAfterDelay({ 'content-type': 'application/json', 'retry-after': undefined }, now),
    ).toBeUndefined();
  });

  test.each([
    ['retry-after', 'soon'],
    ['retry-after', '-5'],
    ['retry-after', '1e3'],
    ['retry-after', ''],
    ['retry-after', 'foo 1'],
    ['retry-after', 'Wed, 99 Foo 2025 00:00:30 GMT'],
    ['retry-after-ms', 'NaN'],
    ['x-ratelimit-reset-requests', '5'],
    ['x-ratelimit-reset-requests', '1d'],
    ['x-ratelimit-reset-tokens', '6m0sx'],
    ['x-ratelimit-reset-tokens', ' '],
  ])('ignores garbage: %s: "%s"', (name, value) => {
    expect(retryAfterDelay({ [name]: value }, now)).toBeUndefined();
  });

  test('garbage in retry-after falls through to the rate-limit resets', () => {
    expect(retryAfterDelay({ 'retry-after': 'soon', 'x-ratelimit-reset-requests': '2s' }, now)).toBe(2_000);
  });
});
