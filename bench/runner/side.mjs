// One side of bench/runner/run.mjs, in its own process: `direct <model file> <settings JSON>`
// loads the model into node-llama-cpp, as a user's script would; `client <settings JSON>` streams
// from Switchyard over HTTP, as a user's client would. Each process measures its own requests, so
// neither side shares a process with the other or with the process that directs the run.
//
// Messages from the parent: { measure: { concurrency, requests, url? } } → { tokensPerSecond,
// tokens, ttfts }; a reply { ready: true } once the side can take work; { error } when something
// failed.

import http from 'node:http';

const [mode, ...args] = process.argv.slice(2);

// ---------------------------------------------------------------------------------------------
// Direct: node-llama-cpp with the bench's settings, no HTTP.

async function loadDirect(modelPath, settings) {
  const { getLlama, LlamaChat, resolveChatWrapper } = await import('node-llama-cpp');
  const llama = await getLlama({ build: 'never', gpu: settings.gpu ? 'auto' : false });
  if (settings.gpu && llama.gpu === false) throw new Error('BENCH_GPU=1, but node-llama-cpp found no GPU');
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({
    contextSize: settings.contextSize,
    sequences: settings.parallel,
    threads: settings.threads,
  });
  const history = [
    { type: 'user', text: settings.prompt[0].content },
    { type: 'model', response: [] },
  ];
  // The chat wrapper resolved once and one sequence per client, cleared between requests: what a
  // careful direct script does (resolving the wrapper costs about 140 ms a request).
  const chatWrapper = resolveChatWrapper(model);
  const sequences = Array.from({ length: settings.parallel }, () => context.getSequence());
  const one = async (client) => {
    const sequence = sequences[client];
    const chat = new LlamaChat({ contextSequence: sequence, chatWrapper, autoDisposeSequence: false });
    const started = performance.now();
    let first;
    let tokens = 0;
    try {
      await chat.generateResponse(history, {
        maxTokens: settings.maxTokens,
        temperature: 0,
        // As the runner asks for a request without OpenAI penalties. LlamaChat's default applies
        // none either, but hands the sampler the last 64 tokens every step to do so.
        repeatPenalty: false,
        onToken: (chunk) => {
          first ??= performance.now() - started;
          tokens += chunk.length;
        },
      });
    } finally {
      chat.dispose({ disposeSequence: false });
      await sequence.clearHistory();
    }
    return { tokens, ttft: first ?? Number.NaN };
  };
  await one(0); // warm-up
  return one;
}

// ---------------------------------------------------------------------------------------------
// Client: streams from Switchyard. node:http reading raw chunks, not fetch: on two cores the
// client competes with the runner for CPU, and fetch's web streams cost it several times more
// per event.

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One streamed request; finds the first token and the usage by searching the raw text. */
function streamOnce(url, settings) {
  const body = JSON.stringify({
    model: 'bench',
    messages: settings.prompt,
    max_tokens: settings.maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${url}/v1/chat/completions`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (response) => {
        let first;
        let tail = '';
        response.setEncoding('utf8');
        response.on('data', (text) => {
          // The role chunk's content is empty; the first non-empty content is the first token.
          if (first === undefined && /"content":"[^"]/.test(text)) first = performance.now() - started;
          tail = (tail + text).slice(-1000);
        });
        response.on('end', () => {
          if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}: ${tail}`));
          const tokens = Number(/"completion_tokens":(\d+)/.exec(tail)?.[1] ?? Number.NaN);
          resolve({ tokens, ttft: first ?? Number.NaN });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

// ---------------------------------------------------------------------------------------------

/** `concurrency` clients, each making `requests` requests one after another. */
async function measure(one, { concurrency, requests }) {
  const ttfts = [];
  let tokens = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      for (let request = 0; request < requests; request++) {
        const result = await one(client);
        tokens += result.tokens;
        ttfts.push(result.ttft);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { tokensPerSecond: tokens / seconds, tokens, ttfts };
}

try {
  let one;
  if (mode === 'direct') one = await loadDirect(args[0], JSON.parse(args[1]));
  else if (mode === 'client') {
    const settings = JSON.parse(args[0]);
    one = (_client, url) => streamOnce(url, settings);
  } else throw new Error(`unknown side ${mode}: expected direct or client`);
  process.on('message', async ({ measure: job }) => {
    try {
      process.send(await measure((client) => one(client, job.url), job));
    } catch (error) {
      process.send({ error: String(error?.stack ?? error) });
    }
  });
  process.once('disconnect', () => process.exit(0));
  process.send({ ready: true });
} catch (error) {
  process.send({ error: String(error?.stack ?? error) });
}
