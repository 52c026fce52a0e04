import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelStoreError } from './errors.js';
import { defaultTag, type ModelName, sanitizeNamePart } from './model-name.js';

/** Environment variables a pull reads; injected so tests never touch `process.env`. */
export type PullEnvironment = Readonly<Record<string, string | undefined>>;

export const defaultHuggingFaceEndpoint = 'https://huggingface.co';

/** Where a pull gets its bytes from, after parsing and validating the ref the user typed. */
export type PullSource =
  | {
      readonly kind: 'huggingface';
      /** The ref as the manifest records it. */
      readonly ref: string;
      /** `<endpoint>/<org>/<repo>/resolve/<revision>/<file>`: stable, unlike the CDN URL it redirects to. */
      readonly url: string;
      /** Origin of the hub; only requests to it carry HF_TOKEN. */
      readonly hubOrigin: string;
      readonly organization: string;
      readonly repository: string;
      readonly revision: string;
      readonly file: string;
    }
  | { readonly kind: 'url'; readonly ref: string; readonly url: string }
  | { readonly kind: 'file'; readonly ref: string; readonly path: string };

// Hugging Face repository ids: letters, digits, `-_.`, at most 96 characters.
const repositoryPartPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const schemePattern = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const windowsDrivePattern = /^[A-Za-z]:[\\/]/;

/**
 * Parses what follows `switchyard pull`:
 * - `hf:<org>/<repo>/<path/to/file>.gguf`, or `hf:<org>/<repo>@<revision>/<file>.gguf` (a revision
 *   containing `/`, such as `refs/pr/1`, is written URL-encoded: `refs%2Fpr%2F1`);
 * - an `https://` (or, for local servers, `http://`) URL;
 * - a local path or `file://` URL.
 *
 * @example parsePullRef('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf')
 */
export function parsePullRef(ref: string, options: { env?: PullEnvironment; cwd?: string } = {}): PullSource {
  const text = ref.trim();
  if (text.length === 0) throw new ModelStoreError('invalid_ref', `The model ref is empty. ${refHelp}`);
  const scheme = windowsDrivePattern.test(text) ? undefined : schemePattern.exec(text)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined: {
      const path = resolve(options.cwd ?? process.cwd(), text);
      return { kind: 'file', ref: path, path };
    }
    case 'file': {
      const path = fileURLToPathOrThrow(text);
      return { kind: 'file', ref: path, path };
    }
    case 'hf':
      return parseHuggingFaceRef(text, huggingFaceEndpoint(options.env ?? process.env));
    case 'http':
    case 'https':
      return parseUrlRef(text);
    default:
      throw new ModelStoreError(
        'invalid_ref',
        `"${text}" uses the unsupported scheme "${scheme}:". ${refHelp} ` +
          'For a local file whose name contains ":", write it as ./<file>.',
      );
  }
}

/**
 * The name a pull gets when the user gives none: for Hugging Face `<org>/<repo>:<file stem>` (one
 * repository usually holds several quantisations), otherwise `<file stem>:latest`.
 */
export function defaultModelName(source: PullSource): ModelName {
  const fallback = { name: 'model', tag: defaultTag };
  if (source.kind === 'huggingface') {
    const name = sanitizeNamePart(`${source.organization}/${source.repository}`, 'name');
    const tag = sanitizeNamePart(stem(basename(source.file)), 'tag');
    return { name: name || fallback.name, tag: tag || fallback.tag };
  }
  const file =
    source.kind === 'url' ? basename(decodeSafely(new URL(source.url).pathname)) : basename(source.path);
  return { name: sanitizeNamePart(stem(file), 'name') || fallback.name, tag: defaultTag };
}

