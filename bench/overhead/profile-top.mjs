// Prints where a .cpuprofile (from BENCH_PROFILE=1) spends its time, for a first reading without
// a flame-graph viewer: the functions with the most self time, and the packages and files they
// live in, so that "our code" and "a dependency" are told apart at a glance.
//
// Run: node bench/overhead/profile-top.mjs bench/.out/switchyard-c16-<timestamp>.cpuprofile [rows]

import { readFileSync } from 'node:fs';
import path from 'node:path';

const [profilePath, rowsArgument = '25'] = process.argv.slice(2);
if (profilePath === undefined) {
  process.stderr.write('usage: node bench/overhead/profile-top.mjs <file.cpuprofile> [rows]\n');
  process.exit(2);
}
const rows = Number(rowsArgument);
const profile = JSON.parse(readFileSync(profilePath, 'utf8'));

// Samples name leaf nodes; timeDeltas[i] is the time before sample i, in microseconds.
const selfMicroseconds = new Map();
for (let index = 0; index < profile.samples.length; index++) {
  const id = profile.samples[index];
  selfMicroseconds.set(id, (selfMicroseconds.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
}
const totalMicroseconds = [...selfMicroseconds.values()].reduce((sum, value) => sum + value, 0);

/** "fastify", "src/gateway" or "(native)": where a frame's code comes from. */
function origin(url) {
  if (url === '') return '(native or V8)';
  if (url.startsWith('node:')) return 'node core';
  const file = url.replace(/^file:\/\//, '');
  const modules = file.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const parts = file.slice(modules + '/node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const dist = file.indexOf('/dist/');
  return dist === -1 ? path.basename(file) : path.dirname(file.slice(dist + 1));
}

const byFunction = new Map();
const byOrigin = new Map();
for (const node of profile.nodes) {
  const self = selfMicroseconds.get(node.id) ?? 0;
  if (self === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url === '' ? '' : `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
  const key = `${functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + self);
  const group = origin(url);
  byOrigin.set(group, (byOrigin.get(group) ?? 0) + self);
}

function print(title, entries) {
  process.stdout.write(`\n${title}\n`);
  for (const [name, microseconds] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    const share = ((microseconds / totalMicroseconds) * 100).toFixed(1).padStart(5);
    process.stdout.write(`${share}%  ${(microseconds / 1000).toFixed(0).padStart(6)} ms  ${name}\n`);
  }
}

process.stdout.write(`${profilePath}: ${(totalMicroseconds / 1e6).toFixed(2)} s sampled\n`);
print('self time by origin', byOrigin);
print('self time by function', byFunction);
