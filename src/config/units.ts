/** Parsers for the human units config files use: durations ("30s") and sizes ("10mb"). */

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const sizeUnits: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const sizePattern = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i;

/** "250ms", "30s", "5m", "1h", or a number of milliseconds. Returns undefined if unreadable. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = durationPattern.exec(value.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * durationUnits[match[2]!]!);
}

/** "512kb", "10mb", or a number of bytes. Returns undefined if unreadable. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = sizePattern.exec(value.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * sizeUnits[match[2]!.toLowerCase()]!);
}
