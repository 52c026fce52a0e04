import { GatewayError } from '../errors/index.js';
import type { ChatUsage, FunctionTool } from '../spec/openai-chat.js';

/**
 * Pieces several adapters need when translating between canonical (OpenAI) shapes and a vendor's:
 * what a client may send as a tool and as tool-call arguments, and token usage with prompt caching.
 */

/**
 * The tool Switchyard forces for JSON mode on schemas that have no JSON mode of their own
 * (Anthropic, Bedrock): the answer is the tool call's input. Clients may not name a tool so.
 */
export const jsonAnswerTool = 'switchyard_json_answer';

/**
 * A client tool's function, for a schema that takes function tools only (`vendor` names it in the
 * message: "Anthropic"); 400 for any other tool type and for the name JSON mode reserves.
 */
export function functionOfTool(tool: FunctionTool, index: number, vendor: string): FunctionTool['function'] {
  if (tool.type !== 'function') {
    throw new GatewayError(
      'unsupported_param',
      `Tools of type "${String(tool.type)}" cannot be sent to ${vendor}; only function tools translate.`,
      { param: `tools[${index}]` },
    );
  }
  if (tool.function.name === jsonAnswerTool) {
    throw new GatewayError(
      'invalid_field',
      `The tool name "${jsonAnswerTool}" is reserved by Switchyard for JSON mode on ${vendor}; rename the tool.`,
      { param: `tools[${index}].function.name` },
    );
  }
  return tool.function;
}

/**
 * An assistant message's tool-call arguments as an object: OpenAI carries them as JSON text,
 * Gemini and Ollama want the object. "" means no arguments; anything but a JSON object is a 400.
 */
export function callArgumentsObject(
  text: string,
  messageIndex: number,
  callIndex: number,
  vendor: string,
): Record<string, unknown> {
  const value = argumentsObject(text);
  if (value === undefined) {
    const param = `messages[${messageIndex}].tool_calls[${callIndex}].function.arguments`;
    throw new GatewayError(
      'invalid_field',
      `"${param}" must be the text of a JSON object, which ${vendor} needs to replay the call.`,
      { param },
    );
  }
  return value;
}

/**
 * Tool-call arguments (JSON text) as an object: {} for no text at all, as a tool that takes no
 * arguments may be called with none; undefined when the text is not a JSON object.
 */
export function argumentsObject(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Usage from a schema that counts cached prompt tokens apart from its input tokens (read from
 * the cache, or written to it), as Anthropic and Bedrock do. OpenAI's prompt_tokens counts them
 * all, with the cache reads repeated as cached_tokens; the total is summed so it always adds up.
 */
export function usageWithCache(tokens: {
  readonly input: unknown;
  readonly cacheRead: unknown;
  readonly cacheWrite: unknown;
  readonly output: unknown;
}): ChatUsage {
  const cacheRead = tokenCount(tokens.cacheRead);
  const prompt = tokenCount(tokens.input) + cacheRead + tokenCount(tokens.cacheWrite);
  const completion = tokenCount(tokens.output);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cacheRead },
  };
}

/** A vendor's token count, or 0 when it sent none (or nonsense). */
function tokenCount(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
