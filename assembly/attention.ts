// Multi-head attention of T queries per batch row against S cached keys/values ([B, H, cap, D] caches).
// Key j is visible to query t iff (!causal || j <= past + t) && (mask == 0 || mask[b*S + j] != 0); a query
// with no visible key (or only -inf scores) gets zeros. Invisible keys are skipped entirely (their values are
// never read, so garbage or NaN in unused cache slots cannot leak in). Split over the B*H*T query rows; each
// row is computed by the same code whatever the split.
//
// Scores: s_j = (q·k_j)·scale with the matmul summation order (one f32x4 chain over d, (l0+l2)+(l1+l3), d tail).
// attention_eager: the exact softmax over the score row kept in this thread's scratch, p = e/sum·headMask,
//   out = Σ p_j v_j, probs written when asked.
// attention_blockwise: flash style, keys in blocks of BLOCK: running max m, running sum l and an unnormalised
//   output row (in scratch) rescaled by exp(m_old - m_new) when the max grows; out = acc / l.
import { hsum4, imin, madd, splitChunk, splitHi, splitLo } from './common';
import { exp4 } from './math';

const BLOCK: i32 = 64;

/** Bytes of scratch per thread: attentionScratchBytes(S, D) of abi.ts. */
@inline function scratchBytes(S: i32, D: i32): usize {
  return <usize>((4 * (S + 2 * D + 16) + 63) & ~63);
}

/** q·k for four keys k0..k3 (each D floats), as a vector. */
@inline function dot4keys(qp: usize, k0: usize, k1: usize, k2: usize, k3: usize, D: i32): v128 {
  const D4 = D & ~3;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let d = 0; d < D4; d += 4) {
    const o = <usize>d << 2;
    const qv = v128.load(qp + o);
    a0 = madd(qv, v128.load(k0 + o), a0);
    a1 = madd(qv, v128.load(k1 + o), a1);
    a2 = madd(qv, v128.load(k2 + o), a2);
    a3 = madd(qv, v128.load(k3 + o), a3);
  }
  let s = hsum4(a0, a1, a2, a3);
  for (let d = D4; d < D; d++) {
    const o = <usize>d << 2;
    let kv = f32x4.splat(load<f32>(k0 + o));
    kv = f32x4.replace_lane(kv, 1, load<f32>(k1 + o));
    kv = f32x4.replace_lane(kv, 2, load<f32>(k2 + o));
    kv = f32x4.replace_lane(kv, 3, load<f32>(k3 + o));
    s = f32x4.add(s, f32x4.mul(f32x4.splat(load<f32>(qp + o)), kv));
  }
  return s;
}

/** sc[j - j0] = (q·k_j)·scale for j in [j0, j1), keys at kb (row stride D floats). */
function scores(qp: usize, kb: usize, D: i32, j0: i32, j1: i32, scale: f32, sc: usize): void {
  const rb = <usize>D << 2;
  const sv = f32x4.splat(scale);
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    const k0 = kb + <usize>j * rb;
    v128.store(sc + (<usize>(j - j0) << 2), f32x4.mul(dot4keys(qp, k0, k0 + rb, k0 + 2 * rb, k0 + 3 * rb, D), sv));
  }
  for (; j < j1; j++) {
    const k0 = kb + <usize>j * rb;
    store<f32>(sc + (<usize>(j - j0) << 2), f32x4.extract_lane(f32x4.mul(dot4keys(qp, k0, k0, k0, k0, D), sv), 0));
  }
}

