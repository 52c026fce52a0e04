/** Parsers for the human units config files use: durations ("30s") and sizes ("10mb", "8GiB"). */

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/**
 * Sizes are binary whichever way they are written: "kb" has always meant 1024 bytes here, and
 * RAM comes in powers of two, so "8gb" and "8GiB" are the same budget.
 */
const sizeUnits: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const sizePattern = /^(\d+(?:\.\d+)?)\s*(b|([kmgt])i?b)$/i;

/** "250ms", "30s", "5m", "1h", "30d", or a number of milliseconds. Returns undefined if unreadable. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = durationPattern.exec(value.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * durationUnits[match[2]!]!);
}

/** "512kb", "10mb", "8GiB", "1.5tb", or a number of bytes. Returns undefined if unreadable. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = sizePattern.exec(value.trim());
  if (!match) return undefined;
  const bytes = Math.round(Number(match[1]) * sizeUnits[(match[3] ?? match[2]!).toLowerCase()]!);
  return bytes > 0 ? bytes : undefined;
}

/**
 * The local runner's memory budget: 'auto' (the runner picks a share of the machine's RAM), a
 * size such as "8GiB" or "512mb", or a number of bytes, as a number or digits (how `serve` passes
 * it on to `switchyard runner`). Returns undefined if unreadable.
 *
 * @example parseMemoryBudget('8GiB') // 8589934592; parseMemoryBudget('auto') // 'auto'
 */
export function parseMemoryBudget(value: string | number): number | 'auto' | undefined {
  if (typeof value === 'number') return parseSize(value);
  const trimmed = value.trim();
  if (trimmed === 'auto') return 'auto';
  return /^\d+$/.test(trimmed) ? parseSize(Number(trimmed)) : parseSize(trimmed);
}

/**
 * How long an idle local model stays loaded, as Ollama's `keep_alive` reads it: a duration
 * ("5m", "30s"), a number of seconds, 0 to unload as soon as it is idle, or any negative value
 * to keep it loaded forever. Returns milliseconds (`Infinity` for forever), or undefined if
 * unreadable.
 *
 * @example parseKeepAlive('5m') // 300000; parseKeepAlive(-1) // Infinity
 */
export function parseKeepAlive(value: string | number): number | undefined {
  if (typeof value === 'string') {
    const trimmed = value.trim();
    // Ollama also accepts "-1" or "-1m" as text for forever.
    if (trimmed.startsWith('-')) return parseKeepAlive(Number.parseFloat(trimmed));
    if (/^\d+(?:\.\d+)?$/.test(trimmed)) return parseKeepAlive(Number(trimmed));
    return parseDuration(trimmed);
  }
  if (!Number.isFinite(value)) return undefined;
  return value < 0 ? Number.POSITIVE_INFINITY : Math.round(value * 1000);
}

/** The inverse of `parseKeepAlive`, for passing a keep-alive on as text: "-1" or "<n>ms". */
export function formatKeepAlive(milliseconds: number): string {
  return Number.isFinite(milliseconds) ? `${milliseconds}ms` : '-1';
}
