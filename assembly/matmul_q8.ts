// Quantised matmuls: weights in GGUF's Q8_0 or Q4_0 blocks (src/runtime/quant.ts: per row K/32 blocks, each an f16
// scale d then 32 int8 (Q8_0, 34 bytes) or 16 bytes of nibble pairs (Q4_0, 18 bytes: byte j holds element j low and
// j + 16 high, value (nibble - 8)·d)), against activations quantised per call by quantize_q8 (int8 in blocks of 32
// with one f32 scale per block). K must be a multiple of 32 (the loader keeps other matrices in f16).
//
// Per block, the exact integer dot product isum of the 32 activation codes with the block's codes (i8 → i16
// sign-extending loads, Q4_0 nibbles unpacked with and/shift/sub to -8..7 then widened, i32x4.dot_i16x8_s, i32 adds:
// exact for any codes, -128 included), then acc += (f32(isum) · xscale) · f32(d) in f32, blocks in order, then bias,
// activation and accumulate. Integer sums are exact, so every tile gives the same bits for an output, and the GEMV
// and GEMM paths agree bit for bit. The relaxed builds' Q4_0 GEMV and GEMM (tileFarQ4R, tileSplatR) take the same
// integer sums from i16x8.relaxed_dot_i8x16_i7x16_s on unshifted nibbles, whose result is specified for that
// operand range; Q8_0 has no 7-bit operand (split into positive and negative parts, the activations gave 1.07-1.1x
// on V8 and 0.85x on JSC).
// One generic kernel serves both formats (F = i8: Q8_0, F = u8: Q4_0); the branches on F are resolved at compile time.
// The GEMM (M > 2) has two tiles, both on panels packed into the thread's low scratch slot, both giving every output
// the GEMV's bits (and in the relaxed builds, Q4_0 rows with K ≤ 4224 run tileSplatR instead, described there).
// Rows with K ≤ 1440 (GPT-2's K = 768, 1024, 1280; not the fc2 rows, K = 4·768) run the splat tile
// (tileSplat, described at packSplatW): x rows packed once per M-panel in octs of eight, one vector holding a code
// pair of four x rows as i16; per group of four weight rows, the rows' codes widened to i16; a v128.load32_splat of a
// weight row's code pair times an x vector (i32x4.dot_i16x8_s) gives lanes that are already per-output sums. Longer
// rows run tile2x4p: each group of four weight rows packed once per M-panel, widened to i16 with the four rows' scales
// as one f32 vector per block (packPanel; Q4_0 nibbles unpacked there, as in packSplatW, so both formats run the same
// tile), a 2 x 4 register tile over it: per eighth of a block, two x loads (sign-extending) and four weight loads feed
// eight i32x4.dot_i16x8_s into eight i32x4 accumulators (8 + 2 + 4 of the 16 xmm registers), then per block
// hsum4i → convert → ·xs → ·d → add. Rows too long for the slot (K > 7200), and threads without a slot, run tile2x4 on
// the weights directly.
// Measured, splat tile (Zen 5 VM, 1 thread, alternating builds in one process with bench/probe-gemm.ts, CPU time
// per quantize + GEMM call; callgrind: wasm instructions per call): 128x768x3072 q8 8.04 → 7.41 ms (−8 %), q4 8.12
// → 7.41, 128x768x768 2.04 → 1.91 ms, 2 threads 4.20 → 3.82 ms; against tile2x4p with x rows widened once per
// M-panel (widenRows, now removed). The instruction count did not fall (163.7M → 164.3M at 128x768x3072): the tile
// is bound by vector ALU work (with the register writes of the loads), not by instructions. A C loop of its
// per-pair instructions (2 loads, 4 vbroadcastss, 8 vpmaddwd, 8 vpaddd) runs at ~0.69 cycles per dot product on
// this machine, the tile at ~0.71; the splat loads cost no vector ALU operation, where tile2x4p spent 14 per block
// on horizontal sums and its x rows a widening each. Probes that skip a part (wrong results, timing only): the
// weight packing costs ~0.4 ms of 7.4 (each of the four 32-row M-panels at K = 768 packs every weight row again:
// the slot holds four octs beside a weight group), the per-block f32 steps ~0.5-0.9 ms. Slower alternatives:
// the roles swapped (x code pairs broadcast against weight vectors holding a pair of four rows, 4 x rows by 8 weight
// rows: the same tile cost, but the weight panel needs a 4 x 4 transpose of every eighth, 8 shuffles, per M-panel:
// ~2 % slower than this); the same with the x vector rotated by shuffles instead of broadcast (the lanes on
// diagonals, untangled once per tile; 150.9M instructions, but no faster than tile2x4p: 3 shuffles per 8 dot
// products on the ALU); the weight rows in L2-sized chunks, every M-panel over a chunk before the next (read from
// memory once per call instead of once per M-panel: no gain); for 3072-long rows, one 8-row M-panel with the whole
// row and the weights packed and run 32 blocks at a time, the f32 accumulators carried over (no gain: 16 M-panels
// repack the weights 16 times). onnxruntime-web's int8 MatMul (per-tensor u8 activations, no per-block scales, so no
// per-block f32 steps) at 128x768x3072, 1 thread, alternated processes: 6.75-6.85 ms against this tile's 7.08-7.47
// (0.92-0.95x; tile2x4p 0.85-0.88x); 128x768x768 1.69-1.74 against 1.89-2.00 ms; 2 threads 4.77-5.34 against
// 4.28-5.20. Earlier measurements of the tile2x4 family (load ~10 on 2 cores, GOP/s): tile2x4 on Q8_0 22-35 (V8
// spilled ~40 vectors per block); a packed panel with the block body written out straight 42-47 (V8 places a basic
// block's loads at its top and spills); the eighths as a loop 47-52, the first peeled 52-58; the eighths each in
// its own basic block behind an always-taken branch (tile2x4p; callgrind 189.1M → 171.4M at 128x768x3072); x rows
// widened once per M-panel, 6-9 % less time at K = 768 (the extending loads compete with the dot products for the
// vector ALU), superseded there by the splat tile; the loop unrolled by two (spills); load16_splat + widen per
// code pair (39-57: the widening costs what the horizontal sum saved).
// The GEMV takes its four weight rows from four contiguous runs of this thread's rows, as matmul_f32 does (four
// far-apart sequential streams prefetch well; four adjacent rows do not). Measured alternatives for the former
// int8 layout, slower here: i16x8.extmul_low/high_i8x16_s + i32x4.extadd_pairwise_i16x8_s (V8 widens both operands
// for every extmul: 1.6x slower), x pre-widened to i16 (no gain), eight rows per tile (V8 spills).
import { LOW_SLOT_BYTES, LOW_SLOTS, Q4_0_BYTES, Q8_0_BYTES, Q8_BLOCK, hmax, hsum4i, imin, lowSlot, setWexp, splitChunk, threadIndex, splitHi, splitLo, wDown, xUp } from './common';
import { finish, finishFar } from './matmul_f32';
import { halfBits } from './math';

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

/** Bytes of one weight block of format F. */
@inline function blockBytes<F>(): usize {
  return isSigned<F>() ? <usize>Q8_0_BYTES : <usize>Q4_0_BYTES;
}

/** The 16 bytes v of a Q4_0 block's nibble pairs → its elements 0..15 (the low nibbles) as i8 -8..7. */
@inline function q4Low(v: v128): v128 {
  return i8x16.sub(v128.and(v, i8x16.splat(15)), i8x16.splat(8));
}

/** The same → elements 16..31 (the high nibbles). */
@inline function q4High(v: v128): v128 {
  return i8x16.sub(i8x16.shr_u(v, 4), i8x16.splat(8));
}

/** The 32 activation codes (as i16: xa = codes 0..7, xb 8..15, xc 16..23, xd 24..31) times the codes of the weight
 *  block at p, as four i32 partial sums (exact). */
@inline function blockDot<F>(xa: v128, xb: v128, xc: v128, xd: v128, p: usize): v128 {
  if (isSigned<F>()) {
    const s0 = i32x4.add(i32x4.dot_i16x8_s(xa, v128.load8x8_s(p, 2)), i32x4.dot_i16x8_s(xb, v128.load8x8_s(p, 10)));
    const s1 = i32x4.add(i32x4.dot_i16x8_s(xc, v128.load8x8_s(p, 18)), i32x4.dot_i16x8_s(xd, v128.load8x8_s(p, 26)));
    return i32x4.add(s0, s1);
  }
  const b = v128.load(p, 2);
  const lo = q4Low(b), hi = q4High(b);
  const s0 = i32x4.add(i32x4.dot_i16x8_s(xa, i16x8.extend_low_i8x16_s(lo)), i32x4.dot_i16x8_s(xb, i16x8.extend_high_i8x16_s(lo)));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(xc, i16x8.extend_low_i8x16_s(hi)), i32x4.dot_i16x8_s(xd, i16x8.extend_high_i8x16_s(hi)));
  return i32x4.add(s0, s1);
}

/** blockDot with the activation codes read (and widened) from xp. */
@inline function blockDotAt<F>(xp: usize, p: usize): v128 {
  return blockDot<F>(v128.load8x8_s(xp), v128.load8x8_s(xp, 8), v128.load8x8_s(xp, 16), v128.load8x8_s(xp, 24), p);
}

/** The scales of the blocks at p0..p3 as four f32 (exact): their halves hold d·2^e (the matrix's weight exponent
 *  offset, common.ts), converted and times 2^-e. */
@inline function scale4(p0: usize, p1: usize, p2: usize, p3: usize): v128 {
  let h = i32x4.splat(<i32>load<i16>(p0));
  h = i32x4.replace_lane(h, 1, <i32>load<i16>(p1));
  h = i32x4.replace_lane(h, 2, <i32>load<i16>(p2));
  return f32x4.mul(halfBits(i32x4.replace_lane(h, 3, <i32>load<i16>(p3))), f32x4.splat(wDown()));
}

/** One row of x (codes xr, scales xsr) against the weight rows at w0, w0 + d1, w0 + d2, w0 + d3; cnt of the four are
 *  real (the others repeat a real row); outputs to yp[0..cnt). */
