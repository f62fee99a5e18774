// Shared helpers of the kernels: the ABI constants, the thread split, horizontal sums and partial loads.
// Everything here is @inline: the kernels keep no static data and allocate nothing.

export const ACT_NONE: i32 = 0;
export const ACT_GELU_TANH: i32 = 1;
export const ACT_GELU_ERF: i32 = 2;
export const ACT_RELU: i32 = 3;
export const FLAG_ACCUMULATE: i32 = 4;
export const DT_F32: i32 = 0;
export const DT_F16: i32 = 1;
export const DT_Q8: i32 = 2;
export const DT_Q4: i32 = 3;
export const Q8_BLOCK: i32 = 32;
export const Q8_0_BYTES: i32 = 34; // f16 scale + 32 int8
export const Q4_0_BYTES: i32 = 18; // f16 scale + 16 bytes of nibble pairs

/** Index of the thread running this instance (one instance per thread): 0 for the caller's, set once by each
 *  pool worker at startup (set_thread_index). Kernels get a chunk index as `ith`, which any thread may run, so
 *  per-thread scratch is chosen by this index instead. */
let threadIdx: i32 = 0;
export function set_thread_index(i: i32): void { threadIdx = i; }
@inline export function threadIndex(): i32 { return threadIdx; }

/** Per-thread work areas in the bottom megabyte of memory, which the host leaves to the kernels
 *  (RESERVED_LOW_BYTES in src/runtime/wasm.ts): thread threadIndex() < LOW_SLOTS may use [lowSlot(), +
 *  LOW_SLOT_BYTES) as scratch within a call. A kernel that uses it must give the same bits without it (for a
 *  thread ≥ LOW_SLOTS or a call that needs more room), so results never depend on the thread count. */
export const LOW_SLOT_BYTES: i32 = 60 << 10;
export const LOW_SLOTS: i32 = 15;
@inline export function lowSlot(): usize {
  return (64 << 10) + <usize>threadIdx * <usize>LOW_SLOT_BYTES; // 64 KiB + 15 * 60 KiB < 1 MiB
}

/** The weight exponent offset e of a matrix (bits WEXP_SHIFT.. of a matmul's flags, of embed's wteDt): the halves of a
 *  DT_F16 matrix and the block scales of DT_Q8/DT_Q4 hold value·2^e (src/model/weights.ts picks e per tensor so
 *  that no half is subnormal: a subnormal half becomes a subnormal f32 in the shift-only conversions, and x86
 *  multiplies take a slow path, tens of cycles, on such an input). */
export const WEXP_SHIFT: i32 = 8;
@inline export function wexpOf(word: i32): i32 { return (word >> WEXP_SHIFT) & 15; }
/** 2^k as an f32 for k in [-126, 127] (exact). */
@inline export function pow2(k: i32): f32 { return reinterpret<f32>((k + 127) << 23); }
/** The current matmul's conversion factors, set at its entry by setWexp (wasm globals: each thread's instance has
 *  its own): wDown = 2^-e turns a stored weight or scale back into its value; xUp = 2^(112 - e) pre-scales the
 *  activations of the shift-only paths, whose stored value·2^e becomes value·2^(e - 112) (x·2^(112-e) times that
 *  is the exact real product x·value, so the same rounding). */
let wDownG: f32 = 1;
let xUpG: f32 = 5.192296858534828e33; // 2^112
@inline export function setWexp(word: i32): void {
  const e = wexpOf(word);
  wDownG = pow2(-e);
  xUpG = pow2(112 - e);
}
@inline export function wDown(): f32 { return wDownG; }
@inline export function xUp(): f32 { return xUpG; }

/** Chunk size of splitRange(n, ith, nth, align) in src/runtime/abi.ts. */
@inline export function splitChunk(n: i32, nth: i32, align: i32): i32 {
  let chunk = (n + nth - 1) / nth;
  return (chunk + align - 1) / align * align;
}
/** Lower end of this thread's range: min(n, ith * chunk). */
@inline export function splitLo(n: i32, ith: i32, chunk: i32): i32 {
  const lo = <i64>ith * <i64>chunk;
  return lo < <i64>n ? <i32>lo : n;
}
/** Upper end: min(n, lo + chunk). */
@inline export function splitHi(n: i32, lo: i32, chunk: i32): i32 {
  return chunk < n - lo ? lo + chunk : n;
}

