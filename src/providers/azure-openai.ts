import type { TargetConfig } from '../config/types.js';
import type { Endpoint } from '../spec/openai.js';
import type { ChatAdapter } from './adapter.js';
import { openAICompatibleAdapter } from './openai-compatible-adapter.js';

/**
 * Azure OpenAI: OpenAI's schema at Azure's URLs, with the key in an `api-key` header. Two URL
 * styles exist, chosen by `api_version`:
 *
 * - set: the deployment style, `/openai/deployments/{deployment}/chat/completions?api-version=…`,
 *   where the deployment is the upstream model name;
 * - unset: Azure's v1 API, `/openai/v1/chat/completions`, with the deployment as `model` in the
 *   body, like OpenAI itself.
 *
 * https://learn.microsoft.com/azure/ai-foundry/openai/reference
 */
export const azureOpenAIAdapter: ChatAdapter = {
  ...openAICompatibleAdapter,
  kind: 'azure-openai',
  prepareHeaders: azureHeaders,
  openAIPath: azurePath,
  chatRequest(request, target, upstreamModel) {
    const call = openAICompatibleAdapter.chatRequest(request, target, upstreamModel);
    return { ...call, path: azurePath(target.config, 'chat/completions', upstreamModel) };
  },
  embeddings: {
    ...openAICompatibleAdapter.embeddings!,
    request(request, target, upstreamModel) {
      const call = openAICompatibleAdapter.embeddings!.request(request, target, upstreamModel);
      return { ...call, path: azurePath(target.config, 'embeddings', upstreamModel) };
    },
  },
};

function azurePath(config: TargetConfig, endpoint: Endpoint, upstreamModel: string): string {
  if (config.apiVersion === undefined) return `${config.basePath}/openai/v1/${endpoint}`;
  return `${config.basePath}/openai/deployments/${encodeURIComponent(upstreamModel)}/${endpoint}?api-version=${encodeURIComponent(config.apiVersion)}`;
}

/** Content-Type, the configured headers, and the key as `api-key` (Microsoft Entra tokens go in a configured Authorization header). */
function azureHeaders(config: TargetConfig): string[] {
  const headers: string[] = ['content-type', 'application/json'];
  for (const [name, value] of Object.entries(config.headers)) {
    const lower = name.toLowerCase();
    if (lower === 'api-key' && config.apiKey !== undefined) continue;
    if (lower === 'content-type' || lower === 'content-length' || lower === 'host') continue;
    headers.push(lower, value);
  }
  if (config.apiKey !== undefined) headers.push('api-key', config.apiKey);
  return headers;
}
