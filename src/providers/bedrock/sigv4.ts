import { createHash, createHmac } from 'node:crypto';
import type { AwsCredentials } from '../../config/types.js';

/**
 * AWS Signature Version 4 for header-signed requests, as AWS's general reference specifies it
 * ("Create a signed AWS API request"): a canonical request, hashed into a string to sign, signed
 * with a key derived from the secret, the date, the region and the service.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 *
 * @example
 * const signed = signRequest(
 *   { method: 'POST', path: '/model/m/converse', headers: { host }, payloadHash: sha256Hex(body) },
 *   credentials, { region: 'us-east-1', service: 'bedrock' }, new Date(),
 * );
 * // signed.headers: x-amz-date, (x-amz-security-token,) authorization
 */

export interface SigningRequest {
  readonly method: string;
  /**
   * The path as it goes on the wire, percent-encoded where a URL needs it. For every service but
   * S3 the canonical request encodes each segment again, so "%3A" is signed as "%253A".
   */
  readonly path: string;
  /** The query string without "?"; sorted and encoded into canonical form here. */
  readonly query?: string;
  /** The headers to sign, host among them; names in any case. x-amz-date is added here. */
  readonly headers: Readonly<Record<string, string>>;
  /** Lowercase hex SHA-256 of the body. */
  readonly payloadHash: string;
}

export interface SigningScope {
  readonly region: string;
  readonly service: string;
}

export interface SignedRequest {
  /** The headers to add to the request: x-amz-date, x-amz-security-token when there is a session token, authorization. */
  readonly headers: Readonly<Record<string, string>>;
  /** For tests and debugging a rejected signature; never log them next to the credentials. */
  readonly canonicalRequest: string;
  readonly stringToSign: string;
  readonly signature: string;
}

const algorithm = 'AWS4-HMAC-SHA256';

export function signRequest(
  request: SigningRequest,
  credentials: AwsCredentials,
  scope: SigningScope,
  now: Date,
): SignedRequest {
  const amzDate = amzDateOf(now);
  const date = amzDate.slice(0, 8);
  const added: Record<string, string> = { 'x-amz-date': amzDate };
  // A session token must be signed too, or AWS rejects temporary credentials.
  if (credentials.sessionToken !== undefined) added['x-amz-security-token'] = credentials.sessionToken;

  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries({ ...request.headers, ...added })) {
    headers.set(name.toLowerCase(), canonicalHeaderValue(value));
  }
  const names = [...headers.keys()].sort();
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    request.method.toUpperCase(),
    canonicalPath(request.path),
    canonicalQuery(request.query ?? ''),
    names.map((name) => `${name}:${headers.get(name)}\n`).join(''),
    signedHeaders,
    request.payloadHash,
  ].join('\n');

  const credentialScope = `${date}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = [algorithm, amzDate, credentialScope, sha256Hex(canonicalRequest)].join('\n');
  const signature = createHmac('sha256', cachedSigningKey(credentials, date, scope))
    .update(stringToSign, 'utf8')
    .digest('hex');
  return {
    headers: {
      ...added,
      authorization: `${algorithm} Credential=${credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    },
    canonicalRequest,
    stringToSign,
    signature,
  };
}

/**
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html#derive-signing-key
 */
export function signingKey(secretAccessKey: string, date: string, region: string, service: string): Buffer {
  const dateKey = hmac(`AWS4${secretAccessKey}`, date);
  const regionKey = hmac(dateKey, region);
  const serviceKey = hmac(regionKey, service);
  return hmac(serviceKey, 'aws4_request');
}

// The key changes once a day: deriving it (four HMACs) per request would be work done again
// for nothing. Keyed by the frozen credentials object, so a new config's credentials start afresh.
const signingKeys = new WeakMap<AwsCredentials, { scope: string; key: Buffer }>();

function cachedSigningKey(credentials: AwsCredentials, date: string, scope: SigningScope): Buffer {
  const name = `${date}/${scope.region}/${scope.service}`;
  const cached = signingKeys.get(credentials);
  if (cached?.scope === name) return cached.key;
  const key = signingKey(credentials.secretAccessKey, date, scope.region, scope.service);
  signingKeys.set(credentials, { scope: name, key });
  return key;
}

/** "20150830T123600Z": ISO 8601 basic format in UTC, without fractions. */
export function amzDateOf(now: Date): string {
  return now.toISOString().replace(/[-:]|\.\d{3}/g, '');
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * SigV4's URI encoding: every byte but the unreserved A-Z a-z 0-9 - _ . ~ as %XY, uppercase.
 * encodeURIComponent leaves ! ' ( ) * alone, so those are encoded after it.
 */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The path normalised as RFC 3986 says (empty, "." and ".." segments resolved) with each segment
 * URI-encoded once more: the canonical URI of every service but S3.
 */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(uriEncode(segment));
  }
  if (segments.length === 0) return '/';
  return `/${segments.join('/')}${path.endsWith('/') ? '/' : ''}`;
}

/** Parameters encoded and sorted by name, then value, as byte strings. */
function canonicalQuery(query: string): string {
  if (query === '') return '';
  const pairs = query
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals === -1 ? pair : pair.slice(0, equals);
      const value = equals === -1 ? '' : pair.slice(equals + 1);
      return [uriEncode(decodeURIComponent(name)), uriEncode(decodeURIComponent(value))] as const;
    });
  // Encoded pairs are ASCII, so comparing code units is comparing bytes.
  pairs.sort(([nameA, valueA], [nameB, valueB]) =>
    nameA < nameB ? -1 : nameA > nameB ? 1 : valueA < valueB ? -1 : valueA > valueB ? 1 : 0,
  );
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

/** Leading and trailing spaces trimmed, runs of spaces inside made one. */
function canonicalHeaderValue(value: string): string {
  return value.trim().replace(/ {2,}/g, ' ');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
