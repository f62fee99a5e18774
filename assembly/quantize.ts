// quantize_weights: f32 weights already in memory → GGUF Q8_0 / Q4_0 blocks, for the loader (src/model/weights.ts),
// with exactly the rounding of ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref as the TypeScript quantizers
// implement them (src/runtime/quant.ts, the reference): f32 arithmetic throughout (IEEE division and product are the
// same in a lane as in Math.fround), C's roundf (half away from zero), f16 scales rounded to nearest even.
// A linear source's block is 32 consecutive floats: eight vectors, quantized whole (horizontal max). A conv1d
// source [K, N] (rows are inputs) needs no gather: four outputs' blocks are quantized at once, one per lane, value j
// of outputs n..n+3 being one load from source row j, and the codes of four j's are transposed into the four
// blocks by one byte shuffle.
import { DT_Q8, Q4_0_BYTES, Q8_0_BYTES, halfOf4, imin, nonFinite1, nonFiniteLanes, splitChunk, splitHi, splitLo } from './common';

/** Value j of the four blocks (at off = j·stride bytes from each block's first value): one load when the four
 *  blocks' values are adjacent floats (contig: p_i = p0 + 4i), else one per lane. */
@inline function row(p0: usize, p1: usize, p2: usize, p3: usize, off: usize, contig: bool): v128 {
  if (contig) return v128.load(p0 + off);
  let v = f32x4.splat(load<f32>(p0 + off));
  v = f32x4.replace_lane(v, 1, load<f32>(p1 + off));
  v = f32x4.replace_lane(v, 2, load<f32>(p2 + off));
  return f32x4.replace_lane(v, 3, load<f32>(p3 + off));
}

/** ggml's `id = d ? 1/d : 0` per lane (a NaN d is false there too). */
@inline function inverse(d: v128): v128 {
  const truthy = v128.and(f32x4.ne(d, f32x4.splat(0)), f32x4.eq(d, d));
  return v128.and(f32x4.div(f32x4.splat(1), d), truthy);
}

/** Lanes whose 1/d overflowed (d subnormal): every product is ±inf or NaN there, which C converts to INT_MIN
 *  (x86 cvttss2si) and the reference to 0; either way code 0 in the stored byte. */
@inline function dead(id: v128): v128 { return f32x4.eq(f32x4.abs(id), f32x4.splat(Infinity)); }

/** roundf(x · id) → int: trunc, then ±1 when the fraction (exact in f32) is at least one half in magnitude; NaN → 0. */
@inline function code8(x: v128, id: v128, dead: v128): v128 {
  const p = f32x4.mul(x, id), t = f32x4.trunc(p), f = f32x4.sub(p, t);
  const one = f32x4.splat(1);
  const r = f32x4.sub(f32x4.add(t, v128.and(f32x4.ge(f, f32x4.splat(0.5)), one)), v128.and(f32x4.le(f, f32x4.splat(-0.5)), one));
  return v128.andnot(i32x4.trunc_sat_f32x4_s(r), dead);
}

/** min(15, (int)(x · id + 8.5)) & 15; NaN → 0 (x · id + 8.5 is in [0.5, 16.5] but for NaN and dead lanes). */
@inline function code4(x: v128, id: v128): v128 {
  const q = i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(x, id), f32x4.splat(8.5)));
  return v128.and(i32x4.min_s(q, i32x4.splat(15)), i32x4.splat(15));
}

/** Math.max(amax, |x|) as the reference runs it, with the NaN kept aside: pmax (one instruction; f32x4.max's NaN
 *  rules take eight) over |x| ≥ +0 is order-free, and a NaN anywhere makes the result NaN (`nan` lanes). */
@inline function withNaN(amax: v128, nan: v128): v128 { return v128.bitselect(f32x4.splat(NaN), amax, nan); }

/** Bytes [a0 a1 a2 a3 b0 … d3] (byte j·4 + i: j-th vector, lane i) → lane i's four bytes together. */
@inline function transpose(v: v128): v128 { return i8x16.shuffle(v, v, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15); }

/** Stores lane i (32 bits) of v at d_i + off, for the first `lanes` lanes. */
@inline function store4(d0: usize, d1: usize, d2: usize, d3: usize, off: usize, v: v128, lanes: i32): void {
  v128.store32_lane(d0 + off, v, 0);
  if (lanes > 1) v128.store32_lane(d1 + off, v, 1);
  if (lanes > 2) v128.store32_lane(d2 + off, v, 2);
  if (lanes > 3) v128.store32_lane(d3 + off, v, 3);
}

