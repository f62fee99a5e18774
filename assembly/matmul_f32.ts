// y[M,N] = act(x[M,K] · w[N,K]ᵀ + bias) (+ y), f32 activations, weights f32 or IEEE half (W = f32 | u16).
//
// Every output is one f32x4 accumulator chain over k = 0, 4, 8, .. (mul+add, or relaxed_madd in the relaxed
// builds), reduced as (l0 + l2) + (l1 + l3), plus the k ≥ K&~3 tail added term by term (mul, add), then bias,
// activation and the optional accumulate. Every tile shape below performs exactly that sequence for each of
// its outputs, so results do not depend on M, the thread split or which tile an output falls in.
//
// Tiles: GEMV (M ≤ 2) runs one row of x against R = 5..7 weight rows (R independent accumulator chains to hide
// the multiply-add latency, each weight row streamed once per row of x); GEMM runs 2 rows of x against 4 weight
// rows (6 loads per 8 multiply-adds), looping over N in groups of 4 inside M panels sized to stay in L2. Tile
// sizes follow V8's x64 code generation: 15 allocatable xmm registers, and an iteration's loads are issued
// before its arithmetic, so loads + accumulators must fit or an accumulator chain goes through the stack.
// Unrolling the k loop (with immediate offsets) was measured slower for the same reason.
//
// GEMV weights come from DRAM (decode reads every weight once per token), and how the R rows of a tile are
// placed decides the speed: R *adjacent* rows (R streams a few KB apart, restarting every tile) defeat the
// hardware prefetchers — 9-14 GB/s on Zen 4 against a 25 GB/s read loop — while R rows far apart, each a
// long sequential stream, reach the read bandwidth. So the GEMV splits this thread's rows into R contiguous
// runs and walks them in lockstep: tile i takes row i of every run (gemvFar). The per-output arithmetic is
// unchanged, so outputs keep their bits whichever tile computes them.
// f16 and subnormal halves (plain-SIMD builds): the shift-only conversion turns a subnormal half into a subnormal
// f32, and x86 (Zen 4 here) takes a slow path of tens of cycles when mulps reads one; weights with ~1% subnormal
// halves (N(0, 0.004), GPT-2's residual projections) ran at half speed (bench/probe-gemv.ts, 768x3072: 0.87%
// subnormal 0.51 ms against 0.25 ms with them flushed). So no stored half is subnormal: the loader stores each
// f16 matrix as w·2^e with e chosen per tensor (src/model/weights.ts, the halves_* kernels), passed in the flags,
// and the kernels fold 2^-e into the activation scale; the products are the same exact reals, so the bits are
// those of converting w itself.
import { FLAG_ACCUMULATE, LOW_SLOTS, LOW_SLOT_BYTES, hsum4, imin, loadPartial, lowSlot, madd, splitChunk, splitHi, splitLo, storePartial, threadIndex, wDown, xUp } from './common';
import { activate4, half1, half4, halfBits112, halfHiWords, halfJoinHigh, halfJoinLow, halfLoWords } from './math';

