// Fuzz tests of the wasm kernels against the TypeScript reference kernels (src/runtime/reference.ts), on every
// build variant this engine validates (the relaxed-SIMD builds run in a child `node --experimental-wasm-relaxed-simd`
// when this Node needs the flag). Every kernel also runs with nth = 2 and 3 (all ith in sequence) and must give
// the same bytes as nth = 1, and must not write outside its outputs (guard bytes after every output).
//
// Tolerances (per element, |got - want| ≤ bound):
//   matmul f32/f16:    6e-7·L (~10 f32 ulps of L) where L = Σ_k |x_k w_k| + |bias| (+ |y| when accumulating), the
//                      size of what is summed, times the activation's local gain (|act'| ≤ 1.13 for gelu). The
//                      largest error seen over the fuzz is ~2e-7·L.
//   matmul q8/q4:      6e-7·L with L = Σ_blocks |isum · xscale · wscale| + |bias| (+ |y|).
//   activations:       1e-6·|want| + 2.4e-7·|x·act'(x)| (K = 1 matmuls, so the result is act(x) of exact x; the
//                      second term is the function's own sensitivity to a 2-ulp change of its argument).
//   layernorm:         2e-6·(|x - mean|·inv·|gamma|) + 2e-6·|beta| + 1e-7·|gamma|.
//   attention:         1.5e-6·max|v| (of that batch row and head, × |headMask|) per output (seen: ≤ 4e-7·max|v|);
//                      probs 2e-6·|p| + 1e-8.
//   kv_store (f32 and f16 caches), embed (f32, f16, q8, q4), quantize_q8: exact (bit-identical).
//   quantize_weights: byte-identical to the TypeScript quantizers (src/runtime/quant.ts, ggml's reference rounding)
//                      on adversarial blocks (ties, f16 scale overflow/underflow, inverse overflow, zeros, NaN/inf).
//   place_weights:     byte-identical to its twin (f32 bits copied, halves as floatToHalf), NaN/inf flag the same.
//   halves_scan/shift: the same largest magnitude and subnormal flag as the twin; every finite half times 2^e exactly;
//                      matmul and embed on halves stored ·2^e (their flags carrying e) bit-identical to e = 0.
// The attention kernels run on f32 and f16 caches: the reference reads the same halves exactly, so the bounds
// are the same (the f32 → f16 rounding itself is kv_store's, checked bit for bit against an independent oracle).
// Negative controls check that these bounds catch small real bugs (a dropped K tail term, an off-by-one causal
// limit, tanh-gelu in place of erf-gelu, one quantum in the last q8/q4 block).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ACT_GELU_ERF, ACT_GELU_TANH, ACT_NONE, ACT_RELU, DT_F16, DT_F32, DT_Q4, DT_Q8, FLAG_ACCUMULATE, Q8_BLOCK,
  attentionScratchBytes, wexpBits, type KernelABI,
} from '../src/runtime/abi.js';
import { Q4_0_BYTES, Q8_0_BYTES, quantizeQ4_0, quantizeQ8_0 } from '../src/runtime/quant.js';
import { activate, createReferenceKernels, halfToFloat } from '../src/runtime/reference.js';
import { floatToHalf as roundToHalf } from '../src/io/half.js';
import { RESERVED_LOW_BYTES, compileVariant, createMemory, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';

const ALL: WasmVariant[] = ['simd', 'simd-threads', 'relaxed', 'relaxed-threads'];
// Every build is tested unless GPT2WASM_SKIP_BUILDS names it (e.g. "relaxed,relaxed-threads" on an engine without
// relaxed SIMD); a build that neither validates nor is skipped fails the run. KERNEL_TEST_VARIANTS is set only
// for the child run under --experimental-wasm-relaxed-simd below.
const skipped = (process.env.GPT2WASM_SKIP_BUILDS ?? '').split(',').map((v) => v.trim()).filter(Boolean);
for (const v of skipped) if (!ALL.includes(v as WasmVariant)) throw new Error(`GPT2WASM_SKIP_BUILDS: unknown build ${JSON.stringify(v)} (builds: ${ALL.join(', ')})`);
const only = process.env.KERNEL_TEST_VARIANTS?.split(',') as WasmVariant[] | undefined;
const wanted = (only ?? ALL).filter((v) => !skipped.includes(v));
const validates = (v: WasmVariant) => { try { return WebAssembly.validate(wasmBytes(v)); } catch { return false; } };
const variants = wanted.filter(validates);
const GUARD = 64;
const MEM_BYTES = 64 << 20;

// ---------------------------------------------------------------------------------------------------------
// deterministic random numbers
function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(a: T[]): T => a[Math.floor(next() * a.length)],
    normal: () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next()),
  };
}
type Rng = ReturnType<typeof rng>;

function floatToHalf(v: number): number {
  // round-to-nearest-even f32 value -> half bits (finite inputs), enough to make test weights
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -24 / 2) return sign;
  let e = Math.floor(Math.log2(a));
  if (e < -14) { const m = Math.round(a / 2 ** -24); return sign | m; }
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) { m = 0; e++; }
  return sign | ((e + 15) << 10) | m;
}

// ---------------------------------------------------------------------------------------------------------
// Q8_0 / Q4_0 weight blocks (src/runtime/quant.ts), written and read here independently of the reference kernels
const isBlock = (dt: number) => dt === DT_Q8 || dt === DT_Q4;
const blockBytes = (dt: number) => (dt === DT_Q8 ? Q8_0_BYTES : Q4_0_BYTES);
/** Random blocks for `rows` rows of K: codes anywhere in the format's range (-128..127, nibbles 0..15), normal f16
 *  scales in [lo, lo + span) with random signs for q4 (its scales are negative when a block's max is positive). */
function randomBlocks(r: Rng, dt: number, rows: number, K: number, lo = 0.01, span = 0.02): Uint8Array {
  const bb = blockBytes(dt), nb = rows * K / Q8_BLOCK, out = new Uint8Array(nb * bb);
  for (let b = 0; b < nb; b++) {
    const h = floatToHalf((dt === DT_Q4 && r.next() < 0.5 ? -1 : 1) * (lo + r.next() * span));
    out[b * bb] = h & 0xff; out[b * bb + 1] = h >>> 8;
    for (let j = 2; j < bb; j++) out[b * bb + j] = r.int(0, 255);
  }
  return out;
}
/** Code of element k of row n (int8, or nibble - 8) and the f32 scale of its block. */
function blockCode(bytes: Uint8Array, dt: number, K: number, n: number, k: number): number {
  const p = (n * K / Q8_BLOCK + Math.floor(k / Q8_BLOCK)) * blockBytes(dt), j = k % Q8_BLOCK;
  if (dt === DT_Q8) return (bytes[p + 2 + j] << 24) >> 24;
  return (j < 16 ? bytes[p + 2 + j] & 15 : bytes[p + 2 + j - 16] >>> 4) - 8;
}
function blockScale(bytes: Uint8Array, dt: number, K: number, n: number, k: number): number {
  const p = (n * K / Q8_BLOCK + Math.floor(k / Q8_BLOCK)) * blockBytes(dt);
  return halfToFloat(bytes[p] | (bytes[p + 1] << 8));
}

// ---------------------------------------------------------------------------------------------------------
// one memory, a bump arena above RESERVED_LOW_BYTES, the wasm kernels and the reference kernels on it
class Harness {
  memory: WebAssembly.Memory;
  k: KernelABI;
  kt: KernelABI;
  setThread: (t: number) => void;
  ref: KernelABI;
  top = RESERVED_LOW_BYTES;
  constructor(public variant: WasmVariant) {
    this.memory = createMemory(MEM_BYTES, variant.endsWith('threads'));
    this.k = instantiateKernels(compileVariant(variant), this.memory);
    // one more instance on the same memory, to run kernels as pool thread t >= 1 (its own scratch slots)
    const other = new WebAssembly.Instance(compileVariant(variant), { env: { memory: this.memory } });
    this.kt = other.exports as unknown as KernelABI;
    this.setThread = other.exports.set_thread_index as (t: number) => void;
    this.ref = createReferenceKernels(this.memory);
  }
  /** Kernels of an instance that is thread t of a pool (t picks the per-thread scratch, not the chunk). */
  thread(t: number): KernelABI { this.setThread(t); return this.kt; }
  reset() { this.top = RESERVED_LOW_BYTES; }
  alloc(bytes: number): number {
    const p = this.top;
    this.top = (this.top + bytes + GUARD + 63) & ~63;
    if (this.top > this.memory.buffer.byteLength) throw new Error('test arena exhausted');
    new Uint8Array(this.memory.buffer, p + bytes, GUARD).fill(0xa5);
    return p;
  }
  f32(p: number, n: number) { return new Float32Array(this.memory.buffer, p, n); }
  bytes(p: number, n: number) { return new Uint8Array(this.memory.buffer, p, n); }
  guardOk(p: number, bytes: number) { return new Uint8Array(this.memory.buffer, p + bytes, GUARD).every((b) => b === 0xa5); }
  putF32(data: ArrayLike<number>) { const p = this.alloc(data.length * 4); this.f32(p, data.length).set(data); return p; }
  copy(p: number, bytes: number) { const q = this.alloc(bytes); this.bytes(q, bytes).set(this.bytes(p, bytes)); return q; }
}

/** A fresh q8/q4 matmul case: random x [M, K] quantized (xq, xsc), random blocks w [N, K], a bias. */
function blockCase(h: Harness, r: Rng, dt: number, M: number, K: number, N: number) {
  h.reset();
  const x = h.putF32(Array.from({ length: M * K }, () => r.normal()));
  const blocks = randomBlocks(r, dt, N, K);
  const w = h.alloc(blocks.length);
  h.bytes(w, blocks.length).set(blocks);
  const xq = h.alloc(M * K), xsc = h.alloc(M * K / 32 * 4);
  h.k.quantize_q8(x, xq, xsc, M, K, 0, 1);
  const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
  return { x, w, xq, xsc, bias };
}

/** Runs fn(ith, nth) for nth = 1, 2, 3 on three copies of the output region (initialised from `init`), checks the
 *  guards and that all three are byte-identical; returns the nth = 1 output pointer. */
function runSplits(h: Harness, init: number, bytes: number, fn: (out: number, ith: number, nth: number) => void, what: string): number {
  const outs: number[] = [];
  for (const nth of [1, 2, 3]) {
    const o = h.copy(init, bytes);
    for (let ith = 0; ith < nth; ith++) fn(o, ith, nth);
    assert.ok(h.guardOk(o, bytes), `${what}: wrote past its output (nth=${nth})`);
    outs.push(o);
  }
  const a = h.bytes(outs[0], bytes);
  for (const o of outs.slice(1)) {
    const b = h.bytes(o, bytes);
    let i = 0;
    while (i < bytes && a[i] === b[i]) i++;
    assert.ok(i === bytes, `${what}: result differs between nth=1 and another split at byte ${i}`);
  }
  return outs[0];
}

