export interface BackoffSettings {
  /** Upper bound of the first retry's delay, ms. */
  readonly base: number;
  /** The most any delay may be, ms. */
  readonly max: number;
}

/**
 * The delay before retry number `attempt` (1 for the first retry): exponential backoff with full
 * jitter, a random time in [0, min(max, base × 2^(attempt − 1))]. Full jitter spreads the retries
 * of many clients that failed together, so they do not come back in a wave ("Exponential Backoff
 * And Jitter", AWS Architecture Blog, 2015).
 *
 * @example
 * backoffDelay(3, { base: 100, max: 5_000 }, Math.random); // somewhere in 0..400 ms
 */
export function backoffDelay(attempt: number, settings: BackoffSettings, random: () => number): number {
  const ceiling = Math.min(settings.max, settings.base * 2 ** Math.max(0, attempt - 1));
  return random() * ceiling;
}

/**
 * How long an upstream asked us to wait before trying again, ms, or undefined when it did not say
 * (or said it in a form we do not read). An explicit `retry-after-ms` or `retry-after` wins; failing
 * those, the later of OpenAI's `x-ratelimit-reset-requests` and `x-ratelimit-reset-tokens`, as
 * the response does not say which limit it hit.
 *
 * @param headers response headers with lower-case names, as undici and node:http give them
 * @param now Date.now(), for an HTTP-date
 * @example
 * retryAfterDelay({ 'retry-after': '2' }, Date.now()); // 2000
 * retryAfterDelay({ 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' }, Date.now()); // 360000
 */
export function retryAfterDelay(
  headers: Record<string, string | string[] | undefined> | undefined,
  now: number,
): number | undefined {
  if (!headers) return undefined;
  // Sent by OpenAI and Azure OpenAI; the official SDKs read it before retry-after.
  const milliseconds = parseNumber(first(headers['retry-after-ms']));
  if (milliseconds !== undefined) return milliseconds;
  const retryAfter = first(headers['retry-after']);
  if (retryAfter !== undefined) {
    const seconds = parseNumber(retryAfter);
    if (seconds !== undefined) return seconds * 1000;
    const date = parseHttpDate(retryAfter);
    if (date !== undefined) return Math.max(0, date - now);
  }
  const requests = parseDuration(first(headers['x-ratelimit-reset-requests']));
  const tokens = parseDuration(first(headers['x-ratelimit-reset-tokens']));
  if (requests === undefined) return tokens;
  if (tokens === undefined) return requests;
  return Math.max(requests, tokens);
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A non-negative decimal. RFC 9110 §10.2.3 allows whole seconds only, but fractions are common
 * in the wild and their meaning is plain.
 */
function parseNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (!/^\d+(\.\d+)?$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/**
 * An HTTP-date in any of the three forms RFC 9110 §5.6.7 asks recipients to accept. Date.parse
 * reads all three but also guesses at nonsense ("foo 1" is a date in 2001), so a time of day is
 * required first; the asctime form carries no zone and means GMT.
 */
function parseHttpDate(value: string): number | undefined {
  if (!/\b\d{2}:\d{2}:\d{2}\b/.test(value)) return undefined;
  const withZone = /\bGMT\s*$/i.test(value) ? value : `${value} GMT`;
  const time = Date.parse(withZone);
  return Number.isNaN(time) ? undefined : time;
}

const durationUnits: Readonly<Record<string, number>> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 0.000_001,
};

/** One number and unit of a Go duration; "ms" is tried before "m" and "s". */
const durationPart = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/y;

/** A Go-style duration as OpenAI writes its reset headers: "20ms", "1s", "6m0s", "1h2m3.5s". */
function parseDuration(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  let total = 0;
  durationPart.lastIndex = 0;
  while (durationPart.lastIndex < text.length) {
    const match = durationPart.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * durationUnits[match[2]!]!;
  }
  return total;
}
