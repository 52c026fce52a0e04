import { createHash, createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { targetConfig } from '../../../test/support/target-config.js';
import type { TargetConfig } from '../../config/types.js';
import type { ChatRequest } from '../../spec/openai-chat.js';
import { bedrockAdapter, createBedrockAdapter } from './bedrock-adapter.js';
import { signingKey } from './sigv4.js';

const model = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const request: ChatRequest = { model: 'claude', messages: [{ role: 'user', content: 'Hi' }] };
const time = new Date('2025-06-01T08:09:10Z');

function prepared(overrides: Partial<TargetConfig>) {
  const config = targetConfig({
    kind: 'bedrock',
    origin: 'https://bedrock-runtime.eu-central-1.amazonaws.com',
    basePath: '',
    region: 'eu-central-1',
    ...overrides,
  });
  return { config, headers: bedrockAdapter.prepareHeaders(config) };
}

function headerMap(headers: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (let index = 0; index < headers.length; index += 2) map[headers[index]!] = headers[index + 1]!;
  return map;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('the bedrock adapter', () => {
  test('with a Bedrock API key, sends the prepared bearer headers and no signature', () => {
    const call = bedrockAdapter.chatRequest(request, prepared({ apiKey: 'bedrock-key' }), model);
    expect(call.path).toBe('/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse');
    expect(headerMap(call.headers)).toEqual({
      'content-type': 'application/json',
      authorization: 'Bearer bedrock-key',
    });
  });

  test('with AWS credentials, signs the request as it is built, for the clock it is given', () => {
    const adapter = createBedrockAdapter(() => time);
    const target = prepared({
      apiKey: undefined,
      awsCredentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        sessionToken: 'FwoGZXIvYXdzEXAMPLE',
      },
    });
    const call = adapter.chatRequest({ ...request, stream: true }, target, model);
    const body = call.body.toString();
    const headers = headerMap(call.headers);

    // The canonical request written out by hand: the path's "%3A" is encoded again as "%253A".
    const canonical = [
      'POST',
      '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/converse-stream',
      '',
      'host:bedrock-runtime.eu-central-1.amazonaws.com',
      `x-amz-content-sha256:${sha256(body)}`,
      'x-amz-date:20250601T080910Z',
      'x-amz-security-token:FwoGZXIvYXdzEXAMPLE',
      '',
      'host;x-amz-content-sha256;x-amz-date;x-amz-security-token',
      sha256(body),
    ].join('\n');
    const scope = '20250601/eu-central-1/bedrock/aws4_request';
    const signature = createHmac(
      'sha256',
      signingKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20250601', 'eu-central-1', 'bedrock'),
    )
      .update(['AWS4-HMAC-SHA256', '20250601T080910Z', scope, sha256(canonical)].join('\n'))
      .digest('hex');

    expect(call.path).toBe('/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream');
    expect(headers).toEqual({
      'content-type': 'application/json',
      host: 'bedrock-runtime.eu-central-1.amazonaws.com',
      'x-amz-content-sha256': sha256(body),
      'x-amz-date': '20250601T080910Z',
      'x-amz-security-token': 'FwoGZXIvYXdzEXAMPLE',
      authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=${signature}`,
    });
    // The prepared list is shared by every request to the target: signing must not add to it.
    expect(target.headers).toEqual(['content-type', 'application/json']);
  });

  test('signs for a host with a port as the HTTP client sends it', () => {
    const adapter = createBedrockAdapter(() => time);
    const call = adapter.chatRequest(
      request,
      prepared({
        apiKey: undefined,
        origin: 'http://127.0.0.1:4566',
        awsCredentials: { accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: undefined },
      }),
      model,
    );
    expect(headerMap(call.headers).host).toBe('127.0.0.1:4566');
    expect(headerMap(call.headers).authorization).toContain(
      'SignedHeaders=host;x-amz-content-sha256;x-amz-date,',
    );
  });

  test('reads application/vnd.amazon.eventstream as the stream', () => {
    expect(bedrockAdapter.isStreamContentType('application/vnd.amazon.eventstream')).toBe(true);
    expect(bedrockAdapter.isStreamContentType('application/json')).toBe(false);
    expect(bedrockAdapter.isStreamContentType(undefined)).toBe(false);
  });
});
