// Plain TypeScript twins of the wasm kernels: same ABI, same memory, written for obviousness not speed.
// They are the oracle the kernel fuzz tests compare against, and a backend the model can run on.
import {
  ACT_GELU_ERF, ACT_GELU_TANH, ACT_RELU, DT_F16, DT_F32, DT_Q4, DT_Q8, FLAG_ACCUMULATE, Q8_BLOCK,
  attentionScratchBytes, splitRange, wexpOf, type KernelABI,
} from './abi.js';
import { floatToHalf } from '../io/half.js';
import { Q4_0_BYTES, Q8_0_BYTES, quantizeQ4_0, quantizeQ8_0 } from './quant.js';

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** halfToFloat of every half, built on first use: the f16 weight reads of the reference are table lookups. */
let halfValues: Float32Array | null = null;
const halves = () => (halfValues ??= Float32Array.from({ length: 65536 }, (_, h) => halfToFloat(h)));

export function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction in f64.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax, term = ax; const x2 = ax * ax;
    for (let n = 1; n < 60; n++) { term *= -x2 / n; sum += term / (2 * n + 1); }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

export function activate(v: number, act: number): number {
  if (act === ACT_GELU_TANH) return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
  if (act === ACT_GELU_ERF) return 0.5 * v * (1 + erf(v / Math.SQRT2));
  if (act === ACT_RELU) return v > 0 ? v : 0;
  return v;
}

