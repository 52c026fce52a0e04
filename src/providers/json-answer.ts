import { GatewayError } from '../errors/index.js';
import type {
  ChatCompletion,
  ChatUsage,
  ChoiceLogprobs,
  FinishReason,
  ToolCall,
} from '../spec/openai-chat.js';
import type { TranslationContext } from './adapter.js';

/**
 * Parses an upstream's answer (a body, or one stream event) that must be a JSON object; anything
 * else is the catalogue's `upstream_bad_response`, naming the target. Shared by every adapter.
 */
export function parseJsonObject(text: string, targetName: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw unreadableAnswer(targetName, 'it is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw unreadableAnswer(targetName, 'it is not a JSON object');
  }
  return value as Record<string, unknown>;
}

/** `upstream_bad_response` saying why the target's answer could not be read. */
export function unreadableAnswer(targetName: string, why: string): GatewayError {
  return new GatewayError('upstream_bad_response', `The answer from "${targetName}" is unreadable: ${why}.`);
}

/** What a vendor's whole answer says, for `assistantCompletion`. */
export interface AssistantAnswer {
  readonly content: string | null;
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: FinishReason;
  readonly usage: ChatUsage | undefined;
  /** Schemas that report log probabilities (Ollama); null otherwise. */
  readonly logprobs?: ChoiceLogprobs | null;
  /** Include OpenAI's `refusal: null`; schemas without a refusal field leave it out. */
  readonly withRefusal?: boolean;
}

/**
 * The canonical completion of a one-choice answer, as adapters whose vendors have no `n` build
 * it: the client's id, time and model name, one assistant message, tool calls when there are any.
 */
export function assistantCompletion(context: TranslationContext, answer: AssistantAnswer): ChatCompletion {
  const completion: ChatCompletion = {
    id: context.id,
    object: 'chat.completion',
    created: context.created,
    model: context.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: answer.content,
          ...(answer.withRefusal ? { refusal: null } : {}),
          ...(answer.toolCalls.length > 0 ? { tool_calls: [...answer.toolCalls] } : {}),
        },
        logprobs: answer.logprobs ?? null,
        finish_reason: answer.finishReason,
      },
    ],
  };
  if (answer.usage !== undefined) completion.usage = answer.usage;
  return completion;
}
