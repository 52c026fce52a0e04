import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { adapters } from '../../src/providers/registry.js';
import { parseSseEvent, SseSplitter } from '../../src/providers/sse.js';
import type { ChatCompletionChunk } from '../../src/spec/openai-chat.js';
import { type FixtureUpstream, startFixtureUpstream } from '../support/fixture-upstream.js';
import { startTestGateway } from '../support/gateway.js';
import type { Fixture } from './fixture.js';

/**
 * The conformance fixtures again, end to end: an OpenAI client's request goes through the real
 * gateway on loopback to a stand-in vendor that answers with the fixture's exact bytes, and the
 * client must get what the fixture expects (the adapter's canonical output, as OpenAI's surface
 * writes it) — the translation, the proxy's streaming, and its error handling together.
 */

const fixturesRoot = fileURLToPath(new URL('../fixtures/', import.meta.url));
const kinds = readdirSync(fixturesRoot, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name in adapters)
  .map((entry) => entry.name);

let upstream: FixtureUpstream;
beforeAll(async () => {
  upstream = await startFixtureUpstream();
});
afterAll(async () => {
  await upstream.close();
});

describe.each(kinds)('an OpenAI client through the gateway to a %s upstream', (kind) => {
  const folder = path.join(fixturesRoot, kind);
  const files = readdirSync(folder).filter((file) => file.endsWith('.json') && file !== 'gaps.json');

  test.each(files)('%s', async (file) => {
    const fixture = JSON.parse(readFileSync(path.join(folder, file), 'utf8')) as Fixture;
    const gateway = await startTestGateway(configFor(kind, fixture, upstream.url));
    try {
      upstream.answer({
        status: fixture.upstream.status,
        headers: fixture.upstream.headers,
        body: fixture.upstream.body,
        streamFile:
          fixture.upstream.stream_file === undefined
            ? undefined
            : path.join(folder, fixture.upstream.stream_file),
      });
      const seen = upstream.requests.length;
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'test' },
        body: JSON.stringify(fixture.request),
      });
      const text = await response.text();
      const sent = upstream.requests[seen];
      if (fixture.upstream.request !== undefined) {
        expect(sent?.path).toBe(fixture.upstream.request.path);
        expect(JSON.parse(sent!.body)).toEqual(fixture.upstream.request.body);
      }
      // The upstream credential never reaches the client, whatever happened.
      expect(text).not.toContain('sk-test-secret-key');
      checkAnswer(kind as keyof typeof adapters, fixture, response, text);
    } finally {
      await gateway.close();
    }
  });
});

function configFor(kind: string, fixture: Fixture, origin: string): string {
  const target = fixture.target ?? {};
  const lines = [
    'log: { level: silent }',
    'models:',
    `  - name: ${JSON.stringify(fixture.request.model)}`,
    '    targets:',
    `      - kind: ${kind}`,
    `        url: ${origin}${target.basePath ?? ''}`,
    '        api_key: sk-test-secret-key',
    `        model: ${JSON.stringify(fixture.upstream_model ?? fixture.request.model)}`,
  ];
  if (target.apiVersion !== undefined)
    lines.push(`        api_version: ${JSON.stringify(target.apiVersion)}`);
  if (target.defaultMaxTokens !== undefined)
    lines.push(`        default_max_tokens: ${target.defaultMaxTokens}`);
  if (target.headers !== undefined) lines.push(`        headers: ${JSON.stringify(target.headers)}`);
  if (target.region !== undefined) lines.push(`        region: ${JSON.stringify(target.region)}`);
  return `${lines.join('\n')}\n`;
}

function checkAnswer(kind: keyof typeof adapters, fixture: Fixture, response: Response, text: string): void {
  const expected = fixture.expect;
  if (expected.error !== undefined) {
    expect(response.status).toBe(expected.error.status);
    const body = JSON.parse(text) as { error: { message: string } };
    if (expected.error.message_includes)
      expect(body.error.message).toContain(expected.error.message_includes);
    return;
  }
  if (expected.completion !== undefined) {
    expect(response.status).toBe(200);
    expect(withoutCreated(JSON.parse(text))).toEqual(withoutCreated(expected.completion));
    return;
  }
  if (expected.stream_error?.code === 'upstream_bad_response' && adapters[kind]?.openAIPath !== undefined) {
    // A passthrough forwards the upstream's events as bytes without parsing them (ADR 0003), so
    // the client's own parser meets the unreadable event, exactly as the upstream sent it.
    expect(response.status).toBe(200);
    return;
  }
  const events = dataEvents(text);
  if (expected.stream_error !== undefined) {
    // Failed before any event: a real error status; after: an error event ends the stream.
    if (response.status !== 200) {
      expect(response.status).toBeGreaterThanOrEqual(400);
      return;
    }
    expect(events.at(-1)).toHaveProperty('error');
    expect(events).not.toContain('[DONE]');
    return;
  }
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  expect(events.at(-1)).toBe('[DONE]');
  const includeUsage = fixture.request.stream_options?.include_usage === true;
  const wanted = (expected.chunks as ChatCompletionChunk[])
    .filter((chunk) => includeUsage || chunk.choices.length > 0)
    .map((chunk) => {
      const copy: ChatCompletionChunk = { ...chunk };
      if (includeUsage) copy.usage = chunk.usage ?? null;
      else delete copy.usage;
      return withoutCreated(copy);
    });
  expect(events.slice(0, -1).map(withoutCreated)).toEqual(wanted);
}

function dataEvents(text: string): unknown[] {
  const splitter = new SseSplitter();
  const events = [...splitter.push(text), splitter.flush()].filter((event) => event.trim() !== '');
  return events.map((event) => {
    const { data } = parseSseEvent(event);
    return data === '[DONE]' ? data : JSON.parse(data);
  });
}

/** `created` is the gateway's clock, not the fixture's. */
function withoutCreated(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const { created: _created, ...rest } = value as Record<string, unknown>;
  return rest;
}