/** Largest (|got - want| - bound_i), with the index; ok when ≤ 0. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, bound: (i: number) => number) {
  let w = -Infinity, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) - bound(i);
    const ex = Number.isNaN(e) ? (Number.isNaN(got[i]) && Number.isNaN(want[i]) ? -1 : Infinity) : e;
    if (ex > w) { w = ex; at = i; }
  }
  return { excess: w, at };
}
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, bound: (i: number) => number, what: string) {
  const { excess, at } = worst(got, want, bound);
  assert.ok(excess <= 0, `${what}: element ${at} got ${got[at]} want ${want[at]} (bound ${bound(at)})`);
}
function expectExact(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  for (let i = 0; i < want.length; i++) {
    if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])))) {
      assert.unreachable(`${what}: element ${i} got ${got[i]} want ${want[i]}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// matmul
const ACTS = [ACT_NONE, ACT_GELU_TANH, ACT_GELU_ERF, ACT_RELU];
const ACT_GAIN = 1.13; // max |d act / dx| of the gelus

interface MatCase { M: number; K: number; N: number; flags: number; bias: boolean; dt: number }

/** Sets up a matmul case, runs the wasm kernel for nth = 1..3 and the reference; returns what to compare. */
function matmulCase(h: Harness, r: Rng, c: MatCase, opts: { perturbRef?: (x: Float32Array, w: number[]) => void } = {}) {
  const { M, K, N, flags, dt } = c;
  h.reset();
  const xs = Array.from({ length: M * K }, () => r.normal());
  let wv = Array.from({ length: N * K }, () => r.normal() * 0.5);
  let wp: number, wBlocks: Uint8Array | null = null;
  const nb = K / Q8_BLOCK;
  if (dt === DT_F16) {
    const hv = wv.map(floatToHalf);
    wv = hv.map(halfToFloat);
    wp = h.alloc(N * K * 2);
    new Uint16Array(h.memory.buffer, wp, N * K).set(hv);
  } else if (isBlock(dt)) {
    wBlocks = randomBlocks(r, dt, N, K);
    wp = h.alloc(wBlocks.length);
    h.bytes(wp, wBlocks.length).set(wBlocks);
  } else {
    wp = h.putF32(wv);
  }
  const x = h.putF32(xs);
  const bias = c.bias ? h.putF32(Array.from({ length: N }, () => r.normal())) : 0;
  const yInit = h.putF32(Array.from({ length: M * N }, () => r.normal()));
  const yBytes = M * N * 4;
  let xq = 0, xsc = 0;
  if (isBlock(dt)) {
    xq = h.alloc(M * K); xsc = h.alloc(M * nb * 4);
    h.ref.quantize_q8(x, xq, xsc, M, K, 0, 1);
  }
  const call = (k: KernelABI, out: number, ith: number, nth: number) => {
    if (dt === DT_F32) k.matmul_f32(x, wp, bias, out, M, K, N, flags, ith, nth);
    else if (dt === DT_F16) k.matmul_f16(x, wp, bias, out, M, K, N, flags, ith, nth);
    else if (dt === DT_Q8) k.matmul_q8(xq, xsc, wp, bias, out, M, K, N, flags, ith, nth);
    else k.matmul_q4(xq, xsc, wp, bias, out, M, K, N, flags, ith, nth);
  };
  const got = runSplits(h, yInit, yBytes, (o, ith, nth) => call(h.k, o, ith, nth), `matmul dt=${dt} ${M}x${K}x${N} flags=${flags}`);
  if (opts.perturbRef) {
    opts.perturbRef(h.f32(x, M * K), wv);
    if (dt === DT_F32) h.f32(wp, N * K).set(wv);
    if (isBlock(dt)) h.ref.quantize_q8(x, xq, xsc, M, K, 0, 1);
  }
  const want = h.copy(yInit, yBytes);
  call(h.ref, want, 0, 1);
  // magnitude of what each output sums
  const Y0 = h.f32(yInit, M * N).slice();
  const bv = bias ? h.f32(bias, N).slice() : null;
  const L = new Float64Array(M * N);
  const xv = h.f32(x, M * K), xqv = new Int8Array(h.memory.buffer, xq, M * K), xsv = h.f32(xsc, M * nb);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    if (wBlocks) {
      for (let b = 0; b < nb; b++) {
        let is = 0;
        for (let k = 0; k < Q8_BLOCK; k++) is += xqv[m * K + b * Q8_BLOCK + k] * blockCode(wBlocks, dt, K, n, b * Q8_BLOCK + k);
        s += Math.abs(is * xsv[m * nb + b] * blockScale(wBlocks, dt, K, n, b * Q8_BLOCK));
      }
    } else for (let k = 0; k < K; k++) s += Math.abs(xv[m * K + k] * wv[n * K + k]);
    if (bv) s += Math.abs(bv[n]);
    if (flags & 3) s *= ACT_GAIN;
    if (flags & FLAG_ACCUMULATE) s += Math.abs(Y0[m * N + n]);
    L[m * N + n] = s;
  }
  return { got: h.f32(got, M * N), want: h.f32(want, M * N), L };
}

function randomShape(r: Rng, dt: number): MatCase {
  const M = r.pick([1, 1, 2, 3, 4, 5, 7, 9, 13]);
  const K = isBlock(dt) ? r.pick([32, 64, 96, 160]) : r.pick([1, 2, 3, 4, 5, 7, 8, 17, 31, 64, 67, 130]);
  const N = r.pick([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 47, 70]);
  const flags = r.pick(ACTS) | (r.next() < 0.4 ? FLAG_ACCUMULATE : 0);
  return { M, K, N, flags, bias: r.next() < 0.6, dt };
}

const MATMUL_RTOL = 6e-7;

// ---------------------------------------------------------------------------------------------------------
// quantize_weights

/** 32 values from one of the families that reach every branch of ggml's reference quantizers: plain normals at
 *  any scale; exact ties of the rounding (codes k + 1/2 under a power-of-two scale); the largest magnitude twice
 *  with both signs (q4 takes the first); scales that overflow the f16 scale or land on its rounding edge, whose
 *  f16 is subnormal or zero, or whose f32 inverse overflows (d subnormal); zeros and -0; f32 subnormals; NaN and
 *  ±Infinity (which the loader rejects before quantizing, but the kernel still mirrors). */
function adversarialBlock(r: Rng, dt: number): Float32Array {
  const v = new Float32Array(Q8_BLOCK);
  const top = dt === DT_Q8 ? 127 : 8, pow2 = 2 ** r.int(-20, 20);
  const family = r.int(0, 11);
  for (let j = 0; j < Q8_BLOCK; j++) v[j] = r.normal();
  switch (family) {
    case 0: { const s = 10 ** r.int(-40, 30); for (let j = 0; j < Q8_BLOCK; j++) v[j] *= s; break; }
    case 1: // ties: with amax = top·2^e, d = 2^e exactly and x·id = k + 1/2
      for (let j = 0; j < Q8_BLOCK; j++) v[j] = (r.int(-top, top - 1) + 0.5) * pow2;
      v[r.int(0, 31)] = (r.next() < 0.5 ? top : -top) * pow2;
      break;
    case 2: { // ties of the largest magnitude, both signs, and a tie of q4's +8.5 (x·id = -8.5 + k)
      const m = r.normal() * 3;
      v[r.int(0, 15)] = m; v[r.int(16, 31)] = -m;
      break;
    }
    case 3: { const s = r.pick([65504 * top, 65520 * top, 65519 * top, 65536 * top, 1e7, 3e38]); for (let j = 0; j < Q8_BLOCK; j++) v[j] = (v[j] / 4) * s; v[r.int(0, 31)] = r.pick([1, -1]) * s; break; }
    case 4: { const s = r.pick([2 ** -24 * top, 2 ** -25 * top, 3 * 2 ** -26 * top, 2 ** -14 * top, 1e-6, 1e-9]); for (let j = 0; j < Q8_BLOCK; j++) v[j] *= s; break; }
    case 5: { const s = r.pick([1e-37, 1e-38, 4e-39, 2e-39, 1e-41, 1e-44, 1e-45]); for (let j = 0; j < Q8_BLOCK; j++) v[j] *= s; break; }
    case 6: v.fill(0); if (r.next() < 0.5) for (let j = 0; j < Q8_BLOCK; j += r.int(1, 4)) v[j] = -0; break;
    case 7: for (let j = 0; j < Q8_BLOCK; j++) if (r.next() < 0.7) v[j] = 0; break;
    case 8: v[r.int(0, 31)] = r.pick([NaN, Infinity, -Infinity]); if (r.next() < 0.5) v[r.int(0, 31)] = r.pick([NaN, Infinity, -Infinity]); break;
    case 9: for (let j = 0; j < Q8_BLOCK; j++) v[j] = r.int(-3, 3) * 2 ** r.int(-3, 3); break; // many equal magnitudes
    case 10: for (let j = 0; j < Q8_BLOCK; j++) v[j] = (r.next() < 0.5 ? -1 : 1) * r.int(0, 2 ** 23) * 2 ** -149; break; // f32 subnormals
    default: break;
  }
  return v;
}

