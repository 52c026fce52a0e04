import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors/index.js';
import type { ChatStreamDecoder, TranslationContext, UpstreamCall } from '../providers/adapter.js';
import type { Route } from '../routing/model-table.js';
import type { ChatCompletionChunk, ChatRequest } from '../spec/openai-chat.js';
import type { EmbeddingsRequest } from '../spec/openai-embeddings.js';
import type { ChatStreamEncoder } from '../surfaces/surface.js';
import { clientClosedStatus, Exchange, type ExchangeCall, serverTiming } from './exchange.js';

/** A request whose upstream speaks another schema than the client, or another surface's client. */
export interface TranslatedCall extends ExchangeCall {
  readonly operation: 'chat' | 'embeddings';
  readonly upstream: UpstreamCall;
  /** Whether the client wants a streamed answer. */
  readonly stream: boolean;
  /** Whether the client asked for the usage chunk (OpenAI's stream_options.include_usage). */
  readonly includeUsage: boolean;
  /** Embeddings only: answer each vector as base64 little-endian float32, as OpenAI does. */
  readonly encodeBase64?: boolean;
}

/**
 * Plans a translated chat request: applies the model's policy for parameters the target cannot
 * carry (400 naming them, or dropped with `drop_unsupported_params`), then lets the adapter build
 * the upstream request. Runs before the response is taken over, so its errors are ordinary 400s.
 */
export function planChat(request: ChatRequest, route: Route): UpstreamCall {
  const { adapter, config } = route.target;
  const unsupported = adapter.unsupportedParams(request);
  let accepted = request;
  if (unsupported.length > 0) {
    if (!route.model.dropUnsupportedParams) {
      const [first] = unsupported;
      throw new GatewayError(
        'unsupported_param',
        `"${first!.param}" is not supported by target "${config.name}" (${adapter.kind}): ${first!.reason}. Remove it, or set drop_unsupported_params: true on model "${route.model.name}" to have it dropped.`,
        { param: first!.param },
      );
    }
    const copy: ChatRequest = { ...request };
    for (const { param } of unsupported) delete copy[param];
    accepted = copy;
  }
  return adapter.chatRequest(accepted, route.target, route.upstreamModel);
}

/**
 * Plans a translated embeddings request; a schema without embeddings is a 400. Vendors answer
 * floats, so a client's `encoding_format: "base64"` (the OpenAI SDK's default) is not sent
 * upstream: the gateway encodes the floats itself (`encodeBase64`).
 */
export function planEmbeddings(
  request: EmbeddingsRequest,
  route: Route,
): { upstream: UpstreamCall; encodeBase64: boolean } {
  const { adapter, config } = route.target;
  if (adapter.embeddings === undefined) {
    throw new GatewayError(
      'unsupported_endpoint',
      `Model "${route.model.name}" is served by "${config.name}" (${adapter.kind}), which has no embeddings API.`,
      { param: 'model' },
    );
  }
  const encodeBase64 = request.encoding_format === 'base64';
  const { encoding_format: _format, ...floats } = request;
  return {
    upstream: adapter.embeddings.request(floats as EmbeddingsRequest, route.target, route.upstreamModel),
    encodeBase64,
  };
}

/**
 * Sends a planned request and answers the client in its own surface's format: the upstream's
 * answer is decoded into canonical chunks by the target's adapter and encoded by the client's
 * surface, event by event, with the same timeouts, backpressure and error handling as a
 * forwarded request (see Exchange).
 */
export function translatedProxy(call: TranslatedCall): void {
  const exchange = new TranslatingExchange(call);
  call.pool.dispatch(
    {
      method: 'POST',
      path: call.upstream.path,
      headers: call.upstream.headers.concat('x-request-id', call.requestId),
      body: call.upstream.body,
      headersTimeout: call.attempt.firstByteTimeout(call.route),
      bodyTimeout: call.attempt.idleTimeout(call.route),
    },
    exchange,
  );
}

class TranslatingExchange extends Exchange {
  readonly #context: TranslationContext;
  readonly #translated: TranslatedCall;
  #decoder: ChatStreamDecoder | undefined;
  #encoder: ChatStreamEncoder | undefined;

