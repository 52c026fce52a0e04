import type { AwsCredentials } from './types.js';

/**
 * What a `bedrock` target needs from AWS conventions at config time: its regional endpoint, the
 * region its signatures name, and credentials from the standard environment variables.
 */

/** Bedrock's runtime endpoint in a region, where Converse and ConverseStream are served. */
export function bedrockEndpoint(region: string): string {
  return `https://bedrock-runtime.${region}.amazonaws.com`;
}

// bedrock-runtime.us-east-1.amazonaws.com, its -fips twin, the China partition's ….amazonaws.com.cn,
// and interface VPC endpoints (vpce-….bedrock-runtime.us-east-1.vpce.amazonaws.com).
const regionalHost =
  /(?:^|\.)bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$/;

/** The region an AWS Bedrock runtime host names; undefined for any other host (a proxy, a test server). */
export function regionOfEndpoint(hostname: string): string | undefined {
  return regionalHost.exec(hostname)?.[1];
}

export type CredentialsLookup =
  | { readonly found: true; readonly credentials: AwsCredentials }
  | { readonly found: false; readonly message: string };

/**
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the variables every AWS SDK
 * reads first. Only these: profiles, SSO and instance roles need an SDK's credential chain, which
 * the gateway does not carry; an operator exports their values (`aws configure export-credentials
 * --format env`) or uses a Bedrock API key. Read once, when the config is compiled: temporary
 * credentials that expire need a restart with fresh ones.
 */
export function environmentCredentials(env: NodeJS.ProcessEnv): CredentialsLookup {
  const accessKeyId = env.AWS_ACCESS_KEY_ID || undefined;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY || undefined;
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    return {
      found: true,
      credentials: Object.freeze({
        accessKeyId,
        secretAccessKey,
        sessionToken: env.AWS_SESSION_TOKEN || undefined,
      }),
    };
  }
  if (accessKeyId !== undefined || secretAccessKey !== undefined) {
    const [set, unset] =
      accessKeyId === undefined
        ? ['AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID']
        : ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
    return { found: false, message: `${set} is set but ${unset} is not; AWS credentials need both` };
  }
  return {
    found: false,
    message:
      'a bedrock target needs credentials: "api_key" (a Bedrock API key), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (with AWS_SESSION_TOKEN for temporary credentials)',
  };
}