function tile1x4<F>(xr: usize, xsr: usize, w0: usize, d1: usize, d2: usize, d3: usize, nb: i32, bp: usize, yp: usize, cnt: i32, flags: i32): void {
  const bb = blockBytes<F>();
  let acc = f32x4.splat(0);
  let p = w0, xp = xr;
  const xsend = xsr + (<usize>nb << 2);
  for (let xsp = xsr; xsp < xsend; xsp += 4) {
    const xa = v128.load8x8_s(xp), xb = v128.load8x8_s(xp, 8), xc = v128.load8x8_s(xp, 16), xd = v128.load8x8_s(xp, 24);
    const i0 = blockDot<F>(xa, xb, xc, xd, p), i1 = blockDot<F>(xa, xb, xc, xd, p + d1);
    const i2 = blockDot<F>(xa, xb, xc, xd, p + d2), i3 = blockDot<F>(xa, xb, xc, xd, p + d3);
    const ws = scale4(p, p + d1, p + d2, p + d3);
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(i0, i1, i2, i3)), v128.load32_splat(xsp)), ws));
    p += bb; xp += 32;
  }
  finish(acc, bp, yp, cnt, flags);
}

/** One row of x against the weight rows w0 + i*run, i < 4, which are rows n + i*per: tile1x4's arithmetic, outputs
 *  to y[n + i*per]. */
function tileFar<F>(xr: usize, xsr: usize, w0: usize, run: usize, nb: i32, bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  const bb = blockBytes<F>();
  let acc = f32x4.splat(0);
  const r2 = run * 2, r3 = run * 3;
  let p = w0, xp = xr;
  const xsend = xsr + (<usize>nb << 2);
  for (let xsp = xsr; xsp < xsend; xsp += 4) {
    const xa = v128.load8x8_s(xp), xb = v128.load8x8_s(xp, 8), xc = v128.load8x8_s(xp, 16), xd = v128.load8x8_s(xp, 24);
    const i0 = blockDot<F>(xa, xb, xc, xd, p), i1 = blockDot<F>(xa, xb, xc, xd, p + run);
    const i2 = blockDot<F>(xa, xb, xc, xd, p + r2), i3 = blockDot<F>(xa, xb, xc, xd, p + r3);
    const ws = scale4(p, p + run, p + r2, p + r3);
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(i0, i1, i2, i3)), v128.load32_splat(xsp)), ws));
    p += bb; xp += 32;
  }
  finishFar(acc, bias, yr, n, per, 4, flags);
}

// Q4_0 GEMV. The nibbles are not unpacked to bytes: read as eight 16-bit lanes, lane i of a block's 16 bytes holds
// elements 2i (bits 0..3), 2i + 1 (bits 8..11), 2i + 16 (bits 4..7) and 2i + 17 (bits 12..15). Masking a lane
// keeps one nibble in place: n, 256·n, 16·n; a shift by 12 gives the top one as n. The activation codes of a row are
// laid out once per call in the same order as i16, pre-multiplied so that every product is 256·x·n (even elements
// 0..14 times 256, odd 1..15 as they are, even 16..30 times 16, odd 17..31 times 256; |256·x| ≤ 32768 fits), in the
// thread's low scratch slot, with per block 256·8·Σcodes, since 256·Σ x·(n - 8) = Σ 256·x·n - 2048·Σ x (exact: the
// tile subtracts it once per block for its four rows instead of shifting every nibble by 8), and xs·2^104. The
// integer is 256·isum (|.| < 2^24, so f32 exact), and f32(256·isum)·xs·2^104 = f32(isum)·xs·2^112 rounds the same
// exact value. The weight scales are then only shifted into place (d·2^-112, exact) instead of converted:
// t·2^112 · d·2^-112 rounds the same exact product t·d as the generic tile (t = f32(isum)·xs), provided isum·xs is
// neither subnormal nor ≥ 2^16 — so this path runs only when every block scale xs is 0 or in [2^-126, 2)
// (|isum| ≤ 32768); otherwise the generic tile does. Same integer sums, same products, same bits. The stored
// scale halves hold d·2^e (common.ts: never subnormal, so neither is the shifted f32), so the tile multiplies by
// xs·2^(104-e) where this says 2^104, and by 2^(112-e) where it says 2^112.
const Q4X_BYTES_PER_BLOCK: i32 = 96; // 32 i16 codes (64 bytes), the i32 correction ×4, the f32 scale ×4: one pointer per block
const Q4X_CONST_BYTES: usize = 80; // the tiles' five v128 constants, at the start of the slot
const TWO_M8: f32 = 0.00390625; // 2^-8
const XS_MIN: f32 = 1.1754943508222875e-38; // 2^-126

/** The tiles' constants at kp: the three nibble masks (16-bit lanes 0x000f, 0x00f0, 0x0f00), the half-scale mask
 *  and the byte mask 0x0f (tileFarQ4R). V8 rebuilds a v128 constant in the loop (three instructions); loaded once
 *  before it, they stay put. */
function q4Consts(kp: usize): void {
  v128.store(kp, i16x8.splat(0x000f));
  v128.store(kp, i16x8.splat(0x00f0), 16);
  v128.store(kp, i16x8.splat(0x0f00), 32);
  v128.store(kp, i32x4.splat(<i32>0x8fffe000), 48);
  v128.store(kp, i8x16.splat(0x0f), 64);
}

/** Σ of the 32 activation codes of one block at p (|.| ≤ 32·127). */
@inline function codeSum(p: usize): i32 {
  const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(p)), i16x8.extadd_pairwise_i8x16_s(v128.load(p, 16))));
  const t = i32x4.add(s, i32x4.shuffle(s, s, 2, 3, 0, 1));
  return i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1);
}

/** Row xr of nb blocks of codes (scales xsr) → dst, per block (Q4X_BYTES_PER_BLOCK) the scaled codes as i16 in
 *  nibble-lane order (64 bytes), then the i32 2048·Σ codes in four lanes, then the f32 xs·2^104 in four lanes (ready
 *  vectors: V8 does not fold an offset into a splat load's address). False if some xs is outside
 *  {0} ∪ [2^-126, 2). */
function q4PrepX(xr: usize, xsr: usize, nb: i32, dst: usize): bool {
  let ok = true;
  const up = xUp() * TWO_M8; // 2^(104-e)
  for (let b = 0; b < nb; b++) {
    const v = v128.load(xr), u = v128.load(xr, 16);
    v128.store(dst, i16x8.shl(v, 8)); // even 0..14, ·256
    v128.store(dst, i16x8.shr_s(v, 8), 16); // odd 1..15
    v128.store(dst, i16x8.shr_s(i16x8.shl(u, 8), 4), 32); // even 16..30, ·16
    v128.store(dst, v128.and(u, i16x8.splat(<i16>0xff00)), 48); // odd 17..31, ·256
    v128.store(dst, i32x4.splat(codeSum(xr) << 11), 64);
    const xs = load<f32>(xsr + (<usize>b << 2));
    ok = ok && (xs == 0 || (xs >= XS_MIN && xs < 2));
    v128.store(dst, f32x4.splat(xs * up), 80);
    xr += 32; dst += <usize>Q4X_BYTES_PER_BLOCK;
  }
  return ok;
}

/** 256·Σ x·n (unshifted nibbles) of one prepared activation block at xp with the Q4_0 block at p, four i32 lanes
 *  (|.| ≤ 256·32·128·15). The activations are read where they are used (the engine merges the loads of the four
 *  rows). */
@inline function nibbleDot(xp: usize, p: usize, m0: v128, m1: v128, m2: v128): v128 {
  const b = v128.load(p, 2);
  let s = i32x4.dot_i16x8_s(v128.load(xp), v128.and(b, m0));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xp, 16), v128.and(b, m2)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xp, 32), v128.and(b, m1)));
  return i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xp, 48), i16x8.shr_u(b, 12)));
}

/** The f16 scales of the blocks at p0..p3 times 2^-112 as four f32 (exact; subnormal for subnormal halves): each
 *  half loaded into the upper 16 bits of its lane (the lower bits are masked off), then as halfBits112. */
@inline function scale4x112(p0: usize, p1: usize, p2: usize, p3: usize, mask: v128): v128 {
  let h = v128.load16_splat(p0);
  h = v128.load16_lane(p1, h, 3);
  h = v128.load16_lane(p2, h, 5);
  h = v128.load16_lane(p3, h, 7);
  return v128.and(i32x4.shr_s(h, 3), mask);
}

/** The four-lane partial sums i0, i1 of two rows → their lanes added in halves: (i0: 0+2, 1+3; i1: 0+2, 1+3). */
@inline function halfSums(i0: v128, i1: v128): v128 {
  return i32x4.add(i32x4.shuffle(i0, i1, 0, 1, 4, 5), i32x4.shuffle(i0, i1, 2, 3, 6, 7));
}

/** halfSums of rows 0, 1 (ab) and 2, 3 (cd) → the four rows' total sums: hsum4i regrouped (integer sums: exact). */
@inline function rowSums(ab: v128, cd: v128): v128 {
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 2, 4, 6), i32x4.shuffle(ab, cd, 1, 3, 5, 7));
}

/** tileFar<u8> on an activation row prepared by q4PrepX (xp; the constants at kp): the same bits. */
function tileFarQ4(xp: usize, kp: usize, w0: usize, run: usize, nb: i32, bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  let acc = f32x4.splat(0);
  const r2 = run * 2, r3 = run * 3;
  const m0 = v128.load(kp), m1 = v128.load(kp, 16), m2 = v128.load(kp, 32), hm = v128.load(kp, 48);
  let p = w0;
  const xend = xp + <usize>nb * <usize>Q4X_BYTES_PER_BLOCK;
  for (; xp < xend; xp += <usize>Q4X_BYTES_PER_BLOCK) {
    const i0 = nibbleDot(xp, p, m0, m1, m2), i1 = nibbleDot(xp, p + run, m0, m1, m2);
    const ab = halfSums(i0, i1);
    // rows 2 and 3 in a branch that is always taken (run > 0 here): V8 places a basic block's loads at its top, so
    // with all four rows in one block the eight weight and activation vectors are live at once and spill (callgrind,
    // one 768x3072 GEMV: 2.14M instructions, about 111 per block of four rows; split in two blocks, 1.92M).
    let cd = ab;
    if (run != 0) {
      const i2 = nibbleDot(xp, p + r2, m0, m1, m2), i3 = nibbleDot(xp, p + r3, m0, m1, m2);
      cd = halfSums(i2, i3);
    }
    const isum = i32x4.sub(rowSums(ab, cd), v128.load(xp, 64));
    const ws = scale4x112(p, p + run, p + r2, p + r3, hm);
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(isum), v128.load(xp, 80)), ws));
    p += <usize>Q4_0_BYTES;
  }
  finishFar(acc, bias, yr, n, per, 4, flags);
}

