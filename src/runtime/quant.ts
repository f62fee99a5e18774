// The quantized weight blocks, byte for byte GGUF/ggml's Q8_0 and Q4_0, and their reference quantizers.
// A matrix [N rows, K cols] (K a multiple of 32) is N rows of K/32 blocks; each block covers 32 consecutive
// columns of one row:
//   Q8_0, 34 bytes: f16 scale d (little-endian), then 32 int8 q;        value = q * d
//   Q4_0, 18 bytes: f16 scale d, then 16 bytes: byte j holds element j in its low nibble and element j + 16
//                   in its high nibble;                                  value = (nibble - 8) * d
// The quantizers are ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref step for step in f32 arithmetic
// (Math.fround after every operation), so the same input gives the same blocks as the reference C code:
// the quantization uses the f32 scale d and its f32 inverse; only the stored scale is rounded to f16 (round to
// nearest even, as ggml's GGML_FP32_TO_FP16). They work on any whole number of blocks, so a loader or a GGUF
// writer can quantize a row, or a chunk of rows, at a time.
import { floatToHalf, halfTable } from '../io/half.js';

export const QK8_0 = 32; // values per Q8_0 block
export const Q8_0_BYTES = 34; // bytes per Q8_0 block
export const QK4_0 = 32;
export const Q4_0_BYTES = 18;

/** Bytes of `count` values (a multiple of 32) as Q8_0 / Q4_0 blocks. */
export const q8_0Bytes = (count: number) => (count / QK8_0) * Q8_0_BYTES;
export const q4_0Bytes = (count: number) => (count / QK4_0) * Q4_0_BYTES;

const f = Math.fround;

function checkSizes(src: ArrayLike<number>, dst: ArrayLike<number>, qk: number, blockBytes: number, what: string): number {
  if (src.length % qk !== 0) throw new RangeError(`${what}: ${src.length} values is not a whole number of ${qk}-value blocks`);
  const nb = src.length / qk;
  if (dst.length < nb * blockBytes) throw new RangeError(`${what}: ${nb} blocks need ${nb * blockBytes} bytes, the destination has ${dst.length}`);
  return nb;
}

/** C's float → int8_t conversion of an in-range value (truncation toward zero). ggml never converts a
 *  non-finite value except when a block's scale underflows (1/d = inf); x86's cvttss2si then gives INT_MIN,
 *  whose low byte is 0, which is what we store. */
const toInt8 = (v: number) => (Number.isFinite(v) ? Math.trunc(v) : 0);

/** C's roundf: to nearest, halfway cases away from zero (Math.round rounds them toward +inf). */
const roundf = (v: number) => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));

/** quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) via x * (1/d); the stored scale is f16(d). */
export function quantizeQ8_0(src: Float32Array, dst: Uint8Array): void {
  const nb = checkSizes(src, dst, QK8_0, Q8_0_BYTES, 'quantizeQ8_0');
  for (let b = 0; b < nb; b++) {
    const x = b * QK8_0, o = b * Q8_0_BYTES;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(src[x + j]));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    const h = floatToHalf(d);
    dst[o] = h & 0xff; dst[o + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) dst[o + 2 + j] = toInt8(roundf(f(src[x + j] * id))) & 0xff;
  }
}

/** quantize_row_q4_0_ref: max = the value of largest magnitude (the first one on ties), d = max / -8 so that
 *  max itself gets code 0 (-8), q = min(15, (int8)(x * (1/d) + 8.5)); the stored scale is f16(d). */
export function quantizeQ4_0(src: Float32Array, dst: Uint8Array): void {
  const nb = checkSizes(src, dst, QK4_0, Q4_0_BYTES, 'quantizeQ4_0');
  for (let b = 0; b < nb; b++) {
    const x = b * QK4_0, o = b * Q4_0_BYTES;
    let amax = 0, max = 0;
    for (let j = 0; j < QK4_0; j++) {
      const v = src[x + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    const h = floatToHalf(d);
    dst[o] = h & 0xff; dst[o + 1] = h >>> 8;
    for (let j = 0; j < QK4_0 / 2; j++) {
      const q0 = Math.min(15, toInt8(f(f(src[x + j] * id) + 8.5)));
      const q1 = Math.min(15, toInt8(f(f(src[x + QK4_0 / 2 + j] * id) + 8.5)));
      dst[o + 2 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4); // C's uint8_t cast and |= keep these bits
    }
  }
}

/** Q8_0 blocks → values (q * f32(d), exact in f32). */
export function dequantizeQ8_0(src: Uint8Array, dst: Float32Array): void {
  const nb = dst.length / QK8_0;
  if (!Number.isInteger(nb) || src.length < nb * Q8_0_BYTES) throw new RangeError(`dequantizeQ8_0: ${dst.length} values need ${Math.ceil(nb) * Q8_0_BYTES} bytes of blocks, got ${src.length}`);
  const half = halfTable();
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BYTES, d = half[src[o] | (src[o + 1] << 8)];
    for (let j = 0; j < QK8_0; j++) dst[b * QK8_0 + j] = ((src[o + 2 + j] << 24) >> 24) * d;
  }
}

/** Q4_0 blocks → values ((nibble - 8) * f32(d), exact in f32). */
export function dequantizeQ4_0(src: Uint8Array, dst: Float32Array): void {
  const nb = dst.length / QK4_0;
  if (!Number.isInteger(nb) || src.length < nb * Q4_0_BYTES) throw new RangeError(`dequantizeQ4_0: ${dst.length} values need ${Math.ceil(nb) * Q4_0_BYTES} bytes of blocks, got ${src.length}`);
  const half = halfTable();
  for (let b = 0; b < nb; b++) {
    const o = b * Q4_0_BYTES, d = half[src[o] | (src[o + 1] << 8)];
    for (let j = 0; j < QK4_0 / 2; j++) {
      const byte = src[o + 2 + j];
      dst[b * QK4_0 + j] = ((byte & 0x0f) - 8) * d;
      dst[b * QK4_0 + QK4_0 / 2 + j] = ((byte >>> 4) - 8) * d;
    }
  }
}

/** Index of the first block whose stored scale is not finite (|x| beyond 65504·127 for Q8_0 or 65504·8 for
 *  Q4_0 overflows the f16 scale), or -1. */
export function firstNonFiniteScale(blocks: Uint8Array, blockBytes: number): number {
  for (let o = 0, b = 0; o + 1 < blocks.length; o += blockBytes, b++) if ((blocks[o + 1] & 0x7c) === 0x7c) return b;
  return -1;
}
