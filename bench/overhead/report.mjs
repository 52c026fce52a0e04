// Turns the raw results of run.mjs into the Markdown section of BENCHMARKS.md. Every comparison
// is between figures from the same run, never with numbers remembered from another machine.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const startMarker = '<!-- overhead:start -->';
const endMarker = '<!-- overhead:end -->';

// Budgets for what Switchyard may add; see the "Targets" table.
const budgets = {
  cpuRatioToNginx: 3,
  addedP50Microseconds: 300,
  addedP99Microseconds: 1000,
  addedTtfbP50Microseconds: 1000,
  peakRssBytes: 150e6,
  // Issue 4: what translating between API schemas may add to passthrough Switchyard.
  translationCpuMicroseconds: 100,
  translationTtfbP50Microseconds: 1000,
};

const milliseconds = (microseconds) => (microseconds / 1000).toFixed(3);
const signedMilliseconds = (microseconds) =>
  `${microseconds >= 0 ? '+' : '−'}${milliseconds(Math.abs(microseconds))}`;
const signedMicroseconds = (microseconds) =>
  `${microseconds >= 0 ? '+' : '−'}${Math.abs(microseconds).toFixed(1)}`;
const megabytes = (bytes) => (bytes / 1e6).toFixed(1);
const dash = '—';

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const alignment = header.map((_, index) => (index === 0 ? '---' : '--:'));
  return [line(header), line(alignment), ...rows.map(line)].join('\n');
}

function findRun(target, connections) {
  return target?.nonStreaming.find((run) => run.connections === connections);
}

function nonStreamingTable(results, direct) {
  const rows = [];
  for (const target of results.targets) {
    for (const run of target.nonStreaming) {
      const base = target === direct ? undefined : findRun(direct, run.connections);
      const latency = run.latencyMicroseconds;
      rows.push([
        target.label,
        run.connections,
        Math.round(run.requestsPerSecond).toLocaleString('en-US'),
        milliseconds(latency.p50),
        milliseconds(latency.p99),
        base ? signedMilliseconds(latency.p50 - base.latencyMicroseconds.p50) : dash,
        base ? signedMilliseconds(latency.p99 - base.latencyMicroseconds.p99) : dash,
        run.proxyCpuMicrosecondsPerRequest?.toFixed(1) ?? dash,
      ]);
    }
  }
  return table(
    [
      'target',
      'connections',
      'req/s',
      'p50 ms',
      'p99 ms',
      'added p50 ms',
      'added p99 ms',
      'proxy CPU µs/req',
    ],
    rows,
  );
}

function streamingTable(results, direct) {
  const rows = results.targets.map((target) => {
    const { ttfbMicroseconds: ttfb, totalMicroseconds: total } = target.streaming;
    const base = target === direct ? undefined : direct?.streaming.ttfbMicroseconds;
    return [
      target.label,
      target.streaming.requests,
      milliseconds(ttfb.p50),
      milliseconds(ttfb.p99),
      base ? signedMilliseconds(ttfb.p50 - base.p50) : dash,
      base ? signedMilliseconds(ttfb.p99 - base.p99) : dash,
      milliseconds(total.p50),
      milliseconds(total.p99),
      target.streaming.proxyCpuMicrosecondsPerRequest?.toFixed(1) ?? dash,
    ];
  });
  return table(
    [
      'target',
      'requests',
      'TTFB p50 ms',
      'TTFB p99 ms',
      'added TTFB p50 ms',
      'added TTFB p99 ms',
      'end p50 ms',
      'end p99 ms',
      'proxy CPU µs/req',
    ],
    rows,
  );
}

function memoryTable(results) {
  const rows = results.targets
    .filter((target) => target.memory !== undefined)
    .map((target) => [
      target.label,
      megabytes(target.memory.rssBeforeBytes),
      megabytes(target.memory.rssAfterBytes),
      megabytes(target.memory.peakRssBytes),
    ]);
  return table(['proxy', 'RSS before MB', 'RSS after MB', 'peak RSS MB (VmHWM)'], rows);
}

function verdict(measured, limit) {
  return measured <= limit ? 'met' : '**not met**';
}

const notMeasured = (what) => [`not measured (${what} not in this run)`, dash];

/**
 * One row per budget per passthrough Switchyard variant; a budget whose reference was not run says
 * so. The translated variants have budgets of their own, relative to passthrough (translationRows).
 */
