/**
 * Summarises latency samples (any unit) by nearest-rank percentiles, the definition wrk uses, so
 * figures from both tools read alike.
 *
 * @example summarise(Float64Array.of(120, 80, 95)) // { count: 3, p50: 95, ... }
 */
export function summarise(samples) {
  const sorted = Float64Array.from(samples).sort();
  const count = sorted.length;
  if (count === 0) return { count: 0 };
  const at = (percent) => sorted[Math.min(count - 1, Math.max(0, Math.ceil((percent / 100) * count) - 1))];
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count,
    min: sorted[0],
    mean: sum / count,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: sorted[count - 1],
  };
}
