import { describe, expect, test } from 'vitest';
import type { AwsCredentials } from '../../config/types.js';
import { amzDateOf, sha256Hex, signingKey, signRequest, uriEncode } from './sigv4.js';

/*
 * Known answers from AWS's documentation: the signing-key derivation example of the IAM user
 * guide, and cases of the Signature Version 4 test suite (access key AKIDEXAMPLE, its example
 * secret, region us-east-1, service "service", 2015-08-30T12:36:00Z). A 256-bit signature that
 * matches cannot match by accident, so each case pins the canonical request, the string to sign
 * and the key derivation at once.
 */

const suiteCredentials: AwsCredentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: undefined,
};
const suiteScope = { region: 'us-east-1', service: 'service' };
const suiteTime = new Date('2015-08-30T12:36:00Z');
const emptyHash = sha256Hex('');

function suiteSignature(method: string, path: string, query?: string): string {
  return signRequest(
    { method, path, query, headers: { Host: 'example.amazonaws.com' }, payloadHash: emptyHash },
    suiteCredentials,
    suiteScope,
    suiteTime,
  ).headers.authorization!;
}

const suiteAuthorization = (signature: string) =>
  `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=${signature}`;

describe('SigV4 against AWS published examples', () => {
  test('derives the documented signing key for 20120215/us-east-1/iam', () => {
    const key = signingKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20120215', 'us-east-1', 'iam');
    expect(key.toString('hex')).toBe('f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d');
  });

  test('get-vanilla: the canonical request and the signature', () => {
    const signed = signRequest(
      { method: 'GET', path: '/', headers: { Host: 'example.amazonaws.com' }, payloadHash: emptyHash },
      suiteCredentials,
      suiteScope,
      suiteTime,
    );
    expect(signed.canonicalRequest).toBe(
      `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${emptyHash}`,
    );
    expect(signed.headers).toEqual({
      'x-amz-date': '20150830T123600Z',
      authorization: suiteAuthorization('5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'),
    });
  });

  test('post-vanilla: the method is signed', () => {
    expect(suiteSignature('POST', '/')).toBe(
      suiteAuthorization('5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'),
    );
  });

  test('get-vanilla-query-order-key-case: query parameters are sorted by name', () => {
    expect(suiteSignature('GET', '/', 'Param2=value2&Param1=value1')).toBe(
      suiteAuthorization('b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500'),
    );
  });

  test('get-utf8: a path segment is encoded byte by byte in uppercase hex', () => {
    expect(suiteSignature('GET', '/ሴ')).toBe(
      suiteAuthorization('8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85'),
    );
  });
});

describe('signRequest', () => {
  const credentials: AwsCredentials = {
    accessKeyId: 'AKIDEXAMPLE',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    sessionToken: undefined,
  };
  const scope = { region: 'eu-west-1', service: 'bedrock' };
  const time = new Date('2025-03-04T05:06:07.890Z');
  const sign = (path: string, body: string, now = time, signing = credentials) =>
    signRequest(
      {
        method: 'POST',
        path,
        headers: { host: 'bedrock-runtime.eu-west-1.amazonaws.com', 'x-amz-content-sha256': sha256Hex(body) },
        payloadHash: sha256Hex(body),
      },
      signing,
      scope,
      now,
    );

  test('encodes an already-encoded path segment again, as every service but S3 wants', () => {
    const signed = sign('/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse', '{}');
    expect(signed.canonicalRequest.split('\n')[1]).toBe(
      '/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse',
    );
  });

  test('signs host, the payload hash and the time, sorted, with the scope of the day, region and service', () => {
    const signed = sign('/model/m/converse', '{"messages":[]}');
    expect(signed.canonicalRequest).toBe(
      [
        'POST',
        '/model/m/converse',
        '',
        'host:bedrock-runtime.eu-west-1.amazonaws.com',
        `x-amz-content-sha256:${sha256Hex('{"messages":[]}')}`,
        'x-amz-date:20250304T050607Z',
        '',
        'host;x-amz-content-sha256;x-amz-date',
        sha256Hex('{"messages":[]}'),
      ].join('\n'),
    );
    expect(signed.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20250304\/eu-west-1\/bedrock\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/,
    );
  });

  test('temporary credentials send and sign their session token', () => {
    const signed = sign('/model/m/converse', '{}', time, {
      ...credentials,
      sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE',
    });
    expect(signed.headers['x-amz-security-token']).toBe('IQoJb3JpZ2luX2VjEXAMPLE');
    expect(signed.canonicalRequest).toContain('\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE\n');
    expect(signed.headers.authorization).toContain(
      'SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,',
    );
  });

  test('the signature changes with the body, the time and the path', () => {
    const base = sign('/model/m/converse', '{"a":1}').signature;
    expect(sign('/model/m/converse', '{"a":2}').signature).not.toBe(base);
    expect(sign('/model/m/converse', '{"a":1}', new Date(time.getTime() + 1000)).signature).not.toBe(base);
    expect(sign('/model/m/converse-stream', '{"a":1}').signature).not.toBe(base);
    expect(sign('/model/m/converse', '{"a":1}').signature).toBe(base);
  });

  test('a signing key cached for one day is not used the next', () => {
    const today = sign('/model/m/converse', '{}');
    const tomorrow = sign('/model/m/converse', '{}', new Date('2025-03-05T05:06:07.890Z'));
    expect(tomorrow.headers.authorization).toContain('/20250305/eu-west-1/bedrock/aws4_request');
    // The same day again after another: the key is derived afresh, not left over from the other day.
    expect(sign('/model/m/converse', '{}').signature).toBe(today.signature);
  });

  test('normalises the path: empty and dot segments go, a trailing slash stays', () => {
    const path = (value: string) => sign(value, '').canonicalRequest.split('\n')[1];
    expect(path('//a/./b/../c/')).toBe('/a/c/');
    expect(path('/')).toBe('/');
  });

  test('trims header values and collapses their inner runs of spaces', () => {
    const signed = signRequest(
      { method: 'GET', path: '/', headers: { Host: 'h', 'X-Custom': '  a   b  ' }, payloadHash: emptyHash },
      credentials,
      scope,
      time,
    );
    expect(signed.canonicalRequest).toContain('\nx-custom:a b\n');
  });
});

describe('uriEncode', () => {
  test('leaves only A-Z a-z 0-9 - _ . ~ unencoded', () => {
    expect(uriEncode("a-Z_0.9~ !'()*:/")).toBe('a-Z_0.9~%20%21%27%28%29%2A%3A%2F');
  });
});

describe('amzDateOf', () => {
  test('writes ISO 8601 basic format in UTC without fractions', () => {
    expect(amzDateOf(new Date('2015-08-30T12:36:00.123Z'))).toBe('20150830T123600Z');
  });
});