for (const variant of variants) {
  test(`[${variant}] matmul f32/f16/q8/q4 on fuzzed shapes, nth 1..3 identical`, () => {
    const h = new Harness(variant);
    const r = rng(1234);
    for (const dt of [DT_F32, DT_F16, DT_Q8, DT_Q4]) {
      const cases: MatCase[] = [];
      for (let i = 0; i < 60; i++) cases.push(randomShape(r, dt));
      // shapes that cross the GEMM M-panel blocking (512 KiB of f32 x rows, 256 KiB of q8 rows) and long K tails
      if (isBlock(dt)) cases.push({ M: 70, K: 4096, N: 19, flags: ACT_GELU_TANH | FLAG_ACCUMULATE, bias: true, dt });
      else cases.push({ M: 37, K: 4099, N: 35, flags: ACT_GELU_TANH | FLAG_ACCUMULATE, bias: true, dt });
      cases.push({ M: 6, K: isBlock(dt) ? 4096 : 4099, N: 21, flags: ACT_NONE, bias: false, dt });
      // q4 GEMM rows too long for the low scratch slot: the direct Q4_0 tile instead of the unpacked one
      if (dt === DT_Q4) cases.push({ M: 5, K: 16384, N: 9, flags: ACT_RELU, bias: true, dt });
      if (isBlock(dt)) for (const M of [1, 5]) cases.push({ M, K: 10240, N: 13, flags: ACT_NONE, bias: false, dt }, { M, K: 24576, N: 7, flags: ACT_NONE, bias: true, dt });
      for (const c of cases) {
        const { got, want, L } = matmulCase(h, r, c);
        expectClose(got, want, (i) => MATMUL_RTOL * L[i] + 1e-30, `${variant} matmul dt=${dt} ${c.M}x${c.K}x${c.N} flags=${c.flags} bias=${c.bias}`);
      }
    }
  });

  test(`[${variant}] matmul rows do not depend on M (GEMV and GEMM paths agree bit for bit)`, () => {
    const h = new Harness(variant);
    const r = rng(99);
    for (const dt of [DT_F32, DT_F16, DT_Q8, DT_Q4]) {
      const K = isBlock(dt) ? 96 : 83, N = 37, M = 9;
      h.reset();
      const x = h.putF32(Array.from({ length: M * K }, () => r.normal()));
      const blocks = isBlock(dt) ? randomBlocks(r, dt, N, K) : null;
      const w = h.alloc(blocks ? blocks.length : N * K * (dt === DT_F32 ? 4 : 2));
      if (dt === DT_F32) h.f32(w, N * K).set(Array.from({ length: N * K }, () => r.normal()));
      else if (dt === DT_F16) new Uint16Array(h.memory.buffer, w, N * K).set(Array.from({ length: N * K }, () => floatToHalf(r.normal())));
      else h.bytes(w, blocks!.length).set(blocks!);
      const xq = h.alloc(M * K), xsc = h.alloc(M * K / 32 * 4);
      if (isBlock(dt)) h.k.quantize_q8(x, xq, xsc, M, K, 0, 1);
      const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
      const run = (m0: number, rows: number) => {
        const y = h.alloc(rows * N * 4);
        const xr = x + m0 * K * 4;
        if (dt === DT_F32) h.k.matmul_f32(xr, w, bias, y, rows, K, N, ACT_GELU_ERF, 0, 1);
        else if (dt === DT_F16) h.k.matmul_f16(xr, w, bias, y, rows, K, N, ACT_GELU_ERF, 0, 1);
        else if (dt === DT_Q8) h.k.matmul_q8(xq + m0 * K, xsc + m0 * (K / 32) * 4, w, bias, y, rows, K, N, ACT_GELU_ERF, 0, 1);
        else h.k.matmul_q4(xq + m0 * K, xsc + m0 * (K / 32) * 4, w, bias, y, rows, K, N, ACT_GELU_ERF, 0, 1);
        return h.f32(y, rows * N).slice();
      };
      const all = run(0, M);
      for (const [m0, rows] of [[0, 1], [3, 1], [8, 1], [2, 2], [4, 3], [1, 5]]) {
        const part = run(m0, rows);
        expectExact(part, all.subarray(m0 * N, (m0 + rows) * N), `dt=${dt} rows ${m0}..${m0 + rows}`);
      }
      if (dt === DT_F16) {
        // an |x| ≥ 2^15 anywhere switches matmul_f16 to its fully-converting path: other rows keep their bits
        h.f32(x, M * K)[5] = 40000;
        const big = run(0, M);
        expectExact(big.subarray(N), all.subarray(N), 'f16 rows 1.. with a large x in row 0');
        const want = h.alloc(M * N * 4);
        h.ref.matmul_f16(x, w, bias, want, M, K, N, ACT_GELU_ERF, 0, 1);
        const wv = h.f32(want, M * N), xv = h.f32(x, K), hv = new Uint16Array(h.memory.buffer, w, N * K), bv = h.f32(bias, N);
        const L = Array.from({ length: N }, (_, n) => {
          let l = Math.abs(bv[n]);
          for (let k = 0; k < K; k++) l += Math.abs(xv[k] * halfToFloat(hv[n * K + k]));
          return l * ACT_GAIN;
        });
        expectClose(big.subarray(0, N), wv.subarray(0, N), (n) => MATMUL_RTOL * L[n], 'f16 row 0 with |x| = 40000');
      }
    }
  });

  test(`[${variant}] q8/q4 GEMM panels of many row pairs, odd tails and split N equal the GEMV bit for bit`, () => {
    // K > 1440: the packed tile runs every row pair of an M-panel in one call (the panel is 256 KiB of x codes: 64
    // rows at K = 4096, so M = 67 is a 64-row panel and a 3-row one: one pair and a single row; K = 1472 is the
    // shortest row it takes). K ≤ 1440: the splat tile, eight x rows by four weight
    // rows, on M-panels of as many octs of x rows as fit beside a weight panel (4 at K = 768, so M = 71 is panels
    // of 24, 24 and 23 rows, the last oct 7 rows; 2 at K = 1440: M = 21 is panels of 16 and 5); N = 13 and 7 leave
    // a group of one and three weight rows; K = 32 is a one-block tile. Every row must have the GEMV's bits at nth
    // 1..3, and the whole matrix those of a thread without a scratch slot (the direct tile).
    const h = new Harness(variant);
    const r = rng(8128);
    for (const dt of [DT_Q8, DT_Q4]) {
      for (const [M, K, N] of [[67, 4096, 13], [71, 768, 13], [11, 32, 18], [6, 768, 8], [21, 1440, 7], [21, 1472, 7], [3, 1024, 6]]) {
        const { w, xq, xsc, bias } = blockCase(h, r, dt, M, K, N);
        const run = (m0: number, rows: number, nth: number) => {
          const y = h.alloc(rows * N * 4);
          for (let ith = 0; ith < nth; ith++) {
            (dt === DT_Q8 ? h.k.matmul_q8 : h.k.matmul_q4)(xq + m0 * K, xsc + m0 * (K / 32) * 4, w, bias, y, rows, K, N, ACT_GELU_TANH, ith, nth);
          }
          return h.f32(y, rows * N).slice();
        };
        const rows = Array.from({ length: M }, (_, m) => run(m, 1, 1));
        for (const nth of [1, 2, 3]) {
          const all = run(0, M, nth);
          for (let m = 0; m < M; m++) expectExact(all.subarray(m * N, (m + 1) * N), rows[m], `dt=${dt} ${M}x${K}x${N} nth=${nth} row ${m}`);
        }
        const y = h.alloc(M * N * 4), noSlot = h.thread(15); // thread LOW_SLOTS = 15
        (dt === DT_Q8 ? noSlot.matmul_q8 : noSlot.matmul_q4)(xq, xsc, w, bias, y, M, K, N, ACT_GELU_TANH, 0, 1);
        expectExact(h.f32(y, M * N), run(0, M, 1), `dt=${dt} ${M}x${K}x${N}: thread 15 (no slot)`);
      }
    }
  });

  test(`[${variant}] q8/q4 GEMM on either side of the packed-panel limit (K ≤ 7200 packed, longer direct) equals the GEMV bit for bit`, () => {
    // the GEMM packs four weight rows per M-panel into the thread's 60 KiB scratch slot (272 bytes per block) when
    // they fit and otherwise runs the direct tile; both must give every row the GEMV's bits
    const h = new Harness(variant);
    const r = rng(4711);
    for (const dt of [DT_Q8, DT_Q4]) {
      for (const K of [7200, 7232]) {
        const M = 5, N = 9;
        const { w, xq, xsc, bias } = blockCase(h, r, dt, M, K, N);
        const run = (m0: number, rows: number) => {
          const y = h.alloc(rows * N * 4);
          (dt === DT_Q8 ? h.k.matmul_q8 : h.k.matmul_q4)(xq + m0 * K, xsc + m0 * (K / 32) * 4, w, bias, y, rows, K, N, ACT_GELU_TANH, 0, 1);
          return h.f32(y, rows * N).slice();
        };
        const all = run(0, M);
        for (let m = 0; m < M; m++) expectExact(run(m, 1), all.subarray(m * N, (m + 1) * N), `dt=${dt} K=${K} row ${m}`);
      }
    }
  });

  test(`[${variant}] f16 GEMM on either side of the f32-panel limit (K ≤ 3840 converted once per M block, longer or thread ≥ 15 direct) equals the GEMV bit for bit`, () => {
    const h = new Harness(variant);
    const r = rng(3840);
    for (const K of [3840, 3844, 150]) for (const e of [0, 10]) {
      const M = 5, N = 9;
      h.reset();
      const x = h.putF32(Array.from({ length: M * K }, () => r.normal()));
      const w = h.alloc(N * K * 2);
      new Uint16Array(h.memory.buffer, w, N * K).set(Array.from({ length: N * K }, () => (r.next() < 0.05 ? r.int(1, 0x3ff) : floatToHalf(r.normal() * 0.01))));
      if (e) h.k.halves_shift(w, N * K, 2, e, 0, 1);
      const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
      const run = (k: KernelABI, m0: number, rows: number) => {
        const y = h.alloc(rows * N * 4);
        k.matmul_f16(x + m0 * K * 4, w, bias, y, rows, K, N, ACT_GELU_TANH | wexpBits(e), 0, 1);
        return h.f32(y, rows * N).slice();
      };
      const all = run(h.k, 0, M);
      expectExact(run(h.thread(15), 0, M), all, `f16 GEMM K=${K} e=${e}: thread 15 (no slot)`);
      for (let m = 0; m < M; m++) expectExact(run(h.k, m, 1), all.subarray(m * N, (m + 1) * N), `f16 GEMM K=${K} e=${e} row ${m}`);
    }
  });

  test(`[${variant}] relaxed_dot_exact: 1 in the relaxed builds (every engine these tests run on has an exact relaxed dot), 0 in the plain ones`, () => {
    // the relaxed Q4_0 tiles give the plain tiles' bits, so only this shows that they run; pool thread 1 checks
    // its own engine in its own instance
    const h = new Harness(variant);
    const want = variant.startsWith('relaxed') ? 1 : 0;
    assert.is(h.k.relaxed_dot_exact?.(), want);
    assert.is(h.thread(1).relaxed_dot_exact?.(), want);
  });

  test(`[${variant}] q8/q4 GEMV: prepared activations and 2^112-shifted scales give the generic tile's bits at every activation scale`, () => {
    // The q4 (q8) GEMV runs a prepared-activation tile when every block scale xs is 0 or in [2^-126, 2) ([2^-126, 0.5)),
    // else the generic tile; a thread without a scratch slot (t = LOW_SLOTS) always runs the generic one. Both must give the
    // bits of the GEMM path (unpacked Q8_0 tile) and stay within the reference's bound. Weight scales include
    // zeros, subnormal halves and the largest half.
    const h = new Harness(variant);
    const r = rng(4242);
    const LOW_SLOTS = 15;
    // xs = amax/127 about 0.03, 0.5 (both sides of 0.5: q8's limit), 1.5 (both sides of 2: q4's), tiny, > 2, subnormal
    const xScales = [1, 15, 50, 1e-30, 1e3, 1e-39];
    for (const dt of [DT_Q4, DT_Q8]) for (const K of [32, 96, 768, 3072]) for (const N of [16, 37, 70]) for (const sc of xScales) {
      const BB = blockBytes(dt), mm = dt === DT_Q4 ? h.k.matmul_q4 : h.k.matmul_q8;
      h.reset();
      const M = 3;
      const xv = Array.from({ length: M * K }, () => r.normal() * sc);
      if (sc === 50) { xv[K + 5] = 253.9; xv[2 * K + 7] = 254.1; } // row 1: a block with xs just under 2; row 2: just over
      if (sc === 15) { xv[K + 5] = 63.4; xv[2 * K + 7] = 63.6; } // the same about 0.5
      const x = h.putF32(xv);
      const blocks = randomBlocks(r, dt, N, K);
      // q8: some codes -128 (a GGUF file may hold them; ggml's quantizer never writes them), the largest |isum|
      if (dt === DT_Q8) for (let i = 0; i < blocks.length; i += BB) if (r.next() < 0.1) blocks.fill(0x80, i + 2, i + BB);
      for (let b = 0; b < blocks.length; b += BB) {
        const u = r.next();
        const hv = u < 0.05 ? 0 : u < 0.1 ? r.int(1, 0x3ff) | (r.next() < 0.5 ? 0x8000 : 0) : u < 0.12 ? 0x7bff : -1;
        if (hv >= 0) { blocks[b] = hv & 0xff; blocks[b + 1] = hv >>> 8; }
      }
      const w = h.alloc(blocks.length);
      h.bytes(w, blocks.length).set(blocks);
      const xq = h.alloc(M * K), xsc = h.alloc(M * K / 32 * 4);
      h.k.quantize_q8(x, xq, xsc, M, K, 0, 1);
      const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
      const y0 = h.putF32(Array.from({ length: M * N }, () => r.normal()));
      const flags = ACT_GELU_TANH | FLAG_ACCUMULATE;
      const gemm = h.copy(y0, M * N * 4);
      mm(xq, xsc, w, bias, gemm, M, K, N, flags, 0, 1);
      const all = h.f32(gemm, M * N).slice();
      const want = h.copy(y0, M * N * 4);
      (dt === DT_Q4 ? h.ref.matmul_q4 : h.ref.matmul_q8)(xq, xsc, w, bias, want, M, K, N, flags, 0, 1);
      const nb = K / 32, xqv = new Int8Array(h.memory.buffer, xq, M * K), xsv = h.f32(xsc, M * nb), bv = h.f32(bias, N), Y0 = h.f32(y0, M * N);
      const L = Array.from({ length: M * N }, (_, i) => {
        const m = Math.floor(i / N), n = i % N;
        let s = Math.abs(bv[n]);
        for (let b = 0; b < nb; b++) {
          let is = 0;
          for (let k = 0; k < 32; k++) is += xqv[m * K + b * 32 + k] * blockCode(blocks, dt, K, n, b * 32 + k);
          s += Math.abs(is * xsv[m * nb + b] * blockScale(blocks, dt, K, n, b * 32));
        }
        return s * ACT_GAIN + Math.abs(Y0[i]);
      });
      const what = `${dt === DT_Q4 ? 'q4' : 'q8'} GEMV K=${K} N=${N} x scale ${sc}`;
      // against the float64 reference the rigorous bound of an f32 sum of nb block terms (two roundings each, then
      // bias and activation), not the suite's ~10-ulp MATMUL_RTOL: with the largest half as some blocks' scale one
      // block dominates L and the rounding errors of the adds after it do not average out (seen: 7 ulps at K = 3072).
      // The bit-for-bit checks below are what this test is about.
      const rtol = Math.max(MATMUL_RTOL, (nb + 4) * 2 ** -24);
      expectClose(all, h.f32(want, M * N), (i) => rtol * L[i] + 1e-30, `${what}: GEMM vs reference`);
      for (const [m0, rows] of [[0, 1], [1, 1], [2, 1], [0, 2], [1, 2]]) {
        for (const t of [0, LOW_SLOTS]) {
          const k = t === 0 ? h.k : h.thread(t);
          const y = h.copy(y0 + m0 * N * 4, rows * N * 4);
          const got = runSplits(h, y, rows * N * 4, (o, ith, nth) => (dt === DT_Q4 ? k.matmul_q4 : k.matmul_q8)(xq + m0 * K, xsc + m0 * nb * 4, w, bias, o, rows, K, N, flags, ith, nth), `${what} rows ${m0}+${rows}`);
          expectExact(h.f32(got, rows * N), all.subarray(m0 * N, (m0 + rows) * N), `${what} rows ${m0}..${m0 + rows} (thread ${t})`);
        }
      }
    }
  });

  test(`[${variant}] halves_shift multiplies every finite half by 2^e exactly; halves_scan finds the largest and the subnormals`, () => {
    const h = new Harness(variant);
    // every half whose exponent field is at most 20 (so ·2^10 stays finite), both signs, zeros and subnormals included
    const src: number[] = [];
    for (let a = 0; a < 21 << 10; a++) src.push(a, a | 0x8000);
    const n = src.length;
    for (let e = 0; e <= 10; e++) {
      h.reset();
      const p = h.alloc(n * 2);
      new Uint16Array(h.memory.buffer, p, n).set(src);
      const got = runSplits(h, p, n * 2, (o, ith, nth) => h.k.halves_shift(o, n, 2, e, ith, nth), `halves_shift e=${e}`);
      const out = new Uint16Array(h.memory.buffer, got, n);
      for (let i = 0; i < n; i++) {
        if (!Object.is(halfToFloat(out[i]), halfToFloat(src[i]) * 2 ** e)) assert.unreachable(`halves_shift e=${e}: half 0x${src[i].toString(16)} became 0x${out[i].toString(16)}`);
      }
      // after e = 10 no half is subnormal
      const flag = h.alloc(8);
      for (const nth of [1, 2, 3]) {
        new Int32Array(h.memory.buffer, flag, 2).fill(0);
        for (let ith = 0; ith < nth; ith++) h.k.halves_scan(got, n, 2, flag, ith, nth);
        const [mx, sub] = new Int32Array(h.memory.buffer, flag, 2);
        assert.is(mx, (20 << 10 | 0x3ff) + (e << 10), `halves_scan largest e=${e} nth=${nth}`);
        assert.is(sub, e >= 10 ? 0 : 1, `halves_scan subnormal flag e=${e} nth=${nth}`);
      }
    }
    // strided (block scales): random halves, against the twins, for every split
    const r = rng(77);
    for (const stride of [18, 34]) {
      h.reset();
      const nb = 1000 + r.int(0, 3000), bytes = h.alloc(nb * stride);
      const u8 = h.bytes(bytes, nb * stride);
      for (let i = 0; i < u8.length; i++) u8[i] = r.int(0, 255);
      for (let b = 0; b < nb; b++) { const v = r.next() < 0.3 ? r.int(0, 0x3ff) : r.int(0, 0x4fff); u8[b * stride] = v & 0xff; u8[b * stride + 1] = (v >>> 8) | (r.next() < 0.5 ? 0x80 : 0); }
      const scan = (k: KernelABI, nth: number) => {
        const f = h.alloc(8);
        new Int32Array(h.memory.buffer, f, 2).fill(0);
        for (let ith = 0; ith < nth; ith++) k.halves_scan(bytes, nb, stride, f, ith, nth);
        return Array.from(new Int32Array(h.memory.buffer, f, 2));
      };
      const want = scan(h.ref, 1);
      for (const nth of [1, 2, 3]) assert.equal(scan(h.k, nth), want, `halves_scan stride ${stride} nth=${nth}`);
      const ref = h.copy(bytes, nb * stride);
      h.ref.halves_shift(ref, nb, stride, 10, 0, 1);
      const got = runSplits(h, bytes, nb * stride, (o, ith, nth) => h.k.halves_shift(o, nb, stride, 10, ith, nth), `halves_shift stride ${stride}`);
      assert.equal(h.bytes(got, nb * stride), h.bytes(ref, nb * stride), `halves_shift stride ${stride} vs its twin`);
    }
  });

  test(`[${variant}] weights stored ·2^e with e in the flags give the bits of the unshifted weights (matmul GEMV/GEMM, both f16 paths, embed)`, () => {
    const h = new Harness(variant);
    const r = rng(2026);
    const LOW_SLOTS = 15;
    for (const dt of [DT_F16, DT_Q8, DT_Q4]) for (const e of [1, 6, 10]) {
      const K = 96, N = 37, M = 5;
      h.reset();
      const x = h.putF32(Array.from({ length: M * K }, () => r.normal()));
      // small weights with many subnormal halves (elements, or block scales), the largest exponent field 20
      const sub = () => r.int(1, 0x3ff) | (r.next() < 0.5 ? 0x8000 : 0);
      let bytes: Uint8Array, n: number, stride: number;
      if (dt === DT_F16) {
        const hv = Array.from({ length: N * K }, () => (r.next() < 0.2 ? sub() : r.next() < 0.01 ? 0x53ff : floatToHalf(r.normal() * 0.004)));
        bytes = new Uint8Array(new Uint16Array(hv).buffer); n = N * K; stride = 2;
      } else {
        bytes = randomBlocks(r, dt, N, K); stride = blockBytes(dt); n = N * K / Q8_BLOCK;
        for (let b = 0; b < n; b++) { const v = r.next() < 0.5 ? sub() : r.int(0x400, 0x53ff); bytes[b * stride] = v & 0xff; bytes[b * stride + 1] = v >>> 8; }
      }
      const w0 = h.alloc(bytes.length);
      h.bytes(w0, bytes.length).set(bytes);
      const w1 = h.copy(w0, bytes.length);
      h.k.halves_shift(w1, n, stride, e, 0, 1);
      let xq = 0, xsc = 0;
      if (dt !== DT_F16) { xq = h.alloc(M * K); xsc = h.alloc(M * K / 32 * 4); h.k.quantize_q8(x, xq, xsc, M, K, 0, 1); }
      const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
      const y0 = h.putF32(Array.from({ length: M * N }, () => r.normal()));
      const flags = ACT_GELU_TANH | FLAG_ACCUMULATE;
      const what = `dt=${dt} e=${e}`;
      const mm = (k: KernelABI, w: number, fl: number, m0: number, rows: number, o: number, ith: number, nth: number) => {
        if (dt === DT_F16) k.matmul_f16(x + m0 * K * 4, w, bias, o, rows, K, N, fl, ith, nth);
        else (dt === DT_Q8 ? k.matmul_q8 : k.matmul_q4)(xq + m0 * K, xsc + m0 * (K / 32) * 4, w, bias, o, rows, K, N, fl, ith, nth);
      };
      for (const [m0, rows] of [[0, 1], [3, 2], [0, 5]]) for (const t of [0, LOW_SLOTS]) {
        const k = t === 0 ? h.k : h.thread(t);
        const plain = h.copy(y0 + m0 * N * 4, rows * N * 4);
        mm(k, w0, flags, m0, rows, plain, 0, 1);
        const got = runSplits(h, y0 + m0 * N * 4, rows * N * 4, (o, ith, nth) => mm(k, w1, flags | wexpBits(e), m0, rows, o, ith, nth), `${what} rows ${m0}+${rows}`);
        expectExact(h.f32(got, rows * N), h.f32(plain, rows * N), `${what} rows ${m0}..${m0 + rows} (thread ${t})`);
      }
      if (dt === DT_F16) {
        // |x| ≥ 2^15 selects the fully converting path (halves converted, then times 2^-e)
        h.f32(x, M * K)[7] = 40000;
        const plain = h.copy(y0, M * N * 4), got = h.copy(y0, M * N * 4);
        mm(h.k, w0, flags, 0, M, plain, 0, 1);
        mm(h.k, w1, flags | wexpBits(e), 0, M, got, 0, 1);
        expectExact(h.f32(got, M * N), h.f32(plain, M * N), `${what} with |x| = 40000`);
      }
      // embed: rows of the matrix as a token table
      const rows = 7, E = K;
      const ids = h.alloc(rows * 4), pos = h.alloc(rows * 4), wpe = h.putF32(Array.from({ length: 3 * E }, () => r.normal()));
      new Int32Array(h.memory.buffer, ids, rows).set(Array.from({ length: rows }, () => r.int(0, N - 1)));
      new Int32Array(h.memory.buffer, pos, rows).set(Array.from({ length: rows }, () => r.int(0, 2)));
      const ya = h.alloc(rows * E * 4), yb = h.alloc(rows * E * 4), yr = h.alloc(rows * E * 4);
      h.k.embed(ids, pos, w0, dt, wpe, ya, rows, E, 0, 1);
      h.k.embed(ids, pos, w1, dt | wexpBits(e), wpe, yb, rows, E, 0, 1);
      h.ref.embed(ids, pos, w1, dt | wexpBits(e), wpe, yr, rows, E, 0, 1);
      expectExact(h.f32(yb, rows * E), h.f32(ya, rows * E), `${what} embed`);
      expectExact(h.f32(yr, rows * E), h.f32(ya, rows * E), `${what} embed twin`);
    }
  });

  test(`[${variant}] activations: gelu_new, gelu (erf), relu to ~1e-6 relative over [-12, 12]`, () => {
    const h = new Harness(variant);
    const xs: number[] = [0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 88, -88, 1e4, -1e4, 3e38, -3e38];
    for (let i = 0; i <= 24000; i++) xs.push(Math.fround(-12 + i * 0.001));
    for (let i = 0; i < 2000; i++) xs.push(Math.fround((i % 2 ? -1 : 1) * 2 ** (-20 + i / 100)));
    const M = xs.length;
    h.reset();
    const x = h.putF32(xs);
    const one = h.putF32([1]);
    for (const act of [ACT_GELU_TANH, ACT_GELU_ERF, ACT_RELU]) {
      const y = h.alloc(M * 4);
      h.k.matmul_f32(x, one, 0, y, M, 1, 1, act, 0, 1);
      const got = h.f32(y, M);
      const want = xs.map((v) => accurateAct(v, act));
      // the reference formulas agree with these to within their f64 cancellation (series / 1 + tanh) errors
      xs.forEach((v, i) => assert.ok(Math.abs(activate(v, act) - want[i]) <= 1e-12 * Math.abs(v), `oracle ${act} at ${v}`));
      // 1e-6 relative, plus the function's own sensitivity to a ~2-ulp change of its argument (|x·act'(x)|·2.4e-7):
      // f32 evaluation of the gelu_new argument u costs a few roundings, which the far negative tail amplifies.
      const sens = xs.map((v) => Math.abs(v * (accurateAct(v * (1 + 1e-7), act) - accurateAct(v * (1 - 1e-7), act)) / (2e-7 * v || 1)));
      expectClose(got, want, (i) => 1e-6 * Math.abs(want[i]) + 2.4e-7 * sens[i] + 1e-37, `act ${act}`);
    }
  });

  test(`[${variant}] matmul_f16 converts every finite half exactly (both conversion paths)`, () => {
    const h = new Harness(variant);
    h.reset();
    const halves: number[] = [];
    for (let v = 0; v < 65536; v++) if (((v >> 10) & 0x1f) !== 31) halves.push(v);
    const N = halves.length;
    const w = h.alloc(N * 2);
    new Uint16Array(h.memory.buffer, w, N).set(halves);
    const want = halves.map((v) => 0 + halfToFloat(v)); // the sum starts at +0, so -0 comes out as +0
    // y = 1 · w (K = 1) on the pre-scaled path; with a second row of x = 40000, the fully-converting path
    const x = h.putF32([1, 40000]);
    for (const M of [1, 2]) {
      const y = h.alloc(M * N * 4);
      h.k.matmul_f16(x, w, 0, y, M, 1, N, ACT_NONE, 0, 1);
      expectExact(h.f32(y, N), want, `f16 conversion (M=${M})`);
    }
  });

  test(`[${variant}] the vector half conversions (half4, half4Exact) give every half exactly`, () => {
    const h = new Harness(variant);
    h.reset();
    // embed (half4Exact): one row of all 65536 halves plus a position row of -0, which keeps every value (-0 too)
    const E = 65536;
    const wte = h.alloc(E * 2);
    new Uint16Array(h.memory.buffer, wte, E).set(Array.from({ length: E }, (_, i) => i));
    const wpe = h.putF32(new Array(E).fill(-0));
    const ids = h.putF32([0]), pos = h.putF32([0]); // int32 zeros
    const y = h.alloc(E * 4);
    h.k.embed(ids, pos, wte, DT_F16, wpe, y, 1, E, 0, 1);
    expectExact(h.f32(y, E), Array.from({ length: E }, (_, i) => halfToFloat(i)), 'half4Exact');
    // matmul_f16 on the fully-converting path (half4; a row of x >= 2^15 selects it), K = 4 so the halves go
    // through the vector loop: row n of w is [half n, 0, 0, 0], x rows [1, 0, 0, 0] and [40000, 0, 0, 0]
    const halves: number[] = [];
    for (let v = 0; v < 65536; v++) if (((v >> 10) & 0x1f) !== 31) halves.push(v);
    const N = halves.length;
    const w = h.alloc(N * 8);
    const wv = new Uint16Array(h.memory.buffer, w, N * 4);
    halves.forEach((v, n) => { wv[4 * n] = v; });
    const x = h.putF32([1, 0, 0, 0, 40000, 0, 0, 0]);
    const out = h.alloc(2 * N * 4);
    h.k.matmul_f16(x, w, 0, out, 2, 4, N, ACT_NONE, 0, 1);
    // the sums start at +0, so -0 comes out as +0; 40000·half in f64 is exact, then rounded once as f32 does
    expectExact(h.f32(out, N), halves.map((v) => 0 + halfToFloat(v)), 'half4 (x = 1)');
    expectExact(h.f32(out + N * 4, N), halves.map((v) => 0 + Math.fround(40000 * halfToFloat(v))), 'half4 (x = 40000)');
  });

  test(`[${variant}] quantize_q8 is bit-exact (ties round half up, clamps, zero blocks)`, () => {
    const h = new Harness(variant);
    const r = rng(7);
    for (const [M, K] of [[1, 32], [3, 64], [5, 96], [2, 768], [7, 32]]) {
      h.reset();
      const xs = Array.from({ length: M * K }, () => r.normal() * (r.next() < 0.1 ? 100 : 1));
      // block 0 of row 0: amax 127 so the scale is 1 and ties are exact: ±0.5, ±2.5, ...
      for (let k = 0; k < 32; k++) xs[k] = k === 0 ? 127 : k === 1 ? -127 : (k % 2 ? -1 : 1) * (Math.floor(k / 2) + 0.5);
      if (M > 1) for (let k = 0; k < 32; k++) xs[K + k] = 0; // an all-zero block
      const x = h.putF32(xs);
      const nb = K / 32;
      const qInit = h.alloc(M * K), sInit = h.alloc(M * nb * 4);
      // xq and xs are two outputs: run the splits over a combined region
      const region = h.alloc(M * K + M * nb * 4);
      const got = runSplits(h, region, M * K + M * nb * 4, (o, ith, nth) => h.k.quantize_q8(x, o, o + M * K, M, K, ith, nth), `quantize ${M}x${K}`);
      h.ref.quantize_q8(x, qInit, sInit, M, K, 0, 1);
      expectExact(new Int8Array(h.memory.buffer, got, M * K), new Int8Array(h.memory.buffer, qInit, M * K), 'xq');
      // xs is at got + M*K (not 4-aligned in general): compare bytes
      expectExact(h.bytes(got + M * K, nb * M * 4), h.bytes(sInit, nb * M * 4), 'xs');
      if (M * K >= 32) {
        const q = new Int8Array(h.memory.buffer, got, 32);
        assert.is(q[2], 2, 'x=1.5 -> 2');
        assert.is(q[3], -1, 'x=-1.5 -> -1 (half up, as Math.round)');
        assert.is(q[5], -2, 'x=-2.5 -> -2');
        assert.is(q[4], 3, 'x=2.5 -> 3');
      }
    }
  });

  test(`[${variant}] layernorm on odd shapes`, () => {
    const h = new Harness(variant);
    const r = rng(11);
    for (const [rows, cols] of [[1, 1], [1, 3], [2, 5], [3, 8], [5, 17], [4, 768], [7, 33], [2, 1031]]) {
      h.reset();
      const xs = Array.from({ length: rows * cols }, () => 3 + r.normal() * (r.next() < 0.5 ? 1 : 20));
      const x = h.putF32(xs);
      const g = h.putF32(Array.from({ length: cols }, () => r.normal()));
      const b = h.putF32(Array.from({ length: cols }, () => r.normal()));
      const init = h.alloc(rows * cols * 4);
      const eps = 1e-5;
      const got = runSplits(h, init, rows * cols * 4, (o, ith, nth) => h.k.layernorm(x, g, b, o, rows, cols, eps, ith, nth), `layernorm ${rows}x${cols}`);
      const want = h.copy(init, rows * cols * 4);
      h.ref.layernorm(x, g, b, want, rows, cols, eps, 0, 1);
      const gv = h.f32(g, cols), bv = h.f32(b, cols), xv = h.f32(x, rows * cols);
      const scale: number[] = [];
      for (let rr = 0; rr < rows; rr++) {
        let mean = 0; for (let c = 0; c < cols; c++) mean += xv[rr * cols + c]; mean /= cols;
        let v = 0; for (let c = 0; c < cols; c++) v += (xv[rr * cols + c] - mean) ** 2; v /= cols;
        const inv = 1 / Math.sqrt(v + eps);
        for (let c = 0; c < cols; c++) scale.push(2e-6 * Math.abs((xv[rr * cols + c] - mean) * inv * gv[c]) + 2e-6 * Math.abs(bv[c]) + 1e-7 * Math.abs(gv[c]));
      }
      expectClose(h.f32(got, rows * cols), h.f32(want, rows * cols), (i) => scale[i], `layernorm ${rows}x${cols}`);
    }
  });

  test(`[${variant}] embed f32/f16/q8/q4, kv_store are exact`, () => {
    const h = new Harness(variant);
    const r = rng(5);
    for (const E of [1, 3, 32, 64, 96, 100]) for (const dt of [DT_F32, DT_F16, DT_Q8, DT_Q4]) {
      if (isBlock(dt) && E % 32) continue;
      h.reset();
      const V = 11, P = 9, rows = 7;
      let wte: number;
      if (dt === DT_F32) wte = h.putF32(Array.from({ length: V * E }, () => r.normal()));
      else if (dt === DT_F16) {
        wte = h.alloc(V * E * 2);
        const hv = Array.from({ length: V * E }, () => floatToHalf(r.normal() * (r.next() < 0.1 ? 1e-5 : 1)));
        hv[0] = 0x7c00; hv[1] = 0xfc00; hv[2] = 0x0001; hv[3] = 0x83ff; // inf, -inf, subnormals
        new Uint16Array(h.memory.buffer, wte, V * E).set(hv);
      } else {
        // scales over the whole normal and subnormal f16 range, so products reach both ends
        const blocks = randomBlocks(r, dt, V, E, 0, 0.1);
        for (let b = 0; b < blocks.length; b += blockBytes(dt)) {
          const pick = r.int(0, 3), hb = pick === 0 ? r.int(1, 0x3ff) : pick === 1 ? 0x7bff : -1; // subnormal, max, or as drawn
          if (hb >= 0) { blocks[b] = hb & 0xff; blocks[b + 1] = (hb >>> 8) | (r.next() < 0.5 ? 0x80 : 0); }
        }
        wte = h.alloc(blocks.length);
        h.bytes(wte, blocks.length).set(blocks);
      }
      const wpe = h.putF32(Array.from({ length: P * E }, () => r.normal()));
      const ids = h.alloc(rows * 4), pos = h.alloc(rows * 4);
      new Int32Array(h.memory.buffer, ids, rows).set([0, 3, 10, 0, 5, 7, 1]);
      new Int32Array(h.memory.buffer, pos, rows).set([0, 1, 2, 8, 4, 5, 6]);
      const init = h.alloc(rows * E * 4);
      const got = runSplits(h, init, rows * E * 4, (o, ith, nth) => h.k.embed(ids, pos, wte, dt, wpe, o, rows, E, ith, nth), `embed dt=${dt} E=${E}`);
      const want = h.copy(init, rows * E * 4);
      h.ref.embed(ids, pos, wte, dt, wpe, want, rows, E, 0, 1);
      expectExact(h.f32(got, rows * E), h.f32(want, rows * E), `embed dt=${dt} E=${E}`);
    }
    for (const kvDt of [DT_F32, DT_F16]) for (const [B, T, H, D, cap, slot0] of [[1, 1, 1, 1, 1, 0], [2, 3, 2, 5, 9, 4], [1, 5, 3, 64, 8, 3], [3, 2, 2, 7, 2, 0], [2, 2, 3, 12, 5, 1], [1, 3, 2, 19, 4, 1]]) {
      h.reset();
      const stride = 3 * H * D + 1;
      // a few values at the half's edges among the normals (overflow, NaN, subnormals, f32 subnormals, -0)
      const edge = [65520, -65504, 65519.996, NaN, -Infinity, 6e-8, -(2 ** -25), 2 ** -24 * 1.5, 1e-40, -0, 2 ** -14 * (1 - 2 ** -12)];
      const src = h.putF32(Array.from({ length: B * T * stride }, () => (r.next() < 0.2 ? r.pick(edge) : r.normal() * (r.next() < 0.2 ? 1e-5 : 1))));
      const cacheBytes = B * H * cap * D * (kvDt === DT_F16 ? 2 : 4);
      const init = h.putF32(Array.from({ length: cacheBytes / 2 }, () => r.normal()));
      const what = `kv_store kvDt=${kvDt} B=${B} T=${T} H=${H} D=${D}`;
      const got = runSplits(h, init, 2 * cacheBytes, (o, ith, nth) => h.k.kv_store(src, stride, H * D, 2 * H * D + 1, o, o + cacheBytes, kvDt, B, T, H, D, cap, slot0, ith, nth), what);
      const want = h.copy(init, 2 * cacheBytes);
      h.ref.kv_store(src, stride, H * D, 2 * H * D + 1, want, want + cacheBytes, kvDt, B, T, H, D, cap, slot0, 0, 1);
      assert.ok(Buffer.from(h.bytes(got, 2 * cacheBytes)).equals(Buffer.from(h.bytes(want, 2 * cacheBytes))), `${what}: differs from the reference`);
    }
  });

  test(`[${variant}] quantize_weights q8/q4, linear and conv1d: byte-identical to quantizeQ8_0 / quantizeQ4_0`, () => {
    const h = new Harness(variant);
    const r = rng(17);
    const cases: { dt: number; conv1d: boolean; rows: number; cols: number; extra: number }[] = [];
    for (const dt of [DT_Q8, DT_Q4]) {
      for (const [rows, per] of [[1, 1], [2, 1], [3, 3], [5, 5], [7, 24], [1, 96], [4, 2], [9, 7]]) cases.push({ dt, conv1d: false, rows, cols: per * Q8_BLOCK, extra: r.int(0, 2) });
      for (const [G, N] of [[1, 1], [1, 2], [1, 3], [1, 4], [1, 5], [2, 7], [3, 13], [1, 64], [2, 67], [1, 130]]) cases.push({ dt, conv1d: true, rows: G * Q8_BLOCK, cols: N, extra: r.int(0, 3) });
    }
    for (const c of cases) for (let round = 0; round < 3; round++) {
      h.reset();
      const { dt, conv1d, rows, cols } = c, bytes = blockBytes(dt);
      // outputs × blocks per output of this call; the destination rows hold `extra` blocks more (a wider matrix)
      const outs = conv1d ? cols : rows, per = conv1d ? rows / Q8_BLOCK : cols / Q8_BLOCK, wStride = (per + c.extra) * bytes;
      // each block (32 values of one output) drawn from one family, so every block meets the edge cases whole
      const src = new Float32Array(rows * cols);
      const at = (n: number, kb: number, j: number) => (conv1d ? (kb * Q8_BLOCK + j) * cols + n : n * cols + kb * Q8_BLOCK + j);
      for (let n = 0; n < outs; n++) for (let kb = 0; kb < per; kb++) {
        const block = adversarialBlock(r, dt);
        for (let j = 0; j < Q8_BLOCK; j++) src[at(n, kb, j)] = block[j];
      }
      const x = h.putF32(src);
      const init = h.alloc(outs * wStride);
      h.bytes(init, outs * wStride).set(Array.from({ length: outs * wStride }, () => r.int(0, 255)));
      const what = `quantize_weights dt=${dt} ${conv1d ? 'conv1d' : 'linear'} ${rows}x${cols} wStride=${wStride}`;
      // the flag word: set (by any split) exactly when some value is NaN or ±inf
      const flag = h.alloc(16), flagged = () => new Int32Array(h.memory.buffer, flag, 1)[0];
      new Int32Array(h.memory.buffer, flag, 1)[0] = 0;
      const got = runSplits(h, init, outs * wStride, (o, ith, nth) => h.k.quantize_weights(x, o, wStride, dt, rows, cols, conv1d ? 1 : 0, flag, ith, nth), what);
      const nonFinite = !src.every(Number.isFinite);
      assert.is(flagged(), nonFinite ? 1 : 0, `${what}: NaN/inf flag`);
      // expected: the bytes around the blocks as they were, each block as the TypeScript quantizer writes it
      const want = Uint8Array.from(h.bytes(init, outs * wStride));
      const values = new Float32Array(Q8_BLOCK), block = new Uint8Array(bytes);
      for (let n = 0; n < outs; n++) for (let kb = 0; kb < per; kb++) {
        for (let j = 0; j < Q8_BLOCK; j++) values[j] = src[at(n, kb, j)];
        (dt === DT_Q8 ? quantizeQ8_0 : quantizeQ4_0)(values, block);
        want.set(block, n * wStride + kb * bytes);
      }
      const g = Uint8Array.from(h.bytes(got, outs * wStride));
      // a NaN's sign is not specified by either language (the loader rejects NaN weights before quantizing): a
      // block with a NaN scale must have one in both, with the same codes
      const isNaNHalf = (b: Uint8Array, o: number) => (b[o + 1] & 0x7c) === 0x7c && ((b[o + 1] & 3) | b[o]) !== 0;
      for (let n = 0; n < outs; n++) for (let kb = 0; kb < per; kb++) {
        const o = n * wStride + kb * bytes;
        if (isNaNHalf(want, o) && isNaNHalf(g, o)) { g[o + 1] &= 0x7f; want[o + 1] &= 0x7f; }
      }
      let i = 0;
      while (i < want.length && g[i] === want[i]) i++;
      if (i < want.length) {
        const n = Math.floor(i / wStride), kb = Math.floor((i % wStride) / bytes);
        assert.unreachable(`${what}: byte ${i} (output ${n}, block ${kb}) got ${g[i]} want ${want[i]}; values ${Array.from({ length: Q8_BLOCK }, (_, j) => src[at(n, kb, Math.min(j, Q8_BLOCK - 1))]).join(', ')}`);
      }
      // and the reference twin is the same quantizer
      const ref = h.copy(init, outs * wStride);
      new Int32Array(h.memory.buffer, flag, 1)[0] = 0;
      h.ref.quantize_weights(x, ref, wStride, dt, rows, cols, conv1d ? 1 : 0, flag, 0, 1);
      assert.is(flagged(), nonFinite ? 1 : 0, `${what}: the reference twin's NaN/inf flag`);
      const refBytes = Uint8Array.from(h.bytes(ref, outs * wStride));
      for (let n = 0; n < outs; n++) for (let kb = 0; kb < per; kb++) if (isNaNHalf(refBytes, n * wStride + kb * bytes)) refBytes[n * wStride + kb * bytes + 1] &= 0x7f;
      assert.ok(Buffer.from(refBytes).equals(Buffer.from(want)), `${what}: the reference twin differs`);
    }
  });

  test(`[${variant}] place_weights f32/f16, linear and conv1d: byte-identical to the reference twin, NaN/inf flagged`, () => {
    const h = new Harness(variant);
    const r = rng(23);
    // the half's edges (ties at both exponent ranges, overflow to inf, subnormals, f32 subnormals, -0) among normals
    const edge = [65520, -65504, 65519.996, 65535, 1e6, -(2 ** -25), 2 ** -24 * 1.5, 2 ** -24 * 2.5, 1e-40, -0, 2 ** -14 * (1 - 2 ** -12),
      1 + 2 ** -11, 1 + 3 * 2 ** -11, -(2 + 2 ** -10), 6e-8, 3e-5];
    const bad = [NaN, Infinity, -Infinity];
    const cases: { conv1d: boolean; rows: number; cols: number; extra: number }[] = [];
    for (const [rows, cols] of [[1, 1], [1, 7], [3, 5], [1, 1024], [2, 1003], [5, 16]]) cases.push({ conv1d: false, rows, cols, extra: 0 });
    for (const rows of [1, 2, 3, 4, 5, 15, 16, 17, 33]) for (const cols of [1, 3, 4, 5, 8, 13, 67]) cases.push({ conv1d: true, rows, cols, extra: r.int(0, 5) });
    for (const dt of [DT_F32, DT_F16]) for (const c of cases) for (let round = 0; round < 2; round++) {
      h.reset();
      const { conv1d, rows, cols } = c, size = dt === DT_F32 ? 4 : 2;
      // conv1d: the outputs' rows are wider than the source's rows (a later call places the other columns)
      const wStride = conv1d ? rows + c.extra : 0, bytes = (conv1d ? cols * wStride : rows * cols) * size;
      const nonFinite = round === 1 && r.next() < 0.7;
      const src = Array.from({ length: rows * cols }, () => (r.next() < 0.25 ? r.pick(edge) : r.normal() * (r.next() < 0.2 ? 1e-5 : 1)));
      if (nonFinite) src[r.int(0, src.length - 1)] = r.pick(bad);
      const x = h.putF32(src);
      const init = h.alloc(bytes);
      h.bytes(init, bytes).set(Array.from({ length: bytes }, () => r.int(0, 255)));
      const flag = h.alloc(4);
      const what = `place_weights dt=${dt} ${conv1d ? 'conv1d' : 'linear'} ${rows}x${cols} wStride=${wStride}${nonFinite ? ' (non-finite)' : ''}`;
      const got = runSplits(h, init, bytes, (o, ith, nth) => h.k.place_weights(x, o, dt, rows, cols, wStride, conv1d ? 1 : 0, flag, ith, nth), what);
      const want = h.copy(init, bytes);
      const refFlag = h.alloc(4);
      new Int32Array(h.memory.buffer, refFlag, 1)[0] = 0;
      h.ref.place_weights(x, want, dt, rows, cols, wStride, conv1d ? 1 : 0, refFlag, 0, 1);
      const g = h.bytes(got, bytes), w = h.bytes(want, bytes);
      let i = 0;
      while (i < bytes && g[i] === w[i]) i++;
      if (i < bytes) assert.unreachable(`${what}: byte ${i} got ${g[i]} want ${w[i]}`);
      // the flag: 1 after a call over a non-finite value, left alone otherwise (on every split)
      const flagOf = (p: number) => new Int32Array(h.memory.buffer, p, 1)[0];
      for (const nth of [1, 2, 3]) {
        new Int32Array(h.memory.buffer, flag, 1)[0] = 7;
        for (let ith = 0; ith < nth; ith++) h.k.place_weights(x, h.copy(init, bytes), dt, rows, cols, wStride, conv1d ? 1 : 0, flag, ith, nth);
        assert.is(flagOf(flag), nonFinite ? 1 : 7, `${what}: flag (nth=${nth})`);
      }
      assert.is(flagOf(refFlag) === 1, nonFinite, `${what}: the twin's flag`);
    }
  });

  test(`[${variant}] place_halves, linear and conv1d: every half moved as it is, byte-identical to the reference twin`, () => {
    const h = new Harness(variant);
    const r = rng(29);
    const cases: { conv1d: boolean; rows: number; cols: number; extra: number }[] = [];
    for (const [rows, cols] of [[1, 1], [1, 7], [3, 5], [1, 1024], [2, 1003], [5, 16]]) cases.push({ conv1d: false, rows, cols, extra: 0 });
    for (const rows of [1, 2, 3, 15, 16, 17, 33]) for (const cols of [1, 3, 4, 5, 13, 67]) cases.push({ conv1d: true, rows, cols, extra: r.int(0, 5) });
    for (const c of cases) {
      h.reset();
      const { conv1d, rows, cols } = c;
      const wStride = conv1d ? rows + c.extra : 0, bytes = (conv1d ? cols * wStride : rows * cols) * 2;
      const src = Array.from({ length: rows * cols }, () => r.int(0, 0xffff)); // any bits: NaN, inf and subnormal halves too
      const x = h.alloc(rows * cols * 2);
      new Uint16Array(h.memory.buffer, x, rows * cols).set(src);
      const init = h.alloc(bytes);
      h.bytes(init, bytes).set(Array.from({ length: bytes }, () => r.int(0, 255)));
      const what = `place_halves ${conv1d ? 'conv1d' : 'linear'} ${rows}x${cols} wStride=${wStride}`;
      const got = runSplits(h, init, bytes, (o, ith, nth) => h.k.place_halves(x, o, rows, cols, wStride, conv1d ? 1 : 0, ith, nth), what);
      const want = h.copy(init, bytes);
      h.ref.place_halves(x, want, rows, cols, wStride, conv1d ? 1 : 0, 0, 1);
      assert.equal(h.bytes(got, bytes), h.bytes(want, bytes), what);
      const out = new Uint16Array(h.memory.buffer, got, bytes / 2);
      for (let i = 0; i < rows * cols; i++) {
        const at = conv1d ? (i % cols) * wStride + Math.floor(i / cols) : i;
        if (out[at] !== src[i]) assert.unreachable(`${what}: half ${i} at ${at}: got ${out[at]} want ${src[i]}`);
      }
    }
  });

  test(`[${variant}] kv_store f16: round to nearest even, bit for bit, against an independent oracle`, () => {
    // every f32 exponent with mantissas at the rounding boundaries, and random bit patterns, both signs
    const h = new Harness(variant);
    const r = rng(9);
    const bits: number[] = [];
    const mants = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x5000, 0x7fe000, 0x7ff000, 0x7fefff, 0x7fffff];
    for (let e = 0; e < 256; e++) for (const s of [0, 0x80000000]) {
      for (const m of mants) bits.push((s | (e << 23) | m) >>> 0);
      for (let i = 0; i < 24; i++) bits.push((s | (e << 23) | r.int(0, 0x7fffff)) >>> 0);
      // subnormal halves: the rounding point moves with the exponent (bit 13 + (113 - e) of the mantissa)
      for (let sh = 13; sh < 24; sh++) for (const d of [-1, 0, 1]) bits.push((s | (e << 23) | ((((1 << sh) >>> 1) + d) & 0x7fffff) | (r.int(0, 1) << sh)) >>> 0);
    }
    for (let i = 0; i < 100000; i++) bits.push(r.int(0, 0xffffffff) >>> 0);
    const n = bits.length + (7 - (bits.length % 8)); // a multiple of 8 plus 7: the 8-, 4- and 1-element paths
    while (bits.length < n) bits.push(0x3c00_0000 + bits.length);
    const src = h.alloc(n * 4);
    new Uint32Array(h.memory.buffer, src, n).set(bits);
    const vals = h.f32(src, n);
    const kc = h.alloc(n * 2), vc = h.alloc(n * 2);
    h.k.kv_store(src, n, 0, 0, kc, vc, DT_F16, 1, 1, 1, n, 1, 0, 0, 1);
    assert.ok(h.guardOk(kc, n * 2) && h.guardOk(vc, n * 2), 'kv_store f16 wrote past its caches');
    const got = new Uint16Array(h.memory.buffer, kc, n);
    for (let i = 0; i < n; i++) {
      const want = halfOracle(vals[i], bits[i]);
      if (got[i] !== want) assert.unreachable(`kv_store f16 of ${vals[i]} (bits 0x${bits[i].toString(16)}): got 0x${got[i].toString(16)} want 0x${want.toString(16)}`);
      if (roundToHalf(vals[i]) !== want) assert.unreachable(`floatToHalf (the reference) of ${vals[i]}: got 0x${roundToHalf(vals[i]).toString(16)} want 0x${want.toString(16)}`);
    }
    assert.ok(Buffer.from(h.bytes(kc, n * 2)).equals(Buffer.from(h.bytes(vc, n * 2))), 'kv_store f16: K and V differ');
  });

  test(`[${variant}] attention eager and blockwise: causal, masks (fully masked rows), head mask, past, probs`, () => {
    const h = new Harness(variant);
    const r = rng(2024);
    const cases: AttnCase[] = [
      { B: 1, H: 1, T: 1, D: 1, S: 1, past: 0, causal: 1, mask: 'none', headMask: false },
      { B: 1, H: 2, T: 1, D: 64, S: 1, past: 0, causal: 1, mask: 'none', headMask: true },
      { B: 2, H: 3, T: 5, D: 64, S: 5, past: 0, causal: 1, mask: 'random', headMask: true },
      { B: 2, H: 2, T: 3, D: 67, S: 73, past: 70, causal: 1, mask: 'rowzero', headMask: false },
      { B: 1, H: 2, T: 4, D: 7, S: 130, past: 126, causal: 1, mask: 'random', headMask: true },
      { B: 2, H: 1, T: 6, D: 3, S: 6, past: 0, causal: 0, mask: 'rowzero', headMask: true },
      { B: 1, H: 1, T: 2, D: 16, S: 200, past: 198, causal: 1, mask: 'none', headMask: false },
      { B: 3, H: 2, T: 2, D: 5, S: 9, past: 7, causal: 1, mask: 'prefix', headMask: false },
      { B: 1, H: 1, T: 3, D: 64, S: 3, past: -2, causal: 1, mask: 'none', headMask: false },
      // decode: groups of four rows, and S too large for the low-memory slot (one row at a time)
      { B: 2, H: 5, T: 1, D: 64, S: 70, past: 69, causal: 1, mask: 'random', headMask: true },
      { B: 1, H: 5, T: 1, D: 64, S: 4000, past: 3999, causal: 1, mask: 'random', headMask: false },
      { B: 1, H: 4, T: 1, D: 16, S: 3, past: -1, causal: 1, mask: 'none', headMask: false },
    ];
    for (let i = 0; i < 12; i++) {
      const T = r.pick([1, 2, 3, 7]), past = r.pick([0, 0, 1, 5, 60, 64, 65]);
      cases.push({ B: r.int(1, 2), H: r.int(1, 3), T, D: r.pick([1, 4, 8, 13, 64]), S: past + T, past, causal: r.pick([0, 1]), mask: r.pick(['none', 'random', 'rowzero', 'prefix']), headMask: r.next() < 0.5 });
    }
    for (const kvDt of [DT_F32, DT_F16]) for (const c of cases) attentionCase(h, r, { ...c, kvDt });
  });

  test(`[${variant}] decode attention (T = 1): four-row groups and the one-row fallback agree bit for bit`, () => {
    // T = 1 runs rows four at a time in the thread's low-memory slot, and one at a time (ABI scratch) for a short
    // range, a large S or thread >= 15: nth = 1 uses the groups, nth = 18 (two rows per chunk, chunk i run as
    // thread i up to 17) only the fallback, and nth = 7 a mix; all must give the same bytes, and match the reference.
    const h = new Harness(variant);
    const r = rng(31);
    const shapes = [[3, 12, 64, 37, 1, 1], [2, 9, 8, 130, 1, 0], [1, 7, 4, 5, 0, 1], [2, 6, 12, 64, 1, 1], [1, 12, 64, 300, 1, 1], [2, 5, 20, 257, 1, 0]];
    for (const kvDt of [DT_F32, DT_F16]) for (const [B, H, D, S, causal, masked] of shapes) {
      h.reset();
      const cap = S + 2, qStride = 3 * H * D + 1, outStride = H * D + 3, past = S - 1;
      const q = h.putF32(Array.from({ length: B * qStride }, () => r.normal()));
      const kc = putCache(h, kvDt, Array.from({ length: B * H * cap * D }, () => r.normal()));
      const vc = putCache(h, kvDt, Array.from({ length: B * H * cap * D }, () => r.normal()));
      const mask = masked ? h.putF32(Array.from({ length: B * S }, (_, i) => (i % S === 0 || r.next() < 0.7 ? 1 : 0))) : 0;
      const scratch = h.alloc(18 * attentionScratchBytes(S, D));
      const init = h.putF32(Array.from({ length: B * outStride }, () => 42));
      const bytes = B * outStride * 4;
      const outs = [1, 18, 7].map((nth) => {
        const o = h.copy(init, bytes);
        // chunk ith runs as pool thread ith here, so threads >= 15 (no low-memory slot) are covered too
        for (let ith = 0; ith < nth; ith++) h.thread(ith).attention_blockwise(q, qStride, kc, vc, kvDt, cap, o, outStride, B, H, 1, D, S, past, causal, mask, 0.3, 0, 0, scratch, ith, nth);
        assert.ok(h.guardOk(o, bytes), 'decode attention wrote past its output');
        return h.bytes(o, bytes).slice();
      });
      const what = `decode attention kvDt=${kvDt} B=${B} H=${H} D=${D} S=${S}`;
      for (const o of outs.slice(1)) assert.ok(Buffer.from(o).equals(Buffer.from(outs[0])), `${what}: splits differ`);
      const want = h.copy(init, bytes);
      h.ref.attention_blockwise(q, qStride, kc, vc, kvDt, cap, want, outStride, B, H, 1, D, S, past, causal, mask, 0.3, 0, 0, 0, 0, 1);
      const vmax = readCache(h, kvDt, vc, B * H * cap * D).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(new Float32Array(outs[0].buffer), h.f32(want, B * outStride), () => 1.5e-6 * vmax, what);
    }
  });

  test(`[${variant}] decode attention: an f16 cache gives the bits of an f32 cache holding the same values`, () => {
    // Four-row decode groups read f16 caches as halves times 2^-112 when every |q| of the group is < 2^16 (queries
    // and softmax weights scaled by 2^112 instead); groups with a larger query convert. Either way the products are
    // those of the f32 cache path on the halves' values: subnormal halves, zeros, and queries on both sides of 2^16.
    const h = new Harness(variant);
    const r = rng(77);
    for (const [B, H, D, S, qBig] of [[1, 12, 64, 37, 0], [2, 6, 16, 130, 1], [1, 8, 64, 300, 2], [1, 4, 8, 9, 3]]) {
      h.reset();
      const cap = S + 1, qStride = 3 * H * D, outStride = H * D, past = S - 1;
      const qv = Array.from({ length: B * qStride }, () => r.normal() * 3);
      if (qBig === 1) qv[2 * D + 1] = 65535.9; // just under 2^16: still shifted
      if (qBig === 2) qv[5 * D + 3] = -65536; // head 5 (group 1..4 converts), others shifted
      if (qBig === 3) qv[7] = 1e30;
      const q = h.putF32(qv);
      const halves = (n: number) => Array.from({ length: n }, () => {
        const u = r.next();
        return u < 0.03 ? r.int(0, 0x3ff) | (r.next() < 0.5 ? 0x8000 : 0) : floatToHalf(r.normal());
      });
      const kh = halves(B * H * cap * D), vh = halves(B * H * cap * D);
      const k16 = h.alloc(kh.length * 2), v16 = h.alloc(vh.length * 2);
      new Uint16Array(h.memory.buffer, k16, kh.length).set(kh);
      new Uint16Array(h.memory.buffer, v16, vh.length).set(vh);
      const k32 = h.putF32(kh.map(halfToFloat)), v32 = h.putF32(vh.map(halfToFloat));
      const scratch = h.alloc(attentionScratchBytes(S, D));
      const bytes = B * outStride * 4;
      const o16 = h.alloc(bytes), o32 = h.alloc(bytes);
      h.k.attention_blockwise(q, qStride, k16, v16, DT_F16, cap, o16, outStride, B, H, 1, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1);
      h.k.attention_blockwise(q, qStride, k32, v32, DT_F32, cap, o32, outStride, B, H, 1, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1);
      expectExact(h.f32(o16, B * outStride), h.f32(o32, B * outStride), `decode f16 vs f32 cache B=${B} H=${H} D=${D} S=${S} q case ${qBig}`);
    }
  });

  test(`[${variant}] f16 GEMV: the pre-scaled x in the low-memory slot and the in-loop scaling (thread >= 15) agree`, () => {
    const h = new Harness(variant);
    const r = rng(41);
    for (const [M, K, N] of [[1, 37, 300], [2, 64, 170], [1, 768, 90]]) {
      h.reset();
      const x = h.putF32(Array.from({ length: M * K }, () => r.normal()));
      const w = h.alloc(N * K * 2);
      new Uint16Array(h.memory.buffer, w, N * K).set(Array.from({ length: N * K }, () => floatToHalf(r.normal() * 0.1)));
      const bias = h.putF32(Array.from({ length: N }, () => r.normal()));
      const init = h.putF32(Array.from({ length: M * N }, () => r.normal()));
      const bytes = M * N * 4;
      const outs = [1, 18].map((nth) => {
        const o = h.copy(init, bytes);
        for (let ith = 0; ith < nth; ith++) h.thread(ith).matmul_f16(x, w, bias, o, M, K, N, ACT_GELU_TANH | FLAG_ACCUMULATE, ith, nth);
        return h.bytes(o, bytes).slice();
      });
      assert.ok(Buffer.from(outs[0]).equals(Buffer.from(outs[1])), `f16 GEMV ${M}x${K}x${N}: nth 1 and 18 differ`);
    }
  });

  test(`[${variant}] negative controls: the tolerances catch small bugs`, () => {
    const h = new Harness(variant);
    const r = rng(77);
    // 1. the reference without the last k term (a dropped K tail) must fail the matmul bound
    for (const dt of [DT_F32, DT_F16]) {
      const { got, want, L } = matmulCase(h, r, { M: 3, K: 67, N: 9, flags: ACT_NONE, bias: false, dt }, {
        perturbRef: (x, w) => { for (let m = 0; m < 3; m++) x[m * 67 + 66] = 0; },
      });
      assert.ok(worst(got, want, (i) => MATMUL_RTOL * L[i]).excess > 0, `dropped K tail term not detected (dt=${dt})`);
    }
    // 2. q8/q4: one quantum of difference in one activation of the last block must fail
    for (const dt of [DT_Q8, DT_Q4]) {
      const { got, want, L } = matmulCase(h, r, { M: 2, K: 64, N: 5, flags: ACT_NONE, bias: false, dt }, {
        perturbRef: (x) => { x[63] = x[63] + Math.sign(x[63] || 1) * 0.2; },
      });
      assert.ok(worst(got, want, (i) => MATMUL_RTOL * L[i]).excess > 0, `dt=${dt} change not detected`);
    }
    // 3. tanh-gelu in place of erf-gelu must fail the activation bound
    const xs = Array.from({ length: 200 }, (_, i) => Math.fround(-6 + i * 0.06));
    const tanhGelu = xs.map((v) => activate(v, ACT_GELU_TANH)), erfGelu = xs.map((v) => activate(v, ACT_GELU_ERF));
    assert.ok(worst(tanhGelu, erfGelu, (i) => 1e-6 * Math.abs(erfGelu[i]) + 2.4e-7 * Math.abs(xs[i]) * 1.13 + 1e-37).excess > 0, 'gelu variants indistinguishable');
    // 4. attention: an off-by-one causal limit (one more key) must fail the attention bound
    const c: AttnCase = { B: 1, H: 2, T: 3, D: 8, S: 10, past: 6, causal: 1, mask: 'none', headMask: false };
    let caught = '';
    try { attentionCase(h, r, c, { refPast: 7 }); } catch (e) { caught = (e as Error).message; }
    assert.match(caught, /attention .* eager out/, 'off-by-one causal limit not detected');
    // 5. f16 caches: the reference on the unrounded f32 keys and values (not the stored halves) must fail the
    // attention bound, so the f16 cases do test that the kernels read the halves
    {
      h.reset();
      const B = 1, H = 2, T = 3, D = 16, S = 20, n = B * H * S * D;
      const q = h.putF32(Array.from({ length: B * T * H * D }, () => r.normal()));
      const kv = Array.from({ length: 2 * n }, () => r.normal());
      const k16 = putCache(h, DT_F16, kv.slice(0, n)), v16 = putCache(h, DT_F16, kv.slice(n));
      const k32 = h.putF32(kv.slice(0, n)), v32 = h.putF32(kv.slice(n));
      const scratch = h.alloc(attentionScratchBytes(S, D));
      const got = h.alloc(B * T * H * D * 4), want = h.alloc(B * T * H * D * 4);
      h.k.attention_eager(q, H * D, k16, v16, DT_F16, S, got, H * D, B, H, T, D, S, S - T, 1, 0, 0.25, 0, 0, scratch, 0, 1);
      h.ref.attention_eager(q, H * D, k32, v32, DT_F32, S, want, H * D, B, H, T, D, S, S - T, 1, 0, 0.25, 0, 0, 0, 0, 1);
      const vmax = Math.max(...kv.slice(n).map(Math.abs));
      assert.ok(worst(h.f32(got, B * T * H * D), h.f32(want, B * T * H * D), () => 1.5e-6 * vmax).excess > 0, 'f16 cache rounding not detected');
    }
  });
}

