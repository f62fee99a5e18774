// Q8: int8 values in blocks of 32 along K with one f32 scale per block (weights [N,K] + scales [N,K/32];
// activations quantised per call by quantize_q8). K must be a multiple of 32 (as the reference assumes).
//
// matmul_q8: per block, the exact integer dot product (i8 → i16 sign-extending loads, i32x4.dot_i16x8_s,
// i32 adds: exact for any int8 values, -128 included), then acc += (f32(isum) · xscale) · wscale in f32,
// blocks in order, then bias, activation and accumulate. Integer sums are exact, so every tile gives the same
// bits for an output. (relaxed_dot_i8x16_i7x16 is not used: it is only exact for a 7-bit second operand.)
// The GEMV takes its four weight rows from four contiguous runs of this thread's rows, as matmul_f32 does (four
// far-apart sequential streams prefetch well; four adjacent rows do not). Measured alternatives, slower here:
// i16x8.extmul_low/high_i8x16_s + i32x4.extadd_pairwise_i16x8_s (V8 widens both operands for every extmul: 1.6x
// slower), x pre-widened to i16 (no gain), eight rows per tile (V8 spills), and one row at a time with the
// scales of four blocks per vector (fewer streams, more x loads).
import { Q8_BLOCK, hmax, hsum4i, imin, splitChunk, splitHi, splitLo } from './common';
import { finish, finishFar } from './matmul_f32';

/** x[M,K] -> xq (i8, round half up like Math.round, clamp ±127) and xs (amax/127 per block). Split over M. */
export function quantize_q8(x: usize, xq: usize, xs: usize, M: i32, K: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(M, nth, 1);
  const m0 = splitLo(M, ith, chunk), m1 = splitHi(M, m0, chunk);
  const nb = K / Q8_BLOCK;
  for (let m = m0; m < m1; m++) {
    for (let b = 0; b < nb; b++) {
      const e = <usize>m * <usize>K + <usize>(b * Q8_BLOCK);
      const p = x + (e << 2);
      const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
      const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
      const t0 = f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3)));
      const t1 = f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7)));
      const amax = hmax(f32x4.max(t0, t1));
      const d: f32 = amax / 127;
      const id: f32 = d != 0 && d == d ? <f32>1 / d : 0;
      store<f32>(xs + ((<usize>m * <usize>nb + <usize>b) << 2), d);
      const s = f32x4.splat(id);
      const q = xq + e;
      v128.store(q, i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(qround(f32x4.mul(v0, s)), qround(f32x4.mul(v1, s))),
        i16x8.narrow_i32x4_s(qround(f32x4.mul(v2, s)), qround(f32x4.mul(v3, s)))));
      v128.store(q, i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(qround(f32x4.mul(v4, s)), qround(f32x4.mul(v5, s))),
        i16x8.narrow_i32x4_s(qround(f32x4.mul(v6, s)), qround(f32x4.mul(v7, s)))), 16);
    }
  }
}

/** Math.round (ties toward +inf), clamped to ±127, NaN -> 0, as i32 lanes. v - floor(v) is exact. */
@inline function qround(v: v128): v128 {
  const f = f32x4.floor(v);
  const up = f32x4.ge(f32x4.sub(v, f), f32x4.splat(0.5));
  const r = f32x4.add(f, v128.and(up, f32x4.splat(1.0)));
  return i32x4.trunc_sat_f32x4_s(f32x4.max(f32x4.min(r, f32x4.splat(127.0)), f32x4.splat(-127.0)));
}

@inline function gather4(p0: usize, p1: usize, p2: usize, p3: usize): v128 {
  let v = f32x4.splat(load<f32>(p0));
  v = f32x4.replace_lane(v, 1, load<f32>(p1));
  v = f32x4.replace_lane(v, 2, load<f32>(p2));
  return f32x4.replace_lane(v, 3, load<f32>(p3));
}

/** One row of x (xr, scales xsr) against weight rows w0..w3 (scales s0..s3); cnt of the four are real.
 *  Each block is two iterations of 16 values, so an iteration's loads and the accumulators fit V8's registers. */