/** The f16 scales of the first `lanes` lanes of d at d_i. */
@inline function storeScales(d0: usize, d1: usize, d2: usize, d3: usize, d: v128, lanes: i32): void {
  const h = halfOf4(d);
  store<u16>(d0, <u16>i32x4.extract_lane(h, 0));
  if (lanes > 1) store<u16>(d1, <u16>i32x4.extract_lane(h, 1));
  if (lanes > 2) store<u16>(d2, <u16>i32x4.extract_lane(h, 2));
  if (lanes > 3) store<u16>(d3, <u16>i32x4.extract_lane(h, 3));
}

/** quantize_row_q8_0_ref of four blocks (values at p_i, p_i + stride, …) into the Q8_0 blocks at d_i. */
@inline function q8x4(p0: usize, p1: usize, p2: usize, p3: usize, stride: usize, contig: bool, d0: usize, d1: usize, d2: usize, d3: usize, lanes: i32): void {
  let amax = f32x4.splat(0), nan = i32x4.splat(0);
  for (let j: usize = 0; j < 32; j++) {
    const x = row(p0, p1, p2, p3, j * stride, contig);
    amax = f32x4.pmax(amax, f32x4.abs(x));
    nan = v128.or(nan, f32x4.ne(x, x));
  }
  const d = f32x4.div(withNaN(amax, nan), f32x4.splat(127));
  const id = inverse(d), z = dead(id);
  storeScales(d0, d1, d2, d3, d, lanes);
  for (let j: usize = 0; j < 32; j += 4) {
    const a = i16x8.narrow_i32x4_s(code8(row(p0, p1, p2, p3, j * stride, contig), id, z), code8(row(p0, p1, p2, p3, (j + 1) * stride, contig), id, z));
    const b = i16x8.narrow_i32x4_s(code8(row(p0, p1, p2, p3, (j + 2) * stride, contig), id, z), code8(row(p0, p1, p2, p3, (j + 3) * stride, contig), id, z));
    store4(d0, d1, d2, d3, 2 + j, transpose(i8x16.narrow_i16x8_s(a, b)), lanes);
  }
}

/** quantize_row_q4_0_ref of four blocks into the Q4_0 blocks at d_i. */
@inline function q4x4(p0: usize, p1: usize, p2: usize, p3: usize, stride: usize, contig: bool, d0: usize, d1: usize, d2: usize, d3: usize, lanes: i32): void {
  // the value of largest magnitude, the first one on ties (`amax < |x|`, false for NaN: a NaN is never picked)
  let amax = f32x4.splat(0), max = f32x4.splat(0);
  for (let j: usize = 0; j < 32; j++) {
    const x = row(p0, p1, p2, p3, j * stride, contig), a = f32x4.abs(x);
    const more = f32x4.lt(amax, a);
    amax = v128.bitselect(a, amax, more);
    max = v128.bitselect(x, max, more);
  }
  const d = f32x4.div(max, f32x4.splat(-8));
  const id = inverse(d), z = dead(id);
  storeScales(d0, d1, d2, d3, d, lanes);
  // byte j of a block: code j in the low nibble, code j + 16 in the high one
  const hi: usize = 16 * stride;
  for (let j: usize = 0; j < 16; j += 4) {
    const c0 = v128.or(code4(row(p0, p1, p2, p3, j * stride, contig), id), i32x4.shl(code4(row(p0, p1, p2, p3, j * stride + hi, contig), id), 4));
    const c1 = v128.or(code4(row(p0, p1, p2, p3, (j + 1) * stride, contig), id), i32x4.shl(code4(row(p0, p1, p2, p3, (j + 1) * stride + hi, contig), id), 4));
    const c2 = v128.or(code4(row(p0, p1, p2, p3, (j + 2) * stride, contig), id), i32x4.shl(code4(row(p0, p1, p2, p3, (j + 2) * stride + hi, contig), id), 4));
    const c3 = v128.or(code4(row(p0, p1, p2, p3, (j + 3) * stride, contig), id), i32x4.shl(code4(row(p0, p1, p2, p3, (j + 3) * stride + hi, contig), id), 4));
    const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(v128.andnot(c0, z), v128.andnot(c1, z)), i16x8.narrow_i32x4_u(v128.andnot(c2, z), v128.andnot(c3, z)));
    store4(d0, d1, d2, d3, 2 + j, transpose(bytes), lanes);
  }
}

