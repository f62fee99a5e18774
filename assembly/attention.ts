// Multi-head attention of T queries per batch row against S cached keys/values ([B, H, cap, D] caches).
// Key j is visible to query t iff (!causal || j <= past + t) && (mask == 0 || mask[b*S + j] != 0); a query
// with no visible key (or only -inf scores) gets zeros. Keys past the causal limit are never read; masked keys
// inside it get weight exactly 0 (so, as in the reference, their values must be finite). Split over the B*H*T
// query rows; each row is computed by the same code whatever the split.
//
// Scores: s_j = (q·k_j)·scale with the matmul summation order (one f32x4 chain over d, (l0+l2)+(l1+l3), d tail).
// attention_eager: the exact softmax over the score row kept in this thread's scratch, p = e/sum·headMask,
//   out = Σ p_j v_j, probs written when asked.
// attention_blockwise: flash style, keys in blocks of BLOCK from the row's first visible key: running max m,
//   running sum l and an unnormalised output row (in scratch) rescaled by exp(m_old - m_new) when the max grows;
//   out = acc / l.
//   Consecutive query rows of one head go in pairs (t, t+1) sharing every key and value load; a row's arithmetic
//   is the same alone or paired (the partner's extra keys add exact zeros), so the split does not matter.
//   Decode (T = 1, D a multiple of 4) takes its own path, decodeRows below: one block holding every key.
import { DT_F16, LOW_SLOTS, LOW_SLOT_BYTES, hsum4, imin, lowSlot, madd, splitChunk, splitHi, splitLo, threadIndex } from './common';
import { exp4, expNeg4, expNegTable, half1, half4, halfBits112 } from './math';

const BLOCK: i32 = 64;

// The caches hold f32 (KV = f32) or IEEE half floats (KV = u16, kvDt = DT_F16), converted to f32 as they are
// loaded, as matmul_f16 converts its weights (math.ts). Offsets are computed for f32 elements and kvOff turns one
// into the byte offset of the same elements in the cache, so the f32 instantiation is the f32 code unchanged.
@inline function kvOff<KV>(f32Bytes: usize): usize {
  return sizeof<KV>() == 4 ? f32Bytes : f32Bytes >> 1;
}
// A third instantiation, KV = i16, reads the same f16 caches as halves times 2^-112 (halfBits112: two integer ops
// instead of the conversion). Decode uses it for a group of queries with every |q| < 2^16: the queries are
// scaled by 2^112 (exact) and so are the softmax weights (≤ 1) that multiply the values, so every product is the
// same exact real number as q·k or e·v and rounds to the same bits. Only subnormal halves become subnormal f32
// there, which K and V caches hold rarely.
const TWO112: f32 = 5.192296858534828e33; // 2^112
const Q112_MAX: f32 = 65536.0; // |q| < 2^16: q·2^112 stays finite

/** Four consecutive cache elements at p, as f32 (KV = i16: times 2^-112). */
@inline function kv4<KV>(p: usize): v128 {
  if (sizeof<KV>() == 4) return v128.load(p);
  if (isSigned<KV>()) return halfBits112(v128.load16x4_s(p));
  return half4(p);
}
/** Vector i (elements 4i..4i+3) of the cache row at p, as f32, for a literal i < 6: the f32 loads keep their
 *  immediate offsets (the branches fold away), as `v128.load(p, 16 * i)`. */
@inline function kvVec<KV>(p: usize, i: i32): v128 {
  if (sizeof<KV>() == 2) return half4(p + (<usize>i << 3));
  if (i == 1) return v128.load(p, 16);
  if (i == 2) return v128.load(p, 32);
  if (i == 3) return v128.load(p, 48);
  if (i == 4) return v128.load(p, 64);
  if (i == 5) return v128.load(p, 80);
  return v128.load(p);
}
/** One cache element at p, as f32. */
@inline function kv1<KV>(p: usize): f32 {
  if (sizeof<KV>() == 4) return load<f32>(p);
  return half1(p);
}

/** Bytes of scratch per thread: attentionScratchBytes(S, D) of abi.ts. */
@inline function scratchBytes(S: i32, D: i32): usize {
  return <usize>((4 * (S + 2 * D + 20) + 63) & ~63);
}

/** q·k for four keys k0..k3 (each D floats), as a vector. */
@inline function dot4keys<KV>(qp: usize, k0: usize, k1: usize, k2: usize, k3: usize, D: i32): v128 {
  const D4 = D & ~3;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2, ko = kvOff<KV>(o);
    const qv = v128.load(qp + o);
    a0 = madd(qv, kv4<KV>(k0 + ko), a0);
    a1 = madd(qv, kv4<KV>(k1 + ko), a1);
    a2 = madd(qv, kv4<KV>(k2 + ko), a2);
    a3 = madd(qv, kv4<KV>(k3 + ko), a3);
  }
  let s = hsum4(a0, a1, a2, a3);
  for (let d = D4; d < D; d++) {
    const o = <usize>d << 2, ko = kvOff<KV>(o);
    let kv = f32x4.splat(kv1<KV>(k0 + ko));
    kv = f32x4.replace_lane(kv, 1, kv1<KV>(k1 + ko));
    kv = f32x4.replace_lane(kv, 2, kv1<KV>(k2 + ko));
    kv = f32x4.replace_lane(kv, 3, kv1<KV>(k3 + ko));
    s = f32x4.add(s, f32x4.mul(f32x4.splat(load<f32>(qp + o)), kv));
  }
  return s;
}

/** q·k for six consecutive keys from k0 (rows rb bytes apart): lanes of the two results are keys 0..3 and
 *  4, 5 (lanes 2, 3 repeat them). Six accumulators plus seven loads fit V8's registers; the per-key arithmetic
 *  is dot4keys'. */
