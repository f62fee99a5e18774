// SIMD transcendental helpers (f32x4), accurate to a few ulp, and the matmul activations.
// Polynomial coefficients were fitted for these kernels (iteratively reweighted least squares on Chebyshev
// nodes in f64, then rounded to f32 and checked in emulated f32 arithmetic against f64):
//   exp:  ≤ 1.6 ulp on [-87, 88];  erf on |z| < 0.9: ≤ 1.8e-7 relative;  erfc(a)·exp(a²) on [0.9, 6]: ≤ 1.9e-7,
//   and its asymptotic series beyond 6.
import { ACT_GELU_ERF, ACT_GELU_TANH, ACT_RELU, madd } from './common';

export const LOG2E: f32 = 1.4426950408889634;
export const LN2_HI: f32 = 0.693359375; // 9 significant bits: n * LN2_HI is exact for |n| < 2^15
export const LN2_LO: f32 = -2.12194440e-4;
// exp(r) = 1 + r + r²·P(r), |r| ≤ ln2/2
export const E0: f32 = 0.5;
export const E1: f32 = 0.16666577756404877;
export const E2: f32 = 0.04166685417294502;
export const E3: f32 = 0.008363140746951103;
export const E4: f32 = 0.0013901280472055078;

/** e^x per lane. Overflows to +inf above ~88.72, flushes to +0 below -103.9 (gradual underflow between,
 *  with one extra rounding), NaN stays NaN. */
@inline export function exp4(x: v128): v128 {
  const xc = f32x4.max(f32x4.min(x, f32x4.splat(89.0)), f32x4.splat(-104.0)); // min/max propagate NaN
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(LOG2E)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(LN2_HI))); // exact (Cody-Waite)
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(E4), r), f32x4.splat(E3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E0));
  p = f32x4.add(f32x4.mul(f32x4.mul(r, r), p), r);
  p = f32x4.add(p, f32x4.splat(1.0));
  // 2^n as two normal factors 2^k1 · 2^k2 (n in [-150, 128]), so neither overflows nor goes subnormal.
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const k1 = i32x4.shr_s(ni, 1);
  const k2 = i32x4.sub(ni, k1);
  const s1 = i32x4.shl(i32x4.add(k1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(k2, i32x4.splat(127)), 23);
  const e = f32x4.mul(f32x4.mul(p, s1), s2);
  return v128.andnot(e, f32x4.lt(x, f32x4.splat(-103.97)));
}

export const EXP_MAGIC: f32 = 12583039.0; // 1.5·2^23 + 127: t = x·log2e + MAGIC holds round(x·log2e) + 127 in its low bits

/** Writes the 11 constants of expNeg4 at p (44 bytes). V8 rebuilds a v128 constant at every use inside a loop
 *  (three instructions each) and does not hoist computed ones, so the hot softmax loop broadcasts them from
 *  memory instead (one load each). */
export function expNegTable(p: usize): void {
  store<f32>(p, -87.3); store<f32>(p, LOG2E, 4); store<f32>(p, EXP_MAGIC, 8); store<f32>(p, LN2_HI, 12);
  store<f32>(p, -LN2_LO, 16); store<f32>(p, E4, 20); store<f32>(p, E3, 24); store<f32>(p, E2, 28);
  store<f32>(p, E1, 32); store<f32>(p, E0, 36); store<f32>(p, 1.0, 40);
}

/** e^x per lane for the softmax, x ≤ 0 (a score minus the row max), constants from expNegTable at kp.
 *  Rounding to n by the magic-number add; the polynomial of exp4 (fused multiply-adds in the relaxed builds);
 *  2^n as (t << 23). Below -87.3 (weights < 1.2e-38 of the largest) and for -inf: 0. NaN stays NaN. */
