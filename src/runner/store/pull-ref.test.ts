import { describe, expect, test } from 'vitest';
import { parseSha256 } from './digest.js';
import { ModelStoreError } from './errors.js';
import { parseModelName } from './model-name.js';
import { defaultModelName, parsePullRef, redactUrl } from './pull-ref.js';

function failure(run: () => unknown): ModelStoreError {
  try {
    run();
  } catch (error) {
    if (error instanceof ModelStoreError) return error;
    throw error;
  }
  throw new Error('expected a ModelStoreError');
}

describe('parseModelName', () => {
  test('splits name and tag, and the tag defaults to latest', () => {
    expect(parseModelName('qwen/qwen2.5-0.5b:q4_k_m')).toEqual({ name: 'qwen/qwen2.5-0.5b', tag: 'q4_k_m' });
    expect(parseModelName('tiny')).toEqual({ name: 'tiny', tag: 'latest' });
  });

  test.each([
    ['Llama:latest', 'names are lowercase', 'llama:latest'],
    ['a/../b', 'may not contain ".."', 'a/b:latest'],
    ['/abs', 'may not start or end with "/"', 'abs:latest'],
    ['a//b', 'contain "//"', 'a/b:latest'],
    ['has space', 'only lowercase letters', 'has-space:latest'],
    ['.hidden', 'starts with a letter or digit', 'hidden:latest'],
    ['a/b.json', 'may end in ".json"', 'a/b-json:latest'],
    ['model:', 'tag after ":" is empty', undefined],
    ['model:v1:extra', 'tags may contain only', 'model:v1-extra'],
    ['', 'the name is empty', undefined],
  ])('rejects %j, saying why and suggesting a valid name', (input, reason, suggestion) => {
    const error = failure(() => parseModelName(input));
    expect(error.code).toBe('invalid_ref');
    expect(error.message).toContain(reason);
    if (suggestion === undefined) expect(error.message).not.toContain('Try');
    else expect(error.message).toContain(`Try "${suggestion}"`);
  });
});

describe('parseSha256', () => {
  test('accepts hex with or without the sha256: prefix, in any case', () => {
    const hex = 'ab'.repeat(32);
    expect(parseSha256(hex)).toBe(hex);
    expect(parseSha256(`sha256:${hex.toUpperCase()}`)).toBe(hex);
  });

  test('rejects anything that is not 64 hex digits', () => {
    expect(failure(() => parseSha256('abc')).code).toBe('invalid_sha256');
  });
});

describe('parsePullRef', () => {
  test('resolves a Hugging Face ref to the resolve URL on the main revision', () => {
    const source = parsePullRef('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf', {
      env: {},
    });
    expect(source).toMatchObject({
      kind: 'huggingface',
      url: 'https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf',
      hubOrigin: 'https://huggingface.co',
      revision: 'main',
    });
  });

  test('takes the endpoint from SWITCHYARD_HF_ENDPOINT and a revision after @, encoding path parts', () => {
    const source = parsePullRef('hf:org/repo@refs%2Fpr%2F1/sub dir/model.Q4_K_M.gguf', {
      env: { SWITCHYARD_HF_ENDPOINT: 'http://127.0.0.1:9999/mirror/' },
    });
    expect(source).toMatchObject({
      kind: 'huggingface',
      url: 'http://127.0.0.1:9999/mirror/org/repo/resolve/refs%2Fpr%2F1/sub%20dir/model.Q4_K_M.gguf',
      hubOrigin: 'http://127.0.0.1:9999',
      revision: 'refs/pr/1',
      file: 'sub dir/model.Q4_K_M.gguf',
    });
  });

  test('asks for a file when a Hugging Face ref names only a repository', () => {
    const error = failure(() => parsePullRef('hf:org/repo', { env: {} }));
    expect(error.code).toBe('invalid_ref');
    expect(error.message).toContain('https://huggingface.co/org/repo/tree/main');
  });

  test('refuses Hugging Face files that are not GGUF and paths that climb out', () => {
    expect(failure(() => parsePullRef('hf:org/repo/model.safetensors', { env: {} })).message).toContain(
      '.gguf',
    );
    expect(failure(() => parsePullRef('hf:org/repo/../x.gguf', { env: {} })).message).toContain(
      'invalid file path',
    );
  });

  test('accepts http and https URLs and records them without credentials', () => {
    expect(parsePullRef('https://user:secret@example.com/m.gguf?x=1')).toEqual({
      kind: 'url',
      ref: 'https://example.com/m.gguf?x=1',
      url: 'https://user:secret@example.com/m.gguf?x=1',
    });
  });

  test('treats anything without a scheme as a local path, resolved against the working directory', () => {
    expect(parsePullRef('models/tiny.gguf', { cwd: '/srv' })).toEqual({
      kind: 'file',
      ref: '/srv/models/tiny.gguf',
      path: '/srv/models/tiny.gguf',
    });
    expect(parsePullRef('file:///srv/tiny.gguf')).toMatchObject({ kind: 'file', path: '/srv/tiny.gguf' });
  });

  test('rejects unknown schemes with the forms it does accept', () => {
    const error = failure(() => parsePullRef('s3://bucket/model.gguf'));
    expect(error.code).toBe('invalid_ref');
    expect(error.message).toContain('hf:<org>/<repo>/<file>.gguf');
  });
});

describe('defaultModelName', () => {
  test('names a Hugging Face pull after the repository, tagged with the file', () => {
    const source = parsePullRef('hf:TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q4_K_M.gguf', { env: {} });
    expect(defaultModelName(source)).toEqual({ name: 'thebloke/llama-2-7b-gguf', tag: 'llama-2-7b.q4_k_m' });
  });

  test('names a URL or a file after the file, tagged latest', () => {
    expect(defaultModelName(parsePullRef('https://example.com/files/Tiny%20Model.gguf'))).toEqual({
      name: 'tiny-model',
      tag: 'latest',
    });
    expect(defaultModelName(parsePullRef('/tmp/demo.gguf'))).toEqual({ name: 'demo', tag: 'latest' });
  });
});

describe('redactUrl', () => {
  test('drops credentials and the query string, which may hold a signature', () => {
    expect(redactUrl('https://u:p@cdn.example.com/f.gguf?X-Amz-Signature=abc#frag')).toBe(
      'https://cdn.example.com/f.gguf?…',
    );
  });
});