// Q4_0 GEMV in the relaxed builds: i16x8.relaxed_dot_i8x16_i7x16_s (x86: one pmaddubsw) multiplies 16 activation
// codes (i8) by 16 unshifted nibbles (0..15) and adds neighbouring products into i16 lanes. Its result is only left
// to the engine for a second operand above 127 or a pair sum that saturates; nibbles are neither (|pair| ≤
// 2·127·15), so the sums are exact and every lane's isum, hence every output, has the plain tile's bits. Per block
// and weight row: one load, two masks (low nibbles; high ones by a 16-bit shift and the same mask), two relaxed
// dots, one i16 add, one widening, where the plain tile spends four masks or shifts, four dots and three adds.
// The activation row is prepared as raw codes (two vectors, shared by the four rows), 8·Σ codes (the nibbles'
// offset, subtracted once per block: Σ x·(n - 8) = Σ x·n - 8·Σ x) and xs·2^(112-e); the products are those of
// tileFarQ8 and the scale conditions those of q4PrepX (|isum| ≤ 32·127·8 < 2^15). Measured (Zen 5 VM, a 4-row
// loop of 768-long rows in L2, ns per weight, plain tile → this): Deno 2.9 (V8 15.0) 0.040-0.061 → 0.027-0.045,
// Node 20 under --experimental-wasm-relaxed-simd 0.038-0.050 → 0.024-0.027, Bun 1.4 (JSC) 0.041-0.054 →
// 0.038-0.048. i32x4.relaxed_dot_i8x16_i7x16_add_s instead (the dot and the widening in one op where the engine
// uses AVX-VNNI) was as fast on Deno, no faster on Bun, and wrong on Node 20's experimental relaxed SIMD (a
// different integer), which is why an engine's relaxed dot is checked once per instance before it is used.
const Q4R_BYTES_PER_BLOCK: i32 = 64; // 32 i8 codes, the i32 correction ×4, the f32 scale ×4

/** This instance's verdict on i16x8.relaxed_dot_i8x16_i7x16_s: 0 not yet checked, 1 exact, -1 not (a wasm global:
 *  each thread's instance checks its own engine). */
let relaxedDotState: i32 = 0;

/** Whether the relaxed Q4_0 tile may run: relaxed builds only, and only on an engine whose relaxed dot gives the
 *  exact pair sums for signed bytes times bytes 0..127. Checked once on four patterns stored to and loaded back
 *  from the scratch at p (32 bytes; so no optimizer folds the check), against products from plain SIMD. */
function relaxedQ4(p: usize): bool {
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (relaxedDotState == 0) {
      let ok = true;
      for (let t = 0; t < 4; t++) {
        for (let i = 0; i < 16; i++) {
          store<u8>(p + <usize>i, <u8>(i * 37 + t * 101 + 128)); // every sign, -128 and 127 included
          store<u8>(p + 16 + <usize>i, <u8>((i * 53 + t * 29) & 127));
        }
        const a = v128.load(p), b = v128.load(p, 16);
        const lo = i16x8.mul(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_u(b)); // |.| ≤ 128·127
        const hi = i16x8.mul(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_u(b));
        const want = i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(lo), i32x4.extadd_pairwise_i16x8_s(hi));
        ok = ok && i16x8.all_true(i16x8.eq(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), want));
      }
      relaxedDotState = ok ? 1 : -1;
    }
    return relaxedDotState > 0;
  }
  return false;
}

/** 1 when this instance runs the relaxed Q4_0 tiles (a relaxed build on an engine whose relaxed dot passed the
 *  check, which uses this thread's low scratch slot the first time, as the tiles do), else 0. A query for the
 *  host, not a kernel. */
export function relaxed_dot_exact(): i32 {
  return threadIndex() < LOW_SLOTS && relaxedQ4(lowSlot()) ? 1 : 0;
}

/** Row xr of nb blocks of codes (scales xsr) → dst, per block (Q4R_BYTES_PER_BLOCK) the codes, 8·Σ codes in four
 *  i32 lanes, xs·2^(112-e) in four f32 lanes. False if some xs is outside {0} ∪ [2^-126, 2), as q4PrepX. */
function q4PrepXR(xr: usize, xsr: usize, nb: i32, dst: usize): bool {
  let ok = true;
  const up = xUp(); // 2^(112-e)
  for (let b = 0; b < nb; b++) {
    const v = v128.load(xr), u = v128.load(xr, 16);
    v128.store(dst, v);
    v128.store(dst, u, 16);
    v128.store(dst, i32x4.splat(codeSum(xr) << 3), 32);
    const xs = load<f32>(xsr + (<usize>b << 2));
    ok = ok && (xs == 0 || (xs >= XS_MIN && xs < 2));
    v128.store(dst, f32x4.splat(xs * up), 48);
    xr += 32; dst += <usize>Q4R_BYTES_PER_BLOCK;
  }
  return ok;
}

/** Σ x·n (unshifted nibbles) of the activation codes xa (elements 0..15), xb (16..31) with the Q4_0 block at p,
 *  four i32 lanes (exact). m: 0x0f in every byte. */
@inline function nibbleDotR(xa: v128, xb: v128, p: usize, m: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const b = v128.load(p, 2);
    const lo = i16x8.relaxed_dot_i8x16_i7x16_s(xa, v128.and(b, m));
    const hi = i16x8.relaxed_dot_i8x16_i7x16_s(xb, v128.and(i16x8.shr_u(b, 4), m));
    return i32x4.extadd_pairwise_i16x8_s(i16x8.add(lo, hi)); // |i16 lane| ≤ 4·127·15
  }
  return unreachable();
}

/** tileFarQ4 on an activation row prepared by q4PrepXR (xp; the constants at kp), relaxed builds: the same bits. */
function tileFarQ4R(xp: usize, kp: usize, w0: usize, run: usize, nb: i32, bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  let acc = f32x4.splat(0);
  const r2 = run * 2, r3 = run * 3;
  const m = v128.load(kp, 64), hm = v128.load(kp, 48);
  let p = w0;
  const xend = xp + <usize>nb * <usize>Q4R_BYTES_PER_BLOCK;
  for (; xp < xend; xp += <usize>Q4R_BYTES_PER_BLOCK) {
    const xa = v128.load(xp), xb = v128.load(xp, 16);
    const i0 = nibbleDotR(xa, xb, p, m), i1 = nibbleDotR(xa, xb, p + run, m);
    const ab = halfSums(i0, i1);
    let cd = ab;
    if (run != 0) { // two basic blocks, as in tileFarQ4
      const i2 = nibbleDotR(xa, xb, p + r2, m), i3 = nibbleDotR(xa, xb, p + r3, m);
      cd = halfSums(i2, i3);
    }
    const isum = i32x4.sub(rowSums(ab, cd), v128.load(xp, 32));
    const ws = scale4x112(p, p + run, p + r2, p + r3, hm);
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(isum), v128.load(xp, 48)), ws));
    p += <usize>Q4_0_BYTES;
  }
  finishFar(acc, bias, yr, n, per, 4, flags);
}

// Q8_0 GEMV, the same preparation without the nibbles: the activation codes of a row widened to i16 once per call
// (64 bytes per block, so the tile's x operands are plain loads) and per block xs·2^112 as a ready vector, in the
// thread's low scratch slot. The weight scales are then only shifted into place (d·2^-112, as scale4x112) instead of
// converted: f32(isum)·xs·2^112 is t·2^112 exactly (t = f32(isum)·xs rounded) while it stays normal and finite,
// and t·2^112 · d·2^-112 rounds the same exact product t·d, so the bits are the generic tile's. |isum| ≤ 32·127·128
// < 2^17, so finiteness needs |xs| < 2^-1: this path runs only when every block scale xs is 0 or in [2^-126, 0.5)
// (activations below 63.5 in magnitude); otherwise the generic tile does. With the stored scales d·2^e (common.ts)
// the prepared scale is xs·2^(112-e), as in the Q4_0 tile.
const Q8X_BYTES_PER_BLOCK: i32 = 80; // 32 i16 codes (64 bytes), the f32 scale ×4
const XS_MAX_Q8: f32 = 0.5;

/** Row xr of nb blocks of codes (scales xsr) → dst, per block (Q8X_BYTES_PER_BLOCK) the codes as i16 then xs·2^112
 *  in four lanes. False if some xs is outside {0} ∪ [2^-126, 0.5). */
function q8PrepX(xr: usize, xsr: usize, nb: i32, dst: usize): bool {
  let ok = true;
  const up = xUp(); // 2^(112-e)
  for (let b = 0; b < nb; b++) {
    v128.store(dst, v128.load8x8_s(xr));
    v128.store(dst, v128.load8x8_s(xr, 8), 16);
    v128.store(dst, v128.load8x8_s(xr, 16), 32);
    v128.store(dst, v128.load8x8_s(xr, 24), 48);
    const xs = load<f32>(xsr + (<usize>b << 2));
    ok = ok && (xs == 0 || (xs >= XS_MIN && xs < XS_MAX_Q8));
    v128.store(dst, f32x4.splat(xs * up), 64);
    xr += 32; dst += <usize>Q8X_BYTES_PER_BLOCK;
  }
  return ok;
}

