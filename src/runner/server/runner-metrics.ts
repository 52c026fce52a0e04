import type { EngineChatResult, EngineModelStats } from '../engine/index.js';

/**
 * The runner's Prometheus metrics, named after vLLM's (`vllm:num_requests_running` becomes
 * `switchyard_runner_num_requests_running`) so a load-aware router reads a local runner and a
 * vLLM fleet the same way. Text format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 * Gauges of running and waiting requests are read from the engine at scrape time, so the hot path
 * only adds to a few numbers.
 */
export class RunnerMetrics {
  readonly #perModel = new Map<string, ModelCounters>();

  /** Records a finished generation. */
  observe(model: string, result: EngineChatResult): void {
    const counters = this.#counters(model);
    counters.promptTokens += result.usage.promptTokens;
    counters.generationTokens += result.usage.completionTokens;
    counters.success[result.finishReason]++;
    const { firstTokenMs, totalMs } = result.timings;
    if (firstTokenMs !== null) {
      counters.timeToFirstToken.observe(firstTokenMs / 1000);
      const later = result.usage.completionTokens - 1;
      if (later > 0) counters.timePerOutputToken.observe((totalMs - firstTokenMs) / 1000 / later);
    }
  }

  /** Records a request that produced no completion: refused, failed or abandoned by its client. */
  fail(model: string, reason: FailureReason): void {
    this.#counters(model).failures[reason]++;
  }

  /** Records a finished embeddings request and the tokens it evaluated. */
  observeEmbedding(model: string, promptTokens: number): void {
    const counters = this.#counters(model);
    counters.embeddingSuccess++;
    counters.embeddingPromptTokens += promptTokens;
  }

  /** Records an embeddings request that produced no vectors. */
  failEmbedding(model: string, reason: FailureReason): void {
    this.#counters(model).embeddingFailures[reason]++;
  }

