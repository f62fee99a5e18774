// ggml's tensor types as GGUF files name them, and reader-side dequantizers for the block formats that
// GGUF files of GPT-2 use (the types of Q4_0/Q8_0/Q4_K_M/Q5_K_M downloads). Each dequantizer follows the
// reference dequantize_row_* of ggml-quants.c step by step, with every float operation rounded to f32 as
// C does, so the values equal what llama.cpp computes for the same blocks.
import { halfTable } from './half.js';

/** A ggml tensor type: `blockSize` elements are stored in `typeSize` bytes. */
export interface GGMLType { id: number; name: string; blockSize: number; typeSize: number }

const T = (id: number, name: string, blockSize: number, typeSize: number): GGMLType => ({ id, name, blockSize, typeSize });

/** Every type id ggml defines (ggml.h enum ggml_type), with its block layout (ggml-common.h). */
export const GGML_TYPES: ReadonlyMap<number, GGMLType> = new Map([
  T(0, 'F32', 1, 4), T(1, 'F16', 1, 2), T(2, 'Q4_0', 32, 18), T(3, 'Q4_1', 32, 20),
  T(6, 'Q5_0', 32, 22), T(7, 'Q5_1', 32, 24), T(8, 'Q8_0', 32, 34), T(9, 'Q8_1', 32, 36),
  T(10, 'Q2_K', 256, 84), T(11, 'Q3_K', 256, 110), T(12, 'Q4_K', 256, 144), T(13, 'Q5_K', 256, 176),
  T(14, 'Q6_K', 256, 210), T(15, 'Q8_K', 256, 292), T(16, 'IQ2_XXS', 256, 66), T(17, 'IQ2_XS', 256, 74),
  T(18, 'IQ3_XXS', 256, 98), T(19, 'IQ1_S', 256, 50), T(20, 'IQ4_NL', 32, 18), T(21, 'IQ3_S', 256, 110),
  T(22, 'IQ2_S', 256, 82), T(23, 'IQ4_XS', 256, 136), T(24, 'I8', 1, 1), T(25, 'I16', 1, 2), T(26, 'I32', 1, 4),
  T(27, 'I64', 1, 8), T(28, 'F64', 1, 8), T(29, 'IQ1_M', 256, 56), T(30, 'BF16', 1, 2), T(34, 'TQ1_0', 256, 54),
  T(35, 'TQ2_0', 256, 66), T(39, 'MXFP4', 32, 17),
].map((t) => [t.id, t]));

export const GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8, GGML_BF16 = 30;

export function ggmlTypeByName(name: string): GGMLType | undefined {
  for (const t of GGML_TYPES.values()) if (t.name === name.toUpperCase()) return t;
  return undefined;
}

const f = Math.fround;
const h16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);

/** Dequantizes `nBlocks` whole blocks from `src` into `out[at ...]`. */
type Dequantizer = (src: Uint8Array, nBlocks: number, out: Float32Array, at: number) => void;

// value = (nibble - 8) * d; low nibbles are elements 0..15, high nibbles 16..31.
function q4_0(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 18, d = H[h16(src, o)], y = at + i * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j];
      out[y + j] = f(((q & 15) - 8) * d);
      out[y + j + 16] = f(((q >>> 4) - 8) * d);
    }
  }
}

// value = nibble * d + m
function q4_1(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 20, d = H[h16(src, o)], m = H[h16(src, o + 2)], y = at + i * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 4 + j];
      out[y + j] = f(f((q & 15) * d) + m);
      out[y + j + 16] = f(f((q >>> 4) * d) + m);
    }
  }
}

/** The 5th bits of a Q5 block: bit j of the little-endian u32 belongs to element j. */
const qh32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

// value = (5-bit q - 16) * d
function q5_0(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 22, d = H[h16(src, o)], qh = qh32(src, o + 2), y = at + i * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 6 + j];
      const hi0 = ((qh >>> j) << 4) & 0x10, hi1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = f((((q & 15) | hi0) - 16) * d);
      out[y + j + 16] = f((((q >>> 4) | hi1) - 16) * d);
    }
  }
}

// value = 5-bit q * d + m
function q5_1(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 24, d = H[h16(src, o)], m = H[h16(src, o + 2)], qh = qh32(src, o + 4), y = at + i * 32;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 8 + j];
      const hi0 = ((qh >>> j) << 4) & 0x10, hi1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = f(f(((q & 15) | hi0) * d) + m);
      out[y + j + 16] = f(f(((q >>> 4) | hi1) * d) + m);
    }
  }
}

// value = int8 * d
function q8_0(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 34, d = H[h16(src, o)], y = at + i * 32;
    for (let j = 0; j < 32; j++) out[y + j] = f(((src[o + 2 + j] << 24) >> 24) * d);
  }
}

