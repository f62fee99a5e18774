// The Q8_0 / Q4_0 quantizers against blocks worked out by hand from ggml's reference code
// (quantize_row_q8_0_ref, quantize_row_q4_0_ref): ties, the -8 code, the signed max, zero blocks, the f16
// rounding of the stored scale and the unrounded scale used for quantizing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Q4_0_BYTES, Q8_0_BYTES, QK4_0, QK8_0, dequantizeQ4_0, dequantizeQ8_0, firstNonFiniteScale, q4_0Bytes, q8_0Bytes,
  quantizeQ4_0, quantizeQ8_0,
} from '../src/runtime/quant.js';

const block = (vals: Record<number, number>) => { const b = new Float32Array(32); for (const [i, v] of Object.entries(vals)) b[+i] = v; return b; };
const i8 = (v: number) => v & 0xff;

test('block sizes are GGUF\'s', () => {
  assert.is(QK8_0, 32); assert.is(Q8_0_BYTES, 34); assert.is(QK4_0, 32); assert.is(Q4_0_BYTES, 18);
  assert.is(q8_0Bytes(768), 24 * 34); assert.is(q4_0Bytes(768), 24 * 18);
});

test('Q8_0: d = amax/127 stored as f16, q = roundf(x/d) with ties away from zero', () => {
  // block 0: amax 127 → d = 1 (f16 0x3c00), id = 1: x = q exactly, ties at ±k.5
  const b0 = block({ 0: 127, 1: -127, 2: 2.5, 3: -2.5, 4: 0.5, 5: -0.5, 6: 1.4999, 7: -1.5001, 8: 100.25 });
  // block 1: amax 63.5 → d = 0.5 (f16 0x3800), id = 2
  const b1 = block({ 0: 1.25, 1: -1.25, 2: -63.5, 3: -0.25, 4: 0.2, 5: 31.75 });
  // block 2: amax 1 → d = fround(1/127) = 0.0078740157, f16 0x2008 (= 0.0078735); id = fround(1/d) = 127.
  // 0.4999921·127 = 63.499 → 63 with the f32 scale (the f16 one would give 63.503 → 64); ±0.5 → ±63.5 → ±64
  const b2 = block({ 0: 1, 1: 0.4999921, 2: 0.5, 3: -0.5 });
  // block 3: all zeros → d = 0, all q = 0
  const src = new Float32Array(128);
  src.set(b0, 0); src.set(b1, 32); src.set(b2, 64);
  const dst = new Uint8Array(4 * 34).fill(0xee);
  quantizeQ8_0(src, dst);
  const want = new Uint8Array(4 * 34);
  want.set([0x00, 0x3c, 127, i8(-127), 3, i8(-3), 1, i8(-1), 1, i8(-2), 100], 0);
  want.set([0x00, 0x38, 3, i8(-3), i8(-127), i8(-1), 0, 64], 34); // 31.75·2 = 63.5 → 64
  want.set([0x08, 0x20, 127, 63, 64, i8(-64)], 68);
  assert.equal([...dst], [...want]);
  const back = new Float32Array(128);
  dequantizeQ8_0(dst, back);
  assert.is(back[2], 3); assert.is(back[32], 1.5); assert.is(back[34], -63.5); assert.is(back[127], 0);
  assert.is(back[64], Math.fround(127 * 0.00787353515625));
});

test('Q4_0: d = max/-8 from the signed max, code = min(15, trunc(x/d + 8.5)), nibbles j | j+16', () => {
  // block 0: max -8 (first of ±8) → d = 1 (0x3c00), id = 1: codes x + 8.5 truncated; 8 → 16 → clamped to 15
  const b0 = block({ 0: -8, 1: 7, 2: 8, 3: 0.5, 4: -0.5, 5: 1.49, 6: -7.9, 16: 3, 17: -3, 18: 6.5, 31: -8 });
  // block 1: max +4 → d = -0.5 (0xb800), id = -2: 4 → code 0 (the -8 code), -4 → 16.5 → 15, 1 → 6.5 → 6
  const b1 = block({ 0: 4, 1: -4, 2: 1, 3: -0.25, 4: 0.25, 5: 0.75, 16: -1, 17: 2 });
  const src = new Float32Array(96);
  src.set(b0, 0); src.set(b1, 32); // block 2: zeros → d = 0/-8 = -0 (f16 0x8000, as in C), every code 8
  const dst = new Uint8Array(3 * 18).fill(0xee);
  quantizeQ4_0(src, dst);
  const lo0 = [0, 15, 15, 9, 8, 9, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8]; // elements 0..15 (0 → 8.5 → 8)
  const hi0 = [11, 5, 15, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 0]; // elements 16..31
  const lo1 = [0, 15, 6, 9, 8, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8];
  const hi1 = [10, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8];
  const want = [0x00, 0x3c, ...lo0.map((l, j) => l | (hi0[j] << 4)), 0x00, 0xb8, ...lo1.map((l, j) => l | (hi1[j] << 4)), 0x00, 0x80, ...new Array(16).fill(0x88)];
  assert.equal([...dst], want);
  const back = new Float32Array(96);
  dequantizeQ4_0(dst, back);
  assert.is(back[0], -8); assert.is(back[1], 7); assert.is(back[2], 7); assert.is(back[16], 3); assert.is(back[31], -8);
  assert.is(back[32], 4); assert.is(back[33], -3.5); assert.is(back[34], 1); assert.ok(back[95] === 0);
});

test('Q4_0: the stored scale is f16(d), the codes use the f32 d', () => {
  // max = -0.3 → d = fround(0.3/8) = 0.0375 (f32), f16 = 0x28cd (0.03750610); id = fround(1/d) = 26.666666
  // x = 0.0187 → 0.4987 + 8.5 = 8.9987 → 8; x = 0.018751 → 0.50003 + 8.5 → 9 with the f32 d (x/f16(d) = 0.49995
  // would give 8)
  const src = block({ 0: -0.3, 1: 0.0187, 2: 0.018751 });
  const dst = new Uint8Array(18);
  quantizeQ4_0(src, dst);
  const d = Math.fround(Math.fround(-0.3) / -8);
  assert.is(d, Math.fround(0.0375));
  assert.is(dst[0] | (dst[1] << 8), 0x28cd);
  assert.is(dst[2] & 15, 0); assert.is(dst[3] & 15, 8); assert.is(dst[4] & 15, 9);
});

test('sizes are checked and an overflowing scale is found', () => {
  assert.throws(() => quantizeQ8_0(new Float32Array(33), new Uint8Array(100)), /whole number of 32-value blocks/);
  assert.throws(() => quantizeQ4_0(new Float32Array(64), new Uint8Array(35)), /need 36 bytes/);
  const big = new Float32Array(64); big[40] = 1e7; // 1e7/127 > 65504: the f16 scale overflows
  const q = new Uint8Array(68);
  quantizeQ8_0(big, q);
  assert.is(firstNonFiniteScale(q, Q8_0_BYTES), 1);
  big[40] = 1e5;
  quantizeQ8_0(big, q);
  assert.is(firstNonFiniteScale(q, Q8_0_BYTES), -1);
});

test.run();