/** Σ x·q of one prepared activation block at xp with the Q8_0 block at p, four i32 lanes (exact). */
@inline function codeDot(xp: usize, p: usize): v128 {
  const s0 = i32x4.add(i32x4.dot_i16x8_s(v128.load(xp), v128.load8x8_s(p, 2)), i32x4.dot_i16x8_s(v128.load(xp, 16), v128.load8x8_s(p, 10)));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(v128.load(xp, 32), v128.load8x8_s(p, 18)), i32x4.dot_i16x8_s(v128.load(xp, 48), v128.load8x8_s(p, 26)));
  return i32x4.add(s0, s1);
}

/** tileFar<i8> on an activation row prepared by q8PrepX (xp; the half-scale mask at kp + 48): the same bits. */
function tileFarQ8(xp: usize, kp: usize, w0: usize, run: usize, nb: i32, bias: usize, yr: usize, n: i32, per: i32, flags: i32): void {
  let acc = f32x4.splat(0);
  const r2 = run * 2, r3 = run * 3;
  const hm = v128.load(kp, 48);
  let p = w0;
  const xend = xp + <usize>nb * <usize>Q8X_BYTES_PER_BLOCK;
  for (; xp < xend; xp += <usize>Q8X_BYTES_PER_BLOCK) {
    const i0 = codeDot(xp, p), i1 = codeDot(xp, p + run);
    const ab = halfSums(i0, i1);
    let cd = ab;
    if (run != 0) { // two basic blocks, as in tileFarQ4: fewer vectors live at once
      const i2 = codeDot(xp, p + r2), i3 = codeDot(xp, p + r3);
      cd = halfSums(i2, i3);
    }
    const isum = rowSums(ab, cd);
    const ws = scale4x112(p, p + run, p + r2, p + r3, hm);
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(isum), v128.load(xp, 64)), ws));
    p += <usize>Q8_0_BYTES;
  }
  finishFar(acc, bias, yr, n, per, 4, flags);
}

/** Two rows of x (x0, x0 + xb; scales xs0, xs0 + xsb) against four consecutive weight rows (w0, row stride rb). */
function tile2x4<F>(x0: usize, xb: usize, xs0: usize, xsb: usize, w0: usize, rb: usize, nb: i32, bp: usize, yp: usize, yb: usize, flags: i32): void {
  const bb = blockBytes<F>();
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  const r2 = rb * 2, r3 = rb * 3;
  let p = w0, xp = x0;
  const xsend = xs0 + (<usize>nb << 2);
  for (let xsp = xs0; xsp < xsend; xsp += 4) {
    const a0 = blockDotAt<F>(xp, p), a1 = blockDotAt<F>(xp, p + rb), a2 = blockDotAt<F>(xp, p + r2), a3 = blockDotAt<F>(xp, p + r3);
    const c0 = blockDotAt<F>(xp + xb, p), c1 = blockDotAt<F>(xp + xb, p + rb), c2 = blockDotAt<F>(xp + xb, p + r2), c3 = blockDotAt<F>(xp + xb, p + r3);
    const ws = scale4(p, p + rb, p + r2, p + r3);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(a0, a1, a2, a3)), v128.load32_splat(xsp)), ws));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(hsum4i(c0, c1, c2, c3)), v128.load32_splat(xsp + xsb)), ws));
    p += bb; xp += 32;
  }
  finish(acc0, bp, yp, 4, flags);
  finish(acc1, bp, yp + yb, 4, flags);
}

// GEMM weight panel: four weight rows repacked once per M-panel into this thread's low scratch slot, per block
// the four rows' 32 codes widened to i16 (4 × 64 bytes) then their four scales as f32 (16 bytes), so the tile's
// inner loop loads ready i16 vectors and one scale vector instead of widening every weight load and rebuilding the
// scales for every pair of x rows. Within a block, eighth j (codes 8j..8j+7) of the four rows is stored at 16·j +
// 64·s as row pairs swapped by halves: slot 0 holds row 0's first four codes and row 1's last four, slot 1 row 1's
// first and row 0's last, slots 2 and 3 the same for rows 2 and 3. A dot product with the eight x codes then gives
// lanes (row 0, row 0, row 1, row 1) from slot 0 and (1, 1, 0, 0) from slot 1, so the per-block reduction of the
// tile's four accumulators to the four rows' sums (panelSum4) needs 4 shuffles and 3 adds instead of hsum4i's 6 and 3.
const PANEL_BLOCK_BYTES: usize = 272;

/** Codes 8j..8j+7 of the block at q (format F) as i16. */
@inline function eighthOf<F>(q: usize, j: i32): v128 {
  if (isSigned<F>()) {
    if (j == 0) return v128.load8x8_s(q, 2);
    if (j == 1) return v128.load8x8_s(q, 10);
    return j == 2 ? v128.load8x8_s(q, 18) : v128.load8x8_s(q, 26);
  }
  const v = v128.load(q, 2);
  const h = j < 2 ? q4Low(v) : q4High(v);
  return (j & 1) == 0 ? i16x8.extend_low_i8x16_s(h) : i16x8.extend_high_i8x16_s(h);
}

/** Eighth j of rows 0..3 (e0..e3) → the panel at d, row pairs swapped by halves. */
@inline function storeEighth(d: usize, e0: v128, e1: v128, e2: v128, e3: v128): void {
  v128.store(d, i64x2.shuffle(e0, e1, 0, 3));
  v128.store(d, i64x2.shuffle(e1, e0, 0, 3), 64);
  v128.store(d, i64x2.shuffle(e2, e3, 0, 3), 128);
  v128.store(d, i64x2.shuffle(e3, e2, 0, 3), 192);
}

/** Rows w, w + rb, w + 2·rb, w + 3·rb (nb blocks of format F) → the i16 panel at dst (PANEL_BLOCK_BYTES per block). */
function packPanel<F>(w: usize, rb: usize, nb: i32, dst: usize): void {
  const bb = blockBytes<F>();
  const r2 = rb * 2, r3 = rb * 3;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * bb;
    // the four eighths written out (constant offsets; a loop over them cost ~100 instructions per block)
    storeEighth(dst, eighthOf<F>(p, 0), eighthOf<F>(p + rb, 0), eighthOf<F>(p + r2, 0), eighthOf<F>(p + r3, 0));
    storeEighth(dst + 16, eighthOf<F>(p, 1), eighthOf<F>(p + rb, 1), eighthOf<F>(p + r2, 1), eighthOf<F>(p + r3, 1));
    storeEighth(dst + 32, eighthOf<F>(p, 2), eighthOf<F>(p + rb, 2), eighthOf<F>(p + r2, 2), eighthOf<F>(p + r3, 2));
    storeEighth(dst + 48, eighthOf<F>(p, 3), eighthOf<F>(p + rb, 3), eighthOf<F>(p + r2, 3), eighthOf<F>(p + r3, 3));
    v128.store(dst, scale4(p, p + rb, p + r2, p + r3), 256);
    dst += PANEL_BLOCK_BYTES;
  }
}

/** The four rows' sums (i32 lanes 0..3) from a panel tile's accumulators: a (lanes rows 0, 0, 1, 1), b (1, 1, 0, 0),
 *  c (2, 2, 3, 3), d (3, 3, 2, 2). Integer adds: exact, the same sums as hsum4i on the unswapped layout. */
@inline function panelSum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(a, i32x4.shuffle(b, b, 2, 3, 0, 1)), cd = i32x4.add(c, i32x4.shuffle(d, d, 2, 3, 0, 1));
  return rowSums(ab, cd);
}

/** i32 lanes a + dot(u, w) (pairs of i16 products, exact). */
@inline function dotAdd(a: v128, u: v128, w: v128): v128 {
  return i32x4.add(a, i32x4.dot_i16x8_s(u, w));
}

/** tile2x4's arithmetic with the four weight rows from a packed panel (wp): two rows of x (x0, x0 + xb; scales
 *  xs0, xs0 + xsb). Per block and per eighth of it, two widened x loads and four weight loads feed eight
 *  dot products into eight i32x4 accumulators (the register tile: 8 accumulators + 2 x + 4 weight vectors).
 *  Runs pairs such pairs of x rows (rows 2i, 2i + 1 from x0, outputs from yp on): one call per panel, not per pair
 *  (a call costs the caller ~80 instructions of spills and reloads, ~2.5 % of a 768-long tile). */
function tile2x4p(x0: usize, xb: usize, xs0: usize, xsb: usize, wp: usize, nb: i32, bp: usize, yp: usize, yb: usize, flags: i32, pairs: i32): void {
  for (let i = 0; i < pairs; i++) {
    let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
    let p = wp, xp = x0;
    const xsend = xs0 + (<usize>nb << 2);
    for (let xsp = xs0; xsp < xsend; xsp += 4) {
      const xq = xp + xb;
      // the first eighth starts the accumulators
      let u = v128.load8x8_s(xp), v = v128.load8x8_s(xq);
      let w = v128.load(p);
      let a0 = i32x4.dot_i16x8_s(u, w), c0 = i32x4.dot_i16x8_s(v, w);
      w = v128.load(p, 64);
      let a1 = i32x4.dot_i16x8_s(u, w), c1 = i32x4.dot_i16x8_s(v, w);
      w = v128.load(p, 128);
      let a2 = i32x4.dot_i16x8_s(u, w), c2 = i32x4.dot_i16x8_s(v, w);
      w = v128.load(p, 192);
      let a3 = i32x4.dot_i16x8_s(u, w), c3 = i32x4.dot_i16x8_s(v, w);
      // the other eighths written out, each in its own basic block behind a branch that is always taken (xb = K,
      // xsb = 4·nb and nb are > 0 here; three different conditions, so the engine does not fold them into one):
      // V8 places a basic block's loads at its top, so one straight block would hold all 24 loads live and spill,
      // and a loop over the eighths costs a stack check, a compare and index arithmetic per eighth (callgrind)
      if (xb != 0) {
        u = v128.load8x8_s(xp, 8); v = v128.load8x8_s(xq, 8);
        w = v128.load(p, 16); a0 = dotAdd(a0, u, w); c0 = dotAdd(c0, v, w);
        w = v128.load(p, 80); a1 = dotAdd(a1, u, w); c1 = dotAdd(c1, v, w);
        w = v128.load(p, 144); a2 = dotAdd(a2, u, w); c2 = dotAdd(c2, v, w);
        w = v128.load(p, 208); a3 = dotAdd(a3, u, w); c3 = dotAdd(c3, v, w);
      }
      if (xsb != 0) {
        u = v128.load8x8_s(xp, 16); v = v128.load8x8_s(xq, 16);
        w = v128.load(p, 32); a0 = dotAdd(a0, u, w); c0 = dotAdd(c0, v, w);
        w = v128.load(p, 96); a1 = dotAdd(a1, u, w); c1 = dotAdd(c1, v, w);
        w = v128.load(p, 160); a2 = dotAdd(a2, u, w); c2 = dotAdd(c2, v, w);
        w = v128.load(p, 224); a3 = dotAdd(a3, u, w); c3 = dotAdd(c3, v, w);
      }
      if (nb != 0) {
        u = v128.load8x8_s(xp, 24); v = v128.load8x8_s(xq, 24);
        w = v128.load(p, 48); a0 = dotAdd(a0, u, w); c0 = dotAdd(c0, v, w);
        w = v128.load(p, 112); a1 = dotAdd(a1, u, w); c1 = dotAdd(c1, v, w);
        w = v128.load(p, 176); a2 = dotAdd(a2, u, w); c2 = dotAdd(c2, v, w);
        w = v128.load(p, 240); a3 = dotAdd(a3, u, w); c3 = dotAdd(c3, v, w);
      }
      const ws = v128.load(p, 256);
      acc0 = f32x4.add(acc0, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(panelSum4(a0, a1, a2, a3)), v128.load32_splat(xsp)), ws));
      acc1 = f32x4.add(acc1, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(panelSum4(c0, c1, c2, c3)), v128.load32_splat(xsp + xsb)), ws));
      p += PANEL_BLOCK_BYTES; xp += 32;
    }
    finish(acc0, bp, yp, 4, flags);
    finish(acc1, bp, yp + yb, 4, flags);
    x0 += xb << 1; xs0 += xsb << 1; yp += yb << 1;
  }
}