@inline function dot6keys<KV>(qp: usize, k0: usize, rb: usize, D: i32, sv: v128, sc: usize): void {
  const D4 = D & ~3;
  const k1 = k0 + rb, k2 = k0 + 2 * rb, k3 = k0 + 3 * rb, k4 = k0 + 4 * rb, k5 = k0 + 5 * rb;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0);
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2, ko = kvOff<KV>(o);
    const qv = v128.load(qp + o);
    a0 = madd(qv, kv4<KV>(k0 + ko), a0);
    a1 = madd(qv, kv4<KV>(k1 + ko), a1);
    a2 = madd(qv, kv4<KV>(k2 + ko), a2);
    a3 = madd(qv, kv4<KV>(k3 + ko), a3);
    a4 = madd(qv, kv4<KV>(k4 + ko), a4);
    a5 = madd(qv, kv4<KV>(k5 + ko), a5);
  }
  let s = hsum4(a0, a1, a2, a3), t = hsum4(a4, a5, a4, a5);
  for (let d = D4; d < D; d++) {
    const o = <usize>d << 2, ko = kvOff<KV>(o);
    const qv = f32x4.splat(load<f32>(qp + o));
    let kv = f32x4.splat(kv1<KV>(k0 + ko));
    kv = f32x4.replace_lane(kv, 1, kv1<KV>(k1 + ko));
    kv = f32x4.replace_lane(kv, 2, kv1<KV>(k2 + ko));
    kv = f32x4.replace_lane(kv, 3, kv1<KV>(k3 + ko));
    s = f32x4.add(s, f32x4.mul(qv, kv));
    let kw = f32x4.splat(kv1<KV>(k4 + ko));
    kw = f32x4.replace_lane(kw, 1, kv1<KV>(k5 + ko));
    t = f32x4.add(t, f32x4.mul(qv, kw));
  }
  v128.store(sc, f32x4.mul(s, sv));
  v128.store64_lane(sc + 16, f32x4.mul(t, sv), 0);
}

/** sc[j - j0] = (q·k_j)·scale for j in [j0, j1), keys at kb (row stride D elements). */
function scores<KV>(qp: usize, kb: usize, D: i32, j0: i32, j1: i32, scale: f32, sc: usize): void {
  const rb = kvOff<KV>(<usize>D << 2);
  const sv = f32x4.splat(scale);
  let j = j0;
  for (; j + 6 <= j1; j += 6) dot6keys<KV>(qp, kb + <usize>j * rb, rb, D, sv, sc + (<usize>(j - j0) << 2));
  for (; j + 4 <= j1; j += 4) {
    const k0 = kb + <usize>j * rb;
    v128.store(sc + (<usize>(j - j0) << 2), f32x4.mul(dot4keys<KV>(qp, k0, k0 + rb, k0 + 2 * rb, k0 + 3 * rb, D), sv));
  }
  for (; j < j1; j++) {
    const k0 = kb + <usize>j * rb;
    store<f32>(sc + (<usize>(j - j0) << 2), f32x4.extract_lane(f32x4.mul(dot4keys<KV>(qp, k0, k0, k0, k0, D), sv), 0));
  }
}

/** Lanes j..j+3 that are visible: j < j1 and (no mask or mask != 0). */
@inline function visible4(mrow: usize, j: i32, j1: i32): v128 {
  if (!mrow && j + 4 <= j1) return i32x4.splat(-1);
  const lanes = i32x4.lt_s(i32x4.add(i32x4.splat(j), i32x4(0, 1, 2, 3)), i32x4.splat(j1));
  if (!mrow) return lanes;
  const n = j1 - j;
  let mv: v128;
  if (n >= 4) mv = v128.load(mrow + (<usize>j << 2));
  else {
    mv = f32x4.splat(load<f32>(mrow + (<usize>j << 2)));
    if (n > 1) mv = f32x4.replace_lane(mv, 1, load<f32>(mrow + (<usize>j << 2), 4));
    if (n > 2) mv = f32x4.replace_lane(mv, 2, load<f32>(mrow + (<usize>j << 2), 8));
  }
  return v128.and(lanes, f32x4.ne(mv, f32x4.splat(0)));
}

/** Max of sc[j - j0] over visible j in [j0, j1); -inf if none. NaN scores are passed over, as by the
 *  reference's `s > max` test. */
function visibleMax(sc: usize, mrow: usize, j0: i32, j1: i32): f32 {
  const ninf = f32x4.splat(-Infinity);
  let mx = ninf;
  for (let j = j0; j < j1; j += 4) {
    const s = v128.load(sc + (<usize>(j - j0) << 2));
    mx = f32x4.pmax(mx, v128.bitselect(s, ninf, visible4(mrow, j, j1))); // mx < s ? s : mx
  }
  const t = f32x4.pmax(mx, f32x4.shuffle(mx, mx, 2, 3, 0, 1));
  const a = f32x4.extract_lane(t, 0), b = f32x4.extract_lane(t, 1);
  return a < b ? b : a;
}

/** sc[j - j0] = visible ? exp(sc - mx) : 0 over [j0, j1) (rounded up to 4 lanes), visible meaning j < jv and
 *  unmasked; returns Σ as a vector. kp: the expNegTable constants. */
function expShift(sc: usize, mrow: usize, j0: i32, j1: i32, jv: i32, mx: f32, kp: usize): v128 {
  const mv = f32x4.splat(mx);
  let sum = f32x4.splat(0);
  const jl = jv < j1 ? jv : j1;
  for (let j = j0; j < j1; j += 4) {
    const p = sc + (<usize>(j - j0) << 2);
    const e = v128.and(expNeg4(f32x4.sub(v128.load(p), mv), kp), visible4(mrow, j, jl));
    v128.store(p, e);
    sum = f32x4.add(sum, e);
  }
  return sum;
}

