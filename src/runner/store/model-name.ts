import { ModelStoreError } from './errors.js';

/** A model's place in the store: `name:tag`, both already validated. */
export interface ModelName {
  readonly name: string;
  readonly tag: string;
}

export const defaultTag = 'latest';

const maxNameLength = 200;
const maxTagLength = 128;
// A segment starts with a letter or digit so that `.`, `..` and hidden files cannot be named.
const namePattern = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;
const tagPattern = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parses and validates `name[:tag]`; the tag defaults to `latest`. Names may contain lowercase
 * letters, digits and `- _ . /`; they become directories under `manifests/`, so they are checked
 * strictly here and trusted everywhere else.
 *
 * @example parseModelName('qwen/qwen2.5-0.5b:q4_k_m') // { name: 'qwen/qwen2.5-0.5b', tag: 'q4_k_m' }
 */
export function parseModelName(nameTag: string): ModelName {
  const colon = nameTag.indexOf(':');
  const name = colon === -1 ? nameTag : nameTag.slice(0, colon);
  const tag = colon === -1 ? defaultTag : nameTag.slice(colon + 1);
  const problem = nameProblem(name) ?? tagProblem(tag);
  if (problem !== undefined) {
    const suggestion = suggestName(nameTag);
    throw new ModelStoreError(
      'invalid_ref',
      `"${nameTag}" is not a valid model name: ${problem}.` +
        (suggestion === undefined ? '' : ` Try "${suggestion}".`),
    );
  }
  return { name, tag };
}

export function formatModelName(model: ModelName): string {
  return `${model.name}:${model.tag}`;
}

/**
 * Turns free text (a repository, a file name) into a valid model name or tag: lowercased, every
 * run of other characters replaced by `-`. Used for the default name of a pull. May return ''.
 *
 * @example sanitizeNamePart('TheBloke/Llama-2-7B-GGUF', 'name') // 'thebloke/llama-2-7b-gguf'
 */
export function sanitizeNamePart(text: string, part: 'name' | 'tag'): string {
  const lowered = text.toLowerCase();
  const segments = part === 'name' ? lowered.split('/') : [lowered.replaceAll('/', '-')];
  const cleaned = segments
    .map((segment) =>
      segment
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/\.{2,}/g, '.')
        .replace(/-{2,}/g, '-')
        .replace(/^[._-]+|[._-]+$/g, '')
        .replace(/\.json$/, '-json'),
    )
    .filter((segment) => segment.length > 0)
    .join('/');
  const maxLength = part === 'name' ? maxNameLength : maxTagLength;
  return cleaned.slice(0, maxLength).replace(/[/._-]+$/, '');
}

function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > maxNameLength) return `the name is longer than ${maxNameLength} characters`;
  if (name !== name.toLowerCase()) return 'names are lowercase';
  if (name.includes('..')) return 'names may not contain ".."';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) {
    return 'names may not start or end with "/" or contain "//"';
  }
  if (!namePattern.test(name)) {
    return 'names may contain only lowercase letters, digits and - _ . /, and each part starts with a letter or digit';
  }
  // `manifests/a/b.json` is the file for a:b, so a directory `manifests/a/b.json/` (the model
  // a/b.json) would collide with it.
  if (name.split('/').some((segment) => segment.endsWith('.json'))) {
    return 'no part of a name may end in ".json"';
  }
  return undefined;
}

function tagProblem(tag: string): string | undefined {
  if (tag.length === 0) return 'the tag after ":" is empty';
  if (tag.length > maxTagLength) return `the tag is longer than ${maxTagLength} characters`;
  if (tag !== tag.toLowerCase()) return 'tags are lowercase';
  if (tag.includes('..')) return 'tags may not contain ".."';
  if (!tagPattern.test(tag)) {
    return 'tags may contain only lowercase letters, digits and - _ ., starting with a letter or digit';
  }
  return undefined;
}

function suggestName(nameTag: string): string | undefined {
  const colon = nameTag.indexOf(':');
  const name = sanitizeNamePart(colon === -1 ? nameTag : nameTag.slice(0, colon), 'name');
  const tag = colon === -1 ? defaultTag : sanitizeNamePart(nameTag.slice(colon + 1), 'tag');
  if (name.length === 0 || tag.length === 0) return undefined;
  const suggestion = `${name}:${tag}`;
  return suggestion === nameTag ? undefined : suggestion;
}