function targetRows(results, direct, nginx) {
  const rows = [];
  const passthrough = results.targets.filter(
    (candidate) => candidate.name.startsWith('switchyard') && candidate.translation === undefined,
  );
  for (const target of passthrough) {
    const cpu = findRun(target, 16)?.proxyCpuMicrosecondsPerRequest;
    const nginxCpu = findRun(nginx, 16)?.proxyCpuMicrosecondsPerRequest;
    if (nginxCpu === undefined) {
      rows.push([target.label, 'CPU per request at 16 connections ≤ 3× nginx', ...notMeasured('nginx')]);
    } else {
      const ratio = cpu / nginxCpu;
      rows.push([
        target.label,
        'CPU per request at 16 connections ≤ 3× nginx',
        `${cpu.toFixed(1)} µs vs ${nginxCpu.toFixed(1)} µs = ${ratio.toFixed(2)}×`,
        verdict(ratio, budgets.cpuRatioToNginx),
      ]);
    }

    const single = findRun(target, 1)?.latencyMicroseconds;
    const directSingle = findRun(direct, 1)?.latencyMicroseconds;
    const directTtfb = direct?.streaming.ttfbMicroseconds;
    if (directSingle === undefined) {
      rows.push([target.label, 'added p50 at 1 connection ≤ 0.3 ms', ...notMeasured('direct')]);
      rows.push([target.label, 'added p99 at 1 connection ≤ 1 ms', ...notMeasured('direct')]);
      rows.push([target.label, 'streaming: added TTFB p50 ≤ 1 ms', ...notMeasured('direct')]);
    } else {
      const addedP50 = single.p50 - directSingle.p50;
      const addedP99 = single.p99 - directSingle.p99;
      const addedTtfb = target.streaming.ttfbMicroseconds.p50 - directTtfb.p50;
      rows.push([
        target.label,
        'added p50 at 1 connection ≤ 0.3 ms',
        `${signedMilliseconds(addedP50)} ms`,
        verdict(addedP50, budgets.addedP50Microseconds),
      ]);
      rows.push([
        target.label,
        'added p99 at 1 connection ≤ 1 ms',
        `${signedMilliseconds(addedP99)} ms`,
        verdict(addedP99, budgets.addedP99Microseconds),
      ]);
      rows.push([
        target.label,
        'streaming: added TTFB p50 ≤ 1 ms',
        `${signedMilliseconds(addedTtfb)} ms`,
        verdict(addedTtfb, budgets.addedTtfbP50Microseconds),
      ]);
    }

    rows.push([
      target.label,
      'RSS ≤ 150 MB (peak over the run)',
      `${megabytes(target.memory.peakRssBytes)} MB`,
      verdict(target.memory.peakRssBytes, budgets.peakRssBytes),
    ]);
  }
  return rows;
}

/**
 * One row per translation budget per translated variant, each measured against passthrough
 * Switchyard (`switchyard`) in the same run: gateway CPU per request, non-streaming at the
 * connection count of the nginx CPU budget and streaming, and streaming TTFB p50.
 */
function translationRows(results, passthrough) {
  const rows = [];
  for (const target of results.targets.filter((candidate) => candidate.translation !== undefined)) {
    const cpuBudget = `CPU per request at 16 connections ≤ passthrough + ${budgets.translationCpuMicroseconds} µs`;
    const streamingCpuBudget = `streaming: CPU per request ≤ passthrough + ${budgets.translationCpuMicroseconds} µs`;
    const ttfbBudget = `streaming: TTFB p50 ≤ passthrough + ${budgets.translationTtfbP50Microseconds / 1000} ms`;
    if (passthrough === undefined) {
      for (const budget of [cpuBudget, streamingCpuBudget, ttfbBudget]) {
        rows.push([target.label, budget, ...notMeasured('switchyard')]);
      }
      continue;
    }
    const cpuRow = (budget, measured, reference) => {
      if (measured === undefined || reference === undefined) return [target.label, budget, dash, dash];
      const added = measured - reference;
      return [
        target.label,
        budget,
        `${measured.toFixed(1)} µs vs ${reference.toFixed(1)} µs = ${signedMicroseconds(added)} µs`,
        verdict(added, budgets.translationCpuMicroseconds),
      ];
    };
    rows.push(
      cpuRow(
        cpuBudget,
        findRun(target, 16)?.proxyCpuMicrosecondsPerRequest,
        findRun(passthrough, 16)?.proxyCpuMicrosecondsPerRequest,
      ),
    );
    rows.push(
      cpuRow(
        streamingCpuBudget,
        target.streaming.proxyCpuMicrosecondsPerRequest,
        passthrough.streaming.proxyCpuMicrosecondsPerRequest,
      ),
    );
    const ttfb = target.streaming.ttfbMicroseconds.p50;
    const reference = passthrough.streaming.ttfbMicroseconds.p50;
    rows.push([
      target.label,
      ttfbBudget,
      `${milliseconds(ttfb)} ms vs ${milliseconds(reference)} ms = ${signedMilliseconds(ttfb - reference)} ms`,
      verdict(ttfb - reference, budgets.translationTtfbP50Microseconds),
    ]);
  }
  return rows;
}

/** A verdict table: the budget and result columns are text, left-aligned. */
function verdictTable(rows) {
  return table(['target', 'budget', 'measured (this run)', 'result'], rows).replace(
    '| --- | --: | --: | --: |',
    '| --- | --- | --: | --- |',
  );
}

