// A small seeded PRNG (xoshiro128**, seeded through splitmix32) so `seed` reproduces a sampled generation
// on every platform; Math.random is used only when no seed is given.
export class Random {
  private s = new Uint32Array(4);
  constructor(seed?: number) {
    let x = (seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
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
