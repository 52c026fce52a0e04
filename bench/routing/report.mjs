// Turns bench:routing's samples into figures and the "## Routing" section of BENCHMARKS.md. The
// reading under the tables is generated from the same figures, so it never claims more than
// this run measured.

import { summarise } from '../overhead/percentiles.mjs';
import { writeBenchmarksSection } from '../overhead/report.mjs';

const startMarker = '<!-- routing:start -->';
const endMarker = '<!-- routing:end -->';
const dash = '—';

const ms = (value) => (value === undefined ? dash : value.toFixed(1));
const percent = (part, whole) => (whole === 0 ? dash : `${((100 * part) / whole).toFixed(1)}%`);

/**
 * Client-side figures of one load run: latency over every request, failures included.
 * `defaultTarget` names the deployment for answers without x-switchyard-target (a direct run).
 */
export function summariseRun(samples, { defaultTarget } = {}) {
  const latency = summarise(samples.map((sample) => sample.end - sample.start));
  const ok = samples.filter((sample) => sample.status === 200);
  const attempts = samples.filter((sample) => sample.attempts !== undefined);
  const first = Math.min(...samples.map((sample) => sample.start));
  const last = Math.max(...samples.map((sample) => sample.end));
  return {
    requests: samples.length,
    requestsPerSecond: samples.length / ((last - first) / 1000),
    latency,
    errors: samples.length - ok.length,
    errorReasons: countReasons(samples),
    servedByA: ok.filter((sample) => (sample.target ?? defaultTarget) === 'a').length,
    served: ok.length,
    meanAttempts:
      attempts.length === 0
        ? undefined
        : attempts.reduce((sum, sample) => sum + sample.attempts, 0) / attempts.length,
  };
}