function q8tile1x4(xr: usize, xsr: usize, w0: usize, w1: usize, w2: usize, w3: usize,
  s0: usize, s1: usize, s2: usize, s3: usize, nb: i32, bp: usize, yp: usize, cnt: i32, flags: i32): void {
  let acc = f32x4.splat(0);
  const d1 = w1 - w0, d2 = w2 - w0, d3 = w3 - w0, dx = xr - w0;
  let p = w0;
  for (let b = 0; b < nb; b++) {
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let e = p + 32; p < e; p += 16) {
      const xa = v128.load8x8_s(p + dx), xb = v128.load8x8_s(p + dx, 8);
      i0 = i32x4.add(i0, i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p, 8))));
      i1 = i32x4.add(i1, i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p + d1)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p + d1, 8))));
      i2 = i32x4.add(i2, i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p + d2)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p + d2, 8))));
      i3 = i32x4.add(i3, i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p + d3)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p + d3, 8))));
    }
    const so = <usize>b << 2;
    const ws = gather4(s0 + so, s1 + so, s2 + so, s3 + so);
    const isum = f32x4.convert_i32x4_s(hsum4i(i0, i1, i2, i3));
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(isum, f32x4.splat(load<f32>(xsr + so))), ws));
  }
  finish(acc, bp, yp, cnt, flags);
}

/** Two rows of x (x0, x0 + xb; scales xs0, xs0 + xsb) against four consecutive weight rows. */
function q8tile2x4(x0: usize, xb: usize, xs0: usize, xsb: usize, w0: usize, rb: usize, s0: usize, sb: usize,
  nb: i32, bp: usize, yp: usize, yb: usize, flags: i32): void {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  const x1 = x0 + xb;
  const w1 = w0 + rb, w2 = w0 + 2 * rb, w3 = w0 + 3 * rb;
  for (let b = 0; b < nb; b++) {
    const o = <usize>b << 5;
    let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
    let c0 = i32x4.splat(0), c1 = i32x4.splat(0), c2 = i32x4.splat(0), c3 = i32x4.splat(0);
    for (let k: usize = o, ke = o + 32; k < ke; k += 8) {
      const xu = v128.load8x8_s(x0 + k), xv = v128.load8x8_s(x1 + k);
      let wv = v128.load8x8_s(w0 + k);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(xu, wv)); c0 = i32x4.add(c0, i32x4.dot_i16x8_s(xv, wv));
      wv = v128.load8x8_s(w1 + k);
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(xu, wv)); c1 = i32x4.add(c1, i32x4.dot_i16x8_s(xv, wv));
      wv = v128.load8x8_s(w2 + k);
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(xu, wv)); c2 = i32x4.add(c2, i32x4.dot_i16x8_s(xv, wv));
      wv = v128.load8x8_s(w3 + k);
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(xu, wv)); c3 = i32x4.add(c3, i32x4.dot_i16x8_s(xv, wv));
    }
    const so = <usize>b << 2;
    const ws = gather4(s0 + so, s0 + sb + so, s0 + 2 * sb + so, s0 + 3 * sb + so);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(a0, a1, a2, a3)), f32x4.splat(load<f32>(xs0 + so))), ws));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(c0, c1, c2, c3)), f32x4.splat(load<f32>(xs0 + xsb + so))), ws));
  }
  finish(acc0, bp, yp, 4, flags);
  finish(acc1, bp, yp + yb, 4, flags);
}

/** 16 products of x (xa, xb: i16) with the int8 weights at p, as i32x4 partial sums. */
@inline function dot16(xa: v128, xb: v128, p: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p, 8)));
}

/** One row of x (xr, scales xsr) against weight rows w0 + i*run (scales s0 + i*srun), i < 4, which are rows
 *  n + i*per: q8tile1x4's arithmetic, outputs to y[n + i*per]. Pointers walk forward so that V8 keeps the
 *  loop's addresses in registers. */