// W = f32: f32 weights. The halves of W = u16 / i16 hold w·2^e (e, the matrix's weight exponent offset from the
// flags, is chosen at load so that no half is subnormal: assembly/common.ts). W = u16: halves converted to
// w·2^(e-112) (sign-extend, shift, mask: exact, never subnormal then) and multiplied by x·2^(112-e) — the same real
// product x·w, so the same rounding as converting the weight, one multiply fewer per weight vector; used when
// every |x| < 2^15 so x·2^(112-e) stays finite. W = i16: halves fully converted and times 2^-e (exact; any x).
/** Four consecutive weights at p (f32, or halves as above); wd = 2^-e in every lane. */
@inline function wload<W>(p: usize, wd: v128): v128 {
  if (sizeof<W>() == 4) return v128.load(p);
  if (isSigned<W>()) return f32x4.mul(half4(p), wd);
  return halfBits112(v128.load16x4_s(p));
}
/** Four consecutive activations at p, pre-scaled for the u16 path (sc = 2^(112-e) in every lane). */
@inline function xload<W>(p: usize, sc: v128): v128 {
  if (sizeof<W>() == 2 && !isSigned<W>()) return f32x4.mul(v128.load(p), sc);
  return v128.load(p);
}
/** xload for the GEMV, whose x may already be scaled (PRE = u8: a copy in the thread's low-memory slot). */
@inline function xloadG<W, PRE>(p: usize, sc: v128): v128 {
  if (sizeof<PRE>() == 1) return v128.load(p);
  return xload<W>(p, sc);
}
@inline function wscalar<W>(p: usize): f32 {
  if (sizeof<W>() == 4) return load<f32>(p);
  return half1(p) * wDown();
}
/** Weights k of rows w0..w3 as one vector. */
@inline function wgather<W>(w0: usize, w1: usize, w2: usize, w3: usize, k: usize): v128 {
  const o = k * sizeof<W>();
  let v = f32x4.splat(wscalar<W>(w0 + o));
  v = f32x4.replace_lane(v, 1, wscalar<W>(w1 + o));
  v = f32x4.replace_lane(v, 2, wscalar<W>(w2 + o));
  return f32x4.replace_lane(v, 3, wscalar<W>(w3 + o));
}
/** s += x[k]·w[k] for k in [K4, K), lane by lane, for one row of x against four weight rows. */
@inline function ktail<W>(s: v128, xr: usize, w0: usize, w1: usize, w2: usize, w3: usize, K4: i32, K: i32): v128 {
  for (let k = K4; k < K; k++) {
    const xv = f32x4.splat(load<f32>(xr + (<usize>k << 2)));
    s = f32x4.add(s, f32x4.mul(xv, wgather<W>(w0, w1, w2, w3, <usize>k)));
  }
  return s;
}
/** bias, activation, accumulate and store of four (or cnt) outputs y[m, n..n+cnt). */
@inline export function finish(v: v128, bp: usize, yp: usize, cnt: i32, flags: i32): void {
  if (bp) v = f32x4.add(v, loadPartial(bp, cnt));
  v = activate4(v, flags & 3);
  if (flags & FLAG_ACCUMULATE) v = f32x4.add(loadPartial(yp, cnt), v);
  storePartial(yp, v, cnt);
}

/** One row of x against rows w0..w3 (cnt of them real; the others repeat a real row). */
function tile1x4<W>(xr: usize, w0: usize, w1: usize, w2: usize, w3: usize, K: i32, bp: usize, yp: usize, cnt: i32, flags: i32): void {
  const K4 = K & ~3;
  const wend = w0 + <usize>K4 * sizeof<W>();
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let xp = xr;
  const d1 = w1 - w0, d2 = w2 - w0, d3 = w3 - w0;
  const sc = f32x4.splat(xUp()), wd = f32x4.splat(wDown());
  for (let wp = w0; wp < wend; wp += 4 * sizeof<W>()) {
    const xv = xload<W>(xp, sc);
    a0 = madd(xv, wload<W>(wp, wd), a0);
    a1 = madd(xv, wload<W>(wp + d1, wd), a1);
    a2 = madd(xv, wload<W>(wp + d2, wd), a2);
    a3 = madd(xv, wload<W>(wp + d3, wd), a3);
    xp += 16;
  }
  let s = hsum4(a0, a1, a2, a3);
  if (K4 < K) s = ktail<W>(s, xr, w0, w1, w2, w3, K4, K);
  finish(s, bp, yp, cnt, flags);
}

/** Rows of w per GEMV tile. V8 (x64) gives wasm 15 xmm registers and issues an iteration's loads before its
 *  arithmetic, so loads (1 + R) + accumulators (R) + temporaries must fit in 15 or an accumulator is spilled
 *  to the stack and its chain runs through memory: 7 with fused multiply-add, 6 with mul + add, 5 for halves
 *  (whose conversion needs temporaries). */
@inline function gemvRows<W>(): i32 {
  if (sizeof<W>() == 2) return 5;
  return ASC_FEATURE_RELAXED_SIMD ? 7 : 6;
}

/** bias, activation, accumulate and store of cnt (1..4) outputs y[n + i*per], i < cnt: finish() for outputs
 *  that are not adjacent, lane by lane the same operations. */