function countReasons(samples) {
  const counts = {};
  for (const sample of samples) {
    if (sample.status === 200) continue;
    const key = `${sample.status === 0 ? 'no response' : sample.status} ${sample.reason ?? ''}`.trim();
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * The outage run's figures, times in ms from the kill (or the revival): errors the client saw
 * after the kill, the last of them, latency in the second before and after, A's return, and a
 * per-second timeline. A sample belongs to the second it started in.
 */
export function summariseOutage(samples, { origin, killAt, reviveAt }) {
  const failed = (sample) => sample.status !== 200;
  const afterKill = samples.filter((sample) => sample.end >= killAt);
  const errorsAfterKill = afterKill.filter(failed);
  const lastEnd = (list) => list.reduce((latest, sample) => Math.max(latest, sample.end), -Infinity);
  // Answered, but only after another attempt: what the client paid for the gateway finding out.
  const retriedAfterKill = afterKill.filter((sample) => !failed(sample) && sample.attempts > 1);
  const startedIn = (from, to) => samples.filter((sample) => sample.start >= from && sample.start < to);
  const p99 = (list) => summarise(list.map((sample) => sample.end - sample.start)).p99;
  const firstBackOnA = samples
    .filter((sample) => sample.status === 200 && sample.target === 'a' && sample.start >= reviveAt)
    .reduce((earliest, sample) => Math.min(earliest, sample.end), Infinity);
  const end = Math.max(...samples.map((sample) => sample.end));
  const timeline = [];
  for (let second = 0; origin + second * 1000 < end; second++) {
    const slice = startedIn(origin + second * 1000, origin + (second + 1) * 1000);
    if (slice.length === 0) continue;
    const ok = slice.filter((sample) => !failed(sample));
    timeline.push({
      second,
      requests: slice.length,
      errors: slice.length - ok.length,
      servedByA: ok.filter((sample) => sample.target === 'a').length,
      served: ok.length,
      p99: p99(slice),
      meanAttempts: mean(slice.map((sample) => sample.attempts).filter((value) => value !== undefined)),
    });
  }
  return {
    requestsAfterKill: afterKill.length,
    errorsAfterKill: errorsAfterKill.length,
    errorReasons: countReasons(afterKill),
    lastErrorAfterKill: errorsAfterKill.length === 0 ? undefined : lastEnd(errorsAfterKill) - killAt,
    retriedAfterKill: retriedAfterKill.length,
    lastRetriedAfterKill: retriedAfterKill.length === 0 ? undefined : lastEnd(retriedAfterKill) - killAt,
    p99SecondBefore: p99(startedIn(killAt - 1000, killAt)),
    p99SecondAfter: p99(startedIn(killAt, killAt + 1000)),
    backOnAAfterRevive: firstBackOnA === Infinity ? undefined : firstBackOnA - reviveAt,
    runAfterRevive: end - reviveAt,
    timeline,
  };
}

function mean(values) {
  return values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length;
}

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const alignment = header.map((_, index) => (index === 0 ? '---' : '--:'));
  return [line(header), line(alignment), ...rows.map(line)].join('\n');
}

function strategyTable(rows) {
  return table(
    [
      'client to',
      'requests',
      'req/s',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'errors',
      'served by A',
      'mean attempts',
    ],
    rows.map(({ label, figures }) => [
      label,
      figures.requests,
      Math.round(figures.requestsPerSecond),
      ms(figures.latency.p50),
      ms(figures.latency.p90),
      ms(figures.latency.p99),
      `${figures.errors} (${percent(figures.errors, figures.requests)})`,
      percent(figures.servedByA, figures.served),
      figures.meanAttempts?.toFixed(3) ?? dash,
    ]),
  );
}

function timelineTable(outage, { killSecond, reviveSecond }) {
  return table(
    ['second', 'requests', 'errors', 'served by A', 'p99 ms', 'mean attempts'],
    outage.timeline.map((slice) => {
      const event =
        slice.second === killSecond ? ' (A killed)' : slice.second === reviveSecond ? ' (A restarted)' : '';
      return [
        `${slice.second}–${slice.second + 1} s${event}`,
        slice.requests,
        slice.errors,
        percent(slice.servedByA, slice.served),
        ms(slice.p99),
        slice.meanAttempts?.toFixed(3) ?? dash,
      ];
    }),
  );
}

function outageTable(outage) {
  const rows = [
    [
      'client-visible errors after the kill',
      `${outage.errorsAfterKill} of ${outage.requestsAfterKill} (${percent(outage.errorsAfterKill, outage.requestsAfterKill)})`,
    ],
    [
      'time to recover (kill → last client-visible error)',
      outage.lastErrorAfterKill === undefined ? 'no errors' : `${ms(outage.lastErrorAfterKill)} ms`,
    ],
    [
      'answered after a retry, after the kill (last one)',
      outage.retriedAfterKill === 0
        ? '0'
        : `${outage.retriedAfterKill} (last ${ms(outage.lastRetriedAfterKill)} ms after the kill)`,
    ],
    ['p99, second before the kill', `${ms(outage.p99SecondBefore)} ms`],
    ['p99, second after the kill', `${ms(outage.p99SecondAfter)} ms`],
    [
      'restart → A answers again',
      outage.backOnAAfterRevive === undefined
        ? `not within the run (${(outage.runAfterRevive / 1000).toFixed(1)} s)`
        : `${ms(outage.backOnAAfterRevive)} ms`,
    ],
  ];
  return table(['measure', 'this run'], rows);
}

function formatReasons(reasons) {
  const entries = Object.entries(reasons);
  if (entries.length === 0) return 'none';
  return entries.map(([reason, count]) => `${count} × \`${reason}\``).join(', ');
}

/** Sentences comparing the strategies, each drawn from the figures of this run. */
function strategyReading(results) {
  const byLabel = Object.fromEntries(results.strategies.map((row) => [row.strategy, row]));
  const lines = [];
  const roundRobin = byLabel['round-robin'];
  const latency = byLabel.latency;
  if (roundRobin !== undefined && latency !== undefined) {
    const rr = roundRobin.figures;
    const lat = latency.figures;
    lines.push(
      `- Latency-aware against round-robin: p50 ${ms(lat.latency.p50)} ms against ${ms(rr.latency.p50)} ms, ` +
        `p99 ${ms(lat.latency.p99)} ms against ${ms(rr.latency.p99)} ms; it sent ` +
        `${percent(lat.servedByA, lat.served)} of the answered requests to the healthy deployment A, ` +
        `round-robin ${percent(rr.servedByA, rr.served)}.`,
    );
  }
  for (const row of results.strategies) {
    const { figures, upstreams } = row;
    const injected = upstreams.b.errors;
    const retried = figures.meanAttempts === undefined ? dash : figures.meanAttempts.toFixed(3);
    lines.push(
      `- ${row.strategy}: B answered ${injected} of the ${upstreams.b.requests} requests it received with ` +
        `500; the client saw ${figures.errors} errors (mean attempts per request ${retried}).`,
    );
  }
  const direct = results.direct;
  if (direct !== undefined && latency !== undefined) {
    lines.push(
      `- Direct to A, without the gateway: p50 ${ms(direct.latency.p50)} ms, p99 ${ms(direct.latency.p99)} ms; ` +
        `the latency strategy's p50 is ${signed(latency.figures.latency.p50 - direct.latency.p50)} ms from it.`,
    );
  }
  return lines;
}

function signed(value) {
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(1)}`;
}

function outageReading(results) {
  const { outage, timeline } = results;
  const lines = [];
  const retried =
    outage.retriedAfterKill === 0
      ? 'none needed a second attempt'
      : `${outage.retriedAfterKill} were answered after more than one attempt, the last ` +
        `${ms(outage.lastRetriedAfterKill)} ms after the kill`;
  if (outage.errorsAfterKill === 0) {
    lines.push(
      `- After A was killed the client saw no errors in ${outage.requestsAfterKill} requests; ${retried}.`,
    );
  } else {
    lines.push(
      `- After A was killed the client saw ${outage.errorsAfterKill} errors in ${outage.requestsAfterKill} ` +
        `requests (${percent(outage.errorsAfterKill, outage.requestsAfterKill)}): ` +
        `${formatReasons(outage.errorReasons)}. The last came ${ms(outage.lastErrorAfterKill)} ms after ` +
        `the kill (time to recover). Of the answered requests, ${retried}.`,
    );
  }
  lines.push(
    `- p99 of the requests started in the second after the kill: ${ms(outage.p99SecondAfter)} ms, ` +
      `against ${ms(outage.p99SecondBefore)} ms in the second before.`,
  );
  if (outage.backOnAAfterRevive === undefined) {
    lines.push(
      `- A served no request in the ${(outage.runAfterRevive / 1000).toFixed(1)} s between its restart at ` +
        `${timeline.reviveAtSeconds} s and the end of the run.`,
    );
  } else {
    lines.push(
      `- After its restart at ${timeline.reviveAtSeconds} s, A answered its first request ` +
        `${ms(outage.backOnAAfterRevive)} ms later (by completion time).`,
    );
  }
  if (outage.gatewayLog.length > 0) {
    const entries = outage.gatewayLog.map(
      ({ afterKillMs, message }) =>
        `\`${message}\`${afterKillMs === undefined ? '' : ` at ${signed(afterKillMs)} ms from the kill`}`,
    );
    lines.push(`- The gateway logged (warn and above): ${entries.join('; ')}.`);
  }
  return lines;
}