/** acc[d] (+)= Σ_j p_j v_j[d] over j in [j0, j1) with p_j = sc[j - j0] (zero weights included: they add exact
 *  zeros, as in the reference); acc starts at zero when fresh, else from memory at ap. d in chunks of 16 and 4
 *  in registers, then the d tail. */
function accumulateV<KV>(ap: usize, fresh: bool, vb: usize, D: i32, sc: usize, j0: i32, j1: i32): void {
  const rb = kvOff<KV>(<usize>D << 2);
  const D4 = D & ~3;
  const send = sc + (<usize>(j1 - j0) << 2);
  const v0 = vb + <usize>j0 * rb;
  let d = 0;
  for (; d + 24 <= D; d += 24) { // six chains
    const o = <usize>d << 2;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let a4 = f32x4.splat(0), a5 = f32x4.splat(0);
    if (!fresh) {
      a0 = v128.load(ap + o); a1 = v128.load(ap + o, 16); a2 = v128.load(ap + o, 32);
      a3 = v128.load(ap + o, 48); a4 = v128.load(ap + o, 64); a5 = v128.load(ap + o, 80);
    }
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc; sp < send; sp += 4) {
      const pv = v128.load32_splat(sp);
      a0 = madd(pv, kv4<KV>(vp), a0);
      a1 = madd(pv, kvVec<KV>(vp, 1), a1);
      a2 = madd(pv, kvVec<KV>(vp, 2), a2);
      a3 = madd(pv, kvVec<KV>(vp, 3), a3);
      a4 = madd(pv, kvVec<KV>(vp, 4), a4);
      a5 = madd(pv, kvVec<KV>(vp, 5), a5);
      vp += rb;
    }
    v128.store(ap + o, a0); v128.store(ap + o, a1, 16); v128.store(ap + o, a2, 32);
    v128.store(ap + o, a3, 48); v128.store(ap + o, a4, 64); v128.store(ap + o, a5, 80);
  }
  for (; d + 16 <= D; d += 16) {
    const o = <usize>d << 2;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    if (!fresh) { a0 = v128.load(ap + o); a1 = v128.load(ap + o, 16); a2 = v128.load(ap + o, 32); a3 = v128.load(ap + o, 48); }
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc; sp < send; sp += 4) {
      const pv = v128.load32_splat(sp);
      a0 = madd(pv, kv4<KV>(vp), a0);
      a1 = madd(pv, kvVec<KV>(vp, 1), a1);
      a2 = madd(pv, kvVec<KV>(vp, 2), a2);
      a3 = madd(pv, kvVec<KV>(vp, 3), a3);
      vp += rb;
    }
    v128.store(ap + o, a0); v128.store(ap + o, a1, 16); v128.store(ap + o, a2, 32); v128.store(ap + o, a3, 48);
  }
  for (; d < D4; d += 4) {
    const o = <usize>d << 2;
    let a0 = fresh ? f32x4.splat(0) : v128.load(ap + o);
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc; sp < send; sp += 4) {
      a0 = madd(v128.load32_splat(sp), kv4<KV>(vp), a0);
      vp += rb;
    }
    v128.store(ap + o, a0);
  }
  for (; d < D; d++) {
    const o = <usize>d << 2;
    let a: f32 = fresh ? 0 : load<f32>(ap + o);
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc; sp < send; sp += 4) {
      a += load<f32>(sp) * kv1<KV>(vp);
      vp += rb;
    }
    store<f32>(ap + o, a);
  }
}

@inline function zeroF32(p: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), z);
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), 0);
}

/** Keys [0, lim) can be visible to query t of a row. */
@inline function keyLimit(S: i32, past: i32, t: i32, causal: i32): i32 {
  if (!causal) return S;
  const l = past + t + 1;
  return l < 0 ? 0 : l < S ? l : S;
}

function attentionEager<KV>(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize,
  probs: usize, scratch: usize, ith: i32, nth: i32): void {
  const rows = B * H * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  // scratch (floats): exp constants [12] | score row [S (+3)]  ≤ S + 2D + 16
  const kp = scratch + <usize>threadIndex() * scratchBytes(S, D);
  expNegTable(kp);
  const sc = kp + 48;
  for (let r = r0; r < r1; r++) {
    const b = r / (H * T), h = (r / T) % H, t = r % T;
    const bt = <usize>(b * T + t);
    const qp = q + ((bt * <usize>qStride + <usize>(h * D)) << 2);
    const op = out + ((bt * <usize>outStride + <usize>(h * D)) << 2);
    const kvo = kvOff<KV>((<usize>(b * H + h) * <usize>cap * <usize>D) << 2);
    const mrow = mask ? mask + (<usize>(b * S) << 2) : 0;
    const pr = probs ? probs + ((<usize>r * <usize>S) << 2) : 0; // (b*H + h)*T + t == r
    const lim = keyLimit(S, past, t, causal);
    scores<KV>(qp, kc + kvo, D, 0, lim, scale, sc);
    const mx = visibleMax(sc, mrow, 0, lim);
    if (mx == -Infinity) {
      zeroF32(op, D);
      if (pr) zeroF32(pr, S);
      continue;
    }
    const sum = f32x4.splat(hsumSeq(expShift(sc, mrow, 0, lim, lim, mx, kp)));
    const hm = f32x4.splat(headMask ? load<f32>(headMask + (<usize>h << 2)) : 1);
    for (let j = 0; j < lim; j += 4) {
      const p = sc + (<usize>j << 2);
      v128.store(p, f32x4.mul(f32x4.div(v128.load(p), sum), hm));
    }
    accumulateV<KV>(op, true, vc + kvo, D, sc, 0, lim);
    if (pr) {
      let j = 0;
      for (; j + 4 <= lim; j += 4) v128.store(pr + (<usize>j << 2), v128.load(sc + (<usize>j << 2)));
      for (; j < lim; j++) store<f32>(pr + (<usize>j << 2), load<f32>(sc + (<usize>j << 2)));
      zeroF32(pr + (<usize>lim << 2), S - lim);
    }
  }
}