@inline export function finishFar(v: v128, bias: usize, yr: usize, n: i32, per: i32, cnt: i32, flags: i32): void {
  const o0 = <usize>n << 2, ob = <usize>per << 2;
  if (bias) v = f32x4.add(v, gatherFar(bias + o0, ob, cnt));
  v = activate4(v, flags & 3);
  if (flags & FLAG_ACCUMULATE) v = f32x4.add(gatherFar(yr + o0, ob, cnt), v);
  const p = yr + o0;
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (cnt > 1) store<f32>(p + ob, f32x4.extract_lane(v, 1));
  if (cnt > 2) store<f32>(p + 2 * ob, f32x4.extract_lane(v, 2));
  if (cnt > 3) store<f32>(p + 3 * ob, f32x4.extract_lane(v, 3));
}
/** Floats at p + i*ob for i < cnt, zeros after (loadPartial for a stride). */
@inline function gatherFar(p: usize, ob: usize, cnt: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (cnt > 1) v = f32x4.replace_lane(v, 1, load<f32>(p + ob));
  if (cnt > 2) v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * ob));
  if (cnt > 3) v = f32x4.replace_lane(v, 3, load<f32>(p + 3 * ob));
  return v;
}

/** a + x0·w[0..3] + x1·w[4..7] (two multiply-adds in that order) for eight halves at p, as w·2^-112 (the u16
 *  path: wload<u16> of p and p + 8, the same bits). Per 8 halves: 1 load and 9 vector ops (2 shifts, 1 and,
 *  2 unpacks, 2 mul, 2 add) against 10 for two wload<u16> steps; V8 keeps the tile in registers at R = 5
 *  (R = 6 spills 3 vectors per step). callgrind, 768x3072 M = 1: 4.21M -> 3.71M instructions in wasm code. */
@inline function madd8Halves(x0: v128, x1: v128, p: usize, a: v128): v128 {
  const h = v128.load(p);
  const lo = halfLoWords(h), hi = halfHiWords(h);
  return madd(x1, halfJoinHigh(lo, hi), madd(x0, halfJoinLow(lo, hi), a));
}

/** One row of x against R = gemvRows<W>() weight rows run bytes apart (rows n + i*per): R chains, one per
 *  output, each tile1x4's sequence; outputs go to y[n + i*per]. The vector loop reads x at xv (xr, or for
 *  PRE = u8 its pre-scaled copy), the K tail at xr. The u16 path steps eight halves at a time (madd8Halves:
 *  the same two multiply-adds per chain as two 4-steps), then at most one 4-step. */
function tileFar<W, PRE>(xr: usize, xv0: usize, w0: usize, run: usize, K: i32, bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  const R = gemvRows<W>();
  const K4 = K & ~3;
  const wend = w0 + <usize>K4 * sizeof<W>();
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0);
  let xp = xv0;
  const r2 = run * 2, r3 = run * 3, r4 = run * 4, r5 = run * 5, r6 = run * 6;
  const sc = f32x4.splat(xUp()), wd = f32x4.splat(wDown());
  let wp = w0;
  if (sizeof<W>() == 2 && !isSigned<W>()) {
    const wend8 = w0 + (<usize>(K & ~7) << 1);
    for (; wp < wend8; wp += 16) {
      const x0 = xloadG<W, PRE>(xp, sc), x1 = xloadG<W, PRE>(xp + 16, sc);
      a0 = madd8Halves(x0, x1, wp, a0);
      a1 = madd8Halves(x0, x1, wp + run, a1);
      a2 = madd8Halves(x0, x1, wp + r2, a2);
      a3 = madd8Halves(x0, x1, wp + r3, a3);
      a4 = madd8Halves(x0, x1, wp + r4, a4);
      if (R > 5) a5 = madd8Halves(x0, x1, wp + r5, a5);
      if (R > 6) a6 = madd8Halves(x0, x1, wp + r6, a6);
      xp += 32;
    }
  }
  for (; wp < wend; wp += 4 * sizeof<W>()) {
    const xv = xloadG<W, PRE>(xp, sc);
    a0 = madd(xv, wload<W>(wp, wd), a0);
    a1 = madd(xv, wload<W>(wp + run, wd), a1);
    a2 = madd(xv, wload<W>(wp + r2, wd), a2);
    a3 = madd(xv, wload<W>(wp + r3, wd), a3);
    a4 = madd(xv, wload<W>(wp + r4, wd), a4);
    if (R > 5) a5 = madd(xv, wload<W>(wp + r5, wd), a5);
    if (R > 6) a6 = madd(xv, wload<W>(wp + r6, wd), a6);
    xp += 16;
  }
  let s0 = hsum4(a0, a1, a2, a3);
  let s1 = hsum4(a4, a5, a6, a6);
  if (K4 < K) {
    s0 = ktail<W>(s0, xr, w0, w0 + run, w0 + r2, w0 + r3, K4, K);
    s1 = ktail<W>(s1, xr, w0 + r4, w0 + (R > 5 ? r5 : r4), w0 + (R > 6 ? r6 : r4), w0 + r4, K4, K);
  }
  finishFar(s0, bias, yr, n, per, 4, flags);
  finishFar(s1, bias, yr, n + 4 * per, per, R - 4, flags);
}

