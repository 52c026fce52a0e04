/**
 * OpenAI wire shapes Switchyard reads, and the rules for checking the fields it relies on.
 * Fields not listed pass through untouched: vendors extend the schema, and the upstream has the
 * final word on them. https://platform.openai.com/docs/api-reference/chat/create
 */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** The body fields the gateway itself acts on. */
export interface ProxyRequestBody {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  [field: string]: unknown;
}

export type Endpoint = 'chat/completions' | 'completions' | 'embeddings';

export interface FieldRule {
  readonly field: string;
  readonly required?: boolean;
  /** Returns a problem (finishing the sentence "<field> ..."), or undefined when the value is fine. */
  readonly check: (value: unknown) => string | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const string = (value: unknown) => (typeof value === 'string' ? undefined : 'must be a string');
const nonEmptyString = (value: unknown) =>
  typeof value === 'string' && value.length > 0 ? undefined : 'must be a non-empty string';
const boolean = (value: unknown) =>
  typeof value === 'boolean' || value === null ? undefined : 'must be true or false';
const object = (value: unknown) => (isObject(value) || value === null ? undefined : 'must be an object');
const array = (value: unknown) => (Array.isArray(value) || value === null ? undefined : 'must be an array');

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: unknown) =>
    value === null || (Number.isInteger(value) && (value as number) >= min && (value as number) <= max)
      ? undefined
      : max === Number.MAX_SAFE_INTEGER
        ? `must be an integer of at least ${min}`
        : `must be an integer from ${min} to ${max}`;
}

function number(min: number, max: number) {
  return (value: unknown) =>
    value === null || (typeof value === 'number' && value >= min && value <= max)
      ? undefined
      : `must be a number from ${min} to ${max}`;
}

const stop = (value: unknown) =>
  value === null ||
  typeof value === 'string' ||
  (Array.isArray(value) && value.every((item) => typeof item === 'string'))
    ? undefined
    : 'must be a string or an array of strings';

const messageRoles = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

function messages(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    return 'must be a non-empty array of messages such as [{"role": "user", "content": "Hello"}]';
  }
  for (let index = 0; index < value.length; index++) {
    const message = value[index];
    if (!isObject(message)) return `[${index}] must be an object with "role" and "content"`;
    if (typeof message.role !== 'string' || !messageRoles.has(message.role)) {
      return `[${index}].role must be one of: ${[...messageRoles].join(', ')}`;
    }
    const content = message.content;
    if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
      return `[${index}].content must be a string or an array of content parts`;
    }
  }
  return undefined;
}

function prompt(value: unknown): string | undefined {
  if (typeof value === 'string') return undefined;
  if (Array.isArray(value) && value.length > 0) return undefined;
  return 'must be a string or a non-empty array of strings or token ids';
}

function embeddingInput(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 ? undefined : 'must not be empty';
  if (Array.isArray(value) && value.length > 0) return undefined;
  return 'must be a string or a non-empty array of strings or token ids';
}

const sampling: readonly FieldRule[] = [
  { field: 'stream', check: boolean },
  { field: 'stream_options', check: object },
  { field: 'max_tokens', check: integer(1) },
  { field: 'n', check: integer(1, 128) },
  { field: 'temperature', check: number(0, 2) },
  { field: 'top_p', check: number(0, 1) },
  { field: 'presence_penalty', check: number(-2, 2) },
  { field: 'frequency_penalty', check: number(-2, 2) },
  { field: 'seed', check: integer(Number.MIN_SAFE_INTEGER) },
  { field: 'stop', check: stop },
  { field: 'logit_bias', check: object },
  { field: 'user', check: string },
];

const model: FieldRule = { field: 'model', required: true, check: nonEmptyString };

/** Field rules per endpoint, checked in order; the first problem is reported. */
export const requestRules: Readonly<Record<Endpoint, readonly FieldRule[]>> = {
  'chat/completions': [
    model,
    { field: 'messages', required: true, check: messages },
    ...sampling,
    { field: 'max_completion_tokens', check: integer(1) },
    { field: 'logprobs', check: boolean },
    { field: 'top_logprobs', check: integer(0, 20) },
    { field: 'tools', check: array },
    { field: 'response_format', check: object },
    { field: 'metadata', check: object },
  ],
  completions: [
    model,
    { field: 'prompt', required: true, check: prompt },
    ...sampling,
    { field: 'logprobs', check: integer(0, 5) },
    { field: 'echo', check: boolean },
    { field: 'suffix', check: string },
  ],
  embeddings: [
    model,
    { field: 'input', required: true, check: embeddingInput },
    {
      field: 'encoding_format',
      check: (value) => (value === 'float' || value === 'base64' ? undefined : 'must be "float" or "base64"'),
    },
    { field: 'dimensions', check: integer(1) },
    { field: 'user', check: string },
  ],
};

/** Hints appended to "is required" errors, so the message says what to send. */
export const requiredFieldHints: Readonly<Record<string, string>> = {
  model: 'name the model to use; GET /v1/models lists them',
  messages: 'give the conversation as an array such as [{"role": "user", "content": "Hello"}]',
  prompt: 'give the text to complete',
  input: 'give the text (or array of texts) to embed',
};

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return isObject(value);
}
