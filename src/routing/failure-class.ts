import type { FailureClass } from '../config/types.js';
import type { ErrorCode, GatewayError } from '../errors/index.js';

/** The class of each upstream failure code; codes missing here are the request's own fault. */
const classes: Partial<Record<ErrorCode, FailureClass>> = {
  upstream_rate_limited: 'rate_limited',
  upstream_overloaded: 'overloaded',
  model_overloaded: 'overloaded',
  runner_unavailable: 'overloaded',
  no_healthy_target: 'overloaded',
  upstream_error: 'server_error',
  upstream_bad_response: 'server_error',
  upstream_stream_failed: 'server_error',
  upstream_connect_timeout: 'timeout',
  upstream_first_byte_timeout: 'timeout',
  upstream_idle_timeout: 'timeout',
  request_timeout: 'timeout',
  upstream_unreachable: 'unreachable',
  upstream_connection_reset: 'unreachable',
  upstream_auth_failed: 'auth',
};

// What OpenAI, Azure, Anthropic, Gemini, Bedrock and llama.cpp say when a prompt is too long.
const contextWindowCodes = new Set(['context_length_exceeded', 'string_above_max_length']);
const contextWindowMessage =
  /context.?length|context.?window|maximum context|prompt is too long|too many tokens|input is too long|exceeds the (?:maximum|max)/i;
// … and when content is refused by policy.
const contentPolicyCodes = new Set([
  'content_policy_violation',
  'content_filter',
  'ResponsibleAIPolicyViolation',
]);
const contentPolicyMessage =
  /content.?(?:management )?polic|content.?filter|safety (?:system|policy)|flagged/i;

/**
 * Sorts a failure into the classes fallbacks are configured by. A rejected request (4xx) is
 * the request's own fault unless it says the prompt outgrew the context window or was refused
 * by a content policy, which another model may well accept.
 */
export function failureClass(error: GatewayError): FailureClass | undefined {
  const known = classes[error.code];
  if (known !== undefined) return known;
  if (error.code !== 'upstream_rejected') return undefined;
  const code = error.upstream?.code;
  if ((code !== undefined && contextWindowCodes.has(code)) || contextWindowMessage.test(error.message)) {
    return 'context_window';
  }
  if ((code !== undefined && contentPolicyCodes.has(code)) || contentPolicyMessage.test(error.message)) {
    return 'content_policy';
  }
  return undefined;
}

/**
 * Whether the same request may succeed on another try: connect errors, 429, 5xx and timeouts —
 * the catalogue's retryable flag, for failures that came from an upstream.
 */
export function isRetryable(error: GatewayError, failure: FailureClass | undefined): boolean {
  return error.retryable && failure !== undefined && failure !== 'auth';
}