  constructor(call: TranslatedCall) {
    super(call, call.stream && call.operation === 'chat');
    this.#translated = call;
    this.#context = {
      id: `chatcmpl-${call.requestId}`,
      created: Math.floor(call.startedAtEpoch / 1000),
      model: call.model,
      targetName: call.route.target.config.name,
      includeUsage: call.includeUsage,
    };
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return;
    const now = performance.now();
    const ok = this.begin(statusCode, headers, now);
    if (ok && this.streaming && this.call.route.target.adapter.isStreamContentType(this.contentType)) {
      this.phase = 'streaming';
      this.#decoder = this.call.route.target.adapter.chatStream(this.#context);
      this.#encoder = this.call.surface.streamEncoder({
        includeUsage: this.#translated.includeUsage,
        model: this.call.model,
        id: this.#context.id,
      });
      this.serverTimingValue = serverTiming(this.call.startedAt, now - this.upstreamStart);
    } else {
      this.phase = 'buffering';
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase === 'streaming') {
      let chunks: ChatCompletionChunk[];
      try {
        chunks = this.#decoder!.push(chunk);
      } catch (error) {
        this.failWith(asUpstreamError(error, this.#context.targetName));
        return;
      }
      this.#emit(chunks);
      return;
    }
    if (this.phase === 'buffering') this.buffer(controller, chunk);
  }

  onResponseEnd(): void {
    if (this.phase === 'streaming') this.#endStream();
    else if (this.phase === 'buffering') this.#endBuffered();
  }

  #emit(chunks: ChatCompletionChunk[]): void {
    let out = '';
    for (const chunk of chunks) {
      if (chunk.usage) this.usage = chunk.usage;
      out += this.#encoder!.chunk(chunk);
    }
    if (out !== '') this.writeStream(out);
  }

  #endStream(): void {
    let chunks: ChatCompletionChunk[];
    try {
      chunks = this.#decoder!.end();
    } catch (error) {
      this.fail(asUpstreamError(error, this.#context.targetName));
      return;
    }
    this.#emit(chunks);
    if (!this.headSent) this.writeStreamHead();
    this.endAnswer(this.#encoder!.end());
    this.finish(200, undefined);
  }

  #endBuffered(): void {
    const answer = this.takeBuffered().toString('utf8');
    const { adapter, config } = this.call.route.target;
    if (this.status < 200 || this.status >= 300) {
      this.refuse(adapter.failure(this.status, this.headers, answer, config.name));
      return;
    }
    let body: string;
    try {
      if (this.#translated.operation === 'embeddings') {
        const embeddings = adapter.embeddings!.response(answer, this.#context);
        this.usage = { ...embeddings.usage, completion_tokens: 0 };
        if (this.#translated.encodeBase64) {
          for (const item of embeddings.data) {
            if (Array.isArray(item.embedding)) item.embedding = base64Floats(item.embedding);
          }
        }
        body = JSON.stringify(embeddings);
      } else {
        if (this.streaming) {
          // Asked for a stream, the upstream answered whole: an answer, but not in the form promised.
          throw new GatewayError(
            'upstream_bad_response',
            `"${config.name}" answered a streamed request with ${this.contentType ?? 'no content type'} instead of a stream.`,
          );
        }
        const completion = adapter.chatResponse(answer, this.#context);
        this.usage = completion.usage;
        body = this.call.surface.completion(completion, this.call.model);
      }
    } catch (error) {
      this.refuse(asUpstreamError(error, config.name));
      return;
    }
    const response = this.call.response;
    if (response.destroyed) {
      this.finish(clientClosedStatus, undefined);
      return;
    }
    this.writeAnswerHead(200, 'application/json', Buffer.byteLength(body));
    this.endAnswer(body);
    this.finish(200, undefined);
  }
}

/** An adapter throws GatewayErrors; anything else thrown while translating is a bad answer. */
function asUpstreamError(error: unknown, targetName: string): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError(
    'upstream_bad_response',
    `The answer from "${targetName}" could not be translated: ${(error as Error).message}`,
    { cause: error },
  );
}

/** A vector as OpenAI's base64 encoding: little-endian float32 values. */
function base64Floats(values: readonly number[]): string {
  const bytes = Buffer.allocUnsafe(values.length * 4);
  for (let index = 0; index < values.length; index++) bytes.writeFloatLE(values[index]!, index * 4);
  return bytes.toString('base64');
}
