// place_weights: f32 weights staged in memory → the loader's f32 or f16 matrix or vector (src/model/weights.ts), a
// conv1d [K, N] source transposed to [N, K] rows on the way. The halves are halfOf4's, floatToHalf of src/io/half.ts
// bit for bit (nearest even; past the largest half → ±inf, which the loader refuses as a weight past the f16
// range, outOfF16Range in weights.ts). The kernel also flags NaN and ±inf inputs, so the loader needs no pass of
// its own over every value to reject them.
import { DT_F32, halfOf4, imin, nonFinite1, nonFiniteLanes, splitChunk, splitHi, splitLo } from './common';

/** Source rows per tile of the transposition: each output row gets TILE consecutive values per visit (64 bytes as
 *  f32, 32 as f16) instead of 4, so an output cache line is written once or twice rather than 4 to 8 times. */
const TILE: i32 = 16;

/** One value: x's f32 → the f32 or f16 at d; returns 1 when it is NaN or ±inf. */
@inline function one(s: usize, d: usize, f16: bool): i32 {
  const v = load<f32>(s);
  if (f16) store<u16>(d, <u16>i32x4.extract_lane(halfOf4(f32x4.splat(v)), 0));
  else store<f32>(d, v);
  return <i32>nonFinite1(v);
}

/**
 * f32 x [rows, cols] → dt (DT_F32 or DT_F16) elements at w; sets the i32 at `flag` to 1 when any value is NaN or
 * ±inf (else leaves it):
 *  - conv1d = 0: written as they are, rows·cols consecutive elements (wStride unused). Split over the values.
 *  - conv1d = 1: rows are inputs, cols the outputs (source rows of a [K, N] Conv1D weight): value (r, c) goes to
 *    element c·wStride + r (w points at the first row's place in output row 0). Split over the outputs.
 */
export function place_weights(x: usize, w: usize, dt: i32, rows: i32, cols: i32, wStride: i32, conv1d: i32, flag: usize, ith: i32, nth: i32): void {
  const f16 = dt != DT_F32;
  const es: usize = f16 ? 2 : 4;
  let bad = i32x4.splat(0), bad1: i32 = 0;
  if (conv1d) {
    const chunk = splitChunk(cols, nth, 4);
    const c0 = splitLo(cols, ith, chunk), c1 = splitHi(cols, c0, chunk);
    const ss: usize = <usize>cols << 2, os: usize = <usize>wStride * es;
    const rows4 = rows & ~3;
    for (let r0 = 0; r0 < rows4; r0 += TILE) {
      const r1 = imin(r0 + TILE, rows4);
      let c = c0;
      for (; c + 4 <= c1; c += 4) {
        for (let r = r0; r < r1; r += 4) {
          // a 4×4 tile: source rows r … r+3 at columns c … c+3 → output rows c … c+3 at elements r … r+3
          const p = x + <usize>r * ss + (<usize>c << 2);
          const a = v128.load(p), b = v128.load(p + ss), e = v128.load(p + 2 * ss), f = v128.load(p + 3 * ss);
          bad = v128.or(bad, v128.or(v128.or(nonFiniteLanes(a), nonFiniteLanes(b)), v128.or(nonFiniteLanes(e), nonFiniteLanes(f))));
          const abLo = i32x4.shuffle(a, b, 0, 4, 1, 5), abHi = i32x4.shuffle(a, b, 2, 6, 3, 7);
          const efLo = i32x4.shuffle(e, f, 0, 4, 1, 5), efHi = i32x4.shuffle(e, f, 2, 6, 3, 7);
          const t0 = i32x4.shuffle(abLo, efLo, 0, 1, 4, 5), t1 = i32x4.shuffle(abLo, efLo, 2, 3, 6, 7);
          const t2 = i32x4.shuffle(abHi, efHi, 0, 1, 4, 5), t3 = i32x4.shuffle(abHi, efHi, 2, 3, 6, 7);
          const d = w + <usize>c * os + <usize>r * es;
          if (f16) {
            const h01 = i16x8.narrow_i32x4_u(halfOf4(t0), halfOf4(t1)), h23 = i16x8.narrow_i32x4_u(halfOf4(t2), halfOf4(t3));
            v128.store64_lane(d, h01, 0);
            v128.store64_lane(d + os, h01, 1);
            v128.store64_lane(d + 2 * os, h23, 0);
            v128.store64_lane(d + 3 * os, h23, 1);
          } else {
            v128.store(d, t0);
            v128.store(d + os, t1);
            v128.store(d + 2 * os, t2);
            v128.store(d + 3 * os, t3);
          }
        }
      }
      for (; c < c1; c++) for (let r = r0; r < r1; r++) bad1 |= one(x + <usize>r * ss + (<usize>c << 2), w + <usize>c * os + <usize>r * es, f16);
    }
    for (let r = rows4; r < rows; r++) for (let c = c0; c < c1; c++) bad1 |= one(x + <usize>r * ss + (<usize>c << 2), w + <usize>c * os + <usize>r * es, f16);
  } else {
    const n = rows * cols;
    const chunk = splitChunk(n, nth, 8);
    const i0 = splitLo(n, ith, chunk), i1 = splitHi(n, i0, chunk);
    let i = i0;
    for (; i + 8 <= i1; i += 8) {
      const p = x + (<usize>i << 2), a = v128.load(p), b = v128.load(p, 16);
      bad = v128.or(bad, v128.or(nonFiniteLanes(a), nonFiniteLanes(b)));
      const d = w + <usize>i * es;
      if (f16) v128.store(d, i16x8.narrow_i32x4_u(halfOf4(a), halfOf4(b)));
      else { v128.store(d, a); v128.store(d, b, 16); }
    }
    for (; i < i1; i++) bad1 |= one(x + (<usize>i << 2), w + <usize>i * es, f16);
  }
  if (v128.any_true(bad) || bad1) store<i32>(flag, 1);
}

/**
 * place_halves: halves staged in memory (an F16 checkpoint's matrix run as f16) → the loader's f16 matrix, moved as
 * they are (no float round trip; NaN/inf are found afterwards by halves_scan). The layouts of place_weights:
 *  - conv1d = 0: rows·cols consecutive halves. Split over the values.
 *  - conv1d = 1: source rows [rows, cols] of a [K, N] Conv1D weight: half (r, c) goes to element c·wStride + r. Split
 *    over the outputs; TILE source rows per visit of an output row, so its cache line is written once or twice.
 */
export function place_halves(x: usize, w: usize, rows: i32, cols: i32, wStride: i32, conv1d: i32, ith: i32, nth: i32): void {
  if (conv1d) {
    const chunk = splitChunk(cols, nth, 4);
    const c0 = splitLo(cols, ith, chunk), c1 = splitHi(cols, c0, chunk);
    const ss: usize = <usize>cols << 1, os: usize = <usize>wStride << 1;
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = imin(r0 + TILE, rows);
      for (let c = c0; c < c1; c++) {
        const d = w + <usize>c * os, s = x + (<usize>c << 1);
        for (let r = r0; r < r1; r++) store<u16>(d + (<usize>r << 1), load<u16>(s + <usize>r * ss));
      }
    }
    return;
  }
  const n = rows * cols;
  const chunk = splitChunk(n, nth, 8);
  const i0 = splitLo(n, ith, chunk), i1 = splitHi(n, i0, chunk);
  if (i0 < i1) memory.copy(w + (<usize>i0 << 1), x + (<usize>i0 << 1), <usize>(i1 - i0) << 1);
}