/** The activations in f64 without the cancellation of 1 + tanh(u) / 1 + erf(z) for very negative x (the
 *  reference's formulas lose all relative accuracy below x ≈ -5, harmlessly: their absolute error is < 1e-15·|x|). */
function accurateAct(x: number, act: number): number {
  if (act === ACT_GELU_TANH) return x / (1 + Math.exp(-2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
  if (act === ACT_GELU_ERF) {
    const z = x / Math.SQRT2;
    if (z > -2) return activate(x, act);
    const a = -z;
    let f = 0; // erfc(a) = exp(-a²)/√π / (a + 1/2/(a + 1/(a + 3/2/(a + ...)))), a continued fraction
    for (let n = 80; n >= 1; n--) f = (n / 2) / (a + f);
    return 0.5 * x * Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  }
  return activate(x, act);
}

/** The IEEE half nearest to the f32 value v (bits: its bit pattern), ties to the even half: found by search over
 *  the finite halves' exact values, independently of the bit arithmetic of the kernel and of floatToHalf. */
function halfOracle(v: number, bits: number): number {
  const sign = bits >>> 31 ? 0x8000 : 0;
  if (Number.isNaN(v)) return sign | 0x7e00;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16 (which would have an even mantissa)
  let lo = 0, hi = 0x7bff; // largest finite half with value ≤ a (halves of one sign are ordered like their bits)
  while (lo < hi) { const mid = (lo + hi + 1) >>> 1; if (halfToFloat(mid) <= a) lo = mid; else hi = mid - 1; }
  if (lo === 0x7bff) return sign | lo;
  const below = a - halfToFloat(lo), above = halfToFloat(lo + 1) - a;
  return sign | (below < above || (below === above && (lo & 1) === 0) ? lo : lo + 1);
}

/** A KV cache of the given element type holding `values` (rounded to halves for DT_F16). */
function putCache(h: Harness, kvDt: number, values: number[]): number {
  if (kvDt === DT_F32) return h.putF32(values);
  const p = h.alloc(values.length * 2);
  new Uint16Array(h.memory.buffer, p, values.length).set(values.map((v) => roundToHalf(v)));
  return p;
}
/** The values of a cache written by putCache. */
function readCache(h: Harness, kvDt: number, p: number, n: number): Float32Array {
  if (kvDt === DT_F32) return h.f32(p, n).slice();
  return Float32Array.from(new Uint16Array(h.memory.buffer, p, n), halfToFloat);
}

interface AttnCase { B: number; H: number; T: number; D: number; S: number; past: number; causal: number; mask: 'none' | 'random' | 'rowzero' | 'prefix'; headMask: boolean; kvDt?: number }

function attentionCase(h: Harness, r: Rng, c: AttnCase, ctl: { refPast?: number } = {}) {
  const { B, H, T, D, S, past, causal } = c;
  const kvDt = c.kvDt ?? DT_F32;
  h.reset();
  const cap = S + 3, qStride = 3 * H * D + 2, outStride = H * D + 1;
  const qv = Array.from({ length: B * T * qStride }, () => r.normal());
  const q = h.putF32(qv);
  // f16 caches also get a few subnormal halves and zeros
  const small = () => (kvDt === DT_F16 && r.next() < 0.05 ? r.pick([0, -0, 3e-6, -5e-7, 6e-5]) : 1);
  const kc = putCache(h, kvDt, Array.from({ length: B * H * cap * D }, () => r.normal() * small()));
  const vc = putCache(h, kvDt, Array.from({ length: B * H * cap * D }, () => r.normal() * 2 * small()));
  let mask = 0;
  if (c.mask !== 'none') {
    const mv = new Array(B * S).fill(1);
    for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) {
      if (c.mask === 'random') mv[b * S + j] = r.next() < 0.3 ? 0 : 1;
      if (c.mask === 'rowzero') mv[b * S + j] = b === 0 ? 0 : r.next() < 0.5 ? 0 : 1; // batch row 0: nothing visible
      if (c.mask === 'prefix') mv[b * S + j] = j < b * 2 ? 0 : 1; // left padding
    }
    mask = h.putF32(mv);
  }
  const headMask = c.headMask ? h.putF32(Array.from({ length: H }, (_, i) => (i === 1 ? 0 : 0.5 + r.next()))) : 0;
  const scale = 1 / Math.sqrt(D) * (0.5 + r.next() * 2);
  const outBytes = B * T * outStride * 4;
  const outInit = h.putF32(Array.from({ length: B * T * outStride }, () => 42));
  const probsBytes = B * H * T * S * 4;
  const scratchBytes = 3 * attentionScratchBytes(S, D);
  const scratch = h.alloc(scratchBytes);
  const refPast = ctl.refPast ?? past;
  // eager: outputs and probs (one combined region so runSplits checks both)
  const region = h.alloc(outBytes + probsBytes);
  h.bytes(region, outBytes).set(h.bytes(outInit, outBytes));
  h.f32(region + outBytes, B * H * T * S).fill(-7);
  const got = runSplits(h, region, outBytes + probsBytes, (o, ith, nth) =>
    h.k.attention_eager(q, qStride, kc, vc, kvDt, cap, o, outStride, B, H, T, D, S, past, causal, mask, scale, headMask, o + outBytes, scratch, ith, nth), 'attention_eager');
  assert.ok(h.guardOk(scratch, scratchBytes), 'attention_eager: wrote past its scratch');
  const want = h.copy(region, outBytes + probsBytes);
  h.ref.attention_eager(q, qStride, kc, vc, kvDt, cap, want, outStride, B, H, T, D, S, refPast, causal, mask, scale, headMask, want + outBytes, 0, 0, 1);
  // bound: 1.5e-6 · max |v| over the keys (all keys: an upper bound) per (b, h)
  const vmax = new Float64Array(B * H);
  const vv = readCache(h, kvDt, vc, B * H * cap * D);
  for (let bh = 0; bh < B * H; bh++) for (let i = 0; i < S * D; i++) vmax[bh] = Math.max(vmax[bh], Math.abs(vv[bh * cap * D + i]));
  const hmv = headMask ? h.f32(headMask, H) : null;
  const outBound = (i: number) => {
    const row = Math.floor(i / outStride), col = i % outStride;
    if (col >= H * D) return 0; // untouched padding column: exact
    const b = Math.floor(row / T), hh = Math.floor(col / D);
    return 1.5e-6 * vmax[b * H + hh] * (hmv ? Math.abs(hmv[hh]) : 1) + 1e-30;
  };
  const what = `attention ${JSON.stringify({ ...c, kvDt })}`;
  const gOut = h.f32(got, outBytes / 4), wOut = h.f32(want, outBytes / 4);
  expectClose(gOut, wOut, outBound, `${what} eager out`);
  const gP = h.f32(got + outBytes, B * H * T * S), wP = h.f32(want + outBytes, B * H * T * S);
  expectClose(gP, wP, (i) => 2e-6 * Math.abs(wP[i]) + 1e-8, `${what} eager probs`);
  // blockwise: headMask and probs must be ignored (the reference twin is called without them)
  const pGuard = h.alloc(probsBytes);
  h.f32(pGuard, B * H * T * S).fill(-7);
  const gotB = runSplits(h, outInit, outBytes, (o, ith, nth) =>
    h.k.attention_blockwise(q, qStride, kc, vc, kvDt, cap, o, outStride, B, H, T, D, S, past, causal, mask, scale, headMask, pGuard, scratch, ith, nth), 'attention_blockwise');
  assert.ok(h.guardOk(scratch, scratchBytes), 'attention_blockwise: wrote past its scratch');
  assert.ok(h.f32(pGuard, B * H * T * S).every((v) => v === -7), 'attention_blockwise wrote probs');
  const wantB = h.copy(outInit, outBytes);
  h.ref.attention_blockwise(q, qStride, kc, vc, kvDt, cap, wantB, outStride, B, H, T, D, S, refPast, causal, mask, scale, 0, 0, 0, 0, 1);
  const outBoundB = (i: number) => {
    const row = Math.floor(i / outStride), col = i % outStride;
    if (col >= H * D) return 0;
    return 1.5e-6 * vmax[Math.floor(row / T) * H + Math.floor(col / D)] + 1e-30;
  };
  expectClose(h.f32(gotB, outBytes / 4), h.f32(wantB, outBytes / 4), outBoundB, `${what} blockwise out`);
}

// The relaxed-SIMD builds: if this Node needs a flag to validate them, run this file again under the flag.
const needFlag = wanted.filter((v) => v.startsWith('relaxed') && !validates(v));
if (!only && needFlag.length) {
  test(`relaxed SIMD builds (${needFlag.join(', ')}) pass this suite under --experimental-wasm-relaxed-simd`, () => {
    const res = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, KERNEL_TEST_VARIANTS: needFlag.join(',') }, encoding: 'utf8', timeout: 300_000,
    });
    const out = `${res.stdout}\n${res.stderr}`;
    assert.is(res.status, 0, `child failed:\n${out.slice(-4000)}`);
    assert.match(out, /Passed:\s+\d+/);
    assert.not.match(out, /Skipped:\s+[1-9]/);
    assert.match(out, /Total:\s+(\d+)/);
    const total = Number(/Total:\s+(\d+)/.exec(out)![1]);
    assert.ok(total >= 7 * needFlag.length, `child ran only ${total} tests`);
  });
}

test('every build not named in GPT2WASM_SKIP_BUILDS validates and is tested', () => {
  assert.ok(wanted.length > 0, `GPT2WASM_SKIP_BUILDS=${skipped.join(',')} leaves no build to test`);
  // here, or (relaxed builds on an engine that needs the flag) in the child run above
  const untested = wanted.filter((v) => !variants.includes(v) && !(!only && needFlag.includes(v)));
  assert.equal(untested, [], `builds ${untested.join(', ')} do not validate under this engine; fix them, or name them in GPT2WASM_SKIP_BUILDS to skip them`);
});

test.run();
