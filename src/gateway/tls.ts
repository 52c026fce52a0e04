import { X509Certificate } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import type { Server } from 'node:https';
import { dirname } from 'node:path';
import { ConfigError, readTlsFiles } from '../config/load.js';
import type { TlsFiles } from '../config/types.js';
import type { Logger } from '../telemetry/logger.js';

/** What the logs say about a certificate: enough to tell which one is serving, nothing secret. */
export function describeCertificate(cert: Buffer): Record<string, string> {
  const certificate = new X509Certificate(cert);
  return {
    subject: certificate.subject,
    valid_to: certificate.validTo,
    fingerprint256: certificate.fingerprint256,
  };
}

export interface CertificateWatcher {
  /** Stops watching; a change already waiting out its debounce is dropped. */
  close(): void;
}

/** Editors and certbot write a file in several steps; one reload after they settle. */
const debounce = 200;

/**
 * Keeps `server` serving the certificate and key in `files`: when either changes, both are read
 * again and swapped in for new connections (`setSecureContext`); connections already open keep
 * theirs. A change that does not make a usable pair (a file half written, a key that does not
 * match) is logged and the running certificate stays, until the next change fixes it.
 *
 * The directories are watched rather than the files: certbot and Kubernetes replace a file by
 * renaming or by swapping a symlink, after which a watch on the old file would see nothing.
 * Every event in them leads to a read, and only new contents to a swap.
 *
 * @example
 * const watcher = watchCertificates(app.server as https.Server, config.server.tls, pair, logger);
 * // … on shutdown
 * watcher.close();
 */
export function watchCertificates(
  server: Server,
  files: TlsFiles,
  serving: { readonly cert: Buffer; readonly key: Buffer },
  logger: Logger,
): CertificateWatcher {
  let last = serving;
  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    timer = undefined;
    let next: { readonly cert: Buffer; readonly key: Buffer };
    try {
      next = readTlsFiles(files);
    } catch (error) {
      // Never thrown on: this runs on a timer, where a throw would take the gateway down.
      const problems =
        error instanceof ConfigError ? error.issues.map((issue) => issue.message) : [String(error)];
      logger.error(
        { cert: files.cert, key: files.key, problems },
        'TLS certificate not reloaded; still serving the previous one',
      );
      return;
    }
    if (next.cert.equals(last.cert) && next.key.equals(last.key)) return;
    server.setSecureContext({ cert: next.cert, key: next.key });
    last = next;
    logger.info({ cert: files.cert, ...describeCertificate(next.cert) }, 'TLS certificate reloaded');
  };
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, debounce);
  };
  const watchers: FSWatcher[] = [...new Set([dirname(files.cert), dirname(files.key)])].map((directory) =>
    watch(directory, { persistent: false }, changed).on('error', (error) => {
      logger.error(
        { err: error, directory },
        'watching the TLS certificate failed; changes are not reloaded',
      );
    }),
  );
  return {
    close() {
      clearTimeout(timer);
      timer = undefined;
      for (const watcher of watchers) watcher.close();
    },
  };
}