  /** `maxMemoryBytes`: the engine's RAM budget, beside which the models' estimates read. */
  render(stats: readonly EngineModelStats[], maxMemoryBytes: number): string {
    const names = new Set([...stats.map((model) => model.name), ...this.#perModel.keys()]);
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${prefix}${name} ${help}`, `# TYPE ${prefix}${name} ${type}`);
    const sample = (name: string, labels: string, value: number) =>
      lines.push(`${prefix}${name}{${labels}} ${formatNumber(value)}`);

    const gauges: [string, string, (model: EngineModelStats) => number | null][] = [
      ['num_requests_running', 'Requests holding a sequence, being decoded.', (model) => model.running],
      ['num_requests_waiting', 'Requests queued for a free sequence.', (model) => model.waiting],
      ['parallel_sequences', 'Sequences decoded together in one batch (slots).', (model) => model.parallel],
      ['model_loaded', '1 when the model is loaded.', (model) => (model.loaded ? 1 : 0)],
      [
        'model_keep_alive_seconds',
        'How long the model stays loaded once idle; +Inf for forever.',
        (model) => model.keepAliveMs / 1000,
      ],
      ['model_load_seconds', 'How long loading the model took.', (model) => model.loadSeconds],
      ['context_size_tokens', 'Tokens of context each request gets.', (model) => model.contextSize],
      [
        'model_memory_estimate_bytes',
        'RAM the model counts against the memory budget, estimated from its GGUF before loading, its embedding context included once made.',
        (model) => model.estimatedBytes,
      ],
      [
        'model_vram_estimate_bytes',
        "GPU memory the model counts against what the GPU has for the runner's models, estimated likewise; 0 on the CPU.",
        (model) => model.estimatedVramBytes,
      ],
    ];
    for (const [name, help, read] of gauges) {
      family(name, 'gauge', help);
      for (const model of stats) {
        const value = read(model);
        if (value !== null) sample(name, modelLabel(model.name), value);
      }
    }
    family(
      'model_memory_bytes',
      'gauge',
      'Memory estimated for the weights and contexts (chat, and embedding once made), by kind.',
    );
    for (const model of stats) {
      if (model.memoryBytes === null) continue;
      sample('model_memory_bytes', `${modelLabel(model.name)},kind="ram"`, model.memoryBytes.ram);
      sample('model_memory_bytes', `${modelLabel(model.name)},kind="vram"`, model.memoryBytes.vram);
    }
    // One runner-wide value, so no labels: the loaded models' estimates add up to at most this.
    family('memory_budget_bytes', 'gauge', 'Memory the loaded models may take together (runner.max_memory).');
    lines.push(`${prefix}memory_budget_bytes ${maxMemoryBytes}`);

    family('model_unloads_total', 'counter', 'Unloads: keep-alive expired, or room made for another model.');
    for (const model of stats) sample('model_unloads_total', modelLabel(model.name), model.unloads);
    family('decode_steps_total', 'counter', 'Decode steps (llama_decode calls) of the chat context.');
    for (const model of stats) sample('decode_steps_total', modelLabel(model.name), model.decodeSteps);
    family(
      'decode_step_sequences_total',
      'counter',
      'Sequences the decode steps held, summed; over decode_steps_total, the mean batch fill.',
    );
    for (const model of stats) {
      sample('decode_step_sequences_total', modelLabel(model.name), model.decodeStepSequences);
    }
    family('prompt_tokens_total', 'counter', 'Prompt tokens processed.');
    for (const name of names) sample('prompt_tokens_total', modelLabel(name), this.#read(name).promptTokens);
    family('generation_tokens_total', 'counter', 'Tokens generated.');
    for (const name of names) {
      sample('generation_tokens_total', modelLabel(name), this.#read(name).generationTokens);
    }
    family('request_success_total', 'counter', 'Requests that completed, by finish reason.');
    for (const name of names) {
      for (const [reason, count] of Object.entries(this.#read(name).success)) {
        sample('request_success_total', `${modelLabel(name)},finished_reason="${reason}"`, count);
      }
    }
    family('request_failure_total', 'counter', 'Requests that produced no completion, by reason.');
    for (const name of names) {
      for (const [reason, count] of Object.entries(this.#read(name).failures)) {
        sample('request_failure_total', `${modelLabel(name)},reason="${reason}"`, count);
      }
    }
    // Apart from the chat series, so those keep meaning one thing: prompt tokens per completion.
    family('embedding_prompt_tokens_total', 'counter', 'Tokens evaluated for embeddings.');
    for (const name of names) {
      sample('embedding_prompt_tokens_total', modelLabel(name), this.#read(name).embeddingPromptTokens);
    }
    family('embedding_request_success_total', 'counter', 'Embeddings requests that completed.');
    for (const name of names) {
      sample('embedding_request_success_total', modelLabel(name), this.#read(name).embeddingSuccess);
    }
    family(
      'embedding_request_failure_total',
      'counter',
      'Embeddings requests that produced no vectors, by reason.',
    );
    for (const name of names) {
      for (const [reason, count] of Object.entries(this.#read(name).embeddingFailures)) {
        sample('embedding_request_failure_total', `${modelLabel(name)},reason="${reason}"`, count);
      }
    }
    for (const [name, help, pick] of histograms) {
      family(name, 'histogram', help);
      for (const model of names) pick(this.#read(model)).render(lines, `${prefix}${name}`, modelLabel(model));
    }
    lines.push('');
    return lines.join('\n');
  }

  #counters(model: string): ModelCounters {
    let counters = this.#perModel.get(model);
    if (counters === undefined) {
      counters = newCounters();
      this.#perModel.set(model, counters);
    }
    return counters;
  }

  #read(model: string): ModelCounters {
    return this.#perModel.get(model) ?? emptyCounters;
  }
}

export const runnerMetricsContentType = 'text/plain; version=0.0.4; charset=utf-8';

const prefix = 'switchyard_runner_';

/** `too_large`: the model needs more than the runner's whole memory budget (`ModelTooLargeError`). */
export type FailureReason = 'overloaded' | 'too_large' | 'aborted' | 'error';

interface ModelCounters {
  promptTokens: number;
  generationTokens: number;
  success: { stop: number; length: number };
  failures: Record<FailureReason, number>;
  embeddingPromptTokens: number;
  embeddingSuccess: number;
  embeddingFailures: Record<FailureReason, number>;
  timeToFirstToken: Histogram;
  timePerOutputToken: Histogram;
}

/** vLLM's buckets, with finer ones below 10 ms, where small models on a CPU land. */
const timeToFirstTokenBuckets = [
  0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
const timePerOutputTokenBuckets = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5,
];

const histograms: [string, string, (counters: ModelCounters) => Histogram][] = [
  [
    'time_to_first_token_seconds',
    'Time from holding a sequence to the first token.',
    (c) => c.timeToFirstToken,
  ],
  ['time_per_output_token_seconds', 'Time per generated token after the first.', (c) => c.timePerOutputToken],
];

function newCounters(): ModelCounters {
  return {
    promptTokens: 0,
    generationTokens: 0,
    success: { stop: 0, length: 0 },
    failures: { overloaded: 0, too_large: 0, aborted: 0, error: 0 },
    embeddingPromptTokens: 0,
    embeddingSuccess: 0,
    embeddingFailures: { overloaded: 0, too_large: 0, aborted: 0, error: 0 },
    timeToFirstToken: new Histogram(timeToFirstTokenBuckets),
    timePerOutputToken: new Histogram(timePerOutputTokenBuckets),
  };
}

class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let index = 0; index < this.#bounds.length; index++) {
      if (value <= this.#bounds[index]!) {
        this.#counts[index]!++;
        return;
      }
    }
  }

  render(lines: string[], name: string, labels: string): void {
    let cumulative = 0;
    for (let index = 0; index < this.#bounds.length; index++) {
      cumulative += this.#counts[index]!;
      lines.push(`${name}_bucket{${labels},le="${this.#bounds[index]}"} ${cumulative}`);
    }
    lines.push(`${name}_bucket{${labels},le="+Inf"} ${this.#count}`);
    lines.push(`${name}_sum{${labels}} ${formatNumber(this.#sum)}`);
    lines.push(`${name}_count{${labels}} ${this.#count}`);
  }
}

function modelLabel(model: string): string {
  return `model_name="${escapeLabel(model)}"`;
}

/** Label values escape backslash, double quote and newline, per the text format. */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (character) => (character === '\n' ? '\\n' : `\\${character}`));
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}

/** What an unseen model reads as; after `Histogram`, which it needs initialised. */
const emptyCounters = newCounters();