/** The softmax denominator of a partial-sum vector: (l0 + l2) + (l1 + l3). */
@inline function hsumSeq(v: v128): f32 {
  const t = f32x4.add(v, f32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/** One block [j0, j1) of online softmax for a row whose keys are visible below jv: scores at sc become the
 *  weights e (zero where invisible), the running max/sum at st (m, l) and the accumulator row at acc (D floats)
 *  are updated. A block with no visible key for this row leaves the state alone and zeroes the weights. */
function onlineBlock(sc: usize, mrow: usize, j0: i32, j1: i32, jv: i32, st: usize, acc: usize, D: i32, kp: usize): void {
  const bm = jv > j0 ? visibleMax(sc, mrow, j0, jv < j1 ? jv : j1) : -Infinity;
  if (bm == -Infinity) { zeroF32(sc, ((j1 - j0) + 3) & ~3); return; }
  let m = load<f32>(st), l = load<f32>(st, 4);
  if (bm > m) {
    if (m != -Infinity) {
      const c = f32x4.extract_lane(exp4(f32x4.splat(m - bm)), 0);
      l *= c;
      scaleF32(acc, D, c);
    }
    m = bm;
  }
  l += hsumSeq(expShift(sc, mrow, j0, j1, jv, m, kp));
  store<f32>(st, m);
  store<f32>(st, l, 4);
}

/** out = acc / l, or zeros if the row saw no visible key. */
function finishRow(op: usize, acc: usize, st: usize, D: i32): void {
  const m = load<f32>(st), l = load<f32>(st, 4);
  if (m == -Infinity || !(l > 0)) { zeroF32(op, D); return; }
  const lv = f32x4.splat(l);
  let d = 0;
  for (; d + 4 <= D; d += 4) v128.store(op + (<usize>d << 2), f32x4.div(v128.load(acc + (<usize>d << 2)), lv));
  for (; d < D; d++) store<f32>(op + (<usize>d << 2), load<f32>(acc + (<usize>d << 2)) / l);
}

@inline function initRow(acc: usize, st: usize, D: i32): void {
  zeroF32(acc, D);
  store<f32>(st, -Infinity);
  store<f32>(st, 0, 4);
}

// ---- decode (T = 1) ----------------------------------------------------------------------------------------
// Row r = (b, h) has one query and keys [0, lim): its scores (dot4keys' arithmetic per key), the max m over
// visible keys, weights e_j = exp(s_j - m) (0 where invisible) and l = Σ e_j summed as expShift does (four
// partial sums by j mod 4, then (p0 + p2) + (p1 + p3)), then out = (Σ_j e_j v_j) / l with the sum in key order.
// At decode K and V come from DRAM (all of a token's weights pass through the caches between two visits of a
// layer), so they are read as long sequential streams: four rows (heads, whose blocks are cap·D floats apart)
// in lockstep, each walking its keys and then its values in order. The four rows' queries, scores and
// accumulators are interleaved (element i of rows 0..3 in one vector) in this thread's low-memory slot, so one
// pointer addresses all four and the softmax runs on the four rows at once. A thread with fewer than four rows,
// a slot too small or ith ≥ LOW_SLOTS runs its rows one at a time in the ABI scratch with the same arithmetic.

/** sc[j] (4 lanes = rows) = (q_g·k_gj)·scale for j < lim: queries interleaved at qs ([D/4][4 rows] vectors),
 *  key j of row g at kb + g·ks + j·kvOff(rb) (rb = 4D, the bytes of an f32 row). Two keys per iteration. */
function scores4<KV>(qs: usize, kb: usize, ks: usize, rb: usize, lim: i32, scale: f32, sc: usize): void {
  const sv = f32x4.splat(scale);
  const ks3 = ks * 3;
  const qend = qs + (rb << 2);
  const kr = kvOff<KV>(rb);
  let k = kb, j = 0;
  for (; j + 2 <= lim; j += 2) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    let kp = k;
    for (let qp = qs; qp < qend; qp += 64) {
      const kq = kp + kr;
      let qv = v128.load(qp);
      a0 = madd(qv, kv4<KV>(kp), a0); b0 = madd(qv, kv4<KV>(kq), b0);
      qv = v128.load(qp, 16);
      a1 = madd(qv, kv4<KV>(kp + ks), a1); b1 = madd(qv, kv4<KV>(kq + ks), b1);
      qv = v128.load(qp, 32);
      a2 = madd(qv, kv4<KV>(kp + 2 * ks), a2); b2 = madd(qv, kv4<KV>(kq + 2 * ks), b2);
      qv = v128.load(qp, 48);
      a3 = madd(qv, kv4<KV>(kp + ks3), a3); b3 = madd(qv, kv4<KV>(kq + ks3), b3);
      kp += kvOff<KV>(16);
    }
    v128.store(sc + (<usize>j << 4), f32x4.mul(hsum4(a0, a1, a2, a3), sv));
    v128.store(sc + (<usize>j << 4), f32x4.mul(hsum4(b0, b1, b2, b3), sv), 16);
    k += 2 * kr;
  }
  if (j < lim) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let kp = k;
    for (let qp = qs; qp < qend; qp += 64) {
      a0 = madd(v128.load(qp), kv4<KV>(kp), a0);
      a1 = madd(v128.load(qp, 16), kv4<KV>(kp + ks), a1);
      a2 = madd(v128.load(qp, 32), kv4<KV>(kp + 2 * ks), a2);
      a3 = madd(v128.load(qp, 48), kv4<KV>(kp + ks3), a3);
      kp += kvOff<KV>(16);
    }
    v128.store(sc + (<usize>j << 4), f32x4.mul(hsum4(a0, a1, a2, a3), sv));
  }
}