function q8tileFar(xr: usize, xsr: usize, w0: usize, run: usize, s0: usize, srun: usize, nb: i32,
  bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  let acc = f32x4.splat(0);
  const r3 = run * 3, t3 = srun * 3;
  let p = w0, sp = s0, xp = xr;
  const xsend = xsr + (<usize>nb << 2);
  for (let xsp = xsr; xsp < xsend; xsp += 4) {
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let e = p + 32; p < e; p += 16) {
      const xa = v128.load8x8_s(xp), xb = v128.load8x8_s(xp, 8);
      xp += 16;
      i0 = i32x4.add(i0, dot16(xa, xb, p));
      i1 = i32x4.add(i1, dot16(xa, xb, p + run));
      i2 = i32x4.add(i2, dot16(xa, xb, p + 2 * run));
      i3 = i32x4.add(i3, dot16(xa, xb, p + r3));
    }
    let ws = v128.load32_zero(sp);
    ws = v128.load32_lane(sp + srun, ws, 1);
    ws = v128.load32_lane(sp + 2 * srun, ws, 2);
    ws = v128.load32_lane(sp + t3, ws, 3);
    sp += 4;
    const isum = f32x4.convert_i32x4_s(hsum4i(i0, i1, i2, i3));
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(isum, v128.load32_splat(xsp)), ws));
  }
  finishFar(acc, bias, yr, n, per, 4, flags);
}

@inline function q8group1(xr: usize, xsr: usize, wq: usize, ws: usize, rb: usize, sb: usize, n: i32, n1: i32, nb: i32,
  bias: usize, yr: usize, flags: i32): void {
  const cnt = imin(4, n1 - n);
  const w0 = wq + <usize>n * rb, s0 = ws + <usize>n * sb;
  const r1: usize = cnt > 1 ? 1 : 0, r2: usize = cnt > 2 ? 2 : 0, r3: usize = cnt > 3 ? 3 : 0;
  q8tile1x4(xr, xsr, w0, w0 + r1 * rb, w0 + r2 * rb, w0 + r3 * rb, s0, s0 + r1 * sb, s0 + r2 * sb, s0 + r3 * sb,
    nb, bias ? bias + (<usize>n << 2) : 0, yr + (<usize>n << 2), cnt, flags);
}

const Q8_GEMV_MAX_M: i32 = 2;
const Q8_PANEL_BYTES: i32 = 256 << 10;

export function matmul_q8(xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(N, nth, 16);
  const n0 = splitLo(N, ith, chunk), n1 = splitHi(N, n0, chunk);
  if (n0 >= n1 || M <= 0) return;
  const nb = K / Q8_BLOCK;
  const rb = <usize>K, sb = <usize>nb << 2, yb = <usize>N << 2;
  const n4 = n0 + ((n1 - n0) & ~3);
  if (M <= Q8_GEMV_MAX_M) {
    const per = (n1 - n0) >> 2;
    const run = <usize>per * rb, srun = <usize>per * sb;
    for (let n = n0; n < n0 + per; n++) {
      for (let m = 0; m < M; m++) {
        q8tileFar(xq + <usize>m * rb, xs + <usize>m * sb, wq + <usize>n * rb, run, ws + <usize>n * sb, srun, nb, bias, y + <usize>m * yb, n, per, flags);
      }
    }
    for (let n = n0 + 4 * per; n < n1; n += 4) {
      for (let m = 0; m < M; m++) q8group1(xq + <usize>m * rb, xs + <usize>m * sb, wq, ws, rb, sb, n, n1, nb, bias, y + <usize>m * yb, flags);
    }
    return;
  }
  let mb = (Q8_PANEL_BYTES / (K > 1 ? K : 1)) & ~1;
  if (mb < 2) mb = 2;
  for (let m0 = 0; m0 < M; m0 += mb) {
    const m1 = imin(M, m0 + mb);
    const m2 = m0 + ((m1 - m0) & ~1);
    for (let n = n0; n < n4; n += 4) {
      const w0 = wq + <usize>n * rb, s0 = ws + <usize>n * sb;
      const bp = bias ? bias + (<usize>n << 2) : 0;
      for (let m = m0; m < m2; m += 2) {
        q8tile2x4(xq + <usize>m * rb, rb, xs + <usize>m * sb, sb, w0, rb, s0, sb, nb, bp, y + <usize>m * yb + (<usize>n << 2), yb, flags);
      }
      if (m2 < m1) q8group1(xq + <usize>m2 * rb, xs + <usize>m2 * sb, wq, ws, rb, sb, n, n1, nb, bias, y + <usize>m2 * yb, flags);
    }
    if (n4 < n1) {
      for (let m = m0; m < m1; m++) q8group1(xq + <usize>m * rb, xs + <usize>m * sb, wq, ws, rb, sb, n4, n1, nb, bias, y + <usize>m * yb, flags);
    }
  }
}
