// The loader's pass over a matrix's halves (the elements of an f16 matrix, or the scales of its Q8_0/Q4_0 blocks) that
// picks and applies its weight exponent offset e (common.ts): halves_scan finds the largest magnitude and whether any
// half is subnormal; halves_shift multiplies every half by 2^e exactly (the caller's e keeps them finite), so that
// none is subnormal afterwards when e = 10 fits. Halves are at p + i·stride (stride 2: consecutive elements; 34 or
// 18: the scale at the start of each block). Both split the n halves in fixed chunks of 1024.
import { splitChunk, splitHi, splitLo } from './common';

const UNIT = 1024;

/** h·2^e as a half, exactly, for a finite h whose product stays finite. A normal half gains e in its exponent; a
 *  subnormal one (m·2^-24) becomes M·2^-24 with M = m << e, renormalised when M ≥ 1024: with p = ⌊log2 M⌋, exponent
 *  field p - 9 and mantissa (M >> (p - 10)) & 0x3ff (the bits shifted out are zeros: p - 10 < e). */
@inline function shiftHalf(h: i32, e: i32): i32 {
  const s = h & 0x8000, a = h & 0x7fff;
  if (a == 0) return h;
  if (a >= 0x400) return s | (a + (e << 10));
  const M = a << e;
  if (M < 0x400) return s | M;
  const p = 31 - clz(M);
  return s | ((p - 9) << 10) | ((M >> (p - 10)) & 0x3ff);
}

/** Lanes (i16) whose magnitude a = h & 0x7fff is a subnormal half's: 1 ≤ a ≤ 0x3ff (a - 1 below 0x3ff unsigned). */
@inline function subnormalLanes(a: v128): v128 {
  return i16x8.lt_u(i16x8.sub(a, i16x8.splat(1)), i16x8.splat(0x3ff));
}
/** The same test of one magnitude. */
@inline function subnormal1(a: i32): bool { return <u32>(a - 1) < 0x3ff; }

/** Largest magnitude (h & 0x7fff) of halves [lo, hi) into the i32 at out (a maximum over the chunks), and the i32 at
 *  out + 4 set to 1 when one of them is subnormal. */
export function halves_scan(p: usize, n: i32, stride: i32, out: usize, ith: i32, nth: i32): void {
  const chunk = splitChunk(n, nth, UNIT);
  const lo = splitLo(n, ith, chunk), hi = splitHi(n, lo, chunk);
  if (lo >= hi) return;
  let mx = 0, sub = 0;
  let i = lo;
  if (stride == 2) {
    let vm = i16x8.splat(0), vs = i16x8.splat(0);
    const mask = i16x8.splat(0x7fff);
    for (; i + 8 <= hi; i += 8) {
      const a = v128.and(v128.load(p + (<usize>i << 1)), mask);
      vm = i16x8.max_u(vm, a);
      vs = v128.or(vs, subnormalLanes(a));
    }
    const m4 = i16x8.max_u(vm, i16x8.shuffle(vm, vm, 4, 5, 6, 7, 0, 1, 2, 3));
    const m2 = i16x8.max_u(m4, i16x8.shuffle(m4, m4, 2, 3, 0, 1, 2, 3, 0, 1));
    const m1 = <i32>i16x8.extract_lane_u(m2, 0), m1b = <i32>i16x8.extract_lane_u(m2, 1);
    mx = m1 > m1b ? m1 : m1b;
    sub = v128.any_true(vs) ? 1 : 0;
  }
  for (; i < hi; i++) {
    const a = <i32>load<u16>(p + <usize>i * <usize>stride) & 0x7fff;
    if (a > mx) mx = a;
    if (subnormal1(a)) sub = 1;
  }
  if (ASC_FEATURE_THREADS) {
    let cur = atomic.load<i32>(out);
    while (cur < mx) {
      const was = atomic.cmpxchg<i32>(out, cur, mx);
      if (was == cur) break;
      cur = was;
    }
    if (sub) atomic.store<i32>(out, 1, 4);
  } else {
    if (load<i32>(out) < mx) store<i32>(out, mx);
    if (sub) store<i32>(out, 1, 4);
  }
}

/** Halves [lo, hi) times 2^e in place (shiftHalf). Eight consecutive halves with none subnormal take one vector add
 *  of e to the exponent of the nonzero ones. */
export function halves_shift(p: usize, n: i32, stride: i32, e: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(n, nth, UNIT);
  const lo = splitLo(n, ith, chunk), hi = splitHi(n, lo, chunk);
  let i = lo;
  if (stride == 2) {
    const mask = i16x8.splat(0x7fff), inc = i16x8.splat(<i16>(e << 10));
    for (; i + 8 <= hi; i += 8) {
      const q = p + (<usize>i << 1);
      const v = v128.load(q), a = v128.and(v, mask);
      if (v128.any_true(subnormalLanes(a))) {
        for (let j: usize = 0; j < 16; j += 2) store<u16>(q + j, <u16>shiftHalf(<i32>load<u16>(q + j), e));
      } else {
        v128.store(q, i16x8.add(v, v128.and(v128.not(i16x8.eq(a, i16x8.splat(0))), inc)));
      }
    }
  }
  for (; i < hi; i++) {
    const q = p + <usize>i * <usize>stride;
    store<u16>(q, <u16>shiftHalf(<i32>load<u16>(q), e));
  }
}
