// y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta; two passes (mean, then the biased variance of
// the centred values), f32 SIMD accumulation in two interleaved accumulators. Split over rows.
import { hsum, splitChunk, splitHi, splitLo } from './common';

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