/** The 6-bit scale and min of sub-block j (0..7) from a K-quant's 12 packed bytes at `o` (get_scale_min_k4). */
function scaleMinK4(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j] & 63, b[o + j + 4] & 63];
  return [(b[o + j + 4] & 0xf) | ((b[o + j - 4] >>> 6) << 4), (b[o + j + 4] >>> 4) | ((b[o + j] >>> 6) << 4)];
}

// Super-blocks of 256: d, dmin (f16), 12 bytes of 6-bit scales/mins, 128 bytes of nibbles. Each 64 elements
// use two sub-block scales: the low nibbles of 32 bytes, then their high nibbles. value = d*sc*q - dmin*m.
function q4_K(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 144, d = H[h16(src, o)], dmin = H[h16(src, o + 2)];
    let q = o + 16, y = at + i * 256;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(src, o + 4, is), [sc2, m2] = scaleMinK4(src, o + 4, is + 1);
      const d1 = f(d * sc1), mm1 = f(dmin * m1), d2 = f(d * sc2), mm2 = f(dmin * m2);
      for (let l = 0; l < 32; l++) out[y++] = f(f(d1 * (src[q + l] & 15)) - mm1);
      for (let l = 0; l < 32; l++) out[y++] = f(f(d2 * (src[q + l] >>> 4)) - mm2);
      q += 32;
    }
  }
}

// As Q4_K with a 5th bit per element from 32 bytes of qh: bit pair (2k, 2k+1) serves the k-th 64 elements.
function q5_K(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 176, d = H[h16(src, o)], dmin = H[h16(src, o + 2)], qh = o + 16;
    let ql = o + 48, y = at + i * 256, u1 = 1, u2 = 2;
    for (let is = 0; is < 8; is += 2) {
      const [sc1, m1] = scaleMinK4(src, o + 4, is), [sc2, m2] = scaleMinK4(src, o + 4, is + 1);
      const d1 = f(d * sc1), mm1 = f(dmin * m1), d2 = f(d * sc2), mm2 = f(dmin * m2);
      for (let l = 0; l < 32; l++) out[y++] = f(f(d1 * ((src[ql + l] & 15) + (src[qh + l] & u1 ? 16 : 0))) - mm1);
      for (let l = 0; l < 32; l++) out[y++] = f(f(d2 * ((src[ql + l] >>> 4) + (src[qh + l] & u2 ? 16 : 0))) - mm2);
      ql += 32; u1 <<= 2; u2 <<= 2;
    }
  }
}

// Super-blocks of 256: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, f16 d.
// value = d * scale * (6-bit q - 32), in two halves of 128 elements.
function q6_K(src: Uint8Array, nb: number, out: Float32Array, at: number) {
  const H = halfTable();
  for (let i = 0; i < nb; i++) {
    const o = i * 210, d = H[h16(src, o + 208)];
    let ql = o, qh = o + 128, sc = o + 192, y = at + i * 256;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >>> 4, h = src[qh + l];
        const q1 = ((src[ql + l] & 15) | ((h & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32] & 15) | (((h >>> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l] >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32] >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
        const s = (k: number) => (src[sc + is + k] << 24) >> 24;
        out[y + l] = f(f(d * s(0)) * q1);
        out[y + l + 32] = f(f(d * s(2)) * q2);
        out[y + l + 64] = f(f(d * s(4)) * q3);
        out[y + l + 96] = f(f(d * s(6)) * q4);
      }
      y += 128; ql += 64; qh += 32; sc += 8;
    }
  }
}

const DEQUANTIZERS: ReadonlyMap<number, Dequantizer> = new Map([
  [2, q4_0], [3, q4_1], [6, q5_0], [7, q5_1], [8, q8_0], [12, q4_K], [13, q5_K], [14, q6_K],
]);

/** Quantized types this reader can convert to f32. */
export function canDequantize(type: number): boolean { return DEQUANTIZERS.has(type); }

/** Dequantize whole blocks of `type` from `src` (its length a multiple of the type size) into `out` from `at`. */
export function dequantizeBlocks(type: number, src: Uint8Array, out: Float32Array, at = 0): void {
  const t = GGML_TYPES.get(type), fn = DEQUANTIZERS.get(type);
  if (!t || !fn) throw new Error(`no dequantizer for ggml type ${t?.name ?? type}`);
  const nb = src.byteLength / t.typeSize;
  if (!Number.isInteger(nb)) throw new Error(`${src.byteLength} bytes is not a whole number of ${t.name} blocks (${t.typeSize} bytes each)`);
  if (at + nb * t.blockSize > out.length) throw new Error(`output too small for ${nb} ${t.name} blocks`);
  fn(src, nb, out, at);
}