@inline export function expNeg4(x: v128, kp: usize): v128 {
  const kmin = v128.load32_splat(kp);
  const xc = f32x4.pmax(x, kmin); // x < kmin ? kmin : x — NaN passes through
  const kmagic = v128.load32_splat(kp, 8);
  const t = madd(xc, v128.load32_splat(kp, 4), kmagic);
  const n = f32x4.sub(t, kmagic);
  let r = f32x4.sub(xc, f32x4.mul(n, v128.load32_splat(kp, 12))); // exact
  r = madd(n, v128.load32_splat(kp, 16), r);
  let p = madd(v128.load32_splat(kp, 20), r, v128.load32_splat(kp, 24));
  p = madd(p, r, v128.load32_splat(kp, 28));
  p = madd(p, r, v128.load32_splat(kp, 32));
  p = madd(p, r, v128.load32_splat(kp, 36));
  p = madd(f32x4.mul(r, r), p, r);
  p = f32x4.add(p, v128.load32_splat(kp, 40));
  return v128.andnot(f32x4.mul(p, i32x4.shl(t, 23)), f32x4.lt(x, kmin));
}

const GELU_K: f32 = 0.7978845608028654; // sqrt(2/pi)
const GELU_C: f32 = 0.044715;

/** gelu_new: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) computed as x / (1 + e^(-2u)) — the same function
 *  (0.5(1 + tanh u) = 1/(1 + e^(-2u))) without tanh's cancellation for negative u. */
@inline export function geluTanh4(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const u = f32x4.mul(f32x4.splat(GELU_K), f32x4.add(x, f32x4.mul(f32x4.splat(GELU_C), x3)));
  const e = exp4(f32x4.mul(u, f32x4.splat(-2.0)));
  return f32x4.div(x, f32x4.add(f32x4.splat(1.0), e));
}

// erf(z) = z·P(z²) for |z| < 0.9
const P0: f32 = 1.128379225730896;
const P1: f32 = -0.37612634897232056;
const P2: f32 = 0.11283712834119797;
const P3: f32 = -0.026860391721129417;
const P4: f32 = 0.0052035958506166935;
const P5: f32 = -0.0008172870147973299;
const P6: f32 = 0.00008502096898155287;
// erfc(a) = exp(-a²)·Q(t), t = 1/(1 + a/2) - 0.47, for a in [0.9, 6]
const Q0: f32 = 0.230617493391037;
const Q1: f32 = 0.798072338104248;
const Q2: f32 = 0.9101504683494568;
const Q3: f32 = 0.6226789355278015;
const Q4: f32 = 0.0924646258354187;
const Q5: f32 = -0.21179893612861633;
const Q6: f32 = -0.08014386147260666;
const Q7: f32 = 0.11952923238277435;
const Q8: f32 = 0.0365896038711071;
const Q9: f32 = -0.08426949381828308;
const ERF_SPLIT: f32 = 0.9;

@inline function fma4(a: v128, b: v128, c: v128): v128 { return f32x4.add(f32x4.mul(a, b), c); }

