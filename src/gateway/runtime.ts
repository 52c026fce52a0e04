import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { GatewayConfig } from '../config/types.js';
import { openStore, type Store } from '../store/database.js';
import type { Logger } from '../telemetry/logger.js';
import { RequestLog } from '../telemetry/request-log.js';
import { createRequestObserver } from '../telemetry/request-observer.js';
import { buildGateway, type GatewayContext } from './server.js';
import { compileSnapshot } from './snapshot.js';

export interface RunningGateway {
  /** http://host:port the gateway listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly requestLog: RequestLog | undefined;
  /**
   * Graceful stop: refuse new requests, let those in flight (streams included) finish for up
   * to the drain timeout, then close what is left, flush the request log and close the store.
   */
  close(): Promise<void>;
}

const idleSweepInterval = 50;

/** Opens the store, compiles the config, and starts listening. */
export async function startGateway(config: GatewayConfig, logger: Logger): Promise<RunningGateway> {
  const store = await openStore(config.store.path);
  const requestLog = config.store.requestLog.enabled
    ? new RequestLog(store, config.store.requestLog, logger)
    : undefined;
  const snapshot = compileSnapshot(config);
  const context: GatewayContext = {
    snapshot,
    draining: false,
    observe: createRequestObserver(logger, requestLog),
    logger,
  };
  const app = buildGateway(context);
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (error) {
    await snapshot.pools.destroy();
    await store.close();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      context.draining = true;
      // Keep-alive connections go idle as their last answer finishes; Node closes only those
      // idle when close() is called, so sweep the rest as they free up.
      const idleSweep = setInterval(() => app.server.closeIdleConnections(), idleSweepInterval);
      const drainTimer = setTimeout(() => {
        logger.warn(
          { drain_timeout_ms: config.server.drainTimeout },
          'drain timeout reached; closing open connections',
        );
        app.server.closeAllConnections();
      }, config.server.drainTimeout);
      try {
        await app.close();
      } finally {
        clearTimeout(drainTimer);
        clearInterval(idleSweep);
      }
      await snapshot.pools.destroy();
      await requestLog?.close();
      await store.close();
    })();
    return closing;
  };

  return { url: `http://${host}:${address.port}`, app, store, requestLog, close };
}
