import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { defaultTimeouts } from './defaults.js';
import {
  bindLocalTargets,
  ConfigError,
  type ConfigIssue,
  configFromEnvironment,
  hasLocalTargets,
  loadConfigFile,
  parseConfigText,
} from './load.js';

/** The issues of the ConfigError that `run` throws; fails the test if it throws anything else. */
function issuesOf(run: () => unknown): ConfigIssue[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  throw new Error('expected a ConfigError, but the config was accepted');
}

/** Each issue as the user reads it: "path: message". */
function linesOf(run: () => unknown): string[] {
  return issuesOf(run).map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message));
}

const noEnv = {};

const fullConfig = `
server:
  host: 0.0.0.0
  port: 8080
  body_limit: 10mb
  drain_timeout: 5s
log:
  level: debug
store:
  path: /var/lib/switchyard/db.sqlite
  request_log:
    flush_interval: 250ms
providers:
  openai:
    kind: openai-compatible
    url: https://api.openai.com/v1/
    api_key: sk-provider
    headers:
      OpenAI-Organization: org-1
    timeouts:
      connect: 2s
      first_byte: 30s
  local:
    kind: openai-compatible
    url: http://127.0.0.1:8000/v1
models:
  - name: gpt-4o
    targets:
      - provider: openai
        timeouts:
          first_byte: 500ms
          total: 5m
        headers:
          X-Extra: "1"
  - name: local/*
    owned_by: me
    targets:
      - provider: local
        model: qwen
        max_connections: 8
        stream_usage: false
  - name: direct
    targets:
      - url: http://10.0.0.5:9000/api/v1
        api_key: ""
`;

