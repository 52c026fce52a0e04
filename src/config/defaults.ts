import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Timeouts } from './types.js';

export const defaultHost = '127.0.0.1';
export const defaultPort = 4000;
export const defaultBodyLimit = 10 * 1024 * 1024;
export const defaultDrainTimeout = 30_000;
// Longer than common load balancers' idle timeout (60 s), so they close first and never race us.
export const defaultKeepAliveTimeout = 72_000;

export const defaultTimeouts: Timeouts = {
  connect: 10_000,
  // A long prompt on a busy model can take a minute before its first token.
  firstByte: 120_000,
  idle: 60_000,
  total: 600_000,
};

/** Where Switchyard keeps its files: $SWITCHYARD_DATA_DIR, else the XDG data directory. */
export function dataDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWITCHYARD_DATA_DIR) return env.SWITCHYARD_DATA_DIR;
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'switchyard');
}