@inline export function imin(a: i32, b: i32): i32 { return a < b ? a : b; }
@inline export function imax(a: i32, b: i32): i32 { return a > b ? a : b; }

/** a*b + c: fused where the relaxed build allows (one rounding or two, as the engine chooses), else mul then add. */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** [Σa, Σb, Σc, Σd] with every Σv = (v0 + v2) + (v1 + v3): the one horizontal-sum order all kernels use. */
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(f32x4.shuffle(a, b, 0, 1, 4, 5), f32x4.shuffle(a, b, 2, 3, 6, 7));
  const cd = f32x4.add(f32x4.shuffle(c, d, 0, 1, 4, 5), f32x4.shuffle(c, d, 2, 3, 6, 7));
  return f32x4.add(f32x4.shuffle(ab, cd, 0, 2, 4, 6), f32x4.shuffle(ab, cd, 1, 3, 5, 7));
}
/** The same sum (v0 + v2) + (v1 + v3) of one vector, as a scalar. */
@inline export function hsum(a: v128): f32 {
  const t = f32x4.add(a, f32x4.shuffle(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}
/** Integer horizontal sums of four vectors (exact, any order). */
@inline export function hsum4i(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 1, 4, 5), i32x4.shuffle(a, b, 2, 3, 6, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 1, 4, 5), i32x4.shuffle(c, d, 2, 3, 6, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 2, 4, 6), i32x4.shuffle(ab, cd, 1, 3, 5, 7));
}
/** Largest lane (NaN-propagating). */
@inline export function hmax(a: v128): f32 {
  const t = f32x4.max(a, f32x4.shuffle(a, a, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(t, 0), f32x4.extract_lane(t, 1));
}

/** Four floats at p, or the first cnt (1..4) of them with zeros after. */
@inline export function loadPartial(p: usize, cnt: i32): v128 {
  if (cnt >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (cnt > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (cnt > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}
/** Store the first cnt (1..4) lanes of v at p. */
@inline export function storePartial(p: usize, v: v128, cnt: i32): void {
  if (cnt >= 4) { v128.store(p, v); return; }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (cnt > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (cnt > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** Four f32 -> four IEEE halves (low 16 bits of each i32 lane), rounded to nearest even as floatToHalf of
 *  src/io/half.ts: |x| ≥ 65520 -> ±inf, NaN -> ±0x7e00, below 2^-25 (f32 subnormals included) -> ±0. */
@inline export function halfOf4(x: v128): v128 {
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  // normal half (2^-14 ≤ |x| < 65536): rebias the exponent (-112 << 23), add 0xfff plus the kept lsb (so only
  // more than half an ulp, or exactly half with an odd lsb, carries), drop 13 bits; a carry out of 0x7bff is inf
  const odd = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  const norm = i32x4.shr_u(i32x4.add(i32x4.add(a, i32x4.splat(<i32>0xc8000fff)), odd), 13);
  // subnormal half (|x| < 2^-14): |x| + 0.5 rounds |x| to a multiple of 2^-24 (the half's ulp there) by the
  // f32 addition's own round-to-nearest-even; its low mantissa bits are the half (0x400 when it rounds up to 2^-14)
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  // |x| ≥ 65536: inf, or a quiet NaN
  const big = v128.bitselect(i32x4.splat(0x7e00), i32x4.splat(0x7c00), i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  const fin = v128.bitselect(sub, norm, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  return v128.or(sign, v128.bitselect(fin, big, i32x4.lt_s(a, i32x4.splat(0x47800000))));
}

/** All-ones lanes where v is NaN or ±inf (exponent all ones): the loader's kernels flag such weights. */
@inline export function nonFiniteLanes(v: v128): v128 {
  const e = i32x4.splat(0x7f800000);
  return i32x4.eq(v128.and(v, e), e);
}
/** The same test of one f32. */
@inline export function nonFinite1(v: f32): bool { return (reinterpret<u32>(v) & 0x7f800000) == 0x7f800000; }