/** The hub endpoint from `SWITCHYARD_HF_ENDPOINT` (a mirror, or a local server in tests). */
export function huggingFaceEndpoint(env: PullEnvironment): string {
  const configured = env.SWITCHYARD_HF_ENDPOINT?.trim();
  if (!configured) return defaultHuggingFaceEndpoint;
  let url: URL;
  try {
    url = new URL(configured);
  } catch {
    throw new ModelStoreError(
      'invalid_ref',
      `SWITCHYARD_HF_ENDPOINT="${configured}" is not a URL. Set it to e.g. ${defaultHuggingFaceEndpoint}.`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ModelStoreError(
      'invalid_ref',
      `SWITCHYARD_HF_ENDPOINT must be an http(s) URL, not "${configured}".`,
    );
  }
  url.search = '';
  url.hash = '';
  return url.href.replace(/\/+$/, '');
}

/** A URL fit for messages and manifests: no credentials, no query string (signed URLs carry secrets). */
export function redactUrl(url: string | URL): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}${parsed.search === '' ? '' : '?…'}`;
}

const refHelp = 'Use hf:<org>/<repo>/<file>.gguf, an https:// URL, or the path of a local .gguf file.';

function parseHuggingFaceRef(text: string, endpoint: string): PullSource {
  const body = text.slice('hf:'.length).replace(/^\/+/, '');
  const [organization = '', repositoryAndRevision = '', ...fileParts] = body.split('/');
  const at = repositoryAndRevision.indexOf('@');
  const repository = at === -1 ? repositoryAndRevision : repositoryAndRevision.slice(0, at);
  const revision = at === -1 ? 'main' : decodeOrThrow(repositoryAndRevision.slice(at + 1), text);
  const file = fileParts.join('/');
  const example =
    'hf:<org>/<repo>/<file>.gguf, e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf';

  for (const [label, part] of [
    ['organisation', organization],
    ['repository', repository],
  ] as const) {
    if (!repositoryPartPattern.test(part) || part.includes('..') || part.includes('--')) {
      throw new ModelStoreError(
        'invalid_ref',
        `"${text}" has no valid Hugging Face ${label} name (letters, digits, - _ .). Write ${example}.`,
      );
    }
  }
  if (revision.length === 0)
    throw new ModelStoreError('invalid_ref', `"${text}" has an empty revision after "@".`);
  if (file.length === 0) {
    throw new ModelStoreError(
      'invalid_ref',
      `"${text}" names a repository but no file. Pick a .gguf file from ` +
        `${endpoint}/${organization}/${repository}/tree/${encodeURIComponent(revision)} and write ${example}.`,
    );
  }
  const segments = file.split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new ModelStoreError('invalid_ref', `"${text}" has an invalid file path "${file}".`);
  }
  if (!file.toLowerCase().endsWith('.gguf')) {
    throw new ModelStoreError(
      'invalid_ref',
      `"${text}" does not name a .gguf file. Switchyard runs GGUF models; pick a .gguf file in the repository.`,
    );
  }
  const encodedFile = segments.map((segment) => encodeURIComponent(segment)).join('/');
  return {
    kind: 'huggingface',
    ref: `hf:${organization}/${repository}${at === -1 ? '' : `@${encodeURIComponent(revision)}`}/${file}`,
    url: `${endpoint}/${organization}/${repository}/resolve/${encodeURIComponent(revision)}/${encodedFile}`,
    hubOrigin: new URL(endpoint).origin,
    organization,
    repository,
    revision,
    file,
  };
}

function parseUrlRef(text: string): PullSource {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ModelStoreError('invalid_ref', `"${text}" is not a valid URL. ${refHelp}`);
  }
  if (url.hostname === '') throw new ModelStoreError('invalid_ref', `"${text}" has no host name.`);
  url.hash = '';
  // The manifest keeps the query (a mirror may need it to serve the file again) but never a password.
  const recorded = new URL(url);
  recorded.username = '';
  recorded.password = '';
  return { kind: 'url', ref: recorded.href, url: url.href };
}

function fileURLToPathOrThrow(text: string): string {
  try {
    return fileURLToPath(text);
  } catch (error) {
    throw new ModelStoreError('invalid_ref', `"${text}" is not a valid file:// URL.`, { cause: error });
  }
}

function decodeOrThrow(text: string, ref: string): string {
  try {
    return decodeURIComponent(text);
  } catch (error) {
    throw new ModelStoreError('invalid_ref', `"${ref}" has a badly encoded revision "${text}".`, {
      cause: error,
    });
  }
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function stem(fileName: string): string {
  return fileName.replace(/\.gguf$/i, '');
}
