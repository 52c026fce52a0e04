import type { ChatAdapter } from '../adapter.js';
import { BedrockStreamDecoder, bedrockCompletion, bedrockFailure } from './bedrock-openai.js';
import { bedrockHeaders, bedrockPath, bedrockRequest, bedrockUnsupportedParams } from './openai-bedrock.js';
import { sha256Hex, signRequest } from './sigv4.js';

/** SigV4's service name for Bedrock's runtime (its endpoint host says bedrock-runtime). */
const signingService = 'bedrock';

/**
 * Amazon Bedrock's Converse API as an adapter: canonical requests become POST
 * /model/{modelId}/converse (or /converse-stream, answered as AWS's binary event stream), and
 * Bedrock's answers, streams and errors come back canonical. A target authenticates with a
 * Bedrock API key (a bearer token, prepared once) or AWS credentials, with which every request
 * is signed (SigV4) as it is built: the signature covers the body and the time.
 * `now` is the clock the signatures read; tests pass a fixed one.
 *
 * @example
 * const call = bedrockAdapter.chatRequest(request, target, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0');
 * // call.path === '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse'
 */
export function createBedrockAdapter(now: () => Date = () => new Date()): ChatAdapter {
  return {
    kind: 'bedrock',
    prepareHeaders: bedrockHeaders,
    unsupportedParams: bedrockUnsupportedParams,
    chatRequest(request, target, upstreamModel) {
      const { config } = target;
      const path = bedrockPath(config, upstreamModel, request.stream === true);
      const body = JSON.stringify(bedrockRequest(request, config));
      if (config.apiKey !== undefined || config.awsCredentials === undefined || config.region === undefined) {
        return { path, headers: target.headers, body };
      }
      const payloadHash = sha256Hex(body);
      // The origin is URL-normalised (scheme://host[:port], default port left out), as the HTTP
      // client writes Host from it.
      const host = config.origin.slice(config.origin.indexOf('//') + 2);
      const signed = signRequest(
        { method: 'POST', path, headers: { host, 'x-amz-content-sha256': payloadHash }, payloadHash },
        config.awsCredentials,
        { region: config.region, service: signingService },
        now(),
      );
      // Host is sent as signed, rather than left to the HTTP client to derive the same way.
      const headers = [...target.headers, 'host', host, 'x-amz-content-sha256', payloadHash];
      for (const [name, value] of Object.entries(signed.headers)) headers.push(name, value);
      return { path, headers, body };
    },
    chatResponse: bedrockCompletion,
    chatStream: (context) => new BedrockStreamDecoder(context),
    isStreamContentType: (contentType) =>
      contentType?.startsWith('application/vnd.amazon.eventstream') === true,
    failure: bedrockFailure,
  };
}

export const bedrockAdapter: ChatAdapter = createBedrockAdapter();