/** Lanes (rows) of key j that are visible: j < lim always holds here; mask rows m0..m3 (0: no mask). */
@inline function visibleRows(mask: usize, m0: usize, m1: usize, m2: usize, m3: usize, j: i32): v128 {
  if (!mask) return i32x4.splat(-1);
  const o = <usize>j << 2;
  let v = f32x4.splat(load<f32>(m0 + o));
  v = f32x4.replace_lane(v, 1, load<f32>(m1 + o));
  v = f32x4.replace_lane(v, 2, load<f32>(m2 + o));
  v = f32x4.replace_lane(v, 3, load<f32>(m3 + o));
  return f32x4.ne(v, f32x4.splat(0));
}

/** The softmax of four interleaved score rows in place: sc[j] becomes e_j (0 where invisible); m and l (4 lanes
 *  each) to st. Per row exactly visibleMax and expShift: the same max, the same e_j, and l summed in four
 *  partial sums by j mod 4. */
function softmax4(sc: usize, lim: i32, mask: usize, m0: usize, m1: usize, m2: usize, m3: usize, st: usize, kp: usize): void {
  const ninf = f32x4.splat(-Infinity);
  let mx = ninf;
  for (let j = 0; j < lim; j++) {
    mx = f32x4.pmax(mx, v128.bitselect(v128.load(sc + (<usize>j << 4)), ninf, visibleRows(mask, m0, m1, m2, m3, j)));
  }
  let p0 = f32x4.splat(0), p1 = f32x4.splat(0), p2 = f32x4.splat(0), p3 = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= lim; j += 4) {
    const p = sc + (<usize>j << 4);
    let e = v128.and(expNeg4(f32x4.sub(v128.load(p), mx), kp), visibleRows(mask, m0, m1, m2, m3, j));
    v128.store(p, e); p0 = f32x4.add(p0, e);
    e = v128.and(expNeg4(f32x4.sub(v128.load(p, 16), mx), kp), visibleRows(mask, m0, m1, m2, m3, j + 1));
    v128.store(p, e, 16); p1 = f32x4.add(p1, e);
    e = v128.and(expNeg4(f32x4.sub(v128.load(p, 32), mx), kp), visibleRows(mask, m0, m1, m2, m3, j + 2));
    v128.store(p, e, 32); p2 = f32x4.add(p2, e);
    e = v128.and(expNeg4(f32x4.sub(v128.load(p, 48), mx), kp), visibleRows(mask, m0, m1, m2, m3, j + 3));
    v128.store(p, e, 48); p3 = f32x4.add(p3, e);
  }
  for (let c = 0; j < lim; j++, c++) {
    const p = sc + (<usize>j << 4);
    const e = v128.and(expNeg4(f32x4.sub(v128.load(p), mx), kp), visibleRows(mask, m0, m1, m2, m3, j));
    v128.store(p, e);
    if (c == 0) p0 = f32x4.add(p0, e); else if (c == 1) p1 = f32x4.add(p1, e); else p2 = f32x4.add(p2, e);
  }
  v128.store(st, mx);
  v128.store(st, f32x4.add(f32x4.add(p0, p2), f32x4.add(p1, p3)), 16);
}

/** acc (interleaved like the queries) = Σ_{j<lim} e_j v_j for four rows, per element madd(e, v, acc) from zero in
 *  key order: weights sc[j] (lanes = rows), value j of row g at vb + g·ks + j·rb. The accumulators stay in
 *  memory (L1) and each key's four value rows are read once, in order: register tiles over the keys would read
 *  every value row in strided passes, which DRAM serves at half the speed. */
function values4<KV>(vb: usize, ks: usize, rb: usize, lim: i32, sc: usize, acc: usize): void {
  const aend = acc + (rb << 2);
  const ks3 = ks * 3;
  const z = f32x4.splat(0);
  for (let a = acc; a < aend; a += 16) v128.store(a, z);
  let v = vb;
  const send = sc + (<usize>lim << 4);
  for (let sp = sc; sp < send; sp += 16) {
    let e0 = v128.load32_splat(sp), e1 = v128.load32_splat(sp, 4), e2 = v128.load32_splat(sp, 8), e3 = v128.load32_splat(sp, 12);
    if (sizeof<KV>() == 2 && isSigned<KV>()) { // values read times 2^-112: weights times 2^112 (exact)
      const t = f32x4.splat(TWO112);
      e0 = f32x4.mul(e0, t); e1 = f32x4.mul(e1, t); e2 = f32x4.mul(e2, t); e3 = f32x4.mul(e3, t);
    }
    let vp = v;
    for (let a = acc; a < aend; a += 64) {
      v128.store(a, madd(e0, kv4<KV>(vp), v128.load(a)));
      v128.store(a, madd(e1, kv4<KV>(vp + ks), v128.load(a, 16)), 16);
      v128.store(a, madd(e2, kv4<KV>(vp + 2 * ks), v128.load(a, 32)), 32);
      v128.store(a, madd(e3, kv4<KV>(vp + ks3), v128.load(a, 48)), 48);
      vp += kvOff<KV>(16);
    }
    v += kvOff<KV>(rb);
  }
}

