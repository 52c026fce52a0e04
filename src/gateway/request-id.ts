import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

// Ids travel into logs and upstream headers: accept only short, printable, unambiguous ones.
const acceptable = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The client's x-request-id when it is a sensible id, else a fresh UUID. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && acceptable.test(given) ? given : randomUUID();
}