/** GEMV rows [n0, n1): R runs of per = (n1 - n0) / R consecutive rows, walked in lockstep (tileFar), then the
 *  fewer than R rows left over in groups of 4. The u16 path first scales x by 2^(112-e) into the thread's
 *  low-memory slot when it fits (the same exact products, one multiply per x vector fewer in the loop). */
@inline function gemvFar<W>(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32, flags: i32, ith: i32): void {
  const R = gemvRows<W>();
  const rb = <usize>K * sizeof<W>();
  const xb = <usize>K << 2, yb = <usize>N << 2;
  const per = (n1 - n0) / R;
  const run = <usize>per * rb;
  if (sizeof<W>() == 2 && !isSigned<W>() && per > 0 && threadIndex() < LOW_SLOTS && <usize>M * xb <= <usize>LOW_SLOT_BYTES) {
    const xs = lowSlot(), xe = xs + <usize>M * xb;
    const up = xUp(), sv = f32x4.splat(up);
    let p = xs, q = x;
    for (; p + 16 <= xe; p += 16, q += 16) v128.store(p, f32x4.mul(v128.load(q), sv));
    for (; p < xe; p += 4, q += 4) store<f32>(p, load<f32>(q) * up);
    for (let n = n0; n < n0 + per; n++) {
      const w0 = w + <usize>n * rb;
      for (let m = 0; m < M; m++) tileFar<W, u8>(x + <usize>m * xb, xs + <usize>m * xb, w0, run, K, bias, y + <usize>m * yb, n, per, flags);
    }
  } else {
    for (let n = n0; n < n0 + per; n++) {
      const w0 = w + <usize>n * rb;
      for (let m = 0; m < M; m++) tileFar<W, u16>(x + <usize>m * xb, x + <usize>m * xb, w0, run, K, bias, y + <usize>m * yb, n, per, flags);
    }
  }
  for (let n = n0 + R * per; n < n1; n += 4) {
    for (let m = 0; m < M; m++) group1<W>(x + <usize>m * xb, w, rb, n, n1, K, bias, y + <usize>m * yb, flags);
  }
}

/** Two rows of x (x0, x0 + xb) against four weight rows (w0 + i*rb); outputs at yp and yp + yb. */
function tile2x4<W>(x0: usize, xb: usize, w0: usize, rb: usize, K: i32, bp: usize, yp: usize, yb: usize, flags: i32): void {
  const K4 = K & ~3;
  const wend = w0 + <usize>K4 * sizeof<W>();
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  const rb2 = rb * 2, rb3 = rb * 3;
  const sc = f32x4.splat(xUp()), wd = f32x4.splat(wDown());
  let xp = x0;
  for (let wp = w0; wp < wend; wp += 4 * sizeof<W>()) {
    const xu = xload<W>(xp, sc);
    const xv = xload<W>(xp + xb, sc);
    let wv = wload<W>(wp, wd);
    a0 = madd(xu, wv, a0);
    c0 = madd(xv, wv, c0);
    wv = wload<W>(wp + rb, wd);
    a1 = madd(xu, wv, a1);
    c1 = madd(xv, wv, c1);
    wv = wload<W>(wp + rb2, wd);
    a2 = madd(xu, wv, a2);
    c2 = madd(xv, wv, c2);
    wv = wload<W>(wp + rb3, wd);
    a3 = madd(xu, wv, a3);
    c3 = madd(xv, wv, c3);
    xp += 16;
  }
  let s0 = hsum4(a0, a1, a2, a3);
  let s1 = hsum4(c0, c1, c2, c3);
  if (K4 < K) {
    s0 = ktail<W>(s0, x0, w0, w0 + rb, w0 + rb2, w0 + rb3, K4, K);
    s1 = ktail<W>(s1, x0 + xb, w0, w0 + rb, w0 + rb2, w0 + rb3, K4, K);
  }
  finish(s0, bp, yp, 4, flags);
  finish(s1, bp, yp + yb, 4, flags);
}