// GEMM for rows short enough that a weight panel and at least 16 x rows fit in the scratch slot together (K ≤ 1440,
// the GPT-2 shapes with K = 768, 1024, 1280): weight code pairs broadcast against x vectors that hold one code pair
// of four x rows. Weight panel (packSplatW, per 4 weight rows, SW_BLOCK bytes per block): the four rows' 32 codes of
// a block widened to i16 (64 bytes per row), then their scales as f32. X panel (packSplatX, per oct of 8 x rows,
// SX_BLOCK bytes per block): for pair k of a block (codes 2k, 2k + 1), one vector holds that pair of x rows 0..3 as
// i16 (lanes r0c0 r0c1 r1c0 r1c1 …), the next one rows 4..7; then the two quads' scales as f32 vectors. A
// v128.load32_splat of weight row j's code pair, i32x4.dot_i16x8_s with an x vector, gives lane i = that pair's
// products with x row i: the lanes are per-output sums (no horizontal sum per block), a splat load costs no vector
// ALU operation, and the weight panel is only widened (no shuffles: it is packed once per M-panel, the x panel once).
// The vector ALU work per dot product is then SIMD128's floor without relaxed ops: the dot and one add. (V8 folds no
// offset into a load32_splat's address: a lea each, integer work the tile has room for.)
const SW_BLOCK: usize = 272; // 4 rows × 64 bytes, 1 scale vector
const SX_BLOCK: usize = 544; // 16 pairs × 2 vectors, 2 scale vectors
const SPLAT_ACC: usize = 128; // the tile's eight f32 accumulators, at the start of the slot
const SPLAT_MIN_OCTS: usize = 2;

/** The 32 codes of the block at p (format F) as i16 → d (64 bytes). Q4_0: the nibbles unpacked once per block. */
@inline function widenBlock<F>(d: usize, p: usize): void {
  if (isSigned<F>()) {
    v128.store(d, v128.load8x8_s(p, 2)); v128.store(d, v128.load8x8_s(p, 10), 16);
    v128.store(d, v128.load8x8_s(p, 18), 32); v128.store(d, v128.load8x8_s(p, 26), 48);
  } else {
    const v = v128.load(p, 2);
    const lo = q4Low(v), hi = q4High(v);
    v128.store(d, i16x8.extend_low_i8x16_s(lo)); v128.store(d, i16x8.extend_high_i8x16_s(lo), 16);
    v128.store(d, i16x8.extend_low_i8x16_s(hi), 32); v128.store(d, i16x8.extend_high_i8x16_s(hi), 48);
  }
}

/** Weight rows w + i·rb, i < cnt (the others repeat row 0), nb blocks of format F → the splat weight panel at dst. */
function packSplatW<F>(w: usize, rb: usize, cnt: i32, nb: i32, dst: usize): void {
  const bb = blockBytes<F>();
  // row pointers set once and stepped per block (neither binaryen nor V8 hoists offsets out of the loop)
  let p0 = w, p1 = cnt > 1 ? w + rb : w, p2 = cnt > 2 ? w + rb * 2 : w, p3 = cnt > 3 ? w + rb * 3 : w;
  const end = dst + <usize>nb * SW_BLOCK;
  for (; dst < end; dst += SW_BLOCK) {
    widenBlock<F>(dst, p0); widenBlock<F>(dst + 64, p1); widenBlock<F>(dst + 128, p2); widenBlock<F>(dst + 192, p3);
    v128.store(dst, scale4(p0, p1, p2, p3), 256);
    p0 += bb; p1 += bb; p2 += bb; p3 += bb;
  }
}

/** The 4 x 4 transpose of i32 lanes: rows e0..e3 (eight i16 codes each, four code pairs) → pair t of the four rows
 *  at d + 32·t. */
@inline function storePairs(d: usize, e0: v128, e1: v128, e2: v128, e3: v128): void {
  const t0 = i32x4.shuffle(e0, e1, 0, 4, 1, 5), t1 = i32x4.shuffle(e0, e1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(e2, e3, 0, 4, 1, 5), t3 = i32x4.shuffle(e2, e3, 2, 6, 3, 7);
  v128.store(d, i64x2.shuffle(t0, t2, 0, 2));
  v128.store(d, i64x2.shuffle(t0, t2, 1, 3), 32);
  v128.store(d, i64x2.shuffle(t1, t3, 0, 2), 64);
  v128.store(d, i64x2.shuffle(t1, t3, 1, 3), 96);
}

/** Codes 8j..8j+7 of x row i < rows at x + i·xb as i16, zero for the rows past the last. */
@inline function xEighth(x: usize, xb: usize, i: i32, rows: i32): v128 {
  return i < rows ? v128.load8x8_s(x + <usize>i * xb) : i32x4.splat(0);
}

/** The scales of x rows i..i+3 (< rows, the others zero) of block b, xs row stride xsb, as one f32 vector. */
@inline function xScales(s: usize, xsb: usize, i: i32, rows: i32): v128 {
  let v = f32x4.splat(i < rows ? load<f32>(s + <usize>i * xsb) : 0);
  v = f32x4.replace_lane(v, 1, i + 1 < rows ? load<f32>(s + <usize>(i + 1) * xsb) : 0);
  v = f32x4.replace_lane(v, 2, i + 2 < rows ? load<f32>(s + <usize>(i + 2) * xsb) : 0);
  return f32x4.replace_lane(v, 3, i + 3 < rows ? load<f32>(s + <usize>(i + 3) * xsb) : 0);
}

/** x rows x0 + i·xb (scales xs0 + i·xsb), i < rows ≤ 8 (the others zero), nb blocks → the splat x panel at dst. */
function packSplatX(x0: usize, xb: usize, xs0: usize, xsb: usize, rows: i32, nb: i32, dst: usize): void {
  for (let b = 0; b < nb; b++) {
    for (let j = 0; j < 4; j++) {
      const x = x0 + (<usize>b << 5) + (<usize>j << 3), d = dst + (<usize>j << 7);
      storePairs(d, xEighth(x, xb, 0, rows), xEighth(x, xb, 1, rows), xEighth(x, xb, 2, rows), xEighth(x, xb, 3, rows));
      storePairs(d + 16, xEighth(x, xb, 4, rows), xEighth(x, xb, 5, rows), xEighth(x, xb, 6, rows), xEighth(x, xb, 7, rows));
    }
    const s = xs0 + (<usize>b << 2);
    v128.store(dst, xScales(s, xsb, 0, rows), 512);
    v128.store(dst, xScales(s, xsb, 4, rows), 528);
    dst += SX_BLOCK;
  }
}

/** Output rows i < rows of a quad from its four f32 accumulators at ap, ap + 32, ap + 64, ap + 96 (lane i of the one
 *  at ap + 32j: x row i, weight row j): transposed, then finish (cnt weight rows real). */
@inline function finishQuad(ap: usize, rows: i32, bp: usize, yp: usize, yb: usize, cnt: i32, flags: i32): void {
  const c0 = v128.load(ap), c1 = v128.load(ap, 32), c2 = v128.load(ap, 64), c3 = v128.load(ap, 96);
  const t0 = i32x4.shuffle(c0, c1, 0, 4, 1, 5), t1 = i32x4.shuffle(c0, c1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(c2, c3, 0, 4, 1, 5), t3 = i32x4.shuffle(c2, c3, 2, 6, 3, 7);
  if (rows > 0) finish(i64x2.shuffle(t0, t2, 0, 2), bp, yp, cnt, flags);
  if (rows > 1) finish(i64x2.shuffle(t0, t2, 1, 3), bp, yp + yb, cnt, flags);
  if (rows > 2) finish(i64x2.shuffle(t1, t3, 0, 2), bp, yp + 2 * yb, cnt, flags);
  if (rows > 3) finish(i64x2.shuffle(t1, t3, 1, 3), bp, yp + 3 * yb, cnt, flags);
}

/** The splat tiles' per-block f32 steps, in the order of every other tile: accumulator j of x rows 0..3 (at accp +
 *  32j) += f32(a_j)·xs0·d_j, of rows 4..7 (at accp + 32j + 16) += f32(b_j)·xs1·d_j, the weight rows' scales d_j at
 *  sp + 4j (each store keeps the later loads below it). */
@inline function splatBlockF32(accp: usize, a0: v128, b0: v128, a1: v128, b1: v128, a2: v128, b2: v128, a3: v128, b3: v128, xs0: v128, xs1: v128, sp: usize): void {
  let s = v128.load32_splat(sp);
  v128.store(accp, f32x4.add(v128.load(accp, 0), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(a0), xs0), s)), 0);
  v128.store(accp, f32x4.add(v128.load(accp, 16), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(b0), xs1), s)), 16);
  s = v128.load32_splat(sp, 4);
  v128.store(accp, f32x4.add(v128.load(accp, 32), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(a1), xs0), s)), 32);
  v128.store(accp, f32x4.add(v128.load(accp, 48), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(b1), xs1), s)), 48);
  s = v128.load32_splat(sp, 8);
  v128.store(accp, f32x4.add(v128.load(accp, 64), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(a2), xs0), s)), 64);
  v128.store(accp, f32x4.add(v128.load(accp, 80), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(b2), xs1), s)), 80);
  s = v128.load32_splat(sp, 12);
  v128.store(accp, f32x4.add(v128.load(accp, 96), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(a3), xs0), s)), 96);
  v128.store(accp, f32x4.add(v128.load(accp, 112), f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(b3), xs1), s)), 112);
}

