import { describe, expect, test } from 'vitest';
import { environmentCredentials, regionOfEndpoint } from './aws.js';
import { ConfigError, parseConfigText } from './load.js';

/** Each issue as the user reads it: "path: message". */
function linesOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((issue) =>
      issue.path ? `${issue.path}: ${issue.message}` : issue.message,
    );
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

const awsEnv = {
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};

const target = (lines: string) => `models:\n  - name: claude\n    targets:\n      - kind: bedrock\n${lines}`;

describe('a bedrock target', () => {
  test('goes to the runtime endpoint of its region, signing with the AWS credentials of the environment', () => {
    const config = parseConfigText(
      target('        region: eu-west-3\n        model: amazon.nova-pro-v1:0\n'),
      {
        ...awsEnv,
        AWS_SESSION_TOKEN: 'IQoJEXAMPLE',
      },
    );
    expect(config.models[0]!.targets[0]).toMatchObject({
      kind: 'bedrock',
      name: 'bedrock-runtime.eu-west-3.amazonaws.com',
      origin: 'https://bedrock-runtime.eu-west-3.amazonaws.com',
      basePath: '',
      region: 'eu-west-3',
      apiKey: undefined,
      awsCredentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        sessionToken: 'IQoJEXAMPLE',
      },
    });
  });

  test('with api_key uses it as a Bedrock API key, reading no AWS credentials', () => {
    const config = parseConfigText(
      target('        region: us-east-1\n        api_key: bedrock-api-key\n'),
      awsEnv,
    );
    expect(config.models[0]!.targets[0]).toMatchObject({
      apiKey: 'bedrock-api-key',
      awsCredentials: undefined,
    });
  });

  test('takes a Bedrock API key from AWS_BEARER_TOKEN_BEDROCK before AWS credentials, as AWS SDKs do', () => {
    const config = parseConfigText(target('        region: us-east-1\n'), {
      ...awsEnv,
      AWS_BEARER_TOKEN_BEDROCK: 'bedrock-api-key',
    });
    expect(config.models[0]!.targets[0]).toMatchObject({
      apiKey: 'bedrock-api-key',
      awsCredentials: undefined,
    });
  });

  test('without url needs region', () => {
    expect(linesOf(() => parseConfigText(target('        model: m\n'), awsEnv))).toEqual([
      'models[0].targets[0].region: a bedrock target needs "region" (such as "us-east-1"), or "url"',
    ]);
    expect(
      linesOf(() =>
        parseConfigText(
          'providers:\n  aws: { kind: bedrock }\nmodels:\n  - name: m\n    targets:\n      - provider: aws\n',
          awsEnv,
        ),
      ),
    ).toEqual(['providers.aws.region: a bedrock provider needs "region" (such as "us-east-1"), or "url"']);
  });

  test('a region shared by the provider serves its targets', () => {
    const config = parseConfigText(
      'providers:\n  aws: { kind: bedrock, region: ap-northeast-1 }\nmodels:\n  - name: m\n    targets:\n      - provider: aws\n',
      awsEnv,
    );
    expect(config.models[0]!.targets[0]).toMatchObject({
      name: 'aws',
      origin: 'https://bedrock-runtime.ap-northeast-1.amazonaws.com',
      region: 'ap-northeast-1',
    });
  });

  test('reads the region from an AWS url, and needs it set for any other url it signs for', () => {
    const fips = parseConfigText(
      target('        url: https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com\n'),
      awsEnv,
    );
    expect(fips.models[0]!.targets[0]!.region).toBe('us-gov-west-1');
    expect(
      linesOf(() => parseConfigText(target('        url: https://llm-proxy.internal/bedrock\n'), awsEnv)),
    ).toEqual([
      'models[0].targets[0].region: is needed to sign requests with AWS credentials, and "llm-proxy.internal" does not name one; set it, such as "us-east-1"',
    ]);
    // A Bedrock API key signs nothing, so any url will do.
    const proxied = parseConfigText(
      target('        url: https://llm-proxy.internal/bedrock\n        api_key: k\n'),
      {},
    );
    expect(proxied.models[0]!.targets[0]).toMatchObject({ basePath: '/bedrock', region: undefined });
  });

  test('without credentials says what to set', () => {
    expect(linesOf(() => parseConfigText(target('        region: us-east-1\n'), {}))).toEqual([
      'models[0].targets[0]: a bedrock target needs credentials: "api_key" (a Bedrock API key), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (with AWS_SESSION_TOKEN for temporary credentials)',
    ]);
    expect(
      linesOf(() =>
        parseConfigText(target('        region: us-east-1\n'), { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE' }),
      ),
    ).toEqual([
      'models[0].targets[0]: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; AWS credentials need both',
    ]);
  });

  test('refuses a region that is not one', () => {
    expect(linesOf(() => parseConfigText(target('        region: "evil.com/x"\n'), awsEnv))).toEqual([
      'models[0].targets[0].region: must be an AWS region such as "us-east-1"',
    ]);
  });
});

describe('regionOfEndpoint', () => {
  test.each([
    ['bedrock-runtime.us-east-1.amazonaws.com', 'us-east-1'],
    ['bedrock-runtime-fips.ca-central-1.amazonaws.com', 'ca-central-1'],
    ['bedrock-runtime.cn-north-1.amazonaws.com.cn', 'cn-north-1'],
    ['vpce-0a1b2c3d-4e5f.bedrock-runtime.eu-west-1.vpce.amazonaws.com', 'eu-west-1'],
    ['bedrock.us-east-1.amazonaws.com', undefined],
    ['bedrock-runtime.us-east-1.amazonaws.com.evil.test', undefined],
    ['127.0.0.1', undefined],
  ])('%s → %s', (host, region) => {
    expect(regionOfEndpoint(host)).toBe(region);
  });
});

describe('environmentCredentials', () => {
  test('treats empty variables as unset', () => {
    expect(environmentCredentials({ ...awsEnv, AWS_SESSION_TOKEN: '' })).toEqual({
      found: true,
      credentials: {
        ...{ accessKeyId: awsEnv.AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY },
        sessionToken: undefined,
      },
    });
    expect(environmentCredentials({ AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: 's' })).toMatchObject({
      found: false,
      message: 'AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; AWS credentials need both',
    });
  });
});
