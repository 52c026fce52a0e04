import type { TargetConfig } from '../../src/config/types.js';
import type { ChatRequest } from '../../src/spec/openai-chat.js';

/** One conformance case, as test/fixtures/README.md describes it. */
export interface Fixture {
  description: string;
  target?: Partial<TargetConfig>;
  upstream_model?: string;
  request: ChatRequest;
  upstream: {
    request?: { path: string; body: unknown };
    status: number;
    headers?: Record<string, string>;
    body?: unknown;
    stream_file?: string;
  };
  expect: {
    completion?: unknown;
    chunks?: unknown[];
    error?: { status: number; code: string; message_includes?: string };
    stream_error?: { code: string; chunks_before?: number };
  };
}

/** The cases every adapter must have a fixture for, or declare as a gap with a reason. */
export const requiredCases = [
  'plain-text',
  'plain-text-stream',
  'tool-call',
  'tool-call-stream',
  'json-mode',
  'refusal',
  'error-400',
  'error-401',
  'error-403',
  'error-404',
  'error-429',
  'error-500',
  'error-529',
  'malformed-stream',
  'truncated-stream',
] as const;