/** The splat tile: octs of eight x rows from the x panel xp (nb·SX_BLOCK bytes per oct) against the four weight rows
 *  of the panel wp; rows x rows are real (outputs y rows from yp on, row stride yb), cnt of the weight rows (bias
 *  from bp). Per block and pair of codes: two x loads, four splat loads and eight dot products into eight i32x4
 *  accumulators a_j, b_j (x rows 0..3, 4..7 against weight row j: 8 + 2 + 4 + 1 temporary of the 15 xmm registers
 *  V8 allocates), then per block the same convert → ·xs → ·d → add as every other tile; the eight f32 accumulators
 *  are kept at accp (16 vectors do not fit beside the integer ones; the stores also keep V8 from hoisting the next
 *  rows' loads). */
function tileSplat(xp: usize, wp: usize, accp: usize, nb: i32, rows: i32, bp: usize, yp: usize, yb: usize, cnt: i32, flags: i32): void {
  const xob = <usize>nb * SX_BLOCK, wend = wp + <usize>nb * SW_BLOCK;
  const zero = f32x4.splat(0);
  for (let r0 = 0; r0 < rows; r0 += 8) {
    for (let i: usize = 0; i < SPLAT_ACC; i += 16) v128.store(accp + i, zero);
    let x = xp;
    for (let w = wp; w < wend; w += SW_BLOCK) {
      // pair 0 starts the accumulators
      let u = v128.load(x), v = v128.load(x, 16);
      let s = v128.load32_splat(w);
      let a0 = i32x4.dot_i16x8_s(s, u), b0 = i32x4.dot_i16x8_s(s, v);
      s = v128.load32_splat(w, 64);
      let a1 = i32x4.dot_i16x8_s(s, u), b1 = i32x4.dot_i16x8_s(s, v);
      s = v128.load32_splat(w, 128);
      let a2 = i32x4.dot_i16x8_s(s, u), b2 = i32x4.dot_i16x8_s(s, v);
      s = v128.load32_splat(w, 192);
      let a3 = i32x4.dot_i16x8_s(s, u), b3 = i32x4.dot_i16x8_s(s, v);
      // pairs 1..15, each in its own basic block behind a branch that is always taken (w is a slot address, never
      // 1..15; distinct conditions, so the engine does not merge them): V8 places a basic block's loads at its top,
      // so one straight block would hold all 96 loads live and spill
      if (w != 1) {
        u = v128.load(x, 32); v = v128.load(x, 48);
        s = v128.load32_splat(w, 4); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 68); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 132); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 196); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 2) {
        u = v128.load(x, 64); v = v128.load(x, 80);
        s = v128.load32_splat(w, 8); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 72); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 136); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 200); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 3) {
        u = v128.load(x, 96); v = v128.load(x, 112);
        s = v128.load32_splat(w, 12); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 76); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 140); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 204); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 4) {
        u = v128.load(x, 128); v = v128.load(x, 144);
        s = v128.load32_splat(w, 16); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 80); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 144); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 208); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 5) {
        u = v128.load(x, 160); v = v128.load(x, 176);
        s = v128.load32_splat(w, 20); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 84); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 148); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 212); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 6) {
        u = v128.load(x, 192); v = v128.load(x, 208);
        s = v128.load32_splat(w, 24); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 88); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 152); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 216); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 7) {
        u = v128.load(x, 224); v = v128.load(x, 240);
        s = v128.load32_splat(w, 28); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 92); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 156); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 220); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 8) {
        u = v128.load(x, 256); v = v128.load(x, 272);
        s = v128.load32_splat(w, 32); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 96); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 160); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 224); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 9) {
        u = v128.load(x, 288); v = v128.load(x, 304);
        s = v128.load32_splat(w, 36); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 100); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 164); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 228); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 10) {
        u = v128.load(x, 320); v = v128.load(x, 336);
        s = v128.load32_splat(w, 40); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 104); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 168); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 232); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 11) {
        u = v128.load(x, 352); v = v128.load(x, 368);
        s = v128.load32_splat(w, 44); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 108); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 172); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 236); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 12) {
        u = v128.load(x, 384); v = v128.load(x, 400);
        s = v128.load32_splat(w, 48); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 112); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 176); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 240); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 13) {
        u = v128.load(x, 416); v = v128.load(x, 432);
        s = v128.load32_splat(w, 52); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 116); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 180); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 244); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 14) {
        u = v128.load(x, 448); v = v128.load(x, 464);
        s = v128.load32_splat(w, 56); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 120); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 184); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 248); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      if (w != 15) {
        u = v128.load(x, 480); v = v128.load(x, 496);
        s = v128.load32_splat(w, 60); a0 = dotAdd(a0, s, u); b0 = dotAdd(b0, s, v);
        s = v128.load32_splat(w, 124); a1 = dotAdd(a1, s, u); b1 = dotAdd(b1, s, v);
        s = v128.load32_splat(w, 188); a2 = dotAdd(a2, s, u); b2 = dotAdd(b2, s, v);
        s = v128.load32_splat(w, 252); a3 = dotAdd(a3, s, u); b3 = dotAdd(b3, s, v);
      }
      // per block: the f32 steps in the order of every other tile (each store keeps the later loads below it)
      splatBlockF32(accp, a0, b0, a1, b1, a2, b2, a3, b3, v128.load(x, 512), v128.load(x, 528), w + 256);
      x += SX_BLOCK;
    }
    const rv = imin(8, rows - r0);
    finishQuad(accp, rv, bp, yp, yb, cnt, flags);
    if (rv > 4) finishQuad(accp + 16, rv - 4, bp, yp + (yb << 2), yb, cnt, flags);
    xp += xob; yp += yb << 3;
  }
}

// The relaxed builds' Q4_0 GEMM, for every row with K ≤ 4224 (the panels are small enough that one oct of x rows
// beside a weight group suffices, so GPT-2's fc2 rows, K = 4·768, run here too, not in tile2x4p; the weights are
// only masked into place, so packing them once per oct is cheap): i16x8.relaxed_dot_i8x16_i7x16_s of a vector
// holding one code pair of eight x rows (i8) with a load16_splat of a weight row's nibble pair (0..15, unshifted)
// gives lane i = that pair's products with x row i, in i16 (|.| ≤ 2·127·15). Eight pairs are summed in i16 (≤
// 30480, no overflow), widened, the two halves of the block added, 8·Σ x subtracted per x row (the nibbles' offset,
// as tileFarQ4R): the exact isum of every output, so the bits of every other tile. Per x row, weight row and block:
// 16 dots, 14 i16 adds and 6 widening steps for 8 rows (36 ops per 256 products) where tileSplat spends 32 dots and
// 30 adds. The panels also shrink (weights: the nibbles as stored, 32 bytes per row and block; x: 16 bytes per pair
// of eight rows), so more x rows fit beside a weight group and the weights are packed fewer times. Measured (Zen 5
// VM, bench/probe-gemm.ts, Node 20 under --experimental-wasm-relaxed-simd, relaxed-threads build before → after,
// quantize + GEMM per call): 128x768x3072 1 thread 7.10-7.24 → 5.29-5.42 ms, 128x768x768 1.93 → 1.49 ms,
// 128x3072x768 8.71 → 6.41 ms (from tile2x4p); 2 threads 3.49 → 2.80 and 4.04 → 3.22 ms. 124M q4 prefill of 128
// tokens on Deno 2.9, 1 thread: 355-363 → 423-435 tok/s.
const SWR_BLOCK: usize = 144; // 4 rows × 32 bytes of nibbles, 1 scale vector
const SXR_BLOCK: usize = 320; // 16 pairs × 16 bytes, 2 correction vectors, 2 scale vectors

/** Weight rows w + i·rb, i < cnt (the others repeat row 0), nb Q4_0 blocks → the relaxed splat panel at dst: per
 *  block and row the low nibbles (elements 0..15) then the high ones (16..31) as bytes, so code pair k of row j is
 *  at 32j + 2k; then the four scales (scale4). */
function packSplatWR(w: usize, rb: usize, cnt: i32, nb: i32, dst: usize): void {
  let p0 = w, p1 = cnt > 1 ? w + rb : w, p2 = cnt > 2 ? w + rb * 2 : w, p3 = cnt > 3 ? w + rb * 3 : w;
  const m = i8x16.splat(0x0f);
  const end = dst + <usize>nb * SWR_BLOCK;
  for (; dst < end; dst += SWR_BLOCK) {
    let v = v128.load(p0, 2); v128.store(dst, v128.and(v, m)); v128.store(dst, v128.and(i16x8.shr_u(v, 4), m), 16);
    v = v128.load(p1, 2); v128.store(dst, v128.and(v, m), 32); v128.store(dst, v128.and(i16x8.shr_u(v, 4), m), 48);
    v = v128.load(p2, 2); v128.store(dst, v128.and(v, m), 64); v128.store(dst, v128.and(i16x8.shr_u(v, 4), m), 80);
    v = v128.load(p3, 2); v128.store(dst, v128.and(v, m), 96); v128.store(dst, v128.and(i16x8.shr_u(v, 4), m), 112);
    v128.store(dst, scale4(p0, p1, p2, p3), 128);
    p0 += <usize>Q4_0_BYTES; p1 += <usize>Q4_0_BYTES; p2 += <usize>Q4_0_BYTES; p3 += <usize>Q4_0_BYTES;
  }
}

