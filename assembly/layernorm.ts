// y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta; two passes (mean, then the biased variance of
// the centred values), f32 SIMD accumulation in two interleaved accumulators. Split over rows.
import { Q8_BLOCK, hsum, splitChunk, splitHi, splitLo } from './common';
import { quantize_q8 } from './matmul_q8';

/** Σ p[c] */
function rowSum(p: usize, cols: i32): f32 {
  const c8 = cols & ~7, c4 = cols & ~3;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let c = 0;
  for (; c < c8; c += 8) {
    const q = p + (<usize>c << 2);
    a0 = f32x4.add(a0, v128.load(q));
    a1 = f32x4.add(a1, v128.load(q, 16));
  }
  if (c < c4) { a0 = f32x4.add(a0, v128.load(p + (<usize>c << 2))); c += 4; }
  let s = hsum(f32x4.add(a0, a1));
  for (; c < cols; c++) s += load<f32>(p + (<usize>c << 2));
  return s;
}

/** Σ (p[c] - mean)² */
function rowSqDev(p: usize, cols: i32, mean: f32): f32 {
  const c8 = cols & ~7, c4 = cols & ~3;
  const mv = f32x4.splat(mean);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let c = 0;
  for (; c < c8; c += 8) {
    const q = p + (<usize>c << 2);
    const d0 = f32x4.sub(v128.load(q), mv), d1 = f32x4.sub(v128.load(q, 16), mv);
    a0 = f32x4.add(a0, f32x4.mul(d0, d0));
    a1 = f32x4.add(a1, f32x4.mul(d1, d1));
  }
  if (c < c4) {
    const d0 = f32x4.sub(v128.load(p + (<usize>c << 2)), mv);
    a0 = f32x4.add(a0, f32x4.mul(d0, d0));
    c += 4;
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; c < cols; c++) { const d = load<f32>(p + (<usize>c << 2)) - mean; s += d * d; }
  return s;
}

export function layernorm(x: usize, gamma: usize, beta: usize, y: usize, rows: i32, cols: i32, eps: f32, ith: i32, nth: i32): void {
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  const c4 = cols & ~3;
  for (let r = r0; r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    const xr = x + o, yr = y + o;
    const mean = rowSum(xr, cols) / <f32>cols;
    const variance = rowSqDev(xr, cols, mean) / <f32>cols;
    const inv: f32 = <f32>1 / sqrt<f32>(variance + eps);
    const mv = f32x4.splat(mean), iv = f32x4.splat(inv);
    let c = 0;
    for (; c < c4; c += 4) {
      const b = <usize>c << 2;
      const v = f32x4.mul(f32x4.mul(f32x4.sub(v128.load(xr + b), mv), iv), v128.load(gamma + b));
      v128.store(yr + b, f32x4.add(v, v128.load(beta + b)));
    }
    for (; c < cols; c++) {
      const b = <usize>c << 2;
      store<f32>(yr + b, (load<f32>(xr + b) - mean) * inv * load<f32>(gamma + b) + load<f32>(beta + b));
    }
  }
}

/** layernorm, then its rows quantised as quantize_q8 does them (xq [rows, cols] i8, xs [rows, cols/32] f32; cols a
 *  multiple of 32): the same code on the same rows, so the same bits as the two calls, in one call while each
 *  chunk's rows are still in cache. Before a quantised matmul, decode makes 24 fewer calls per token (GPT-2 124M).
 *  Split over rows. */
export function layernorm_q8(x: usize, gamma: usize, beta: usize, y: usize, xq: usize, xs: usize, rows: i32, cols: i32, eps: f32, ith: i32, nth: i32): void {
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  if (r1 <= r0) return;
  layernorm(x, gamma, beta, y, rows, cols, eps, ith, nth);
  const o = <usize>r0 * <usize>cols;
  quantize_q8(y + (o << 2), xq + o, xs + ((<usize>r0 * <usize>(cols / Q8_BLOCK)) << 2), r1 - r0, cols, 0, 1);
}