/** Φ(z·√2) = 0.5(1 + erf(z)) per lane, with erfc for |z| ≥ 0.9 so the lower tail keeps its relative accuracy. */
@inline function halfErfc1p(z: v128): v128 {
  const a = f32x4.abs(z);
  // small |z|
  const s = f32x4.mul(z, z);
  let p = fma4(f32x4.splat(P6), s, f32x4.splat(P5));
  p = fma4(p, s, f32x4.splat(P4));
  p = fma4(p, s, f32x4.splat(P3));
  p = fma4(p, s, f32x4.splat(P2));
  p = fma4(p, s, f32x4.splat(P1));
  p = fma4(p, s, f32x4.splat(P0));
  const small = fma4(f32x4.mul(p, z), f32x4.splat(0.5), f32x4.splat(0.5));
  // large |z|: erfc(a) = exp(-hi²)·exp(-q)·Q(t) with a = hi + lo, hi² exact, q = lo(a + hi), a² = hi² + q
  const ac = f32x4.min(f32x4.max(a, f32x4.splat(ERF_SPLIT)), f32x4.splat(6.0));
  const t = f32x4.sub(f32x4.div(f32x4.splat(1.0), fma4(ac, f32x4.splat(0.5), f32x4.splat(1.0))), f32x4.splat(0.47));
  let g = fma4(f32x4.splat(Q9), t, f32x4.splat(Q8));
  g = fma4(g, t, f32x4.splat(Q7));
  g = fma4(g, t, f32x4.splat(Q6));
  g = fma4(g, t, f32x4.splat(Q5));
  g = fma4(g, t, f32x4.splat(Q4));
  g = fma4(g, t, f32x4.splat(Q3));
  g = fma4(g, t, f32x4.splat(Q2));
  g = fma4(g, t, f32x4.splat(Q1));
  g = fma4(g, t, f32x4.splat(Q0));
  // a ≥ 6: the asymptotic series erfc(a)·exp(a²) = 1/(a√π)·Σ (-1)^n (2n-1)!!/(2a²)^n, 7 terms (< 2e-8 there)
  const w = f32x4.div(f32x4.splat(1.0), f32x4.mul(a, a));
  let ga = fma4(f32x4.splat(10395.0 / 64.0), w, f32x4.splat(-945.0 / 32.0));
  ga = fma4(ga, w, f32x4.splat(105.0 / 16.0));
  ga = fma4(ga, w, f32x4.splat(-15.0 / 8.0));
  ga = fma4(ga, w, f32x4.splat(3.0 / 4.0));
  ga = fma4(ga, w, f32x4.splat(-1.0 / 2.0));
  ga = fma4(ga, w, f32x4.splat(1.0));
  ga = f32x4.div(f32x4.mul(ga, f32x4.splat(0.5641895835477563)), a); // 1/√π
  g = v128.bitselect(ga, g, f32x4.ge(a, f32x4.splat(6.0)));
  const ae = f32x4.min(a, f32x4.splat(11.0)); // erfc(11) < 1e-53: exp(-121) flushes to 0; no inf·0 for huge a
  const hi = v128.and(ae, i32x4.splat(<i32>0xfffff000));
  const lo = f32x4.sub(ae, hi);
  const q = f32x4.mul(lo, f32x4.add(ae, hi));
  // exp(-q) for |q| < 2^-6: 1 - q + q²/2 - q³/6
  let eq = fma4(q, f32x4.splat(-0.16666667), f32x4.splat(0.5));
  eq = fma4(eq, q, f32x4.splat(-1.0));
  eq = fma4(eq, q, f32x4.splat(1.0));
  const ex = f32x4.mul(exp4(f32x4.neg(f32x4.mul(hi, hi))), eq);
  const h = f32x4.mul(f32x4.mul(ex, g), f32x4.splat(0.5)); // 0.5·erfc(a)
  const large = v128.bitselect(h, f32x4.sub(f32x4.splat(1.0), h), f32x4.lt(z, f32x4.splat(0)));
  return v128.bitselect(small, large, f32x4.lt(a, f32x4.splat(ERF_SPLIT)));
}

/** gelu: 0.5x(1 + erf(x/√2)). */
@inline export function geluErf4(x: v128): v128 {
  return f32x4.mul(x, halfErfc1p(f32x4.mul(x, f32x4.splat(0.7071067811865476))));
}

/** The matmul activation act (ACT_*) per lane. ReLU maps NaN and -0 to +0 like `v > 0 ? v : 0`. */
@inline export function activate4(v: v128, act: i32): v128 {
  if (act == ACT_GELU_TANH) return geluTanh4(v);
  if (act == ACT_GELU_ERF) return geluErf4(v);
  if (act == ACT_RELU) return f32x4.pmax(f32x4.splat(0), v);
  return v;
}