/** The codes of x row i < rows of one block (two vectors at x + i·xb), zero for rows past the last. */
@inline function xRowLo(x: usize, xb: usize, i: i32, rows: i32): v128 { return i < rows ? v128.load(x + <usize>i * xb) : i32x4.splat(0); }
@inline function xRowHi(x: usize, xb: usize, i: i32, rows: i32): v128 { return i < rows ? v128.load(x + <usize>i * xb, 16) : i32x4.splat(0); }

/** The 8 x 8 transpose of 16-bit words: rows r0..r7 (word k of row i: code pair k of x row i) → pair k of the
 *  eight rows at d + 16·k. */
function storeWordColumns(d: usize, r0: v128, r1: v128, r2: v128, r3: v128, r4: v128, r5: v128, r6: v128, r7: v128): void {
  const a0 = v128.shuffle<i16>(r0, r1, 0, 8, 1, 9, 2, 10, 3, 11), a1 = v128.shuffle<i16>(r0, r1, 4, 12, 5, 13, 6, 14, 7, 15);
  const a2 = v128.shuffle<i16>(r2, r3, 0, 8, 1, 9, 2, 10, 3, 11), a3 = v128.shuffle<i16>(r2, r3, 4, 12, 5, 13, 6, 14, 7, 15);
  const a4 = v128.shuffle<i16>(r4, r5, 0, 8, 1, 9, 2, 10, 3, 11), a5 = v128.shuffle<i16>(r4, r5, 4, 12, 5, 13, 6, 14, 7, 15);
  const a6 = v128.shuffle<i16>(r6, r7, 0, 8, 1, 9, 2, 10, 3, 11), a7 = v128.shuffle<i16>(r6, r7, 4, 12, 5, 13, 6, 14, 7, 15);
  // a0 as i32 lanes: pair 0 of rows 0, 1; pair 1 of rows 0, 1; ... (rows 0, 1 of pairs 0..3)
  const b0 = i32x4.shuffle(a0, a2, 0, 4, 1, 5), b1 = i32x4.shuffle(a0, a2, 2, 6, 3, 7);
  const b2 = i32x4.shuffle(a1, a3, 0, 4, 1, 5), b3 = i32x4.shuffle(a1, a3, 2, 6, 3, 7);
  const b4 = i32x4.shuffle(a4, a6, 0, 4, 1, 5), b5 = i32x4.shuffle(a4, a6, 2, 6, 3, 7);
  const b6 = i32x4.shuffle(a5, a7, 0, 4, 1, 5), b7 = i32x4.shuffle(a5, a7, 2, 6, 3, 7);
  v128.store(d, i64x2.shuffle(b0, b4, 0, 2));
  v128.store(d, i64x2.shuffle(b0, b4, 1, 3), 16);
  v128.store(d, i64x2.shuffle(b1, b5, 0, 2), 32);
  v128.store(d, i64x2.shuffle(b1, b5, 1, 3), 48);
  v128.store(d, i64x2.shuffle(b2, b6, 0, 2), 64);
  v128.store(d, i64x2.shuffle(b2, b6, 1, 3), 80);
  v128.store(d, i64x2.shuffle(b3, b7, 0, 2), 96);
  v128.store(d, i64x2.shuffle(b3, b7, 1, 3), 112);
}

/** 8·Σ codes of x row i of one block at x (row stride xb); 0 for rows past the last. */
@inline function xCorr(x: usize, xb: usize, i: i32, rows: i32): i32 {
  if (i >= rows) return 0;
  return codeSum(x + <usize>i * xb) << 3;
}

/** xCorr of rows i..i+3 as four i32 lanes. */
@inline function xCorr4(x: usize, xb: usize, i: i32, rows: i32): v128 {
  let v = i32x4.splat(xCorr(x, xb, i, rows));
  v = i32x4.replace_lane(v, 1, xCorr(x, xb, i + 1, rows));
  v = i32x4.replace_lane(v, 2, xCorr(x, xb, i + 2, rows));
  return i32x4.replace_lane(v, 3, xCorr(x, xb, i + 3, rows));
}

/** x rows x0 + i·xb (scales xs0 + i·xsb), i < rows ≤ 8 (the others zero), nb blocks → the relaxed x panel at dst:
 *  per block the 16 code-pair vectors, the corrections of rows 0..3 and 4..7, their scales. */
function packSplatXR(x0: usize, xb: usize, xs0: usize, xsb: usize, rows: i32, nb: i32, dst: usize): void {
  for (let b = 0; b < nb; b++) {
    const x = x0 + (<usize>b << 5);
    storeWordColumns(dst, xRowLo(x, xb, 0, rows), xRowLo(x, xb, 1, rows), xRowLo(x, xb, 2, rows), xRowLo(x, xb, 3, rows),
      xRowLo(x, xb, 4, rows), xRowLo(x, xb, 5, rows), xRowLo(x, xb, 6, rows), xRowLo(x, xb, 7, rows));
    storeWordColumns(dst + 128, xRowHi(x, xb, 0, rows), xRowHi(x, xb, 1, rows), xRowHi(x, xb, 2, rows), xRowHi(x, xb, 3, rows),
      xRowHi(x, xb, 4, rows), xRowHi(x, xb, 5, rows), xRowHi(x, xb, 6, rows), xRowHi(x, xb, 7, rows));
    v128.store(dst, xCorr4(x, xb, 0, rows), 256);
    v128.store(dst, xCorr4(x, xb, 4, rows), 272);
    const s = xs0 + (<usize>b << 2);
    v128.store(dst, xScales(s, xsb, 0, rows), 288);
    v128.store(dst, xScales(s, xsb, 4, rows), 304);
    dst += SXR_BLOCK;
  }
}

@inline function rdot(x: v128, w: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(x, w);
  return unreachable();
}
@inline function rdotAdd(c: v128, x: v128, w: v128): v128 { return i16x8.add(c, rdot(x, w)); }

/** tileSplat on the relaxed panels (x: packSplatXR, weights: packSplatWR), relaxed builds: the same bits. */
function tileSplatR(xp: usize, wp: usize, accp: usize, nb: i32, rows: i32, bp: usize, yp: usize, yb: usize, cnt: i32, flags: i32): void {
  const xob = <usize>nb * SXR_BLOCK, wend = wp + <usize>nb * SWR_BLOCK;
  const zero = f32x4.splat(0);
  for (let r0 = 0; r0 < rows; r0 += 8) {
    for (let i: usize = 0; i < SPLAT_ACC; i += 16) v128.store(accp + i, zero);
    let x = xp;
    for (let w = wp; w < wend; w += SWR_BLOCK) {
      let xv: v128;
      // pairs 0..7 in i16 (each pair after the first in its own basic block, as in tileSplat)
      xv = v128.load(x);
      let c0 = rdot(xv, v128.load16_splat(w)), c1 = rdot(xv, v128.load16_splat(w, 32));
      let c2 = rdot(xv, v128.load16_splat(w, 64)), c3 = rdot(xv, v128.load16_splat(w, 96));
      if (w != 1) {
        xv = v128.load(x, 16);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 2)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 34));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 66)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 98));
      }
      if (w != 2) {
        xv = v128.load(x, 32);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 4)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 36));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 68)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 100));
      }
      if (w != 3) {
        xv = v128.load(x, 48);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 6)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 38));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 70)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 102));
      }
      if (w != 4) {
        xv = v128.load(x, 64);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 8)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 40));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 72)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 104));
      }
      if (w != 5) {
        xv = v128.load(x, 80);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 10)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 42));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 74)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 106));
      }
      if (w != 6) {
        xv = v128.load(x, 96);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 12)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 44));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 76)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 108));
      }
      if (w != 7) {
        xv = v128.load(x, 112);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 14)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 46));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 78)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 110));
      }
      let a0 = i32x4.extend_low_i16x8_s(c0), b0 = i32x4.extend_high_i16x8_s(c0);
      let a1 = i32x4.extend_low_i16x8_s(c1), b1 = i32x4.extend_high_i16x8_s(c1);
      let a2 = i32x4.extend_low_i16x8_s(c2), b2 = i32x4.extend_high_i16x8_s(c2);
      let a3 = i32x4.extend_low_i16x8_s(c3), b3 = i32x4.extend_high_i16x8_s(c3);
      // pairs 8..15
      xv = v128.load(x, 128);
      c0 = rdot(xv, v128.load16_splat(w, 16)); c1 = rdot(xv, v128.load16_splat(w, 48));
      c2 = rdot(xv, v128.load16_splat(w, 80)); c3 = rdot(xv, v128.load16_splat(w, 112));
      if (w != 9) {
        xv = v128.load(x, 144);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 18)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 50));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 82)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 114));
      }
      if (w != 10) {
        xv = v128.load(x, 160);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 20)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 52));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 84)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 116));
      }
      if (w != 11) {
        xv = v128.load(x, 176);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 22)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 54));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 86)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 118));
      }
      if (w != 12) {
        xv = v128.load(x, 192);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 24)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 56));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 88)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 120));
      }
      if (w != 13) {
        xv = v128.load(x, 208);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 26)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 58));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 90)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 122));
      }
      if (w != 14) {
        xv = v128.load(x, 224);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 28)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 60));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 92)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 124));
      }
      if (w != 15) {
        xv = v128.load(x, 240);
        c0 = rdotAdd(c0, xv, v128.load16_splat(w, 30)); c1 = rdotAdd(c1, xv, v128.load16_splat(w, 62));
        c2 = rdotAdd(c2, xv, v128.load16_splat(w, 94)); c3 = rdotAdd(c3, xv, v128.load16_splat(w, 126));
      }
      const k0 = v128.load(x, 256), k1 = v128.load(x, 272);
      a0 = i32x4.sub(i32x4.add(a0, i32x4.extend_low_i16x8_s(c0)), k0); b0 = i32x4.sub(i32x4.add(b0, i32x4.extend_high_i16x8_s(c0)), k1);
      a1 = i32x4.sub(i32x4.add(a1, i32x4.extend_low_i16x8_s(c1)), k0); b1 = i32x4.sub(i32x4.add(b1, i32x4.extend_high_i16x8_s(c1)), k1);
      a2 = i32x4.sub(i32x4.add(a2, i32x4.extend_low_i16x8_s(c2)), k0); b2 = i32x4.sub(i32x4.add(b2, i32x4.extend_high_i16x8_s(c2)), k1);
      a3 = i32x4.sub(i32x4.add(a3, i32x4.extend_low_i16x8_s(c3)), k0); b3 = i32x4.sub(i32x4.add(b3, i32x4.extend_high_i16x8_s(c3)), k1);
      // per block: the f32 steps of tileSplat
      splatBlockF32(accp, a0, b0, a1, b1, a2, b2, a3, b3, v128.load(x, 288), v128.load(x, 304), w + 128);
      x += SXR_BLOCK;
    }
    const rv = imin(8, rows - r0);
    finishQuad(accp, rv, bp, yp, yb, cnt, flags);
    if (rv > 4) finishQuad(accp + 16, rv - 4, bp, yp + (yb << 2), yb, cnt, flags);
    xp += xob; yp += yb << 3;
  }
}