/** Lanes j..j+3 that are visible: j < j1 and (no mask or mask != 0). */
@inline function visible4(mrow: usize, j: i32, j1: i32): v128 {
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

/** Max of sc[j - j0] over visible j in [j0, j1); -inf if none. */
function visibleMax(sc: usize, mrow: usize, j0: i32, j1: i32): f32 {
  const ninf = f32x4.splat(-Infinity);
  let mx = ninf;
  for (let j = j0; j < j1; j += 4) {
    const s = v128.load(sc + (<usize>(j - j0) << 2));
    mx = f32x4.max(mx, v128.bitselect(s, ninf, visible4(mrow, j, j1)));
  }
  const t = f32x4.max(mx, f32x4.shuffle(mx, mx, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(t, 0), f32x4.extract_lane(t, 1));
}

/** sc[j - j0] = visible ? exp(sc - mx) : 0 over [j0, j1) (rounded up to 4 lanes); returns Σ as a vector. */
function expShift(sc: usize, mrow: usize, j0: i32, j1: i32, mx: f32): v128 {
  const mv = f32x4.splat(mx);
  let sum = f32x4.splat(0);
  for (let j = j0; j < j1; j += 4) {
    const p = sc + (<usize>(j - j0) << 2);
    const e = v128.and(exp4(f32x4.sub(v128.load(p), mv)), visible4(mrow, j, j1));
    v128.store(p, e);
    sum = f32x4.add(sum, e);
  }
  return sum;
}

/** acc[d] (+)= Σ_j p_j v_j[d] over j in [j0, j1) with p_j = sc[j - j0] (p_j == 0 skipped); acc starts at
 *  zero when fresh, else from memory at ap. d in chunks of 16 and 4 in registers, then the d tail. */
function accumulateV(ap: usize, fresh: bool, vb: usize, D: i32, sc: usize, j0: i32, j1: i32): void {
  const rb = <usize>D << 2;
  const D4 = D & ~3;
  let d = 0;
  for (; d + 16 <= D; d += 16) {
    const o = <usize>d << 2;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    if (!fresh) { a0 = v128.load(ap + o); a1 = v128.load(ap + o, 16); a2 = v128.load(ap + o, 32); a3 = v128.load(ap + o, 48); }
    for (let j = j0; j < j1; j++) {
      const p = load<f32>(sc + (<usize>(j - j0) << 2));
      if (p == 0) continue;
      const pv = f32x4.splat(p);
      const vp = vb + <usize>j * rb + o;
      a0 = madd(pv, v128.load(vp), a0);
      a1 = madd(pv, v128.load(vp, 16), a1);
      a2 = madd(pv, v128.load(vp, 32), a2);
      a3 = madd(pv, v128.load(vp, 48), a3);
    }
    v128.store(ap + o, a0); v128.store(ap + o, a1, 16); v128.store(ap + o, a2, 32); v128.store(ap + o, a3, 48);
  }
  for (; d < D4; d += 4) {
    const o = <usize>d << 2;
    let a0 = fresh ? f32x4.splat(0) : v128.load(ap + o);
    for (let j = j0; j < j1; j++) {
      const p = load<f32>(sc + (<usize>(j - j0) << 2));
      if (p == 0) continue;
      a0 = madd(f32x4.splat(p), v128.load(vb + <usize>j * rb + o), a0);
    }
    v128.store(ap + o, a0);
  }
  for (; d < D; d++) {
    const o = <usize>d << 2;
    let a: f32 = fresh ? 0 : load<f32>(ap + o);
    for (let j = j0; j < j1; j++) {
      const p = load<f32>(sc + (<usize>(j - j0) << 2));
      if (p == 0) continue;
      a += p * load<f32>(vb + <usize>j * rb + o);
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

export function attention_eager(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize,
  probs: usize, scratch: usize, ith: i32, nth: i32): void {
  const rows = B * H * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  const sc = scratch + <usize>ith * scratchBytes(S, D);
  for (let r = r0; r < r1; r++) {
    const b = r / (H * T), h = (r / T) % H, t = r % T;
    const bt = <usize>(b * T + t);
    const qp = q + ((bt * <usize>qStride + <usize>(h * D)) << 2);
    const op = out + ((bt * <usize>outStride + <usize>(h * D)) << 2);
    const kvo = (<usize>(b * H + h) * <usize>cap * <usize>D) << 2;
    const mrow = mask ? mask + (<usize>(b * S) << 2) : 0;
    const pr = probs ? probs + ((<usize>r * <usize>S) << 2) : 0; // (b*H + h)*T + t == r
    const lim = keyLimit(S, past, t, causal);
    scores(qp, kc + kvo, D, 0, lim, scale, sc);
    const mx = visibleMax(sc, mrow, 0, lim);
    if (mx == -Infinity) {
      zeroF32(op, D);
      if (pr) zeroF32(pr, S);
      continue;
    }
    const sum = f32x4.splat(hsumSeq(expShift(sc, mrow, 0, lim, mx)));
    const hm = f32x4.splat(headMask ? load<f32>(headMask + (<usize>h << 2)) : 1);
    for (let j = 0; j < lim; j += 4) {
      const p = sc + (<usize>j << 2);
      v128.store(p, f32x4.mul(f32x4.div(v128.load(p), sum), hm));
    }
    accumulateV(op, true, vc + kvo, D, sc, 0, lim);
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

export function attention_blockwise(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32,
  B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize,
  probs: usize, scratch: usize, ith: i32, nth: i32): void {
  const rows = B * H * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  const base = scratch + <usize>ith * scratchBytes(S, D);
  const sc = base; // block scores: at most min(BLOCK, S) floats, rounded up to 4
  const acc = base + ((<usize>imin(BLOCK, (S + 3) & ~3)) << 2); // D floats; fits: S + 2D + 16 floats
  for (let r = r0; r < r1; r++) {
    const b = r / (H * T), h = (r / T) % H, t = r % T;
    const bt = <usize>(b * T + t);
    const qp = q + ((bt * <usize>qStride + <usize>(h * D)) << 2);
    const op = out + ((bt * <usize>outStride + <usize>(h * D)) << 2);
    const kvo = (<usize>(b * H + h) * <usize>cap * <usize>D) << 2;
    const mrow = mask ? mask + (<usize>(b * S) << 2) : 0;
    const lim = keyLimit(S, past, t, causal);
    let m: f32 = -Infinity, l: f32 = 0;
    for (let j0 = 0; j0 < lim; j0 += BLOCK) {
      const j1 = imin(lim, j0 + BLOCK);
      scores(qp, kc + kvo, D, j0, j1, scale, sc);
      const bm = visibleMax(sc, mrow, j0, j1);
      if (bm == -Infinity) continue;
      const fresh = m == -Infinity;
      if (bm > m) {
        if (!fresh) {
          const c = f32x4.extract_lane(exp4(f32x4.splat(m - bm)), 0);
          l *= c;
          scaleF32(acc, D, c);
        }
        m = bm;
      }
      l += hsumSeq(expShift(sc, mrow, j0, j1, m));
      accumulateV(acc, fresh, vc + kvo, D, sc, j0, j1);
    }
    if (m == -Infinity || !(l > 0)) { zeroF32(op, D); continue; }
    const lv = f32x4.splat(l);
    let d = 0;
    for (; d + 4 <= D; d += 4) v128.store(op + (<usize>d << 2), f32x4.div(v128.load(acc + (<usize>d << 2)), lv));
    for (; d < D; d++) store<f32>(op + (<usize>d << 2), load<f32>(acc + (<usize>d << 2)) / l);
  }
}

@inline function scaleF32(p: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), f32x4.mul(v128.load(p + (<usize>i << 2)), cv));
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), load<f32>(p + (<usize>i << 2)) * c);
}
