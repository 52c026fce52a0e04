import type { ProviderKind } from '../config/types.js';
import type { ChatAdapter } from './adapter.js';
import { anthropicAdapter } from './anthropic/index.js';
import { azureOpenAIAdapter } from './azure-openai.js';
import { bedrockAdapter } from './bedrock/bedrock-adapter.js';
import { geminiAdapter } from './gemini/gemini-adapter.js';
import { ollamaAdapter } from './ollama/ollama-adapter.js';
import { openAICompatibleAdapter } from './openai-compatible-adapter.js';

/**
 * Every wire schema's adapter, by config kind: the one list from which the rest (config
 * validation, the conformance suite, docs) is derived. `local` targets speak OpenAI's schema.
 */
export const adapters: Readonly<Partial<Record<ProviderKind | 'local', ChatAdapter>>> = {
  'openai-compatible': openAICompatibleAdapter,
  'azure-openai': azureOpenAIAdapter,
  anthropic: anthropicAdapter,
  gemini: geminiAdapter,
  ollama: ollamaAdapter,
  bedrock: bedrockAdapter,
  local: openAICompatibleAdapter,
};

export function adapterFor(kind: ProviderKind | 'local'): ChatAdapter {
  const adapter = adapters[kind];
  if (adapter === undefined) throw new Error(`no adapter for target kind "${kind}"`);
  return adapter;
}