/** Rows n.. of at most four (up to n1) through tile1x4. */
@inline function group1<F>(xr: usize, xsr: usize, w: usize, rb: usize, n: i32, n1: i32, nb: i32, bias: usize, yr: usize, flags: i32): void {
  const cnt = imin(4, n1 - n);
  const d1: usize = cnt > 1 ? rb : 0, d2: usize = cnt > 2 ? 2 * rb : 0, d3: usize = cnt > 3 ? 3 * rb : 0;
  tile1x4<F>(xr, xsr, w + <usize>n * rb, d1, d2, d3, nb, bias ? bias + (<usize>n << 2) : 0, yr + (<usize>n << 2), cnt, flags);
}

const GEMV_MAX_M: i32 = 2;
const PANEL_BYTES: i32 = 256 << 10;

/** y[M,N] = act(x·Wᵀ + b) for W in blocks of format F; split over N in chunks of 16 rows. */
export function matmulBlocks<F>(xq: usize, xs: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  setWexp(flags); // the block scales hold d·2^e (common.ts)
  const chunk = splitChunk(N, nth, 16);
  const n0 = splitLo(N, ith, chunk), n1 = splitHi(N, n0, chunk);
  if (n0 >= n1 || M <= 0) return;
  const nb = K / Q8_BLOCK;
  const xrb = <usize>K, xsb = <usize>nb << 2, rb = <usize>nb * blockBytes<F>(), yb = <usize>N << 2;
  if (M <= GEMV_MAX_M) {
    const per = (n1 - n0) >>> 2;
    const run = <usize>per * rb;
    // activation rows prepared in this thread's low scratch slot when they fit and their scales allow (else the
    // generic tile)
    const kp = lowSlot(), slot = kp + Q4X_CONST_BYTES;
    let ok = per > 0 && threadIndex() < LOW_SLOTS;
    const rq4 = ok && !isSigned<F>() && relaxedQ4(kp); // the relaxed Q4_0 tile (its check uses the slot's start)
    const prep = <usize>nb * <usize>(isSigned<F>() ? Q8X_BYTES_PER_BLOCK : rq4 ? Q4R_BYTES_PER_BLOCK : Q4X_BYTES_PER_BLOCK);
    ok = ok && <usize>M * prep + Q4X_CONST_BYTES <= <usize>LOW_SLOT_BYTES;
    for (let m = 0; ok && m < M; m++) {
      const xr = xq + <usize>m * xrb, xsr = xs + <usize>m * xsb, dst = slot + <usize>m * prep;
      ok = isSigned<F>() ? q8PrepX(xr, xsr, nb, dst) : rq4 ? q4PrepXR(xr, xsr, nb, dst) : q4PrepX(xr, xsr, nb, dst);
    }
    if (ok) {
      q4Consts(kp);
      for (let n = n0; n < n0 + per; n++) {
        for (let m = 0; m < M; m++) {
          const xp = slot + <usize>m * prep, wr = w + <usize>n * rb, yr = y + <usize>m * yb;
          if (isSigned<F>()) tileFarQ8(xp, kp, wr, run, nb, bias, yr, n, per, flags);
          else if (ASC_FEATURE_RELAXED_SIMD && rq4) tileFarQ4R(xp, kp, wr, run, nb, bias, yr, n, per, flags);
          else tileFarQ4(xp, kp, wr, run, nb, bias, yr, n, per, flags);
        }
      }
    } else for (let n = n0; n < n0 + per; n++) {
      for (let m = 0; m < M; m++) tileFar<F>(xq + <usize>m * xrb, xs + <usize>m * xsb, w + <usize>n * rb, run, nb, bias, y + <usize>m * yb, n, per, flags);
    }
    for (let n = n0 + 4 * per; n < n1; n += 4) {
      for (let m = 0; m < M; m++) group1<F>(xq + <usize>m * xrb, xs + <usize>m * xsb, w, rb, n, n1, nb, bias, y + <usize>m * yb, flags);
    }
    return;
  }
  // the splat tile when the weight panel and at least SPLAT_MIN_OCTS x octs fit in this thread's slot (the relaxed
  // builds' Q4_0 tile on smaller panels where the engine's relaxed dot is exact)
  const rq4 = !isSigned<F>() && threadIndex() < LOW_SLOTS && relaxedQ4(lowSlot());
  const wpBytes = <usize>nb * (rq4 ? SWR_BLOCK : SW_BLOCK), xoBytes = <usize>nb * (rq4 ? SXR_BLOCK : SX_BLOCK);
  if (threadIndex() < LOW_SLOTS && SPLAT_ACC + wpBytes + (rq4 ? 1 : SPLAT_MIN_OCTS) * xoBytes <= <usize>LOW_SLOT_BYTES) {
    const so = <i32>((<usize>LOW_SLOT_BYTES - SPLAT_ACC - wpBytes) / xoBytes);
    const accp = lowSlot(), wpan = accp + SPLAT_ACC, xpan = wpan + wpBytes;
    // M-panels of about equal size (each packs every weight row again, so as few as fit)
    const octs = (M + 7) >> 3, panels = (octs + so - 1) / so, oper = (octs + panels - 1) / panels;
    for (let o0 = 0; o0 < octs; o0 += oper) {
      const o1 = imin(octs, o0 + oper);
      for (let o = o0; o < o1; o++) {
        const m = o << 3, xr = xq + <usize>m * xrb, xsr = xs + <usize>m * xsb, dst = xpan + <usize>(o - o0) * xoBytes;
        if (ASC_FEATURE_RELAXED_SIMD && rq4) packSplatXR(xr, xrb, xsr, xsb, imin(8, M - m), nb, dst);
        else packSplatX(xr, xrb, xsr, xsb, imin(8, M - m), nb, dst);
      }
      const rows = imin(M, o1 << 3) - (o0 << 3), yp = y + <usize>(o0 << 3) * yb;
      for (let n = n0; n < n1; n += 4) {
        const cnt = imin(4, n1 - n), bp = bias ? bias + (<usize>n << 2) : 0, yn = yp + (<usize>n << 2);
        if (ASC_FEATURE_RELAXED_SIMD && rq4) {
          packSplatWR(w + <usize>n * rb, rb, cnt, nb, wpan);
          tileSplatR(xpan, wpan, accp, nb, rows, bp, yn, yb, cnt, flags);
        } else {
          packSplatW<F>(w + <usize>n * rb, rb, cnt, nb, wpan);
          tileSplat(xpan, wpan, accp, nb, rows, bp, yn, yb, cnt, flags);
        }
      }
    }
    return;
  }
  const n4 = n0 + ((n1 - n0) & ~3);
  let mb = (PANEL_BYTES / (K > 1 ? K : 1)) & ~1;
  if (mb < 2) mb = 2;
  // four weight rows packed to i16 in this thread's low scratch slot when they fit (else the direct tile)
  const packed: bool = threadIndex() < LOW_SLOTS && <usize>nb * PANEL_BLOCK_BYTES <= <usize>LOW_SLOT_BYTES;
  const scratch = lowSlot();
  for (let m0 = 0; m0 < M; m0 += mb) {
    const m1 = imin(M, m0 + mb);
    const m2 = m0 + ((m1 - m0) & ~1);
    for (let n = n0; n < n4; n += 4) {
      const bp = bias ? bias + (<usize>n << 2) : 0;
      if (packed && m2 > m0) {
        packPanel<F>(w + <usize>n * rb, rb, nb, scratch);
        const yp = y + <usize>m0 * yb + (<usize>n << 2), pairs = (m2 - m0) >> 1;
        tile2x4p(xq + <usize>m0 * xrb, xrb, xs + <usize>m0 * xsb, xsb, scratch, nb, bp, yp, yb, flags, pairs);
      } else for (let m = m0; m < m2; m += 2) {
        tile2x4<F>(xq + <usize>m * xrb, xrb, xs + <usize>m * xsb, xsb, w + <usize>n * rb, rb, nb, bp, y + <usize>m * yb + (<usize>n << 2), yb, flags);
      }
      if (m2 < m1) group1<F>(xq + <usize>m2 * xrb, xs + <usize>m2 * xsb, w, rb, n, n1, nb, bias, y + <usize>m2 * yb, flags);
    }
    if (n4 < n1) {
      for (let m = m0; m < m1; m++) group1<F>(xq + <usize>m * xrb, xs + <usize>m * xsb, w, rb, n4, n1, nb, bias, y + <usize>m * yb, flags);
    }
  }
}

/** Q8_0 weights (DT_Q8). */
export function matmul_q8(xq: usize, xs: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  matmulBlocks<i8>(xq, xs, w, bias, y, M, K, N, flags, ith, nth);
}