/** Rows [n, n1) (fewer than 4, or a group of 4) of w against row xr of x. */
@inline function group1<W>(xr: usize, w: usize, rb: usize, n: i32, n1: i32, K: i32, bias: usize, yr: usize, flags: i32): void {
  const cnt = imin(4, n1 - n);
  const w0 = w + <usize>n * rb;
  const w1 = cnt > 1 ? w0 + rb : w0;
  const w2 = cnt > 2 ? w0 + 2 * rb : w0;
  const w3 = cnt > 3 ? w0 + 3 * rb : w0;
  tile1x4<W>(xr, w0, w1, w2, w3, K, bias ? bias + (<usize>n << 2) : 0, yr + (<usize>n << 2), cnt, flags);
}

const GEMV_MAX_M: i32 = 2;
const PANEL_BYTES: i32 = 512 << 10; // x rows per GEMM M block: as many as fit in this many bytes

/** Four half rows (w0, row stride rb) converted to f32 into the panel at dst (row r at dst + r·4K): each the half's
 *  value exactly (half4/half1, which form no subnormal f32, times 2^-e). The GEMM then runs the f32 tile on it:
 *  x·w is the same exact product as on either half path, so the bits are the same, and each weight is converted
 *  once per M block instead of once per pair of x rows. */
function halfPanel(w0: usize, rb: usize, K: i32, dst: usize): void {
  const down = wDown(), wd = f32x4.splat(down);
  const K4 = K & ~3, pb = <usize>K << 2;
  for (let r = 0; r < 4; r++) {
    const src = w0 + <usize>r * rb, d = dst + <usize>r * pb;
    let k = 0;
    for (; k < K4; k += 4) v128.store(d + (<usize>k << 2), f32x4.mul(half4(src + (<usize>k << 1)), wd));
    for (; k < K; k++) store<f32>(d + (<usize>k << 2), half1(src + (<usize>k << 1)) * down);
  }
}

export function matmulF<W>(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(N, nth, 16);
  const n0 = splitLo(N, ith, chunk), n1 = splitHi(N, n0, chunk);
  if (n0 >= n1 || M <= 0) return;
  const rb = <usize>K * sizeof<W>(); // bytes per weight row
  const xb = <usize>K << 2;
  const yb = <usize>N << 2;
  const n4 = n0 + ((n1 - n0) & ~3);
  if (M <= GEMV_MAX_M) {
    gemvFar<W>(x, w, bias, y, M, K, N, n0, n1, flags, ith);
    return;
  }
  let mb = (PANEL_BYTES / imax1(K * 4)) & ~1;
  if (mb < 2) mb = 2;
  // halves: four rows at a time converted to f32 in this thread's low scratch slot when they fit (halfPanel)
  const panel = sizeof<W>() == 2 && threadIndex() < LOW_SLOTS && <usize>K * 16 <= <usize>LOW_SLOT_BYTES;
  const slot = lowSlot(), pb = <usize>K << 2;
  for (let m0 = 0; m0 < M; m0 += mb) {
    const m1 = imin(M, m0 + mb);
    const m2 = m0 + ((m1 - m0) & ~1);
    for (let n = n0; n < n4; n += 4) {
      const w0 = w + <usize>n * rb;
      const bp = bias ? bias + (<usize>n << 2) : 0;
      if (panel) {
        halfPanel(w0, rb, K, slot);
        for (let m = m0; m < m2; m += 2) {
          tile2x4<f32>(x + <usize>m * xb, xb, slot, pb, K, bp, y + <usize>m * yb + (<usize>n << 2), yb, flags);
        }
        if (m2 < m1) tile1x4<f32>(x + <usize>m2 * xb, slot, slot + pb, slot + 2 * pb, slot + 3 * pb, K, bp, y + <usize>m2 * yb + (<usize>n << 2), 4, flags);
        continue;
      }
      for (let m = m0; m < m2; m += 2) {
        tile2x4<W>(x + <usize>m * xb, xb, w0, rb, K, bp, y + <usize>m * yb + (<usize>n << 2), yb, flags);
      }
      if (m2 < m1) group1<W>(x + <usize>m2 * xb, w, rb, n, n1, K, bias, y + <usize>m2 * yb, flags);
    }
    if (n4 < n1) {
      for (let m = m0; m < m1; m++) group1<W>(x + <usize>m * xb, w, rb, n4, n1, K, bias, y + <usize>m * yb, flags);
    }
  }
}

@inline function imax1(v: i32): i32 { return v > 1 ? v : 1; }

export function matmul_f32(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  matmulF<f32>(x, w, bias, y, M, K, N, flags, ith, nth);
}
