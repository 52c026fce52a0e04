import { readGgufInfo } from './gguf/index.js';
import type { BlobInspector } from './store/index.js';

/** The GGUF facts a manifest keeps: JSON-safe, read from the header only. */
export interface ModelFacts {
  readonly architecture: string | null;
  readonly name: string | null;
  readonly description: string | null;
  readonly parameter_count: number;
  readonly context_length: number | null;
  readonly embedding_length: number | null;
  readonly block_count: number | null;
  readonly quantization: string | null;
  readonly chat_template: string | null;
  readonly tokenizer_model: string | null;
  readonly vocabulary_size: number | null;
  /** True for the project's random-weight demo models, which answer with gibberish. */
  readonly demo: boolean;
}

/**
 * The model store's inspector: a file that is not a readable GGUF is refused before it becomes a
 * model. Vocabulary arrays are skipped (`maximumArrayItems: 0`): only their lengths are needed.
 */
export const inspectGguf: BlobInspector = async (path) => {
  const info = await readGgufInfo(path, { maximumArrayItems: 0 });
  const facts: ModelFacts = {
    architecture: info.architecture ?? null,
    name: info.name ?? null,
    description: info.description ?? null,
    parameter_count: info.parameterCount,
    context_length: info.contextLength ?? null,
    embedding_length: info.embeddingLength ?? null,
    block_count: info.blockCount ?? null,
    quantization: info.quantization ?? null,
    chat_template: info.chatTemplate ?? null,
    tokenizer_model: info.tokenizerModel ?? null,
    vocabulary_size: info.vocabularySize ?? null,
    demo: info.metadata.has('switchyard.demo.size'),
  };
  return { ...facts };
};