export function createReferenceKernels(memory: WebAssembly.Memory): KernelABI {
  let buf: ArrayBufferLike | null = null;
  let f32 = new Float32Array(0), i32 = new Int32Array(0), u16 = new Uint16Array(0), i8 = new Int8Array(0), u8 = new Uint8Array(0);
  const views = () => {
    if (buf !== memory.buffer || f32.length * 4 !== memory.buffer.byteLength) {
      buf = memory.buffer;
      f32 = new Float32Array(buf); i32 = new Int32Array(buf); u16 = new Uint16Array(buf); i8 = new Int8Array(buf); u8 = new Uint8Array(buf);
    }
  };
  /** Code of element k of row n of a block matrix (Q8_0: the int8; Q4_0: nibble - 8) and its block's scale. */
  const blockCode = (w: number, dt: number, K: number, n: number, k: number): number => {
    const bytes = dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
    const p = w + (n * (K / Q8_BLOCK) + Math.floor(k / Q8_BLOCK)) * bytes, j = k % Q8_BLOCK;
    if (dt === DT_Q8) return i8[p + 2 + j];
    return (j < 16 ? u8[p + 2 + j] & 15 : u8[p + 2 + j - 16] >>> 4) - 8;
  };
  /** The scale of the block holding element k of row n; its half holds d·2^e (e = wexp, abi.ts WEXP_SHIFT). */
  const blockScale = (w: number, dt: number, K: number, n: number, k: number, wexp: number): number => {
    const bytes = dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
    return halfToFloat(u16[(w + (n * (K / Q8_BLOCK) + Math.floor(k / Q8_BLOCK)) * bytes) >>> 1]) * 2 ** -wexp;
  };
  /** Element (n, k) of a weight matrix of format dt whose halves (f16) or block scales hold value·2^wexp. */
  const weight = (w: number, dt: number, K: number, wexp: number) => {
    const half = halves(), down = 2 ** -wexp;
    return (n: number, k: number): number => {
      if (dt === DT_F32) return f32[(w >>> 2) + n * K + k];
      if (dt === DT_F16) return half[u16[(w >>> 1) + n * K + k]] * down;
      return blockCode(w, dt, K, n, k) * blockScale(w, dt, K, n, k, wexp);
    };
  };
  /** matmul_q8 / matmul_q4: per block the exact integer dot product, times both scales, summed over blocks. */
  const matmulBlocks = (dt: number, xq: number, xs: number, w: number, bias: number, y: number, M: number, K: number, N: number, flags: number, ith: number, nth: number) => {
    views();
    const nb = K / Q8_BLOCK;
    const [n0, n1] = splitRange(N, ith, nth, 16);
    for (let m = 0; m < M; m++) for (let n = n0; n < n1; n++) {
      let acc = 0;
      for (let blk = 0; blk < nb; blk++) {
        let isum = 0;
        for (let j = 0; j < Q8_BLOCK; j++) isum += i8[xq + m * K + blk * Q8_BLOCK + j] * blockCode(w, dt, K, n, blk * Q8_BLOCK + j);
        acc += isum * f32[(xs >>> 2) + m * nb + blk] * blockScale(w, dt, K, n, blk * Q8_BLOCK, wexpOf(flags));
      }
      if (bias) acc += f32[(bias >>> 2) + n];
      acc = activate(acc, flags & 3);
      const o = (y >>> 2) + m * N + n;
      f32[o] = flags & FLAG_ACCUMULATE ? f32[o] + acc : acc;
    }
  };
  const matmul = (xAt: (m: number, k: number) => number, W: (n: number, k: number) => number,
    bias: number, y: number, M: number, K: number, N: number, flags: number, ith: number, nth: number) => {
    const [n0, n1] = splitRange(N, ith, nth, 16);
    for (let m = 0; m < M; m++) for (let n = n0; n < n1; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xAt(m, k) * W(n, k);
      if (bias) acc += f32[(bias >>> 2) + n];
      acc = activate(acc, flags & 3);
      const o = (y >>> 2) + m * N + n;
      f32[o] = flags & FLAG_ACCUMULATE ? f32[o] + acc : acc;
    }
  };
  /** Element i of a KV cache at p holding kvDt (DT_F32 or DT_F16) elements. */
  const cacheAt = (p: number, kvDt: number) => kvDt === DT_F16 ? (i: number) => halfToFloat(u16[p / 2 + i]) : (i: number) => f32[p / 4 + i];
  const attention = (q: number, qStride: number, kc: number, vc: number, kvDt: number, cap: number, out: number, outStride: number,
    B: number, H: number, T: number, D: number, S: number, past: number, causal: number, mask: number, scale: number,
    headMask: number, probs: number, _scratch: number, ith: number, nth: number) => {
    views();
    const K = cacheAt(kc, kvDt), V = cacheAt(vc, kvDt);
    const [r0, r1] = splitRange(B * H * T, ith, nth);
    const p = new Float64Array(S);
    for (let r = r0; r < r1; r++) {
      const b = Math.floor(r / (H * T)), h = Math.floor(r / T) % H, t = r % T;
      const qo = (q >>> 2) + (b * T + t) * qStride + h * D;
      const kvBase = (b * H + h) * cap * D;
      let mx = -Infinity;
      for (let j = 0; j < S; j++) {
        const visible = (!causal || j <= past + t) && (!mask || f32[(mask >>> 2) + b * S + j] !== 0);
        if (!visible) { p[j] = -Infinity; continue; }
        let s = 0;
        for (let d = 0; d < D; d++) s += f32[qo + d] * K(kvBase + j * D + d);
        p[j] = s * scale;
        if (p[j] > mx) mx = p[j];
      }
      let sum = 0;
      for (let j = 0; j < S; j++) { p[j] = p[j] === -Infinity ? 0 : Math.exp(p[j] - mx); sum += p[j]; }
      const hm = headMask ? f32[(headMask >>> 2) + h] : 1;
      for (let j = 0; j < S; j++) p[j] = sum > 0 ? (p[j] / sum) * hm : 0;
      const oo = (out >>> 2) + (b * T + t) * outStride + h * D;
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < S; j++) acc += p[j] * V(kvBase + j * D + d);
        f32[oo + d] = acc;
      }
      if (probs) for (let j = 0; j < S; j++) f32[(probs >>> 2) + ((b * H + h) * T + t) * S + j] = p[j];
    }
  };
  return {
    matmul_f32(x, w, bias, y, M, K, N, flags, ith, nth) {
      views();
      matmul((m, k) => f32[(x >>> 2) + m * K + k], weight(w, DT_F32, K, 0), bias, y, M, K, N, flags, ith, nth);
    },
    matmul_f16(x, w, bias, y, M, K, N, flags, ith, nth) {
      views();
      matmul((m, k) => f32[(x >>> 2) + m * K + k], weight(w, DT_F16, K, wexpOf(flags)), bias, y, M, K, N, flags, ith, nth);
    },
    quantize_q8(x, xq, xs, M, K, ith, nth) {
      views();
      const [m0, m1] = splitRange(M, ith, nth);
      const nb = K / Q8_BLOCK;
      for (let m = m0; m < m1; m++) for (let blk = 0; blk < nb; blk++) {
        let amax = 0;
        for (let k = 0; k < Q8_BLOCK; k++) amax = Math.max(amax, Math.abs(f32[(x >>> 2) + m * K + blk * Q8_BLOCK + k]));
        const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
        f32[(xs >>> 2) + m * nb + blk] = d;
        for (let k = 0; k < Q8_BLOCK; k++) {
          const v = Math.fround(f32[(x >>> 2) + m * K + blk * Q8_BLOCK + k] * id);
          i8[xq + m * K + blk * Q8_BLOCK + k] = Math.max(-127, Math.min(127, Math.round(v)));
        }
      }
    },
    matmul_q8: (xq, xs, w, bias, y, M, K, N, flags, ith, nth) => matmulBlocks(DT_Q8, xq, xs, w, bias, y, M, K, N, flags, ith, nth),
    matmul_q4: (xq, xs, w, bias, y, M, K, N, flags, ith, nth) => matmulBlocks(DT_Q4, xq, xs, w, bias, y, M, K, N, flags, ith, nth),
    layernorm(x, gamma, beta, y, rows, cols, eps, ith, nth) {
      views();
      const [r0, r1] = splitRange(rows, ith, nth);
      for (let r = r0; r < r1; r++) {
        const o = (x >>> 2) + r * cols;
        let mean = 0; for (let c = 0; c < cols; c++) mean += f32[o + c]; mean /= cols;
        let v = 0; for (let c = 0; c < cols; c++) v += (f32[o + c] - mean) ** 2; v /= cols;
        const inv = 1 / Math.sqrt(v + eps);
        for (let c = 0; c < cols; c++) f32[(y >>> 2) + r * cols + c] = (f32[o + c] - mean) * inv * f32[(gamma >>> 2) + c] + f32[(beta >>> 2) + c];
      }
    },
    embed(ids, pos, wte, wteDt, wpe, y, rows, E, ith, nth) {
      views();
      const [r0, r1] = splitRange(rows, ith, nth);
      const W = weight(wte, wteDt & 0xff, E, wexpOf(wteDt));
      for (let r = r0; r < r1; r++) {
        const id = i32[(ids >>> 2) + r], p = i32[(pos >>> 2) + r];
        for (let e = 0; e < E; e++) f32[(y >>> 2) + r * E + e] = W(id, e) + f32[(wpe >>> 2) + p * E + e];
      }
    },
    kv_store(src, srcStride, kCol, vCol, kc, vc, kvDt, B, T, H, D, cap, slot0, ith, nth) {
      views();
      const [r0, r1] = splitRange(B * T, ith, nth);
      const put = kvDt === DT_F16 ? (p: number, i: number, v: number) => { u16[p / 2 + i] = floatToHalf(v); } : (p: number, i: number, v: number) => { f32[p / 4 + i] = v; };
      for (let r = r0; r < r1; r++) {
        const b = Math.floor(r / T), t = r % T;
        for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) {
          const dst = ((b * H + h) * cap + slot0 + t) * D + d;
          put(kc, dst, f32[src / 4 + r * srcStride + kCol + h * D + d]);
          put(vc, dst, f32[src / 4 + r * srcStride + vCol + h * D + d]);
        }
      }
    },
    // the blockwise path has no probabilities to mask or return (abi.ts): its twin ignores them too
    attention_blockwise: (q, qS, kc, vc, kvDt, cap, out, oS, B, H, T, D, S, past, causal, mask, scale, _hm, _probs, scratch, ith, nth) =>
      attention(q, qS, kc, vc, kvDt, cap, out, oS, B, H, T, D, S, past, causal, mask, scale, 0, 0, scratch, ith, nth),
    attention_eager: attention,
    // the quantizers of ./quant.ts, one block at a time, on the values gathered from either layout
    quantize_weights(x, w, wStride, dt, rows, cols, conv1d, flag, ith, nth) {
      views();
      const quantize = dt === DT_Q8 ? quantizeQ8_0 : quantizeQ4_0, bytes = dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES;
      const values = new Float32Array(Q8_BLOCK), block = new Uint8Array(bytes);
      const put = (n: number, kb: number) => {
        if (!values.every(Number.isFinite)) i32[flag >>> 2] = 1;
        quantize(values, block); u8.set(block, w + n * wStride + kb * bytes);
      };
      if (conv1d) {
        const [n0, n1] = splitRange(cols, ith, nth, 4);
        for (let g = 0; g < rows / Q8_BLOCK; g++) for (let n = n0; n < n1; n++) {
          for (let j = 0; j < Q8_BLOCK; j++) values[j] = f32[(x >>> 2) + (g * Q8_BLOCK + j) * cols + n];
          put(n, g);
        }
        return;
      }
      const per = cols / Q8_BLOCK;
      const [b0, b1] = splitRange(rows * per, ith, nth, 4);
      for (let b = b0; b < b1; b++) {
        values.set(f32.subarray((x >>> 2) + b * Q8_BLOCK, (x >>> 2) + (b + 1) * Q8_BLOCK));
        put(Math.floor(b / per), b % per);
      }
    },
    place_halves(x, w, rows, cols, wStride, conv1d, ith, nth) {
      views();
      if (conv1d) {
        const [c0, c1] = splitRange(cols, ith, nth, 4);
        for (let r = 0; r < rows; r++) for (let c = c0; c < c1; c++) u16[(w >>> 1) + c * wStride + r] = u16[(x >>> 1) + r * cols + c];
        return;
      }
      const [i0, i1] = splitRange(rows * cols, ith, nth, 8);
      for (let i = i0; i < i1; i++) u16[(w >>> 1) + i] = u16[(x >>> 1) + i];
    },
    halves_scan(p, n, stride, out, ith, nth) {
      views();
      const [i0, i1] = splitRange(n, ith, nth, 1024);
      for (let i = i0; i < i1; i++) {
        const a = u16[(p + i * stride) >>> 1] & 0x7fff;
        if (a > i32[out >>> 2]) i32[out >>> 2] = a;
        if (a !== 0 && a < 0x400) i32[(out >>> 2) + 1] = 1;
      }
    },
    // through the value: halfToFloat, times 2^e, back with floatToHalf (exact: the product is a half)
    halves_shift(p, n, stride, e, ith, nth) {
      views();
      const [i0, i1] = splitRange(n, ith, nth, 1024);
      for (let i = i0; i < i1; i++) { const o = (p + i * stride) >>> 1; u16[o] = floatToHalf(halfToFloat(u16[o]) * 2 ** e); }
    },
    // element by element, in the order of either layout; f32 bits copied as they are (a NaN's too)
    place_weights(x, w, dt, rows, cols, wStride, conv1d, flag, ith, nth) {
      views();
      const put = (i: number, o: number) => {
        const v = f32[(x >>> 2) + i];
        if (!Number.isFinite(v)) i32[flag >>> 2] = 1;
        if (dt === DT_F32) i32[(w >>> 2) + o] = i32[(x >>> 2) + i];
        else u16[(w >>> 1) + o] = floatToHalf(v);
      };
      if (conv1d) {
        const [c0, c1] = splitRange(cols, ith, nth, 4);
        for (let r = 0; r < rows; r++) for (let c = c0; c < c1; c++) put(r * cols + c, c * wStride + r);
        return;
      }
      const [i0, i1] = splitRange(rows * cols, ith, nth, 8);
      for (let i = i0; i < i1; i++) put(i, i);
    },
  };
}

export { attentionScratchBytes };
