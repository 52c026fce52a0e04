import { GatewayError } from '../../errors/index.js';
import { isJsonObject } from '../../spec/openai.js';
import type { EngineEmbeddingInput } from '../engine/index.js';
import { checkFieldRules, invalid, parseKeepAliveField } from './request-fields.js';

/** An embeddings body checked once at the edge; the route and engine trust it. */
export interface EmbeddingsRequest {
  readonly model: string;
  readonly inputs: readonly EngineEmbeddingInput[];
  /** 'base64': each vector as its little-endian float32 bytes, as OpenAI encodes it. */
  readonly encodingFormat: 'float' | 'base64';
  readonly dimensions: number | undefined;
  /** Ollama's `keep_alive`, in milliseconds (`Infinity` for forever); undefined keeps the model's. */
  readonly keepAliveMs: number | undefined;
}

/**
 * Inputs one request may hold: OpenAI's own limit, so a batch sized for OpenAI fits here too, and
 * one request cannot hold a model's embedding queue for unbounded work.
 * https://platform.openai.com/docs/api-reference/embeddings/create
 */
export const maxEmbeddingInputs = 2048;

/**
 * Checks a body against the shared OpenAI field rules, then the shape of `input`: a string, an
 * array of strings, an array of token ids, or an array of arrays of token ids, none of them empty.
 * `user` is accepted and ignored; `dimensions` is left to the engine, which knows the model's size.
 *
 * @example
 * parseEmbeddingsRequest({ model: 'demo', input: ['first', 'second'] }).inputs // ['first', 'second']
 */
export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  if (!isJsonObject(body)) throw new GatewayError('invalid_body');
  checkFieldRules(body, 'embeddings');
  return {
    model: body.model as string,
    inputs: parseInputs(body.input as string | readonly unknown[]),
    encodingFormat: body.encoding_format === 'base64' ? 'base64' : 'float',
    dimensions: typeof body.dimensions === 'number' ? body.dimensions : undefined,
    keepAliveMs: parseKeepAliveField(body.keep_alive),
  };
}

/** The shared rules have already refused anything but a non-empty string or a non-empty array. */
function parseInputs(input: string | readonly unknown[]): EngineEmbeddingInput[] {
  if (typeof input === 'string') return [input];
  const first = input[0];
  // An array of numbers is one input, in token ids.
  if (typeof first === 'number') return [tokenIds(input, 'input')];
  if (input.length > maxEmbeddingInputs) {
    throw invalid(
      'input',
      `must hold at most ${maxEmbeddingInputs} inputs, not ${input.length}: split them over several requests`,
    );
  }
  if (typeof first === 'string') {
    return input.map((item, index) => {
      if (typeof item !== 'string') throw invalid(`input[${index}]`, 'must be a string, as input[0] is');
      if (item.length === 0) throw invalid(`input[${index}]`, 'must not be empty');
      return item;
    });
  }
  if (Array.isArray(first)) {
    return input.map((item, index) => {
      if (!Array.isArray(item) || item.length === 0) {
        throw invalid(`input[${index}]`, 'must be a non-empty array of token ids');
      }
      return tokenIds(item, `input[${index}]`);
    });
  }
  throw invalid('input[0]', 'must be a string, a token id or an array of token ids');
}

function tokenIds(items: readonly unknown[], name: string): number[] {
  items.forEach((item, index) => {
    if (!(Number.isSafeInteger(item) && (item as number) >= 0)) {
      throw invalid(`${name}[${index}]`, 'must be a token id: an integer of at least 0');
    }
  });
  return items as number[];
}