@inline function blocks4(dt: i32, p0: usize, p1: usize, p2: usize, p3: usize, stride: usize, contig: bool, d0: usize, d1: usize, d2: usize, d3: usize, lanes: i32): void {
  if (dt == DT_Q8) q8x4(p0, p1, p2, p3, stride, contig, d0, d1, d2, d3, lanes);
  else q4x4(p0, p1, p2, p3, stride, contig, d0, d1, d2, d3, lanes);
}

/**
 * f32 x [rows, cols] → Q8_0 (dt = DT_Q8) or Q4_0 blocks; block kb of output n goes to w + n·wStride + kb·blockBytes.
 *  - conv1d = 0: rows are outputs, cols (a multiple of 32) their inputs: row n's cols/32 blocks. Split over the
 *    rows·cols/32 blocks.
 *  - conv1d = 1: rows (a multiple of 32) are inputs, cols the outputs: source rows 32g … 32g + 31 are block g of
 *    every output n (a [K, N] Conv1D weight, 32·G rows of it at a time). Split over the outputs.
 * Each block is computed alone, so any split gives the same bytes. Sets the i32 at `flag` to 1 when any of the
 * values is NaN or ±inf (the blocks are written all the same).
 */
export function quantize_weights(x: usize, w: usize, wStride: i32, dt: i32, rows: i32, cols: i32, conv1d: i32, flag: usize, ith: i32, nth: i32): void {
  const bb: usize = dt == DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES, ws = <usize>wStride;
  if (conv1d) {
    const chunk = splitChunk(cols, nth, 4);
    const n0 = splitLo(cols, ith, chunk), n1 = splitHi(cols, n0, chunk);
    const stride = <usize>cols << 2;
    let bad = false;
    for (let r = 0; r < rows; r++) bad = bad || anyNonFinite(x + <usize>r * stride + (<usize>n0 << 2), n1 - n0);
    if (bad) store<i32>(flag, 1);
    for (let g = 0; g < rows / 32; g++) {
      const src = x + (<usize>g * 32) * stride, dst = w + <usize>g * bb;
      for (let n = n0; n < n1; n += 4) {
        const lanes = imin(4, n1 - n);
        const p = src + (<usize>n << 2), d = dst + <usize>n * ws;
        if (lanes == 4) blocks4(dt, p, p + 4, p + 8, p + 12, stride, true, d, d + ws, d + 2 * ws, d + 3 * ws, 4);
        else {
          // the missing lanes repeat output n (read, never stored)
          const l1: usize = lanes > 1 ? 1 : 0, l2: usize = lanes > 2 ? 2 : 0;
          blocks4(dt, p, p + 4 * l1, p + 4 * l2, p, stride, false, d, d + l1 * ws, d + l2 * ws, d, lanes);
        }
      }
    }
    return;
  }
  // linear: a block is 32 consecutive floats, quantized whole in four vectors' lanes (horizontal max)
  const per = cols / 32, blocks = rows * per;
  const chunk = splitChunk(blocks, nth, 4);
  const b0 = splitLo(blocks, ith, chunk), b1 = splitHi(blocks, b0, chunk);
  if (b1 > b0 && anyNonFinite(x + (<usize>b0 << 7), (b1 - b0) << 5)) store<i32>(flag, 1);
  for (let b = b0; b < b1; b++) {
    const n = b / per, d = w + <usize>n * ws + <usize>(b - n * per) * bb, p = x + (<usize>b << 7);
    if (dt == DT_Q8) q8block(p, d); else q4block(p, d);
  }
}

/** Whether any of the n floats at p is NaN or ±inf: the loader rejects such weights (its typed error names the
 *  element), and this pass over values the quantizer reads anyway spares it a pass of its own in JavaScript. */
function anyNonFinite(p: usize, n: i32): bool {
  let bad = i32x4.splat(0), i = 0;
  for (; i + 4 <= n; i += 4) bad = v128.or(bad, nonFiniteLanes(v128.load(p + (<usize>i << 2))));
  let any = v128.any_true(bad);
  for (; i < n; i++) any = any || nonFinite1(load<f32>(p + (<usize>i << 2)));
  return any;
}

/** All four lanes: the largest lane of m (no NaN in m). */
@inline function hpmax(m: v128): v128 {
  const t = f32x4.pmax(m, f32x4.shuffle(m, m, 2, 3, 0, 1));
  return f32x4.pmax(t, f32x4.shuffle(t, t, 1, 0, 3, 2));
}