/** The section of BENCHMARKS.md for this run, markers included. */
export function renderMarkdown(results) {
  const direct = results.targets.find((target) => target.name === 'direct');
  const nginx = results.targets.find((target) => target.name === 'nginx');
  const passthrough = results.targets.find((target) => target.name === 'switchyard');
  const { machine, options } = results;
  const date = `${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`;
  const targets = targetRows(results, direct, nginx);
  const translations = translationRows(results, passthrough);
  const bodyBytes = (surface) => Buffer.byteLength(results.requestBodies[surface].nonStreaming);
  const anthropicIn = results.targets.some((target) => target.surface === 'anthropic');
  const sections = [
    startMarker,
    '## Gateway overhead',
    '',
    `Generated by \`npm run bench:overhead\` (bench/overhead/run.mjs) on ${date}; do not edit by hand.`,
    '',
    `- Machine: ${machine.cpuModel}, ${machine.cores} CPUs, ${machine.kernel}; Node ${machine.node}, ` +
      `${machine.nginx}, ${machine.wrk}.`,
    `- Pinning: load generator and mock upstream on CPU ${results.pinning.loadGeneratorAndUpstream}, ` +
      `the proxy under test alone on CPU ${results.pinning.proxy}.`,
    `- Targets: ${results.targets.map((target) => target.label).join(', ')}; each proxies to the same ` +
      'mock upstream (bench/overhead/mock-upstream.mjs, pre-serialised OpenAI and Anthropic responses).',
    `- Non-streaming: \`wrk -t1 -cN -d${options.durationSeconds}s\` per row after a ${options.warmupSeconds} s ` +
      `warm-up, POST /v1/chat/completions with a ${bodyBytes('openai')}-byte body` +
      (anthropicIn
        ? ` (POST /v1/messages with a ${bodyBytes('anthropic')}-byte body for Anthropic in)`
        : '') +
      "; latency percentiles from wrk's histogram (1 µs resolution) via a Lua `done()` hook.",
    `- Streaming: a node:http client, 1 keep-alive connection, ${options.streamRequests} sequential ` +
      `\`"stream": true\` requests after ${options.streamWarmupRequests} of warm-up; TTFB is request sent ` +
      'to first body bytes, end is request sent to the last byte.',
    '- Proxy CPU is user + system time of the proxy process tree from /proc, divided by the requests ' +
      'completed; RSS is VmRSS (VmHWM for the peak), summed over the tree. MB = 10^6 bytes.',
    '- "Added" is the target minus direct at the same connection count, so it includes the extra ' +
      'network hop a proxy cannot avoid; at 16 and 64 connections it is mostly queueing behind a ' +
      'saturated CPU, so read it together with req/s.',
    ...(translations.length === 0
      ? []
      : [
          '- Translated: "OpenAI in, Anthropic out" sends the OpenAI request to a `kind: anthropic` target ' +
            '(the mock\'s POST /v1/messages); "Anthropic in, OpenAI out" posts the same question as an ' +
            "Anthropic Messages request to Switchyard's /v1/messages, with an OpenAI-compatible target. The " +
            "mock's Anthropic answers carry the same text, stream pieces and token counts in as many writes " +
            'as its OpenAI ones; the translation budgets compare each with passthrough switchyard. CPU ' +
            `is counted in 1/${machine.clockTicksPerSecond} s ticks, so a streaming difference moves in steps of ` +
            `${(1e6 / machine.clockTicksPerSecond / (options.streamRequests + options.streamWarmupRequests)).toFixed(1)} µs.`,
        ]),
    '',
    '### Non-streaming',
    '',
    nonStreamingTable(results, direct),
    '',
    '### Streaming',
    '',
    streamingTable(results, direct),
    '',
  ];
  if (results.targets.some((target) => target.memory !== undefined)) {
    sections.push('### Memory', '', memoryTable(results), '');
  }
  if (targets.length > 0) {
    sections.push('### Targets', '', verdictTable(targets), '');
  }
  if (translations.length > 0) {
    sections.push('### Translation', '', verdictTable(translations), '');
  }
  if (results.warnings.length > 0) {
    sections.push('### Warnings', '', ...results.warnings.map((warning) => `- ${warning}`), '');
  }
  sections.push(endMarker);
  return sections.join('\n');
}

/**
 * Replaces a benchmark's section of BENCHMARKS.md (between its markers: the overhead ones by
 * default), leaving the other sections as they are; appends the section, or creates the file.
 */
export function writeBenchmarksSection(filePath, section, markers = { start: startMarker, end: endMarker }) {
  if (!existsSync(filePath)) {
    writeFileSync(
      filePath,
      '# Benchmarks\n\nResults written by the scripts under bench/. Each section is regenerated by the ' +
        'command it names; figures are comparable only within a section.\n\n' +
        `${section}\n`,
    );
    return;
  }
  const current = readFileSync(filePath, 'utf8');
  const start = current.indexOf(markers.start);
  const end = current.indexOf(markers.end);
  const next =
    start !== -1 && end > start
      ? current.slice(0, start) + section + current.slice(end + markers.end.length)
      : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(filePath, next);
}