/** values4 for one row (contiguous weights and accumulator). */
function values1<KV>(vb: usize, rb: usize, lim: i32, sc: usize, acc: usize): void {
  const z = f32x4.splat(0);
  for (let d: usize = 0; d < rb; d += 16) v128.store(acc + d, z);
  let v = vb;
  const send = sc + (<usize>lim << 2);
  for (let sp = sc; sp < send; sp += 4) {
    const p = v128.load32_splat(sp);
    for (let d: usize = 0; d < rb; d += 16) v128.store(acc + d, madd(p, kv4<KV>(v + kvOff<KV>(d)), v128.load(acc + d)));
    v += kvOff<KV>(rb);
  }
}

/** Decode rows [r0, r1) (T = 1, D % 4 == 0). */
function decodeRows<KV>(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32,
  H: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, scratch: usize, ith: i32, r0: i32, r1: i32): void {
  const lim = keyLimit(S, past, 0, causal);
  const rb = <usize>D << 2;
  const ks = <usize>cap * kvOff<KV>(rb); // bytes between the K (and V) blocks of rows r and r + 1
  // slot: exp constants [64 B] | queries [4D floats] | accumulators [4D] | m, l [8] | scores [4 lim]
  const need: usize = 64 + 8 * rb + 32 + (<usize>lim << 4);
  let r = r0;
  if (threadIndex() < LOW_SLOTS && need <= <usize>LOW_SLOT_BYTES && r1 - r0 >= 4) {
    const kp = lowSlot(), qs = kp + 64, acc = qs + 4 * rb, st = acc + 4 * rb, sc = st + 32;
    expNegTable(kp);
    // groups of four from r0; a last partial group is moved back to end at r1 (its first rows are computed a
    // second time, to the same bits)
    for (; r < r1; r += 4) {
      if (r + 4 > r1) r = r1 - 4;
      const b0 = r / H, b3 = (r + 3) / H;
      // queries, interleaved: vector i of row g at qs + 64i + 16g
      let big = i32x4.splat(0);
      for (let g = 0; g < 4; g++) {
        const b = (r + g) / H, h = (r + g) % H;
        const src = q + ((<usize>b * <usize>qStride + <usize>(h * D)) << 2);
        for (let d: usize = 0; d < rb; d += 16) {
          const v = v128.load(src + d);
          big = v128.or(big, v128.not(f32x4.lt(f32x4.abs(v), f32x4.splat(Q112_MAX))));
          v128.store(qs + (d << 2) + (<usize>g << 4), v);
        }
      }
      const kvo = <usize>r * ks;
      // f16 caches: shifted halves when every query of the group is below 2^16 (the same bits, see kv4)
      const shifted = sizeof<KV>() == 2 && !v128.any_true(big);
      if (shifted) {
        const t = f32x4.splat(TWO112);
        for (let d: usize = 0; d < (rb << 2); d += 16) v128.store(qs + d, f32x4.mul(v128.load(qs + d), t));
        scores4<i16>(qs, kc + kvo, ks, rb, lim, scale, sc);
      } else scores4<KV>(qs, kc + kvo, ks, rb, lim, scale, sc);
      const m0 = mask + (<usize>(b0 * S) << 2), m3 = mask + (<usize>(b3 * S) << 2);
      const m1 = mask + (<usize>((r + 1) / H * S) << 2), m2 = mask + (<usize>((r + 2) / H * S) << 2);
      softmax4(sc, lim, mask, m0, m1, m2, m3, st, kp);
      if (shifted) values4<i16>(vc + kvo, ks, rb, lim, sc, acc);
      else values4<KV>(vc + kvo, ks, rb, lim, sc, acc);
      for (let g = 0; g < 4; g++) {
        const b = (r + g) / H, h = (r + g) % H;
        finishRow4(out + ((<usize>b * <usize>outStride + <usize>(h * D)) << 2), acc + (<usize>g << 4), st + (<usize>g << 2), D);
      }
    }
    return;
  }
  // one row at a time in the ABI scratch: exp constants [12] | scores [lim rounded up to 4] | acc [D] | m l
  const kp = scratch + <usize>threadIndex() * scratchBytes(S, D);
  expNegTable(kp);
  const sc = kp + 48, acc = sc + (<usize>((lim + 3) & ~3) << 2), st = acc + rb;
  for (; r < r1; r++) {
    const b = r / H, h = r % H;
    const kvo = <usize>r * ks;
    scores<KV>(q + ((<usize>b * <usize>qStride + <usize>(h * D)) << 2), kc + kvo, D, 0, lim, scale, sc);
    const mrow = mask ? mask + (<usize>(b * S) << 2) : 0;
    const mx = lim > 0 ? visibleMax(sc, mrow, 0, lim) : -Infinity;
    let l: f32 = 0;
    if (mx == -Infinity) zeroF32(sc, (lim + 3) & ~3);
    else l = hsumSeq(expShift(sc, mrow, 0, lim, lim, mx, kp));
    store<f32>(st, mx);
    store<f32>(st, l, 4);
    values1<KV>(vc + kvo, rb, lim, sc, acc);
    finishRow(out + ((<usize>b * <usize>outStride + <usize>(h * D)) << 2), acc, st, D);
  }
}

/** finishRow for row g of an interleaved accumulator (element vector i at acc + 64i; m at st, l at st + 16). */
function finishRow4(op: usize, acc: usize, st: usize, D: i32): void {
  const m = load<f32>(st), l = load<f32>(st, 16);
  if (m == -Infinity || !(l > 0)) { zeroF32(op, D); return; }
  const lv = f32x4.splat(l);
  for (let d = 0; d < D; d += 4) v128.store(op + (<usize>d << 2), f32x4.div(v128.load(acc + (<usize>d << 4)), lv));
}

