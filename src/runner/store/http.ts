import type { IncomingHttpHeaders } from 'node:http';
import { type Dispatcher, request } from 'undici';
import { ModelStoreError } from './errors.js';
import { redactUrl } from './pull-ref.js';

/** Enough for the hub's redirect to its CDN, with room for a mirror in front; browsers allow 20. */
export const maxRedirects = 10;

const redirectStatuses = new Set([301, 302, 303, 307, 308]);

/** One response on the way to the final one, kept for headers only the first hop carries. */
export interface ResponseHop {
  readonly url: URL;
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
}

export interface FollowedResponse {
  /** The final response; its body is unread. */
  readonly response: Dispatcher.ResponseData;
  /** Every response in order, the final one last. */
  readonly hops: readonly ResponseHop[];
}

export interface RequestPlan {
  readonly method: 'GET' | 'HEAD';
  /** Sent to every hop: Range, If-Range, Accept-Encoding … */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Credentials sent only to this origin. A redirect to another host (Hugging Face sends
   * downloads to its CDN) must not carry the user's token there: RFC 9110 §15.4 leaves it to the
   * client, and curl, browsers and undici all drop Authorization across origins.
   */
  readonly credentials?: { readonly origin: string; readonly authorization: string } | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly dispatcher?: Dispatcher | undefined;
}

/**
 * Sends a request and follows redirects by hand, so that each hop's headers can be read (the hub
 * puts the file's sha256 on its redirect, not on the CDN's answer) and credentials stay with the
 * origin they belong to.
 */
export async function requestFollowingRedirects(url: string, plan: RequestPlan): Promise<FollowedResponse> {
  const hops: ResponseHop[] = [];
  let current = new URL(url);
  for (;;) {
    const headers: Record<string, string> = { 'user-agent': 'switchyard', ...plan.headers };
    if (plan.credentials && current.origin === plan.credentials.origin) {
      headers.authorization = plan.credentials.authorization;
    }
    const response = await request(current, {
      method: plan.method,
      headers,
      signal: plan.signal ?? null,
      ...(plan.dispatcher ? { dispatcher: plan.dispatcher } : {}),
    });
    hops.push({ url: current, statusCode: response.statusCode, headers: response.headers });
    if (!redirectStatuses.has(response.statusCode)) return { response, hops };

    // Redirect bodies are small; reading them lets the connection be reused.
    await response.body.dump();
    const location = headerValue(response.headers, 'location');
    if (location === undefined) {
      throw new ModelStoreError(
        'http_error',
        `${redactUrl(url)} answered ${response.statusCode} (a redirect) without a Location header.`,
        { status: response.statusCode },
      );
    }
    if (hops.length > maxRedirects) {
      throw new ModelStoreError(
        'download_failed',
        `${redactUrl(url)} redirected more than ${maxRedirects} times; the server is misconfigured or loops.`,
        { retryable: false },
      );
    }
    const next = new URL(location, current);
    if (next.protocol !== 'https:' && next.protocol !== 'http:') {
      throw new ModelStoreError(
        'http_error',
        `${redactUrl(url)} redirected to an unsupported ${next.protocol} URL.`,
        {
          status: response.statusCode,
        },
      );
    }
    current = next;
  }
}

/**
 * The error for a final response that is not a success. `hub` tailors the advice to Hugging
 * Face, where 401 and 403 mostly mean a gated or private repository.
 */
export function httpStatusError(
  requested: string,
  final: ResponseHop,
  context: { hub: boolean; tokenSet: boolean },
): ModelStoreError {
  const status = final.statusCode;
  const where =
    final.url.origin === new URL(requested).origin
      ? redactUrl(requested)
      : `${redactUrl(requested)} (redirected to ${final.url.origin})`;
  if (status === 401 || status === 403) {
    let advice: string;
    if (!context.hub)
      advice = 'The server wants credentials; download the file yourself and pull its local path.';
    else if (context.tokenSet) {
      advice =
        'HF_TOKEN is set but was refused: check that the token has read access and that you accepted the ' +
        "model's terms on its page.";
    } else {
      advice =
        'The repository may be gated or private: set HF_TOKEN to a Hugging Face access token ' +
        "(https://huggingface.co/settings/tokens) and accept the model's terms on its page.";
    }
    return new ModelStoreError('http_error', `${where} answered ${describeStatus(status)}. ${advice}`, {
      status,
    });
  }
  if (status === 404) {
    const advice = context.hub
      ? 'Check the organisation, repository, revision and file name (they are case-sensitive).'
      : 'Check the URL.';
    return new ModelStoreError('http_error', `Nothing found at ${where} (404). ${advice}`, { status });
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  return new ModelStoreError(
    'http_error',
    `${where} answered ${describeStatus(status)}.${retryable ? ' The server may be busy; try again later.' : ''}`,
    { status, retryable },
  );
}

/** A header's single value (the last, if a server repeated it). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

/** A Content-Length style value: digits only, within the safe integers. */
export function parseLength(text: string | undefined): number | undefined {
  const trimmed = text?.trim();
  if (trimmed === undefined || !/^\d+$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isSafeInteger(value) ? value : undefined;
}

function describeStatus(status: number): string {
  const texts: Record<number, string> = {
    401: 'Unauthorized',
    403: 'Forbidden',
    408: 'Request Timeout',
    410: 'Gone',
    416: 'Range Not Satisfiable',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  const text = texts[status];
  return text === undefined ? String(status) : `${status} ${text}`;
}
