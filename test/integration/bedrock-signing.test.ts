import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signingKey } from '../../src/providers/bedrock/sigv4.js';
import { type FixtureUpstream, startFixtureUpstream } from '../support/fixture-upstream.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

/**
 * A bedrock target signing with AWS credentials, through the real gateway: what reaches the
 * vendor must carry a SigV4 signature that holds for the bytes, path and host actually sent,
 * checked here the way AWS checks it, from the received request alone.
 */

const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
let vendor: FixtureUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  vendor = await startFixtureUpstream();
  gateway = await startTestGateway(
    `
models:
  - name: claude
    targets:
      - kind: bedrock
        url: ${vendor.url}
        region: us-west-2
        model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
`,
    {
      env: {
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_SESSION_TOKEN: 'session-token',
      },
    },
  );
});

afterAll(async () => {
  await gateway?.close();
  await vendor?.close();
});

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('a bedrock target with AWS credentials', () => {
  it('sends each request signed for what goes on the wire', async () => {
    vendor.answer({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: {
        output: { message: { role: 'assistant', content: [{ text: 'Hi.' }] } },
        stopReason: 'end_turn',
        usage: { inputTokens: 3, outputTokens: 2, totalTokens: 5 },
      },
    });
    const seen = vendor.requests.length;
    const before = Date.now();
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: 'Hello' }] }),
    });
    expect(response.status).toBe(200);
    expect(
      ((await response.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message
        .content,
    ).toBe('Hi.');

    const sent = vendor.requests[seen]!;
    const header = (name: string) => sent.headers[name] as string;
    expect(sent.path).toBe('/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse');
    expect(header('host')).toBe(new URL(vendor.url).host);
    expect(header('x-amz-content-sha256')).toBe(sha256(sent.body));
    expect(header('x-amz-security-token')).toBe('session-token');
    const amzDate = header('x-amz-date');
    const signedAt = Date.parse(
      amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    expect(Math.abs(signedAt - before)).toBeLessThan(60_000);

    // As AWS verifies: rebuild the canonical request from the received request; every segment of
    // the already-encoded path is encoded again, which for "%3A" means "%253A".
    const signedHeaders = 'host;x-amz-content-sha256;x-amz-date;x-amz-security-token';
    const canonical = [
      'POST',
      sent.path.replace(/%/g, '%25'),
      '',
      ...signedHeaders.split(';').map((name) => `${name}:${header(name)}`),
      '',
      signedHeaders,
      sha256(sent.body),
    ].join('\n');
    const scope = `${amzDate.slice(0, 8)}/us-west-2/bedrock/aws4_request`;
    const signature = createHmac('sha256', signingKey(secret, amzDate.slice(0, 8), 'us-west-2', 'bedrock'))
      .update(['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n'))
      .digest('hex');
    expect(header('authorization')).toBe(
      `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    );
  });

  it('never writes the credentials to its logs', () => {
    const logs = JSON.stringify(gateway.logs);
    expect(logs).not.toContain(secret);
    expect(logs).not.toContain('session-token');
  });
});
