import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import type { TargetConfig } from '../../src/config/types.js';
import { GatewayError } from '../../src/errors/index.js';
import type { ChatAdapter, TranslationContext } from '../../src/providers/adapter.js';
import { adapters } from '../../src/providers/registry.js';
import type { ChatCompletionChunk } from '../../src/spec/openai-chat.js';
import { targetConfig } from '../support/target-config.js';
import { type Fixture, requiredCases } from './fixture.js';

/**
 * One suite for every wire-schema adapter, driven by the fixture files under test/fixtures/<kind>/
 * (format in test/fixtures/README.md). An adapter without a case must declare the gap and why.
 */

const fixturesRoot = fileURLToPath(new URL('../fixtures/', import.meta.url));

const kinds = readdirSync(fixturesRoot, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);

describe.each(kinds)('the %s adapter', (kind) => {
  const adapter = adapters[kind as keyof typeof adapters];
  const folder = path.join(fixturesRoot, kind);
  const files = readdirSync(folder).filter((file) => file.endsWith('.json') && file !== 'gaps.json');
  const gaps = readGaps(folder);

  test('exists in the registry', () => {
    expect(adapter, `test/fixtures/${kind} has no adapter in src/providers/registry.ts`).toBeDefined();
  });

  test('covers every required case or declares the gap with a reason', () => {
    const cases = new Set(files.map((file) => file.replace(/\.json$/, '')));
    const missing = requiredCases.filter((name) => !cases.has(name) && !gaps[name]);
    expect(missing, 'cases with neither a fixture nor a gaps.json entry').toEqual([]);
    for (const [name, reason] of Object.entries(gaps)) {
      expect(reason.length, `gap "${name}" needs a reason`).toBeGreaterThan(10);
    }
  });

  test.each(files)('%s', (file) => {
    const fixture = JSON.parse(readFileSync(path.join(folder, file), 'utf8')) as Fixture;
    runCase(adapter!, fixture, folder);
  });
});

function readGaps(folder: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(path.join(folder, 'gaps.json'), 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}

function runCase(adapter: ChatAdapter, fixture: Fixture, folder: string): void {
  const config = targetConfig({ kind: adapter.kind as TargetConfig['kind'], ...fixture.target });
  const target = { config, headers: adapter.prepareHeaders(config) };
  const context: TranslationContext = {
    id: 'chatcmpl-test',
    created: 1_700_000_000,
    model: fixture.request.model,
    targetName: 'test',
    includeUsage: fixture.request.stream_options?.include_usage === true,
  };
  const { upstream, expect: expected } = fixture;

  if (upstream.request !== undefined) {
    const call = adapter.chatRequest(
      fixture.request,
      target,
      fixture.upstream_model ?? fixture.request.model,
    );
    expect(call.path).toBe(upstream.request.path);
    expect(JSON.parse(call.body.toString())).toEqual(upstream.request.body);
    // The credential goes in a header, never in the body or the path.
    if (config.apiKey) expect(call.path + call.body.toString()).not.toContain(config.apiKey);
  }

  if (expected.error !== undefined) {
    const body = typeof upstream.body === 'string' ? upstream.body : JSON.stringify(upstream.body ?? '');
    const error = adapter.failure(upstream.status, upstream.headers ?? {}, body, 'test');
    expect(error).toBeInstanceOf(GatewayError);
    expect({ status: error.status, code: error.code }).toEqual({
      status: expected.error.status,
      code: expected.error.code,
    });
    if (expected.error.message_includes) expect(error.message).toContain(expected.error.message_includes);
    if (config.apiKey) expect(error.message).not.toContain(config.apiKey);
    return;
  }

  if (upstream.stream_file !== undefined) {
    const bytes = readFileSync(path.join(folder, upstream.stream_file));
    expect(adapter.isStreamContentType(upstream.headers?.['content-type'])).toBe(true);
    const whole = decode(adapter, context, [bytes]);
    const pieces = decode(adapter, context, cut(bytes, 7));
    expect(pieces).toEqual(whole);
    if (expected.stream_error !== undefined) {
      expect(whole.error?.code).toBe(expected.stream_error.code);
      if (expected.stream_error.chunks_before !== undefined) {
        expect(whole.chunks).toHaveLength(expected.stream_error.chunks_before);
      }
    } else {
      expect(whole.error, whole.error?.message).toBeUndefined();
      expect(whole.chunks).toEqual(expected.chunks);
      checkStreamShape(whole.chunks);
    }
    return;
  }

  const completion = adapter.chatResponse(JSON.stringify(upstream.body), context);
  expect(completion).toEqual(expected.completion);
}

function decode(adapter: ChatAdapter, context: TranslationContext, pieces: Buffer[]) {
  const decoder = adapter.chatStream(context);
  const chunks: ChatCompletionChunk[] = [];
  try {
    for (const piece of pieces) chunks.push(...decoder.push(piece));
    chunks.push(...decoder.end());
    return { chunks, error: undefined };
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    return { chunks, error };
  }
}

function cut(bytes: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size)
    pieces.push(bytes.subarray(offset, offset + size));
  return pieces;
}

/** What every canonical stream must look like, whoever produced it (see ChatStreamDecoder). */
function checkStreamShape(chunks: ChatCompletionChunk[]): void {
  expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
  const finishes = chunks.filter((chunk) => chunk.choices.some((choice) => choice.finish_reason !== null));
  expect(finishes.length).toBeGreaterThanOrEqual(1);
  const ids = new Map<number, string>();
  for (const chunk of chunks) {
    for (const choice of chunk.choices) {
      for (const call of choice.delta.tool_calls ?? []) {
        if (call.id !== undefined) {
          expect(ids.has(call.index), `tool call ${call.index} announced twice`).toBe(false);
          ids.set(call.index, call.id);
          expect(call.function?.name).toBeTruthy();
        } else {
          expect(ids.has(call.index), `arguments for tool call ${call.index} before its id`).toBe(true);
        }
      }
    }
  }
}