function attentionBlockwise<KV>(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, scratch: usize, ith: i32, nth: i32): void {
  const rows = B * H * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  if (T == 1 && D > 0 && (D & 3) == 0) {
    if (r0 < r1) decodeRows<KV>(q, qStride, kc, vc, cap, out, outStride, H, D, S, past, causal, mask, scale, scratch, ith, r0, r1);
    return;
  }
  // Keys go in blocks of BLOCK from the batch row's first visible key, whatever S: a left-padded row is then
  // computed in the very blocks it gets alone (the padding before it has weight 0 either way), and a prompt split
  // into prefill chunks in the blocks it gets whole, so its outputs have the bits of its unpadded run. A block
  // holds at most min(BLOCK, S) keys, its scores rounded up to 4 lanes: bs floats.
  const bs = imin(BLOCK, (S + 3) & ~3);
  // scratch (floats): exp constants [12] | scores of row 0 [bs] | scores of row 1 [bs] | acc 0 [D] | acc 1 [D]
  // | m0 l0 m1 l1: 16 + 2bs + 2D ≤ S + 2D + 20 when pairing (2bs ≤ S); single rows use 16 + bs + D + 4 (bs ≤ S + 3).
  const kp = scratch + <usize>threadIndex() * scratchBytes(S, D);
  expNegTable(kp);
  const sc0 = kp + 48, sc1 = sc0 + (<usize>bs << 2);
  const canPair = 2 * bs <= S;
  const acc0 = canPair ? sc1 + (<usize>bs << 2) : sc1, acc1 = acc0 + (<usize>D << 2);
  const st0 = canPair ? acc1 + (<usize>D << 2) : acc1, st1 = st0 + 8;
  let r = r0, fb = -1, jf = 0;
  while (r < r1) {
    const b = r / (H * T), h = (r / T) % H, t = r % T;
    const pair = canPair && r + 1 < r1 && t + 1 < T;
    const bt = <usize>(b * T + t);
    const qp = q + ((bt * <usize>qStride + <usize>(h * D)) << 2);
    const op = out + ((bt * <usize>outStride + <usize>(h * D)) << 2);
    const kvo = kvOff<KV>((<usize>(b * H + h) * <usize>cap * <usize>D) << 2);
    const kb = kc + kvo, vb = vc + kvo;
    const mrow = mask ? mask + (<usize>(b * S) << 2) : 0;
    if (b != fb) { // the batch row's first visible key
      fb = b; jf = 0;
      if (mrow) while (jf < S && load<f32>(mrow + (<usize>jf << 2)) == 0) jf++;
    }
    const lim0 = keyLimit(S, past, t, causal);
    initRow(acc0, st0, D);
    if (pair) {
      const lim1 = keyLimit(S, past, t + 1, causal);
      const lim = lim1 > lim0 ? lim1 : lim0;
      initRow(acc1, st1, D);
      const qp1 = qp + (<usize>qStride << 2);
      for (let j0 = jf; j0 < lim; j0 += BLOCK) {
        const j1 = imin(lim, j0 + BLOCK);
        scores2<KV>(qp, qp1, kb, D, j0, j1, scale, sc0, sc1);
        onlineBlock(sc0, mrow, j0, j1, lim0, st0, acc0, D, kp);
        onlineBlock(sc1, mrow, j0, j1, lim1, st1, acc1, D, kp);
        accumulateV2<KV>(acc0, acc1, vb, D, sc0, sc1, j0, j1);
      }
      finishRow(op, acc0, st0, D);
      finishRow(op + (<usize>outStride << 2), acc1, st1, D);
      r += 2;
    } else {
      for (let j0 = jf; j0 < lim0; j0 += BLOCK) {
        const j1 = imin(lim0, j0 + BLOCK);
        scores<KV>(qp, kb, D, j0, j1, scale, sc0);
        onlineBlock(sc0, mrow, j0, j1, lim0, st0, acc0, D, kp);
        accumulateV<KV>(acc0, false, vb, D, sc0, j0, j1);
      }
      finishRow(op, acc0, st0, D);
      r += 1;
    }
  }
}

/** Scores of two query rows against keys [j0, j1): sc0/sc1[j - j0] = (q·k_j)·scale, the arithmetic of scores(). */
function scores2<KV>(q0: usize, q1: usize, kb: usize, D: i32, j0: i32, j1: i32, scale: f32, sc0: usize, sc1: usize): void {
  const rb = kvOff<KV>(<usize>D << 2);
  const sv = f32x4.splat(scale);
  const D4 = D & ~3;
  for (let j = j0; j < j1; j += 4) {
    const k0 = kb + <usize>j * rb;
    const n = j1 - j;
    const k1 = n > 1 ? k0 + rb : k0, k2 = n > 2 ? k0 + 2 * rb : k0, k3 = n > 3 ? k0 + 3 * rb : k0;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
    for (let d = 0; d < D4; d += 4) {
      const o = <usize>d << 2, ko = kvOff<KV>(o);
      const qa = v128.load(q0 + o), qb = v128.load(q1 + o);
      let kv = kv4<KV>(k0 + ko); a0 = madd(qa, kv, a0); c0 = madd(qb, kv, c0);
      kv = kv4<KV>(k1 + ko); a1 = madd(qa, kv, a1); c1 = madd(qb, kv, c1);
      kv = kv4<KV>(k2 + ko); a2 = madd(qa, kv, a2); c2 = madd(qb, kv, c2);
      kv = kv4<KV>(k3 + ko); a3 = madd(qa, kv, a3); c3 = madd(qb, kv, c3);
    }
    let s0 = hsum4(a0, a1, a2, a3), s1 = hsum4(c0, c1, c2, c3);
    for (let d = D4; d < D; d++) {
      const o = <usize>d << 2, ko = kvOff<KV>(o);
      let kv = f32x4.splat(kv1<KV>(k0 + ko));
      kv = f32x4.replace_lane(kv, 1, kv1<KV>(k1 + ko));
      kv = f32x4.replace_lane(kv, 2, kv1<KV>(k2 + ko));
      kv = f32x4.replace_lane(kv, 3, kv1<KV>(k3 + ko));
      s0 = f32x4.add(s0, f32x4.mul(f32x4.splat(load<f32>(q0 + o)), kv));
      s1 = f32x4.add(s1, f32x4.mul(f32x4.splat(load<f32>(q1 + o)), kv));
    }
    v128.store(sc0 + (<usize>(j - j0) << 2), f32x4.mul(s0, sv));
    v128.store(sc1 + (<usize>(j - j0) << 2), f32x4.mul(s1, sv));
  }
}

