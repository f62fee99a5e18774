// quantize_weights: f32 weights already in memory → GGUF Q8_0 / Q4_0 blocks, for the loader (src/model/weights.ts),
// with exactly the rounding of ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref as the TypeScript quantizers
// implement them (src/runtime/quant.ts, the reference): f32 arithmetic throughout (IEEE division and product are the
// same in a lane as in Math.fround), C's roundf (half away from zero), f16 scales rounded to nearest even.
// Four blocks are quantized at once, one per lane: lane i's value j is value j of block i. A conv1d source [K, N]
// (rows are inputs) then needs no gather: value j of outputs n..n+3 is one load from source row j, and the codes of
// four j's are transposed into the four blocks by one byte shuffle.
import { DT_Q8, Q4_0_BYTES, Q8_0_BYTES, halfOf4, imin, splitChunk, splitHi, splitLo } from './common';

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

/** min(15, (int)(x · id + 8.5)) & 15; NaN → 0. */
@inline function code4(x: v128, id: v128): v128 {
  const q = i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(x, id), f32x4.splat(8.5)));
  return v128.and(i32x4.min_s(q, i32x4.splat(15)), i32x4.splat(15));
}

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
  let amax = f32x4.splat(0); // Math.max: a NaN sticks, as f32x4.max's
  for (let j: usize = 0; j < 32; j++) amax = f32x4.max(amax, f32x4.abs(row(p0, p1, p2, p3, j * stride, contig)));
  const d = f32x4.div(amax, f32x4.splat(127));
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
 * Each block is computed alone, so any split gives the same bytes.
 */
export function quantize_weights(x: usize, w: usize, wStride: i32, dt: i32, rows: i32, cols: i32, conv1d: i32, ith: i32, nth: i32): void {
  const bb: usize = dt == DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES, ws = <usize>wStride;
  if (conv1d) {
    const chunk = splitChunk(cols, nth, 4);
    const n0 = splitLo(cols, ith, chunk), n1 = splitHi(cols, n0, chunk);
    const stride = <usize>cols << 2;
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
  const per = cols / 32, blocks = rows * per;
  const chunk = splitChunk(blocks, nth, 4);
  const b0 = splitLo(blocks, ith, chunk), b1 = splitHi(blocks, b0, chunk);
  for (let b = b0; b < b1; b += 4) {
    const lanes = imin(4, b1 - b);
    // block b + i: 32 floats at x + (b + i)·128; row (b + i) / per, block (b + i) % per of it (a missing lane repeats b)
    const i1 = lanes > 1 ? b + 1 : b, i2 = lanes > 2 ? b + 2 : b, i3 = lanes > 3 ? b + 3 : b;
    blocks4(dt, x + (<usize>b << 7), x + (<usize>i1 << 7), x + (<usize>i2 << 7), x + (<usize>i3 << 7), 4, false,
      blockAt(w, ws, bb, b, per), blockAt(w, ws, bb, i1, per), blockAt(w, ws, bb, i2, per), blockAt(w, ws, bb, i3, per), lanes);
  }
}

@inline function blockAt(w: usize, ws: usize, bb: usize, b: i32, per: i32): usize {
  const n = b / per;
  return w + <usize>n * ws + <usize>(b - n * per) * bb;
}
