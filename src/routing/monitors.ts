import type { Logger } from '../telemetry/logger.js';
import type { Deployment } from './deployment.js';
import { HealthChecker } from './health-check.js';
import { LoadScraper } from './load-scraper.js';

/** How often load-aware models scrape their deployments' metrics pages. */
const scrapeInterval = 1_000;
const scrapeTimeout = 1_000;

/**
 * The background watchers of one config's deployments: active health checks where configured,
 * and metrics scrapes for models routed by load. They write into the deployments' live figures,
 * which choosing a deployment reads; nothing on the request path waits for them.
 */
export class DeploymentMonitors {
  readonly #stops: (() => void)[] = [];

  constructor(deployments: Iterable<Deployment>, logger: Logger) {
    for (const deployment of deployments) {
      const { config } = deployment;
      const headers = headerRecord(deployment.target.headers);
      const check = config.deployment.healthCheck;
      if (check !== undefined) {
        const checker = new HealthChecker({
          url: absolute(check.url, config.origin),
          headers,
          interval: check.interval,
          timeout: check.timeout,
          unhealthyThreshold: check.unhealthyThreshold,
          healthyThreshold: check.healthyThreshold,
          dispatcher: deployment.pool,
          logger: logger.child({ deployment: deployment.key }),
          onChange: (healthy, reason) => {
            deployment.healthy = healthy;
            deployment.healthReason = reason;
          },
        });
        this.#stops.push(() => checker.stop());
        checker.start();
      }
      if (deployment.model.routing.strategy === 'load') {
        const scraper = new LoadScraper({
          url: absolute(config.deployment.metricsUrl, config.origin),
          headers,
          interval: scrapeInterval,
          timeout: scrapeTimeout,
          dispatcher: deployment.pool,
          logger: logger.child({ deployment: deployment.key }),
          onReading: (reading) => {
            deployment.load = reading;
          },
        });
        this.#stops.push(() => scraper.stop());
        scraper.start();
      }
    }
  }

  stop(): void {
    for (const stop of this.#stops) stop();
    this.#stops.length = 0;
  }
}

/** A configured path is on the target's own origin. */
function absolute(url: string, origin: string): string {
  return url.startsWith('/') ? `${origin}${url}` : url;
}

/**
 * The target's credentials and version headers as a record, for GETs to its health and metrics
 * pages; the body's content type is left out.
 */
function headerRecord(flat: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) {
    const name = flat[index]!;
    if (name.toLowerCase() !== 'content-type') headers[name] = flat[index + 1]!;
  }
  return headers;
}
