/**
 * OpenAI-compatible vendors Switchyard recognises from the environment when no config file is
 * given. Each is configuration, not code: a base URL and the variables that hold its key and
 * an optional URL override. Order matters: the first vendor found also serves bare model names.
 */
export interface EnvironmentVendor {
  readonly name: string;
  readonly keyVariable: string | undefined;
  readonly urlVariable: string;
  readonly defaultUrl: string | undefined;
}

export const environmentVendors: readonly EnvironmentVendor[] = [
  {
    name: 'openai',
    keyVariable: 'OPENAI_API_KEY',
    urlVariable: 'OPENAI_BASE_URL',
    defaultUrl: 'https://api.openai.com/v1',
  },
  {
    name: 'groq',
    keyVariable: 'GROQ_API_KEY',
    urlVariable: 'GROQ_BASE_URL',
    defaultUrl: 'https://api.groq.com/openai/v1',
  },
  {
    name: 'together',
    keyVariable: 'TOGETHER_API_KEY',
    urlVariable: 'TOGETHER_BASE_URL',
    defaultUrl: 'https://api.together.xyz/v1',
  },
  {
    name: 'mistral',
    keyVariable: 'MISTRAL_API_KEY',
    urlVariable: 'MISTRAL_BASE_URL',
    defaultUrl: 'https://api.mistral.ai/v1',
  },
  {
    name: 'deepseek',
    keyVariable: 'DEEPSEEK_API_KEY',
    urlVariable: 'DEEPSEEK_BASE_URL',
    defaultUrl: 'https://api.deepseek.com/v1',
  },
  {
    name: 'fireworks',
    keyVariable: 'FIREWORKS_API_KEY',
    urlVariable: 'FIREWORKS_BASE_URL',
    defaultUrl: 'https://api.fireworks.ai/inference/v1',
  },
  {
    name: 'openrouter',
    keyVariable: 'OPENROUTER_API_KEY',
    urlVariable: 'OPENROUTER_BASE_URL',
    defaultUrl: 'https://openrouter.ai/api/v1',
  },
  // Servers users run themselves: found by their URL alone, no key needed.
  { name: 'vllm', keyVariable: 'VLLM_API_KEY', urlVariable: 'VLLM_BASE_URL', defaultUrl: undefined },
  { name: 'ollama', keyVariable: undefined, urlVariable: 'OLLAMA_BASE_URL', defaultUrl: undefined },
  { name: 'llamacpp', keyVariable: undefined, urlVariable: 'LLAMACPP_BASE_URL', defaultUrl: undefined },
  { name: 'tgi', keyVariable: 'TGI_API_KEY', urlVariable: 'TGI_BASE_URL', defaultUrl: undefined },
];

/** The variable that switches each vendor on: its key, or its URL for servers users run. */
export function environmentVendorSwitches(): string[] {
  return environmentVendors.map((vendor) =>
    vendor.defaultUrl !== undefined && vendor.keyVariable ? vendor.keyVariable : vendor.urlVariable,
  );
}
