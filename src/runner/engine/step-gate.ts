import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from 'node-llama-cpp';

/**
 * How many times in a row a step may be held back for sequences that have not queued their next
 * token yet. A sequence queues it within a few microtask turns of its last step's result (6–7
 * held rounds a step on average, measured at 4 and 8 concurrent requests); a held round costs
 * about 1 µs, so a sequence that is busy elsewhere (a grammar compiling, a request finishing)
 * delays a step by a few tens of microseconds at most.
 */
const defaultMaxHolds = 32;

export interface StepCounts {
  readonly steps: number;
  readonly sequences: number;
}

/**
 * The context's queued decodes, in the order node-llama-cpp hands them to the strategy as items.
 * node-llama-cpp 3.21 keeps them in `LlamaContext._queuedDecodes` (internal; the items it gives
 * the strategy carry no sequence id).
 */
export type QueuedDecodes = readonly { readonly sequenceId: number }[];

export interface StepGateOptions {
  readonly maxHolds?: number;
  readonly counted?: StepCounts;
  /** Milliseconds, for timing steps; `performance.now` unless a test gives its own. */
  readonly now?: () => number;
  /** A layout for every step of several sequences, instead of timing both and keeping the faster. */
  readonly arrangement?: Arrangement | undefined;
}

/**
 * How a step of several generating sequences is laid out for llama.cpp: `joined`, in increasing
 * id order, one decode of them all; `apart`, in decreasing order, one decode each.
 */
export type Arrangement = 'joined' | 'apart';

/** Steps timed in each arrangement before choosing, for a number of sequences. */
const trialsPerArrangement = 8;
/** Steps of a number of sequences after which the choice is timed afresh. */
const stepsPerChoice = 4096;

/**
 * Fills each decode step with every sequence that is generating, where node-llama-cpp alone
 * leaves one out.
 *
 * node-llama-cpp decodes a step as soon as its dispatch loop finds any sequence's next token
 * queued, and its loop looks again the moment a step's results are handed out, before every
 * sequence has sampled and queued its next token. With 4 requests generating, every step held 3
 * of them; with 8, about 7. A partial step costs nearly what a full one does, and on a CPU
 * llama.cpp's batched kernel for 3 rows is slower per token than the one for 4 (2,230 against
 * 1,730 µs of decoding a token), so partial steps cost twice. Given to the context as its
 * batching prioritisation strategy, the gate answers
 * "nothing yet" (an empty batch, after which the loop looks again at once) while fewer sequences
 * are queued than are generating, up to `maxHolds` times in a row, then lets the step go with
 * what is there.
 *
 * Measured on the small demo model, one thread, node-llama-cpp driven directly: 4.00 tokens a
 * step instead of 2.99 at 4 requests (418 → 540 tokens/s), 8.00 instead of 6.97 at 8 (559 → 739).
 */
export class StepGate {
  readonly #maxHolds: number;
  #generating = 0;
  #held = 0;
  #steps = 0;
  #stepSequences = 0;
  #queue: (() => QueuedDecodes | undefined) | undefined;
  readonly #now: () => number;
  readonly #arrangement: Arrangement | undefined;
  readonly #choices = new Map<number, ArrangementChoice>();
  /** The last step let go, while it is being decoded: timed by the next step's start. */
  #running:
    | { readonly choice: ArrangementChoice; readonly arrangement: Arrangement; readonly at: number }
    | undefined;

  /** `counted`: counts to go on from, those of the gate this one replaces for the same model. */
  constructor({
    maxHolds = defaultMaxHolds,
    counted,
    now = () => performance.now(),
    arrangement,
  }: StepGateOptions = {}) {
    this.#maxHolds = maxHolds;
    this.#arrangement = arrangement;
    this.#steps = counted?.steps ?? 0;
    this.#stepSequences = counted?.sequences ?? 0;
    this.#now = now;
  }

  /**
   * Where to read the sequence ids of the queued decodes, so each step lists its sequences in
   * increasing id order. llama.cpp (its per-sequence KV cache, node-llama-cpp's default) splits a
   * step into one decode per run of consecutive increasing ids in the order given: four sequences
   * given as 3, 2, 1, 0 are four decodes of one token each, and 0, 1, 2, 3 one decode of four.
   * Measured before this, through the engine at 4 requests, every step held all 4 sequences, yet
   * the pool thread spent 2,100–2,160 µs a token against 1,770–1,910 for node-llama-cpp driven
   * directly with the same gate (`perf`: llama.cpp's 1-, 2- and 3-row kernels instead of its 4-row
   * one), because the engine's sequences queue in whatever order requests reached them.
   *
   * One decode of them all is not always the faster: on the CPU here, llama.cpp's kernel for 2
   * rows costs more per token than two 1-row decodes (the small demo model, directly: 280–300
   * tokens/s at 2 requests joined, 390–450 apart; 440–800 joined at 4 and 8, 435–480 apart). So
   * for each number of sequences the gate times both layouts over a few steps each and keeps the
   * faster, timing them again every few thousand steps; on a GPU, joined wins.
   */
  follow(queue: () => QueuedDecodes | undefined): void {
    this.#queue = queue;
  }

  /** A sequence starts generating: until `leave`, steps wait for its tokens. */
  enter(): void {
    this.#generating++;
  }

  leave(): void {
    this.#generating--;
  }