/** The section of BENCHMARKS.md for this run, markers included. */
export function renderMarkdown(results) {
  const { machine, options, timeline } = results;
  const date = `${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`;
  const rows = [
    ...(results.direct === undefined ? [] : [{ label: 'upstream A directly', figures: results.direct }]),
    ...results.strategies.map((row) => ({ label: `switchyard, ${row.strategy}`, figures: row.figures })),
  ];
  return [
    startMarker,
    '## Routing',
    '',
    `Generated by \`${results.command}\` (bench/routing/run.mjs) on ${date}; do not edit by hand.`,
    '',
    `- Machine: ${machine.cpuModel}, ${machine.cores} CPUs, Node ${machine.node}; load average ` +
      `${machine.loadAverage} when the run started.`,
    `- Pinning: load client and both simulated upstreams on CPU ${results.pinning.loadAndUpstreams}, ` +
      `the gateway on CPU ${results.pinning.gateway}.`,
    `- Upstreams (bench/routing/upstream.mjs): non-streamed OpenAI chat completions after ` +
      `${options.baseMs} ± ${options.jitterMs} ms, from a seeded PRNG. Degraded B adds ` +
      `${options.degradedExtraMs} ms at the median (uniform ±50%) and answers ` +
      `${(100 * options.degradedErrorRate).toFixed(0)}% of requests with 500.`,
    `- Load: ${options.concurrency} concurrent clients in a closed loop over keep-alive connections ` +
      `(undici Pool); ${options.warmupRequests} unmeasured requests per row first, then the upstreams' ` +
      'random sequences are reset. Latency is over every request, failures included; "served by A" ' +
      'is the share of successful answers whose `x-switchyard-target` is `a`.',
    `- Gateway: one model over deployments \`a\` and \`b\`, \`retries: ${options.retries}\`, breaker with ` +
      `\`cooldown: ${options.breakerCooldown}\` (other breaker settings default).`,
    '',
    `### Strategies, with B degraded (${options.requests} requests per row)`,
    '',
    strategyTable(rows),
    '',
    'How to read it (generated from the figures above):',
    '',
    ...strategyReading(results),
    '',
    `### Outage: A dies at ${timeline.killAtSeconds} s and comes back at ${timeline.reviveAtSeconds} s`,
    '',
    `Strategy \`${timeline.strategy}\`, both upstreams healthy (B not degraded), health checks on ` +
      `\`/health\` every ${timeline.healthInterval} (unhealthy after ${timeline.unhealthyThreshold} failures), ` +
      `${timeline.durationSeconds} s of load. "Killed" closes A's listening socket and every open ` +
      'connection, so in-flight requests are cut off and new ones are refused.',
    '',
    outageTable(results.outage),
    '',
    timelineTable(results.outage, {
      killSecond: Math.floor(timeline.killAtSeconds),
      reviveSecond: Math.floor(timeline.reviveAtSeconds),
    }),
    '',
    'How to read it (generated from the figures above; the per-second rows count requests by the second they started in):',
    '',
    ...outageReading(results),
    '',
    endMarker,
  ].join('\n');
}

/** Writes (or replaces) the routing section of BENCHMARKS.md, between its own markers. */
export function writeRoutingSection(filePath, section) {
  writeBenchmarksSection(filePath, section, { start: startMarker, end: endMarker });
}
