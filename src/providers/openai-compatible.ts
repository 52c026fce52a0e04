import type { IncomingHttpHeaders } from 'node:http';
import type { TargetConfig } from '../config/types.js';
import { GatewayError } from '../errors/index.js';
import type { ProxyRequestBody, Usage } from '../spec/openai.js';
import { findTopLevelValue, splice } from './json-splice.js';

/** Content-Type, the configured headers, and the key as a bearer token, as undici's flat list. */
export function openAIHeaders(config: TargetConfig): string[] {
  const headers: string[] = ['content-type', 'application/json'];
  for (const [name, value] of Object.entries(config.headers)) {
    const lower = name.toLowerCase();
    // The target's api_key is the credential; a configured header must not send a second one.
    if (lower === 'authorization' && config.apiKey !== undefined) continue;
    // Framing headers are the HTTP client's to set from the body it sends.
    if (lower === 'content-type' || lower === 'content-length' || lower === 'host') continue;
    headers.push(lower, value);
  }
  if (config.apiKey !== undefined) headers.push('authorization', `Bearer ${config.apiKey}`);
  return headers;
}

const usageRequest = Buffer.from('{"stream_options":{"include_usage":true},');

/**
 * The body to send upstream. Untouched bytes when nothing changes; otherwise the model value is
 * spliced and, when the gateway needs usage from a stream the client did not ask usage for,
 * `stream_options` is added at the front — both without re-serialising the rest.
 */
export function upstreamBody(
  raw: Buffer,
  body: ProxyRequestBody,
  upstreamModel: string,
  requestStreamUsage: boolean,
): Buffer {
  let bytes = raw;
  if (upstreamModel !== body.model) {
    const span = findTopLevelValue(bytes, 'model');
    if (span === undefined) return reserialise(body, upstreamModel, requestStreamUsage);
    bytes = splice(bytes, span, JSON.stringify(upstreamModel));
  }
  if (requestStreamUsage) {
    // Any stream_options the client sent, null included, must be merged rather than shadowed:
    // prepended, ours would lose to theirs (JSON.parse keeps the last key) and usage would go
    // unreported.
    if (body.stream_options !== undefined) return reserialise(body, upstreamModel, true);
    // The body is an object holding at least "model", so a field can go straight after its "{".
    const open = bytes.indexOf(0x7b);
    bytes = Buffer.concat([bytes.subarray(0, open), usageRequest, bytes.subarray(open + 1)]);
  }
  return bytes;
}

function reserialise(body: ProxyRequestBody, model: string, streamUsage: boolean): Buffer {
  const next: ProxyRequestBody = { ...body, model };
  if (streamUsage) next.stream_options = { ...(body.stream_options ?? {}), include_usage: true };
  return Buffer.from(JSON.stringify(next));
}

/**
 * Reads the `usage` object from a JSON response or one stream event without parsing the rest,
 * which for embeddings can be megabytes of floats. Searches from the end: usage follows the
 * content in every OpenAI-compatible server's output, and an escaped "usage" inside a string
 * (preceded by a backslash) is skipped.
 */
export function extractUsage(json: string | Buffer): Usage | undefined {
  let key = json.lastIndexOf('"usage"');
  while (key > 0 && codeAt(json, key - 1) === 0x5c) key = json.lastIndexOf('"usage"', key - 1);
  if (key === -1) return undefined;
  // Streams with include_usage carry "usage":null on every chunk: settle those without slicing.
  let position = key + 7;
  while (isSpaceOrColon(codeAt(json, position))) position++;
  if (codeAt(json, position) !== 0x7b) return undefined;
  // A usage object is a few hundred bytes; look no further than this past its key.
  const end = Math.min(json.length, key + 4096);
  const tail = typeof json === 'string' ? json.slice(key + 7, end) : json.toString('latin1', key + 7, end);
  const opening = /^\s*:\s*\{/.exec(tail);
  if (opening === null) return undefined; // "usage": null
  // Usage holds numbers and small nested objects (prompt_tokens_details); find its closing brace.
  let depth = 0;
  for (let position = opening[0].length - 1; position < tail.length; position++) {
    const char = tail.charCodeAt(position);
    if (char === 0x7b) depth++;
    else if (char === 0x7d && --depth === 0) {
      try {
        return normaliseUsage(JSON.parse(tail.slice(opening[0].length - 1, position + 1)));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function isSpaceOrColon(code: number | undefined): boolean {
  return code === 0x3a || code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

function codeAt(json: string | Buffer, position: number): number | undefined {
  return typeof json === 'string' ? json.charCodeAt(position) : json[position];
}

function normaliseUsage(value: Record<string, unknown>): Usage | undefined {
  const prompt = typeof value.prompt_tokens === 'number' ? value.prompt_tokens : undefined;
  const completion = typeof value.completion_tokens === 'number' ? value.completion_tokens : 0;
  if (prompt === undefined) return undefined;
  const total = typeof value.total_tokens === 'number' ? value.total_tokens : prompt + completion;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
}

interface UpstreamErrorEnvelope {
  error: { message?: unknown; type?: unknown; param?: unknown; code?: unknown };
}

function readEnvelope(text: string): UpstreamErrorEnvelope['error'] | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<UpstreamErrorEnvelope> | null;
    if (parsed && typeof parsed.error === 'object' && parsed.error !== null) return parsed.error;
    // Some servers (TGI, older vLLM) answer {"error": "text"} or {"message": "text"}.
    if (parsed && typeof parsed.error === 'string') return { message: parsed.error };
    if (parsed && typeof (parsed as { message?: unknown }).message === 'string') {
      return { message: (parsed as { message: string }).message };
    }
  } catch {}
  return undefined;
}

const passedHeaders = ['retry-after', 'retry-after-ms'] as const;

/** Turns an upstream's non-2xx answer into the catalogue error the client should see. */
export function upstreamFailure(
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  targetName: string,
): GatewayError {
  const envelope = readEnvelope(body);
  const upstreamMessage =
    typeof envelope?.message === 'string' && envelope.message !== ''
      ? envelope.message
      : body.trim().slice(0, 500) || `HTTP ${status}`;
  const upstream = {
    type: typeof envelope?.type === 'string' ? envelope.type : undefined,
    code: typeof envelope?.code === 'string' ? envelope.code : undefined,
  };
  const param = typeof envelope?.param === 'string' ? envelope.param : null;

  if (status === 401 || status === 403) {
    // The upstream's message may quote our credential; the client must never see it.
    return new GatewayError('upstream_auth_failed', undefined, {
      cause: `upstream ${targetName} answered ${status}`,
    });
  }
  if (status === 429) {
    const retry: Record<string, string> = {};
    for (const name of passedHeaders) {
      const value = headers[name];
      if (typeof value === 'string') retry[name] = value;
    }
    return new GatewayError(
      'upstream_rate_limited',
      `Upstream "${targetName}" is rate limiting: ${upstreamMessage}`,
      {
        headers: retry,
        upstream,
      },
    );
  }
  if (status >= 400 && status < 500) {
    return new GatewayError('upstream_rejected', upstreamMessage, { status, param, upstream });
  }
  return new GatewayError(
    'upstream_error',
    `Upstream "${targetName}" answered ${status}: ${upstreamMessage}`,
  );
}
