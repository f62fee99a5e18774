// ggml's reference quantizers for the two block formats the GGUF writer produces, following
// quantize_row_q8_0_ref and quantize_row_q4_0_ref of ggml-quants.c operation by operation (f32 arithmetic,
// the same rounding), so that a checkpoint quantized here and by ggml's tools gives the same blocks.
// (The runtime's q8/q4 work brings its own quantizers; these are the writer's, and should become one.)
import { floatToHalf } from '../model/half.js';

export const QK = 32;
export const Q8_0_BYTES = 34;
export const Q4_0_BYTES = 18;

const f = Math.fround;
/** C's roundf: halves away from zero. */
const roundAway = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));

function putHalf(out: Uint8Array, o: number, v: number) {
  const h = floatToHalf(v);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
}

/** x[0..n) (n a multiple of 32) → n/32 Q8_0 blocks at out[at..]: d = amax/127 as f16, q = round(x/d). */
export function quantizeQ8_0(x: Float32Array, out: Uint8Array, at = 0): void {
  if (x.length % QK) throw new RangeError(`Q8_0 needs a multiple of ${QK} values, got ${x.length}`);
  for (let b = 0; b < x.length / QK; b++) {
    const s = b * QK, o = at + b * Q8_0_BYTES;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[s + j]));
    const d = f(amax / 127), id = d ? f(1 / d) : 0;
    putHalf(out, o, d);
    for (let j = 0; j < QK; j++) out[o + 2 + j] = roundAway(f(x[s + j] * id)) & 0xff;
  }
}

/**
 * x[0..n) → Q4_0 blocks: d = (the value of largest magnitude) / -8 as f16, so that it maps to nibble 0 (-8);
 * q = min(15, trunc(x/d + 8.5)); element j in the low nibble of byte j, element j+16 in its high nibble.
 */
export function quantizeQ4_0(x: Float32Array, out: Uint8Array, at = 0): void {
  if (x.length % QK) throw new RangeError(`Q4_0 needs a multiple of ${QK} values, got ${x.length}`);
  for (let b = 0; b < x.length / QK; b++) {
    const s = b * QK, o = at + b * Q4_0_BYTES;
    let amax = 0, max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[s + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = f(max / -8), id = d ? f(1 / d) : 0;
    putHalf(out, o, d);
    for (let j = 0; j < QK / 2; j++) {
      const q0 = Math.min(15, Math.trunc(f(f(x[s + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(f(f(x[s + j + 16] * id) + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}
