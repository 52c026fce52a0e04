// CPU time and memory of a process and its descendants, read from /proc (Linux only). A tree,
// because nginx does its work in a worker that its master forks, and a fair comparison counts
// everything a proxy runs.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond;

/** Kernel clock ticks per second, the unit of the CPU times in /proc/<pid>/stat and /proc/stat. */
export function clockTicksPerSecond() {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return ticksPerSecond;
}

/** The fields of a stat file after the command name, from field 3 (state); undefined once gone. */
function statFields(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // exited since the directory was listed
  }
  // The command name may hold spaces and parentheses; the fields after the last ")" are fixed
  // (proc(5)), starting with field 3, state.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

function readStat(pid) {
  const fields = statFields(`/proc/${pid}/stat`);
  if (fields === undefined) return undefined;
  return {
    parentPid: Number(fields[1]),
    // utime + stime + cutime + cstime (fields 14-17): children already reaped still count.
    cpuTicks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]),
  };
}

/** The pid itself and every live descendant. */
export function processTree(rootPid) {
  const childrenOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat === undefined) continue;
    const siblings = childrenOf.get(stat.parentPid) ?? [];
    siblings.push(Number(entry));
    childrenOf.set(stat.parentPid, siblings);
  }
  const tree = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop();
    tree.push(pid);
    pending.push(...(childrenOf.get(pid) ?? []));
  }
  return tree;
}

function statusKilobytes(pid, field) {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'),
    );
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU ticks and resident memory of a process tree. Resident sizes are summed, so pages shared
 * between nginx's master and worker count twice: an upper bound, which is the safe side.
 *
 * @example const before = treeUsage(pid); ...; const after = treeUsage(pid);
 *          const cpuSeconds = (after.cpuTicks - before.cpuTicks) / clockTicksPerSecond();
 */
export function treeUsage(rootPid) {
  const pids = processTree(rootPid);
  let cpuTicks = 0;
  let rssKilobytes = 0;
  let peakRssKilobytes = 0;
  for (const pid of pids) {
    cpuTicks += readStat(pid)?.cpuTicks ?? 0;
    rssKilobytes += statusKilobytes(pid, 'VmRSS');
    peakRssKilobytes += statusKilobytes(pid, 'VmHWM');
  }
  return { pids, cpuTicks, rssBytes: rssKilobytes * 1024, peakRssBytes: peakRssKilobytes * 1024 };
}

/**
 * CPU ticks a process's threads have used (utime + stime), its main thread's apart from the
 * others': node-llama-cpp runs JS on the main thread and decodes on pool threads.
 */
export function threadTicks(pid) {
  const used = { main: 0, others: 0 };
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return used; // the process is gone
  }
  for (const task of tasks) {
    const fields = statFields(`/proc/${pid}/task/${task}/stat`);
    if (fields === undefined) continue;
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (Number(task) === pid) used.main += ticks;
    else used.others += ticks;
  }
  return used;
}

/**
 * Cumulative time of one CPU from /proc/stat, in clock ticks: busy (user, nice, system, irq,
 * softirq), steal (taken by the hypervisor) and the total including idle.
 */
export function cpuTimes(cpu) {
  const line = readFileSync('/proc/stat', 'utf8').match(new RegExp(`^cpu${cpu} (.+)$`, 'm'))?.[1];
  if (line === undefined) throw new Error(`/proc/stat has no line for CPU ${cpu}`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + steal + idle + iowait };
}
