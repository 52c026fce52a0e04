/**
 * A small, fast, seedable generator (sfc32, by Chris Doty-Humphrey) for demo weights. Not for
 * anything secret: its point is that the same seed gives the same numbers on every machine, so a
 * demo model is byte-for-byte reproducible.
 */
export class SeededRandom {
  #a: number;
  #b: number;
  #c: number;
  #counter: number;

  /** Seeds from any text (such as `${seed}:${tensorName}`), so each tensor gets its own stream. */
  constructor(seed: string) {
    const hash = fnv1a(seed);
    // splitmix32 spreads the one hash over the four state words.
    let state = hash;
    const next = () => {
      state = (state + 0x9e3779b9) | 0;
      let mixed = state ^ (state >>> 16);
      mixed = Math.imul(mixed, 0x21f0aaad);
      mixed ^= mixed >>> 15;
      mixed = Math.imul(mixed, 0x735a2d97);
      return (mixed ^ (mixed >>> 15)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#counter = 1;
    // The first outputs of sfc32 still show the seed's structure; discard them, as its author advises.
    for (let round = 0; round < 12; round++) this.nextUint32();
  }

  nextUint32(): number {
    const result = (((this.#a + this.#b) | 0) + this.#counter) | 0;
    this.#counter = (this.#counter + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + result) | 0;
    return result >>> 0;
  }

  /** Uniform in [-limit, limit). */
  nextSymmetric(limit: number): number {
    return (this.nextUint32() / 0x100000000) * 2 * limit - limit;
  }
}

/** 32-bit FNV-1a over the UTF-16 code units of `text`. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