describe('parseConfigText', () => {
  test('compiles a valid file with defaults filled in and provider references resolved', () => {
    const config = parseConfigText(fullConfig, noEnv);
    expect(config.source).toBe('file');
    expect(config.server).toEqual({
      host: '0.0.0.0',
      port: 8080,
      bodyLimit: 10 * 1024 * 1024,
      drainTimeout: 5_000,
      keepAliveTimeout: 72_000,
    });
    expect(config.log.level).toBe('debug');
    expect(config.store).toEqual({
      path: '/var/lib/switchyard/db.sqlite',
      requestLog: { enabled: true, flushInterval: 250, batchSize: 500 },
    });
    expect(config.models.map((model) => model.name)).toEqual(['gpt-4o', 'local/*', 'direct']);

    const [gpt, local, direct] = config.models;
    expect(gpt!.ownedBy).toBe('openai');
    expect(gpt!.targets[0]).toMatchObject({
      name: 'openai',
      kind: 'openai-compatible',
      origin: 'https://api.openai.com',
      basePath: '/v1',
      apiKey: 'sk-provider',
      model: undefined,
      headers: { 'OpenAI-Organization': 'org-1', 'X-Extra': '1' },
      maxConnections: undefined,
      streamUsage: true,
    });
    expect(local!.ownedBy).toBe('me');
    expect(local!.targets[0]).toMatchObject({
      name: 'local',
      origin: 'http://127.0.0.1:8000',
      apiKey: undefined,
      model: 'qwen',
      maxConnections: 8,
      streamUsage: false,
    });
    // A target given by URL is named for its host; an empty api_key means none.
    expect(direct!.targets[0]).toMatchObject({
      name: '10.0.0.5:9000',
      origin: 'http://10.0.0.5:9000',
      basePath: '/api/v1',
      apiKey: undefined,
    });
    expect(direct!.ownedBy).toBe('10.0.0.5:9000');
  });

  test('merges timeouts field by field: target over provider over default', () => {
    const config = parseConfigText(fullConfig, noEnv);
    expect(config.models[0]!.targets[0]!.timeouts).toEqual({
      connect: 2_000, // provider
      firstByte: 500, // target
      idle: defaultTimeouts.idle, // default
      total: 300_000, // target
    });
    expect(config.models[1]!.targets[0]!.timeouts).toEqual(defaultTimeouts);
  });

  test('reads durations and sizes written with units or as plain numbers', () => {
    const config = parseConfigText(
      `server:
  body_limit: 512kb
  drain_timeout: 1.5s
  keep_alive_timeout: 1500
store:
  request_log: { flush_interval: 2m }
`,
      noEnv,
    );
    expect(config.server.bodyLimit).toBe(512 * 1024);
    expect(config.server.drainTimeout).toBe(1_500);
    expect(config.server.keepAliveTimeout).toBe(1_500);
    expect(config.store.requestLog.flushInterval).toBe(120_000);
  });

  test('an empty file is a valid config with no models', () => {
    const config = parseConfigText('', { SWITCHYARD_DATA_DIR: '/data' });
    expect(config.models).toEqual([]);
    expect(config.server.host).toBe('127.0.0.1');
    expect(config.server.port).toBe(4000);
    expect(config.server.bodyLimit).toBe(10 * 1024 * 1024);
    expect(config.store.path).toBe(join('/data', 'switchyard.db'));
    expect(config.log.level).toBe('info');
  });

  test('the compiled config is frozen all the way down', () => {
    const config = parseConfigText(fullConfig, noEnv);
    const unfrozen: string[] = [];
    const visit = (value: unknown, path: string) => {
      if (value === null || typeof value !== 'object') return;
      if (!Object.isFrozen(value)) unfrozen.push(path || '(root)');
      for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`);
    };
    visit(config, '');
    expect(unfrozen).toEqual([]);
    expect(() => {
      (config.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.models[0]!.targets[0]!.headers as Record<string, string>)['x-injected'] = 'yes';
    }).toThrow(TypeError);
  });
});

describe('environment interpolation', () => {
  const target = (url: string, key: string) =>
    `models:\n  - name: m\n    targets:\n      - url: ${url}\n        api_key: ${key}\n`;

  test('replaces ${VAR} with the variable and ${VAR:-default} with the default when unset or empty', () => {
    const env = { HOST: 'llm.internal', KEY: 'sk-env', EMPTY: '' };
    const config = parseConfigText(target('"http://${HOST}:${PORT:-8000}/v1"', '"${KEY}-${EMPTY:-x}"'), env);
    expect(config.models[0]!.targets[0]).toMatchObject({
      origin: 'http://llm.internal:8000',
      apiKey: 'sk-env-x',
    });
  });

  test('a set variable wins over the default', () => {
    const config = parseConfigText(target('"http://h:${PORT:-8000}/v1"', 'k'), { PORT: '9999' });
    expect(config.models[0]!.targets[0]!.origin).toBe('http://h:9999');
  });

  test('"$${" writes a literal "${" and is not interpolated', () => {
    const config = parseConfigText(target('http://h/v1', '"pa$$${NOT_A_VAR}$$word"'), noEnv);
    expect(config.models[0]!.targets[0]!.apiKey).toBe('pa$${NOT_A_VAR}$$word');
  });

  test('an unset variable is an error that names the path and the variable', () => {
    const lines = linesOf(() => parseConfigText(target('http://h/v1', '${OPENAI_KEY}'), noEnv));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^models\[0\]\.targets\[0\]\.api_key: environment variable OPENAI_KEY is not set/,
    );
    expect(lines[0]).toContain('${OPENAI_KEY:-default}');
  });

  test('every unset variable in the file is reported at once', () => {
    const issues = issuesOf(() => parseConfigText(target('"http://${HOST}/v1"', '${A}${B}'), noEnv));
    expect(issues.map((issue) => issue.path)).toEqual([
      'models[0].targets[0].url',
      'models[0].targets[0].api_key',
    ]);
    expect(issues[1]!.message).toContain('A, B');
  });
});

describe('validation messages name the field', () => {
  test('an unknown key is rejected with its full path', () => {
    const lines = linesOf(() =>
      parseConfigText('models:\n  - name: m\n    targets:\n      - urll: http://h/v1\n', noEnv),
    );
    expect(lines).toContain('models[0].targets[0].urll: unknown key; remove it or check its spelling');
  });

  test('unknown keys are rejected at every level, the top included', () => {
    const paths = issuesOf(() =>
      parseConfigText('serverr: {}\nserver: { prot: 1 }\nstore: { request_log: { size: 1 } }\n', noEnv),
    ).map((issue) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['serverr', 'server.prot', 'store.request_log.size']));
  });

  test('a bad URL is reported at models[i].targets[j].url', () => {
    const text = `models:
  - { name: a, targets: [{ url: "http://a/v1" }] }
  - { name: b, targets: [{ url: "http://b/v1" }] }
  - { name: c, targets: [{ url: "ftp://c/v1" }] }
`;
    const lines = linesOf(() => parseConfigText(text, noEnv));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^models\[2\]\.targets\[0\]\.url: must be an http\(s\) URL/);
  });

  test('a URL with a query string is refused, since paths are appended to it', () => {
    const lines = linesOf(() =>
      parseConfigText('models: [{ name: a, targets: [{ url: "http://a/v1?x=1" }] }]', noEnv),
    );
    expect(lines[0]).toMatch(/^models\[0\]\.targets\[0\]\.url: must be an http\(s\) URL without query/);
  });

  test('a value of the wrong type says what it must be, a missing one that it is required', () => {
    const lines = linesOf(() =>
      parseConfigText('server: { port: "eighty" }\nmodels: [{ name: m }]\n', noEnv),
    );
    expect(lines).toContain('server.port: must be a number');
    expect(lines).toContain('models[0].targets: is required (array)');
  });

  test('a duplicate model name points at the first definition', () => {
    const text = `models:
  - { name: same, targets: [{ url: "http://a/v1" }] }
  - { name: other, targets: [{ url: "http://a/v1" }] }
  - { name: same, targets: [{ url: "http://b/v1" }] }
`;
    const lines = linesOf(() => parseConfigText(text, noEnv));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^models\[2\]\.name: "same" is already defined at models\[0\]/);
  });

  test('an unknown provider reference lists the providers that are defined', () => {
    const text = `providers:
  openai: { kind: openai-compatible, url: "https://api.openai.com/v1" }
  groq: { kind: openai-compatible, url: "https://api.groq.com/openai/v1" }
models:
  - { name: m, targets: [{ provider: openia }] }
`;
    const lines = linesOf(() => parseConfigText(text, noEnv));
    expect(lines).toEqual([
      'models[0].targets[0].provider: no provider named "openia"; defined providers: openai, groq',
    ]);
  });

  test('a provider reference with no providers section says to define one', () => {
    const lines = linesOf(() => parseConfigText('models: [{ name: m, targets: [{ provider: x }] }]', noEnv));
    expect(lines[0]).toContain('define it under "providers"');
  });

  test('a target needs a provider or a URL, not both and not neither', () => {
    const text = `providers:
  p: { kind: openai-compatible, url: "http://p/v1" }
models:
  - { name: both, targets: [{ provider: p, url: "http://q/v1" }] }
  - { name: neither, targets: [{ model: x }] }
`;
    const lines = linesOf(() => parseConfigText(text, noEnv));
    expect(lines).toEqual([
      'models[0].targets[0].url: give "provider" or "url", not both',
      'models[1].targets[0]: needs either "provider" (a name under providers) or "url"',
    ]);
  });

  test('model names may hold "*" only at the end, and no spaces', () => {
    const text = `models:
  - { name: "a*b", targets: [{ url: "http://a/v1" }] }
  - { name: "a b", targets: [{ url: "http://a/v1" }] }
  - { name: "openai/*", targets: [{ url: "http://a/v1" }] }
`;
    const paths = issuesOf(() => parseConfigText(text, noEnv)).map((issue) => issue.path);
    expect(paths).toEqual(['models[0].name', 'models[1].name']);
  });

  test('an unreadable duration or size explains the expected form', () => {
    const lines = linesOf(() =>
      parseConfigText('server: { drain_timeout: 5 years, body_limit: lots }', noEnv),
    );
    expect(lines).toContain('server.drain_timeout: must be a duration such as "500ms", "30s" or "5m"');
    expect(lines).toContain('server.body_limit: must be a size such as "512kb" or "10mb"');
  });

  test('an invalid provider name says which names are allowed', () => {
    const lines = linesOf(() =>
      parseConfigText(
        'providers:\n  "my provider": { kind: openai-compatible, url: "http://p/v1" }\n',
        noEnv,
      ),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^providers\.my provider: is not a valid provider name; use letters, digits/);
  });

  test('an unknown provider kind lists the kinds there are', () => {
    const lines = linesOf(() =>
      parseConfigText('providers:\n  p: { kind: grpc, url: "http://p/v1" }\n', noEnv),
    );
    expect(lines).toEqual([
      'providers.p.kind: must be one of: "openai-compatible", "azure-openai", "anthropic", "gemini", "ollama", "bedrock"',
    ]);
  });

  test('invalid YAML is a syntax error that gives the line', () => {
    const lines = linesOf(() => parseConfigText('server:\n  port: 1\nmodels: [\n  { name: a\n', noEnv));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^YAML syntax error at line \d+: /);
    expect(lines[0]).not.toContain('line ?');
  });

  test('the syntax error line is the line of the mistake', () => {
    const lines = linesOf(() => parseConfigText('server:\n  port: 1\nserver:\n  port: 2\n', noEnv));
    expect(lines).toEqual(['YAML syntax error at line 3: Map keys must be unique']);
  });

  test('every problem is reported together, one per line of the message', () => {
    let thrown: unknown;
    try {
      parseConfigText(
        `server: { port: 70000, hots: x }
models:
  - { name: a, targets: [] }
  - { name: b, targets: [{ url: "nope" }] }
`,
        noEnv,
        'switchyard.yaml',
      );
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.file).toBe('switchyard.yaml');
    expect(error.issues.map((issue) => issue.path)).toEqual(
      expect.arrayContaining(['server.port', 'server.hots', 'models[0].targets', 'models[1].targets[0].url']),
    );
    expect(error.issues).toHaveLength(4);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('switchyard.yaml: invalid configuration');
    expect(lines).toContain('  server.port: is too large (maximum 65535)');
    expect(lines).toContain('  models[0].targets: must list at least one target');
  });

  test('a file whose top level is not a mapping is refused', () => {
    const lines = linesOf(() => parseConfigText('- just\n- a list\n', noEnv));
    expect(lines).toEqual(['must be an object']);
  });
});

describe('loadConfigFile', () => {
  test('reads and compiles a file, and names a missing one', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'switchyard-config-'));
    try {
      const file = join(directory, 'switchyard.yaml');
      await writeFile(file, 'models: [{ name: m, targets: [{ url: "http://h/v1", api_key: "${K}" }] }]\n');
      const config = await loadConfigFile(file, { K: 'sk-file' });
      expect(config.models[0]!.targets[0]!.apiKey).toBe('sk-file');

      const missing = join(directory, 'absent.yaml');
      await expect(loadConfigFile(missing, noEnv)).rejects.toThrow(
        `${missing}: invalid configuration\n  file not found`,
      );

      await writeFile(file, 'server: { port: x }\n');
      await expect(loadConfigFile(file, noEnv)).rejects.toMatchObject({
        file,
        issues: [{ path: 'server.port' }],
      });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('configFromEnvironment', () => {
  test('OPENAI_API_KEY gives openai/* and * models that reach api.openai.com with the key', () => {
    const config = configFromEnvironment({ OPENAI_API_KEY: 'sk-env' });
    expect(config.source).toBe('environment');
    expect(config.models.map((model) => model.name)).toEqual(['openai/*', '*']);
    for (const model of config.models) {
      expect(model.ownedBy).toBe('openai');
      expect(model.targets).toHaveLength(1);
      expect(model.targets[0]).toMatchObject({
        name: 'openai',
        origin: 'https://api.openai.com',
        basePath: '/v1',
        apiKey: 'sk-env',
      });
    }
  });

  test('OPENAI_BASE_URL overrides where the openai models go', () => {
    const config = configFromEnvironment({
      OPENAI_API_KEY: 'sk-env',
      OPENAI_BASE_URL: 'http://proxy.local:8080/openai/v1',
    });
    expect(config.models[0]!.targets[0]).toMatchObject({
      origin: 'http://proxy.local:8080',
      basePath: '/openai/v1',
      apiKey: 'sk-env',
    });
  });

  test('OLLAMA_BASE_URL alone adds ollama/* and * with no key', () => {
    const config = configFromEnvironment({ OLLAMA_BASE_URL: 'http://127.0.0.1:11434/v1' });
    expect(config.models.map((model) => model.name)).toEqual(['ollama/*', '*']);
    expect(config.models[1]!.targets[0]).toMatchObject({
      name: 'ollama',
      origin: 'http://127.0.0.1:11434',
      apiKey: undefined,
    });
  });

  test('the first vendor found serves bare model names', () => {
    const config = configFromEnvironment({
      OLLAMA_BASE_URL: 'http://127.0.0.1:11434/v1',
      GROQ_API_KEY: 'gsk',
    });
    expect(config.models.map((model) => model.name)).toEqual(['groq/*', 'ollama/*', '*']);
    expect(config.models[2]!.targets[0]!.name).toBe('groq');
  });

  test('a vendor with only a key and no default URL is skipped', () => {
    expect(configFromEnvironment({ VLLM_API_KEY: 'k' }).models).toEqual([]);
  });

  test('with nothing set there are no models, and the server settings still apply', () => {
    const config = configFromEnvironment({ SWITCHYARD_PORT: '5050', SWITCHYARD_HOST: '0.0.0.0' });
    expect(config.models).toEqual([]);
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 5050 });
  });

  test('a malformed URL from the environment gets the same checks as a file', () => {
    const lines = linesOf(() => configFromEnvironment({ OPENAI_BASE_URL: 'api.openai.com' }));
    expect(lines[0]).toMatch(/^providers\.openai\.url: must be an http\(s\) URL/);
  });

  test('a non-numeric SWITCHYARD_PORT is refused with its field', () => {
    const lines = linesOf(() => configFromEnvironment({ SWITCHYARD_PORT: 'http' }));
    expect(lines).toEqual(['server.port: must be a number']);
  });

  test('the environment config is frozen all the way down too', () => {
    const config = configFromEnvironment({ OPENAI_API_KEY: 'sk-env' });
    expect(Object.isFrozen(config.models)).toBe(true);
    expect(Object.isFrozen(config.models[0]!.targets[0]!.timeouts)).toBe(true);
    expect(Object.isFrozen(config.server)).toBe(true);
  });
});

describe('local targets', () => {
  test('compiles a local target to the runner, bound to its port once the gateway chose one', () => {
    const config = parseConfigText(
      'models:\n  - name: chat\n    targets:\n      - kind: local\n        model: demo:small\n',
      {},
    );
    expect(hasLocalTargets(config)).toBe(true);
    expect(config.models[0]!.targets[0]).toMatchObject({
      kind: 'local',
      model: 'demo:small',
      basePath: '/v1',
    });
    const bound = bindLocalTargets(config, 'http://127.0.0.1:4321');
    expect(bound.models[0]!.targets[0]!.origin).toBe('http://127.0.0.1:4321');
    expect(config.runner).toEqual({
      port: 0,
      threads: undefined,
      parallel: 2,
      contextSize: 4096,
      maxQueue: 16,
      keepAlive: 300_000,
      preload: [],
      maxLoadedModels: 3,
      maxMemory: 'auto',
      gpu: 'auto',
    });
    expect(parseConfigText('runner: { gpu: off }\n', noEnv).runner.gpu).toBe('off');
    expect(linesOf(() => parseConfigText('runner: { gpu: cuda }\n', noEnv))).toEqual([
      'runner.gpu: must be one of: "auto", "off"',
    ]);
  });

  test('reads the runner’s lifecycle: keep_alive as Ollama does, preload and max_loaded_models', () => {
    const runner = (keepAlive: string) =>
      parseConfigText(
        `runner: { keep_alive: ${keepAlive}, preload: ["demo:small"], max_loaded_models: 1 }\n`,
        noEnv,
      ).runner;
    expect(runner('"30s"')).toMatchObject({ keepAlive: 30_000, preload: ['demo:small'], maxLoadedModels: 1 });
    // A number is seconds, as in Ollama's keep_alive; any negative keeps models loaded forever.
    expect(runner('90').keepAlive).toBe(90_000);
    expect(runner('0').keepAlive).toBe(0);
    expect(runner('-1').keepAlive).toBe(Number.POSITIVE_INFINITY);
    expect(linesOf(() => runner('"soon"'))[0]).toMatch(
      /^runner\.keep_alive: must be a duration such as "5m"/,
    );
    expect(issuesOf(() => parseConfigText('runner: { max_loaded_models: 0 }\n', noEnv))[0]!.path).toBe(
      'runner.max_loaded_models',
    );
    expect(
      linesOf(() => parseConfigText('runner: { preload: [a, b], max_loaded_models: 1 }\n', noEnv))[0],
    ).toMatch(/^runner\.preload: names more models than max_loaded_models \(1\)/);
  });

  test('reads the runner’s memory budget as "auto", a binary size or bytes, naming the key when unreadable', () => {
    const maxMemory = (value: string) =>
      parseConfigText(`runner: { max_memory: ${value} }\n`, noEnv).runner.maxMemory;
    expect(maxMemory('auto')).toBe('auto');
    expect(maxMemory('8GiB')).toBe(8 * 1024 ** 3);
    // "gb" is binary too, as "kb" always was here: both spellings give the same budget.
    expect(maxMemory('8gb')).toBe(8 * 1024 ** 3);
    expect(maxMemory('512mb')).toBe(512 * 1024 ** 2);
    expect(maxMemory('1.5 MiB')).toBe(1.5 * 1024 ** 2);
    expect(maxMemory('1073741824')).toBe(1024 ** 3);
    expect(maxMemory('"1073741824"')).toBe(1024 ** 3);
    for (const unreadable of ['lots', '0', '-1', '0gb', '8 GB of RAM', '1.5']) {
      expect(
        linesOf(() => maxMemory(unreadable)),
        unreadable,
      ).toEqual([
        'runner.max_memory: must be "auto" or a size such as "8GiB" or "512mb" (a plain number is bytes)',
      ]);
    }
  });

  test('refuses a local target without a model, or with a url', () => {
    const attempt = () =>
      parseConfigText(
        'models:\n  - name: chat\n    targets:\n      - kind: local\n        url: http://127.0.0.1:1/v1\n',
        {},
      );
    expect(attempt).toThrow(/models\[0\]\.targets\[0\]: a local target needs "model"/);
    expect(attempt).toThrow(/models\[0\]\.targets\[0\]\.url: a local target takes no "url"/);
  });
});

describe('a wildcard local target serves the whole store', () => {
  test('"local/*" with a local target and no model sends the rest of the name to the runner', () => {
    const config = parseConfigText('models:\n  - name: local/*\n    targets:\n      - kind: local\n', noEnv);
    expect(config.models[0]).toMatchObject({
      name: 'local/*',
      targets: [{ kind: 'local', model: undefined }],
    });
    expect(hasLocalTargets(config)).toBe(true);
  });

  test('an exact name still needs "model", and the message says where it may be left out', () => {
    expect(
      linesOf(() => parseConfigText('models:\n  - name: chat\n    targets:\n      - kind: local\n', noEnv)),
    ).toEqual([
      'models[0].targets[0]: a local target needs "model": a name from `switchyard models ls`, such as "demo:small" (only under a wildcard name such as "local/*" may it be left out)',
    ]);
  });
});

describe('the admin key', () => {
  const key = 'k'.repeat(32);

  test('is read from admin.key, where ${VAR} keeps it out of the file', () => {
    const config = parseConfigText('admin:\n  key: ${MY_ADMIN_KEY}\n', { MY_ADMIN_KEY: key });
    expect(config.admin).toEqual({ key });
  });

  test('falls back to SWITCHYARD_ADMIN_KEY, with or without a config file', () => {
    expect(parseConfigText('', { SWITCHYARD_ADMIN_KEY: key }).admin.key).toBe(key);
    expect(configFromEnvironment({ SWITCHYARD_ADMIN_KEY: key }).admin.key).toBe(key);
    // An empty admin.key (an unset "${VAR:-}") is no key, so the variable still counts.
    expect(parseConfigText('admin: { key: "" }\n', { SWITCHYARD_ADMIN_KEY: key }).admin.key).toBe(key);
  });

  test('is absent unless configured, which keeps the admin API closed', () => {
    expect(parseConfigText('', noEnv).admin.key).toBeUndefined();
    expect(configFromEnvironment({}).admin.key).toBeUndefined();
    expect(parseConfigText('admin: { key: "${SWITCHYARD_ADMIN_KEY:-}" }\n', noEnv).admin.key).toBeUndefined();
  });

  test('a short key, or one with spaces, is refused naming where it came from but never the key', () => {
    const fromFile = linesOf(() => parseConfigText('admin: { key: "short-secret" }\n', noEnv));
    expect(fromFile).toEqual([
      'admin.key: must be at least 16 printable characters without spaces; generate one with `openssl rand -hex 32`',
    ]);
    const fromEnvironment = linesOf(() =>
      configFromEnvironment({ SWITCHYARD_ADMIN_KEY: 'has a space in it ok' }),
    );
    expect(fromEnvironment).toEqual([
      'SWITCHYARD_ADMIN_KEY must be at least 16 printable characters without spaces; generate one with `openssl rand -hex 32`',
    ]);
    expect(fromEnvironment.join('\n')).not.toContain('has a space');
  });

  test('rejects unknown keys under admin', () => {
    expect(linesOf(() => parseConfigText('admin: { token: x }\n', noEnv))).toEqual([
      'admin.token: unknown key; remove it or check its spelling',
    ]);
  });
});

describe('switchyard.example.yaml', () => {
  test('validates with nothing set in the environment', async () => {
    const file = new URL('../../switchyard.example.yaml', import.meta.url);
    const config = await loadConfigFile(file.pathname, {});
    expect(config.admin.key).toBeUndefined();
    expect(config.models.some((model) => model.name === 'local/*')).toBe(true);
  });
});
