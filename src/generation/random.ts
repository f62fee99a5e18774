// A small seeded PRNG (xoshiro128**, seeded through splitmix32) so `seed` reproduces a sampled generation
// on every platform; Math.random is used only when no seed is given.
import { OptionError } from '../errors.js';

/** Largest seed: every integer seed from 0 to 2^53 - 1 gives its own sequence. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export class Random {
  private s = new Uint32Array(4);
  /** Throws OptionError for a seed that is not an integer from 0 to 2^53 - 1. */
  constructor(seed?: number) {
    if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) throw new OptionError(`seed must be an integer from 0 to ${MAX_SEED} (2^53 - 1), got ${seed}`);
    const full = seed ?? Math.floor(Math.random() * 2 ** 32);
    // the low 32 bits seed splitmix32 as they always did; the high 21 bits are mixed into the last two words by
    // multiplications with odd constants (bijections), so two different seeds never give the same state
    const lo = full % 2 ** 32, hi = Math.floor(full / 2 ** 32);
    let x = lo;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.s[2] ^= Math.imul(hi, 0x2545f491);
    this.s[3] ^= Math.imul(hi, 0x9e3779b1);
  }
  private nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
    return result;
  }
  /** Uniform in [0, 1) with 53 random bits. */
  next(): number { return (this.nextU32() * 2 ** 21 + (this.nextU32() >>> 11)) / 2 ** 53; }
}
const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
