import type { Logger } from 'pino';
import type { RequestLog, RequestRecord } from './request-log.js';

export type RequestObserver = (record: RequestRecord) => void;

/**
 * Where each finished request goes: one log line (ids, names, status, durations, tokens — never
 * keys or bodies) and one row in the request log, queued for the next batch write.
 */
export function createRequestObserver(logger: Logger, requestLog: RequestLog | undefined): RequestObserver {
  const logs = logger.isLevelEnabled('info');
  return (record) => {
    if (logs) logger.info(record, 'request');
    requestLog?.append(record);
  };
}
