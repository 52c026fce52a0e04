import { englishWords } from './english-words.js';
import { tokenTypes } from './format.js';

/** A SentencePiece-style ("llama") vocabulary, in the three parallel arrays GGUF stores. */
export interface DemoVocabulary {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly tokenTypes: readonly number[];
  readonly unknownId: number;
  readonly beginId: number;
  readonly endId: number;
  readonly chatStartId: number;
  readonly chatEndId: number;
}

/** SentencePiece writes a space as U+2581 and marks each word's start with it. */
export const wordBoundary = '\u2581';

/** Merges learned from the word list; enough that every listed word becomes one token. */
const maximumMerges = 4000;

let cached: DemoVocabulary | undefined;

/**
 * The demo models' vocabulary: the special tokens llama.cpp and ChatML need, the 256 byte tokens
 * `<0x00>`…`<0xFF>` that let any text be encoded (llama.cpp's SentencePiece tokenizer falls back
 * to them for characters the vocabulary lacks, and fails to load a model without them), printable
 * ASCII, and pieces learned by byte-pair merging over common English words.
 *
 * llama.cpp tokenizes a "llama" vocabulary by repeatedly joining the adjacent pair whose joined
 * text is a token with the highest score. Scoring each merge by its training rank makes that
 * reproduce the training merges, so common words come out as single tokens.
 */
export function demoVocabulary(): DemoVocabulary {
  cached ??= buildVocabulary();
  return cached;
}

function buildVocabulary(): DemoVocabulary {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const known = new Set<string>();
  const add = (token: string, score: number, type: number) => {
    if (known.has(token)) return;
    known.add(token);
    tokens.push(token);
    scores.push(score);
    types.push(type);
  };

  add('<unk>', 0, tokenTypes.unknown);
  add('<s>', 0, tokenTypes.control);
  add('</s>', 0, tokenTypes.control);
  add('<|im_start|>', 0, tokenTypes.control);
  add('<|im_end|>', 0, tokenTypes.control);
  for (let byte = 0; byte < 256; byte++) {
    add(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`, 0, tokenTypes.byte);
  }
  // Single characters are never the result of a merge, so their scores never decide anything;
  // they sit below every merged piece.
  const characterScore = -(maximumMerges + 1);
  add(wordBoundary, characterScore, tokenTypes.normal);
  for (let code = 0x21; code <= 0x7e; code++) {
    add(String.fromCharCode(code), characterScore, tokenTypes.normal);
  }

  for (const [rank, piece] of learnMerges(trainingWords()).entries()) add(piece, -rank, tokenTypes.normal);

  return {
    tokens,
    scores,
    tokenTypes: types,
    unknownId: tokens.indexOf('<unk>'),
    beginId: tokens.indexOf('<s>'),
    endId: tokens.indexOf('</s>'),
    chatStartId: tokens.indexOf('<|im_start|>'),
    chatEndId: tokens.indexOf('<|im_end|>'),
  };
}

/**
 * Each listed word as it appears after a space, with a weight falling with its rank (Zipf), and
 * the forms that start a text. The demo models do not add a leading space to text (see
 * `tokenizer.ggml.add_space_prefix` in demo-model.ts), so a message's first word, and the role
 * name after `<|im_start|>`, appear without the word-boundary marker.
 */
function trainingWords(): Map<string, number> {
  const weights = new Map<string, number>();
  const addText = (text: string, weight: number) => weights.set(text, (weights.get(text) ?? 0) + weight);
  englishWords.forEach((word, rank) => {
    const weight = Math.ceil(100_000 / (rank + 10));
    addText(wordBoundary + word, weight);
    if (rank < 200) {
      const capitalised = word[0]!.toUpperCase() + word.slice(1);
      addText(wordBoundary + capitalised, Math.ceil(weight / 4));
      addText(capitalised, Math.ceil(weight / 4));
    }
  });
  for (const role of ['system', 'user', 'assistant']) addText(role, 5_000);
  return weights;
}

/**
 * Byte-pair merging: repeatedly join the most frequent adjacent pair of symbols (ties broken by
 * the joined text, so the result never depends on map order) until every word is one symbol.
 * Returns the new pieces in the order they were learned.
 */
function learnMerges(weights: Map<string, number>): string[] {
  const words = [...weights].map(([text, weight]) => ({ symbols: [...text], weight }));
  const pairCounts = new Map<string, number>();
  // Pairs are keyed as "left\0right"; NUL never occurs in the training words.
  const countPairs = (symbols: readonly string[], weight: number) => {
    for (let index = 0; index + 1 < symbols.length; index++) {
      const pair = `${symbols[index]}\0${symbols[index + 1]}`;
      const count = (pairCounts.get(pair) ?? 0) + weight;
      if (count === 0) pairCounts.delete(pair);
      else pairCounts.set(pair, count);
    }
  };
  for (const word of words) countPairs(word.symbols, word.weight);

  const pieces: string[] = [];
  const learned = new Set<string>();
  while (pieces.length < maximumMerges && pairCounts.size > 0) {
    let bestPair = '';
    let bestCount = 0;
    for (const [pair, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && pair < bestPair)) {
        bestPair = pair;
        bestCount = count;
      }
    }
    const [left, right] = bestPair.split('\0') as [string, string];
    const joined = left + right;
    if (!learned.has(joined)) {
      learned.add(joined);
      pieces.push(joined);
    }
    for (const word of words) {
      if (!containsPair(word.symbols, left, right)) continue;
      countPairs(word.symbols, -word.weight);
      word.symbols = joinPair(word.symbols, left, right);
      countPairs(word.symbols, word.weight);
    }
  }
  return pieces;
}

function containsPair(symbols: readonly string[], left: string, right: string): boolean {
  for (let index = 0; index + 1 < symbols.length; index++) {
    if (symbols[index] === left && symbols[index + 1] === right) return true;
  }
  return false;
}

function joinPair(symbols: readonly string[], left: string, right: string): string[] {
  const joined: string[] = [];
  for (let index = 0; index < symbols.length; index++) {
    if (index + 1 < symbols.length && symbols[index] === left && symbols[index + 1] === right) {
      joined.push(left + right);
      index++;
    } else {
      joined.push(symbols[index]!);
    }
  }
  return joined;
}