// IEEE half -> f32 with integer ops, never forming an f32 subnormal (plain-SIMD mulps takes a slow path, tens
// of cycles, when an input is subnormal). For h sign-extended to 32 bits, em = (h << 13) & 0x0fffe000 puts the
// half's exponent|mantissa at the f32 positions, and the sign is bit 31 of h:
//  - exponent 1..31: em + (112 << 23) re-biases the exponent (15 -> 127). Exponent 31 (inf/NaN) comes out
//    finite as ±65536·(1 + m/1024) (the matmul paths: weights are finite); half4Exact maps it to ±inf/NaN.
//  - exponent 0 (zero, subnormal): m·2^-24 = (2^-14 + m·2^-24) - 2^-14, a subtraction of two normal floats
//    of one binade (exact), the first made by giving em the exponent 113.
// These are the same bits as the former em·2^112 multiply for every half.
const HALF_EM: i32 = 0x0fffe000;
const HALF_REBIAS: i32 = 112 << 23;
const HALF_SUB_EXP: i32 = 113 << 23;
const HALF_SUB_ONE: f32 = 6.103515625e-5; // 2^-14
const HALF_MASK: i32 = <i32>0x8fffe000;

/** Four sign-extended halves (v128.load16x4_s) -> four f32. */
@inline export function halfBits(h: v128): v128 {
  const em = v128.and(i32x4.shl(h, 13), i32x4.splat(HALF_EM));
  const normal = i32x4.add(em, i32x4.splat(HALF_REBIAS));
  const small = f32x4.sub(i32x4.add(em, i32x4.splat(HALF_SUB_EXP)), f32x4.splat(HALF_SUB_ONE));
  const mag = v128.bitselect(small, normal, i32x4.lt_s(em, i32x4.splat(1 << 23)));
  return v128.or(mag, v128.and(h, i32x4.splat(<i32>0x80000000)));
}
/** Four sign-extended halves -> four f32 equal to the halves times 2^-112 (exact; subnormal for subnormal
 *  halves, so only for paths where that is not slow: fused multiply-add). */
@inline export function halfBits112(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(HALF_MASK));
}
/** halfBits112 of eight halves h (i16 lanes) in two steps, as the words' low and high 16 bits on the i16 lanes
 *  (2 shifts and 1 and for eight halves) joined by two unpacks: the same bits as halfBits112 on each half, one
 *  vector op fewer per eight halves than widening first (2 x (widen, shift, and)). Low word: h << 13 (mantissa
 *  bits 0..2 at 13..15); high word: (h >> 3) & 0x8fff (sign at 15, exponent and mantissa bits 3..9 at 0..11). */
@inline export function halfLoWords(h: v128): v128 { return i16x8.shl(h, 13); }
@inline export function halfHiWords(h: v128): v128 { return v128.and(i16x8.shr_s(h, 3), i16x8.splat(<i16>0x8fff)); }
/** Halves 0..3 (halfJoinLow) and 4..7 (halfJoinHigh) of halfLoWords/halfHiWords as f32 words. */
@inline export function halfJoinLow(lo: v128, hi: v128): v128 { return v128.shuffle<i16>(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11); }
@inline export function halfJoinHigh(lo: v128, hi: v128): v128 { return v128.shuffle<i16>(lo, hi, 4, 12, 5, 13, 6, 14, 7, 15); }
/** Four halves at p -> four f32. */
@inline export function half4(p: usize): v128 {
  return halfBits(v128.load16x4_s(p));
}
/** Four halves at p -> four f32, inf and NaN preserved. */
@inline export function half4Exact(p: usize): v128 {
  const h = v128.load16x4_s(p);
  const f = halfBits(h);
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  // exponent 31: f32 exponent 255 with the mantissa shifted into place
  const sp = v128.or(v128.and(i32x4.shl(h, 13), i32x4.splat(<i32>0x807fe000)), i32x4.splat(0x7f800000));
  return v128.bitselect(sp, f, special);
}
/** One half at p -> f32, the same arithmetic as half4. */
@inline export function half1(p: usize): f32 {
  const h = <i32>load<i16>(p);
  const em = (h << 13) & HALF_EM;
  const mag = em < (1 << 23) ? reinterpret<f32>(em + HALF_SUB_EXP) - HALF_SUB_ONE : reinterpret<f32>(em + HALF_REBIAS);
  return reinterpret<f32>(reinterpret<i32>(mag) | (h & <i32>0x80000000));
}