/** acc0[d] += Σ_j p0_j v_j[d] and acc1[d] += Σ_j p1_j v_j[d] over [j0, j1); per row the arithmetic of
 *  accumulateV. */
function accumulateV2<KV>(ap0: usize, ap1: usize, vb: usize, D: i32, sc0: usize, sc1: usize, j0: i32, j1: i32): void {
  const rb = kvOff<KV>(<usize>D << 2);
  const D4 = D & ~3;
  const send = sc0 + (<usize>(j1 - j0) << 2);
  const ds = sc1 - sc0;
  const v0 = vb + <usize>j0 * rb;
  let d = 0;
  for (; d + 16 <= D; d += 16) {
    const o = <usize>d << 2;
    let a0 = v128.load(ap0 + o), a1 = v128.load(ap0 + o, 16), a2 = v128.load(ap0 + o, 32), a3 = v128.load(ap0 + o, 48);
    let c0 = v128.load(ap1 + o), c1 = v128.load(ap1 + o, 16), c2 = v128.load(ap1 + o, 32), c3 = v128.load(ap1 + o, 48);
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc0; sp < send; sp += 4) {
      const pv = v128.load32_splat(sp), pw = v128.load32_splat(sp + ds);
      let v = kv4<KV>(vp); a0 = madd(pv, v, a0); c0 = madd(pw, v, c0);
      v = kvVec<KV>(vp, 1); a1 = madd(pv, v, a1); c1 = madd(pw, v, c1);
      v = kvVec<KV>(vp, 2); a2 = madd(pv, v, a2); c2 = madd(pw, v, c2);
      v = kvVec<KV>(vp, 3); a3 = madd(pv, v, a3); c3 = madd(pw, v, c3);
      vp += rb;
    }
    v128.store(ap0 + o, a0); v128.store(ap0 + o, a1, 16); v128.store(ap0 + o, a2, 32); v128.store(ap0 + o, a3, 48);
    v128.store(ap1 + o, c0); v128.store(ap1 + o, c1, 16); v128.store(ap1 + o, c2, 32); v128.store(ap1 + o, c3, 48);
  }
  for (; d < D4; d += 4) {
    const o = <usize>d << 2;
    let a0 = v128.load(ap0 + o), c0 = v128.load(ap1 + o);
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc0; sp < send; sp += 4) {
      const v = kv4<KV>(vp);
      a0 = madd(v128.load32_splat(sp), v, a0);
      c0 = madd(v128.load32_splat(sp + ds), v, c0);
      vp += rb;
    }
    v128.store(ap0 + o, a0);
    v128.store(ap1 + o, c0);
  }
  for (; d < D; d++) {
    const o = <usize>d << 2;
    let a: f32 = load<f32>(ap0 + o), c: f32 = load<f32>(ap1 + o);
    let vp = v0 + kvOff<KV>(o);
    for (let sp = sc0; sp < send; sp += 4) {
      const v = kv1<KV>(vp);
      a += load<f32>(sp) * v;
      c += load<f32>(sp + ds) * v;
      vp += rb;
    }
    store<f32>(ap0 + o, a);
    store<f32>(ap1 + o, c);
  }
}

@inline function scaleF32(p: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), f32x4.mul(v128.load(p + (<usize>i << 2)), cv));
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), load<f32>(p + (<usize>i << 2)) * c);
}

// The exports: kvDt (DT_F32 or DT_F16) says how the caches kc and vc are stored. blockwise ignores headMask/probs.
export function attention_eager(q: usize, qStride: i32, kc: usize, vc: usize, kvDt: i32, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize,
  probs: usize, scratch: usize, ith: i32, nth: i32): void {
  if (kvDt == DT_F16) attentionEager<u16>(q, qStride, kc, vc, cap, out, outStride, B, H, T, D, S, past, causal, mask, scale, headMask, probs, scratch, ith, nth);
  else attentionEager<f32>(q, qStride, kc, vc, cap, out, outStride, B, H, T, D, S, past, causal, mask, scale, headMask, probs, scratch, ith, nth);
}

export function attention_blockwise(q: usize, qStride: i32, kc: usize, vc: usize, kvDt: i32, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize,
  probs: usize, scratch: usize, ith: i32, nth: i32): void {
  if (kvDt == DT_F16) attentionBlockwise<u16>(q, qStride, kc, vc, cap, out, outStride, B, H, T, D, S, past, causal, mask, scale, scratch, ith, nth);
  else attentionBlockwise<f32>(q, qStride, kc, vc, cap, out, outStride, B, H, T, D, S, past, causal, mask, scale, scratch, ith, nth);
}
