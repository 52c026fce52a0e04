/**
 * Google's Gemini API wire shapes (generativelanguage.googleapis.com, v1beta), for the `gemini`
 * adapter. Only what a translation reads or writes is typed.
 * https://ai.google.dev/api/generate-content
 *
 * The API speaks proto3 JSON: a field holding its default (0, false, "") is left out of answers,
 * so `Candidate.index` is absent for the first candidate and a log probability of 0 is absent.
 */

export interface GeminiPart {
  text?: string;
  /** Set on parts that carry the model's reasoning summary rather than its answer. */
  thought?: boolean;
  /** Opaque reasoning state (base64) that Gemini 3 wants back on replayed function calls. */
  thoughtSignature?: string;
  inlineData?: { mimeType: string; data: string };
  fileData?: { mimeType?: string; fileUri: string };
  /** `args` is an object, not a JSON text as in OpenAI's shape. */
  functionCall?: { id?: string; name: string; args?: Record<string, unknown> };
  functionResponse?: { name: string; response: Record<string, unknown> };
}

export interface GeminiContent {
  /** "user" or "model"; function responses travel in "user" turns. */
  role?: 'user' | 'model';
  parts?: GeminiPart[];
}

export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  /** A JSON Schema, the alternative to `parameters` (OpenAPI's subset) that takes JSON Schema's own keywords. */
  parametersJsonSchema?: Record<string, unknown>;
}

export interface GeminiGenerationConfig {
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  stopSequences?: string[];
  seed?: number;
  candidateCount?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseLogprobs?: boolean;
  /** How many top alternatives to return per token, with `responseLogprobs`. */
  logprobs?: number;
  responseMimeType?: string;
  /** A JSON Schema, the alternative to `responseSchema` (OpenAPI's subset). */
  responseJsonSchema?: Record<string, unknown>;
  thinkingConfig?: { thinkingLevel?: string };
}

export interface GeminiRequest {
  contents: GeminiContent[];
  systemInstruction?: { parts: GeminiPart[] };
  tools?: { functionDeclarations: GeminiFunctionDeclaration[] }[];
  toolConfig?: {
    functionCallingConfig: { mode: 'AUTO' | 'ANY' | 'NONE'; allowedFunctionNames?: string[] };
  };
  generationConfig?: GeminiGenerationConfig;
}

export interface GeminiLogprobCandidate {
  token?: string;
  tokenId?: number;
  logProbability?: number;
}

export interface GeminiCandidate {
  content?: GeminiContent;
  finishReason?: string;
  index?: number;
  logprobsResult?: {
    /** One entry per chosen token: the alternatives considered at that position. */
    topCandidates?: { candidates?: GeminiLogprobCandidate[] }[];
    chosenCandidates?: GeminiLogprobCandidate[];
  };
}

export interface GeminiUsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  toolUsePromptTokenCount?: number;
  cachedContentTokenCount?: number;
  totalTokenCount?: number;
}

export interface GeminiResponse {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsageMetadata;
  modelVersion?: string;
  responseId?: string;
}

/** Google's error envelope: https://cloud.google.com/apis/design/errors */
export interface GoogleError {
  code?: number;
  message?: string;
  /** The google.rpc.Code name: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE … */
  status?: string;
  details?: { '@type'?: string; reason?: string; retryDelay?: string; [field: string]: unknown }[];
}

export interface GeminiEmbeddingsRequest {
  requests: {
    model: string;
    content: { parts: { text: string }[] };
    outputDimensionality?: number;
  }[];
}

export interface GeminiEmbeddingsResponse {
  embeddings?: { values?: number[] }[];
}