/** quantize_row_q8_0_ref of the block of 32 floats at p into the Q8_0 block at d. */
@inline function q8block(p: usize, d: usize): void {
  const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
  const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
  const m = f32x4.pmax(f32x4.pmax(f32x4.pmax(f32x4.abs(v0), f32x4.abs(v1)), f32x4.pmax(f32x4.abs(v2), f32x4.abs(v3))),
    f32x4.pmax(f32x4.pmax(f32x4.abs(v4), f32x4.abs(v5)), f32x4.pmax(f32x4.abs(v6), f32x4.abs(v7))));
  const nan = v128.or(v128.or(v128.or(f32x4.ne(v0, v0), f32x4.ne(v1, v1)), v128.or(f32x4.ne(v2, v2), f32x4.ne(v3, v3))),
    v128.or(v128.or(f32x4.ne(v4, v4), f32x4.ne(v5, v5)), v128.or(f32x4.ne(v6, v6), f32x4.ne(v7, v7))));
  const amax = v128.any_true(nan) ? f32x4.splat(NaN) : hpmax(m);
  const s = f32x4.div(amax, f32x4.splat(127));
  const id = inverse(s), z = dead(id);
  store<u16>(d, <u16>i32x4.extract_lane(halfOf4(s), 0));
  const a = i16x8.narrow_i32x4_s(code8(v0, id, z), code8(v1, id, z)), b = i16x8.narrow_i32x4_s(code8(v2, id, z), code8(v3, id, z));
  const c = i16x8.narrow_i32x4_s(code8(v4, id, z), code8(v5, id, z)), e = i16x8.narrow_i32x4_s(code8(v6, id, z), code8(v7, id, z));
  v128.store(d, i8x16.narrow_i16x8_s(a, b), 2);
  v128.store(d, i8x16.narrow_i16x8_s(c, e), 18);
}

/** Bit j (0 … 31) set where |value j| of the block (in v0 … v7) equals a (all lanes). */
@inline function equalMask(v0: v128, v1: v128, v2: v128, v3: v128, v4: v128, v5: v128, v6: v128, v7: v128, a: v128): u32 {
  return <u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v0), a)) | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v1), a)) << 4)
    | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v2), a)) << 8) | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v3), a)) << 12)
    | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v4), a)) << 16) | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v5), a)) << 20)
    | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v6), a)) << 24) | (<u32>i32x4.bitmask(f32x4.eq(f32x4.abs(v7), a)) << 28);
}

/** |x| where it beats amax, else amax: pmax is `amax < |x| ? |x| : amax`, the reference's test (a NaN never counts). */
@inline function bigger(amax: v128, x: v128): v128 { return f32x4.pmax(amax, f32x4.abs(x)); }

/** quantize_row_q4_0_ref of the block of 32 floats at p into the Q4_0 block at d. */
@inline function q4block(p: usize, d: usize): void {
  const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
  const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
  // the largest magnitude (NaN ignored, as `amax < |x|` ignores it), then the first value that has it: the
  // reference's running max ends on that value. An all-zero block keeps the reference's initial max, +0.
  const m = hpmax(bigger(bigger(bigger(bigger(bigger(bigger(bigger(bigger(f32x4.splat(0), v0), v1), v2), v3), v4), v5), v6), v7));
  let max: f32 = 0;
  if (f32x4.extract_lane(m, 0) != 0) max = load<f32>(p + (<usize>ctz(equalMask(v0, v1, v2, v3, v4, v5, v6, v7, m)) << 2));
  const s = f32x4.splat(max / -8);
  const id = inverse(s), z = dead(id);
  store<u16>(d, <u16>i32x4.extract_lane(halfOf4(s), 0));
  // byte j: code j in the low nibble, code j + 16 in the high one
  const c0 = v128.or(code4(v0, id), i32x4.shl(code4(v4, id), 4)), c1 = v128.or(code4(v1, id), i32x4.shl(code4(v5, id), 4));
  const c2 = v128.or(code4(v2, id), i32x4.shl(code4(v6, id), 4)), c3 = v128.or(code4(v3, id), i32x4.shl(code4(v7, id), 4));
  v128.store(d, v128.andnot(i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(c0, c1), i16x8.narrow_i32x4_u(c2, c3)), z), 2);
}