  /** Decode steps let go, and the sequences they held in all: their ratio is the mean fill. */
  get counts(): StepCounts {
    return { steps: this.#steps, sequences: this.#stepSequences };
  }

  readonly strategy: CustomBatchingPrioritizationStrategy = ({ items, size }) => {
    // Where one decode each is faster for this many sequences, holding a step gains nothing: each
    // sequence is decoded as soon as its token is queued, as node-llama-cpp does alone.
    const holds = (this.#arrangement ?? this.#choices.get(this.#generating)?.decided) !== 'apart';
    if (holds && items.length < this.#generating && this.#held < this.#maxHolds) {
      this.#held++;
      return [];
    }
    this.#held = 0;
    const batch = shareBatch(items, size);
    this.#steps++;
    this.#stepSequences += batch.length;
    const now = this.#now();
    // The step before ran from its start until now: its decode, sampling, and the wait for every
    // sequence's next token, the same in either layout.
    if (this.#running !== undefined) {
      const { choice, arrangement, at } = this.#running;
      choice.record(arrangement, now - at);
      this.#running = undefined;
    }
    if (batch.length < 2) return batch;
    const ids = this.#sequenceIds(items);
    if (ids === undefined) return batch;
    // Only steps of one token a sequence are timed: a prompt's tokens would swamp the comparison.
    if (!batch.every((chosen) => chosen.processAmount === 1)) return arrange(batch, ids, 'joined');
    if (this.#arrangement !== undefined) return arrange(batch, ids, this.#arrangement);
    let choice = this.#choices.get(batch.length);
    if (choice === undefined) {
      choice = new ArrangementChoice();
      this.#choices.set(batch.length, choice);
    }
    const arrangement = choice.next();
    this.#running = { choice, arrangement, at: now };
    return arrange(batch, ids, arrangement);
  };

  /** The layout in use, or being timed, for steps of `sequences` sequences; `joined` before any. */
  arrangementFor(sequences: number): Arrangement {
    return this.#arrangement ?? this.#choices.get(sequences)?.current ?? 'joined';
  }

  /** Each item's sequence id, or undefined if the queue read does not match the items. */
  #sequenceIds(items: readonly BatchItem[]): Map<BatchItem, number> | undefined {
    const queued = this.#queue?.();
    // Anything unexpected (another node-llama-cpp, a queue changed meanwhile): the order as given.
    if (!Array.isArray(queued) || queued.length !== items.length) return undefined;
    const ids = new Map<BatchItem, number>();
    for (const [index, item] of items.entries()) {
      const id = queued[index]?.sequenceId;
      if (typeof id !== 'number') return undefined;
      ids.set(item, id);
    }
    return ids;
  }
}

/** `joined`: increasing sequence ids; `apart`: decreasing, so llama.cpp decodes each alone. */
function arrange(
  batch: PrioritizedBatchItem[],
  ids: ReadonlyMap<BatchItem, number>,
  arrangement: Arrangement,
): PrioritizedBatchItem[] {
  const direction = arrangement === 'joined' ? 1 : -1;
  return batch.sort((a, b) => direction * (ids.get(a.item)! - ids.get(b.item)!));
}

/**
 * Which layout is faster for steps of one number of sequences: both timed in turn over
 * `trialsPerArrangement` steps each, then the one with the lower median kept for
 * `stepsPerChoice` steps, then timed again (the machine, or what else runs on it, changes).
 */
class ArrangementChoice {
  #chosen: Arrangement | undefined;
  #stepsSinceChosen = 0;
  #trials: Record<Arrangement, number[]> = { joined: [], apart: [] };

  /** The layout kept, once both are timed; undefined while they are. */
  get decided(): Arrangement | undefined {
    return this.#chosen;
  }

  get current(): Arrangement {
    return this.#chosen ?? (this.#trials.joined.length <= this.#trials.apart.length ? 'joined' : 'apart');
  }

  /** The layout for the next step of this size. */
  next(): Arrangement {
    if (this.#chosen !== undefined) {
      if (++this.#stepsSinceChosen <= stepsPerChoice) return this.#chosen;
      this.#chosen = undefined;
      this.#trials = { joined: [], apart: [] };
    }
    return this.current;
  }

  record(arrangement: Arrangement, milliseconds: number): void {
    if (this.#chosen !== undefined) return;
    this.#trials[arrangement].push(milliseconds);
    const { joined, apart } = this.#trials;
    if (joined.length >= trialsPerArrangement && apart.length >= trialsPerArrangement) {
      this.#chosen = median(apart) < median(joined) ? 'apart' : 'joined';
      this.#stepsSinceChosen = 0;
    }
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Splits a batch of `size` tokens among the queued items: each an equal share in queue order (a
 * generating sequence needs one token, a prompt may need hundreds), then what shares left unused
 * to the items that still have tokens, higher evaluation priority first.
 */
export function shareBatch(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  const share = Math.max(1, Math.floor(size / Math.max(1, items.length)));
  let left = size;
  const batch: PrioritizedBatchItem[] = [];
  for (const item of items) {
    if (left === 0) break;
    const processAmount = Math.min(item.tokens.length, share, left);
    batch.push({ item, processAmount });
    left -= processAmount;
  }
  const wanting = batch
    .filter((chosen) => chosen.processAmount < chosen.item.tokens.length)
    .sort((a, b) => b.item.evaluationPriority - a.item.evaluationPriority);
  for (const chosen of wanting) {
    if (left === 0) break;
    const more = Math.min(chosen.item.tokens.length - chosen.processAmount, left);
    chosen.processAmount += more;
    left -= more;
  }
  return batch;
}
