/**
 * Amazon Bedrock's Converse API wire shapes (bedrock-runtime, JSON over REST), for the `bedrock`
 * adapter. Only what a translation reads or writes is typed.
 * https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
 *
 * Content blocks are unions written as objects with exactly one member: `{ text }`,
 * `{ image }`, `{ toolUse }`, `{ toolResult }` …; blobs (image bytes) travel base64-encoded.
 */

export type BedrockContentBlock =
  | { text: string }
  | { image: { format: BedrockImageFormat; source: { bytes: string } } }
  | { toolUse: BedrockToolUse }
  | { toolResult: BedrockToolResult };

export type BedrockImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

export interface BedrockToolUse {
  /** Pattern [a-zA-Z0-9_-]+, at most 64 characters. */
  toolUseId: string;
  name: string;
  /** A JSON value; models write objects. */
  input: unknown;
}

export interface BedrockToolResult {
  toolUseId: string;
  content: ({ text: string } | { json: unknown })[];
  status?: 'success' | 'error';
}

export interface BedrockMessage {
  role: 'user' | 'assistant';
  content: BedrockContentBlock[];
}

export interface BedrockTool {
  toolSpec: { name: string; description?: string; inputSchema: { json: Record<string, unknown> } };
}

export type BedrockToolChoice =
  | { auto: Record<string, never> }
  | { any: Record<string, never> }
  | { tool: { name: string } };

export interface BedrockInferenceConfig {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
}

/** The body of POST /model/{modelId}/converse and /converse-stream (the model is in the path). */
export interface BedrockRequest {
  messages: BedrockMessage[];
  system?: { text: string }[];
  inferenceConfig?: BedrockInferenceConfig;
  toolConfig?: { tools: BedrockTool[]; toolChoice?: BedrockToolChoice };
}

/** Bedrock's token counts; inputTokens leaves out the tokens read from or written to the prompt cache. */
export interface BedrockUsage {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}

/**
 * end_turn | tool_use | max_tokens | stop_sequence | guardrail_intervened | content_filtered,
 * and model_context_window_exceeded on newer models.
 */
export type BedrockStopReason = string;

/** A response content block; reasoningContent and others this adapter does not translate pass as unknown. */
export interface BedrockResponseBlock {
  text?: string;
  toolUse?: BedrockToolUse;
  [member: string]: unknown;
}

/** Converse's answer. */
export interface BedrockResponse {
  output?: { message?: { role?: string; content?: BedrockResponseBlock[] } };
  stopReason?: BedrockStopReason;
  usage?: BedrockUsage;
}
