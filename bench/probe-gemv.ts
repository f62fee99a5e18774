// Probe for the decode GEMV (not part of `npm run bench`): times matmul_f16 / matmul_f32 with M = 1 on one
// weight matrix (cache-resident: the kernel's compute rate) or cycling distinct copies (--dram: decode's case),
// or the 12-layer decode sequence of GPT-2-124M (--layers), with weights drawn like the random GPT-2 checkpoints
// (uniform ±spread; the residual projections ±spread/√24, so about 0.2 % and 0.9 % of the halves are subnormal).
//   node --import tsx bench/probe-gemv.ts [--dtype f16|f32] [--threads 1] [--shape 768x3072] [--spread 0.0346]
//     [--dram | --layers [--noflags]] [--flush] [--align B] [--wasm dist/wasm/simd-threads.wasm] [--calls N]
// --flush: subnormal halves become signed zeros (the plain-SIMD slow path off); --wasm: another build of the
// kernels (e.g. the base commit's, for an A/B); --calls N: N calls and no timing, for instruction counts. The
// count that held up (a difference of two whole-process totals did not: V8's background threads vary) is
// callgrind with V8's code listing from the same process, summed over the wasm code's addresses:
//   valgrind --tool=callgrind --dump-instr=yes --smc-check=all-non-file node --no-liftoff --print-wasm-code \
//     --import tsx bench/probe-gemv.ts --calls 50 > code.txt   (then add up callgrind's per-address counts that
//     fall on addresses listed in code.txt and divide by 50)
import { readFileSync } from 'node:fs';
import { Backend } from '../src/runtime/backend.js';
import type { WasmVariant } from '../src/runtime/wasm.js';
import { floatToHalf } from '../src/io/half.js';
import { argValue } from './util/child.js';
import { rng } from './util/timing.js';

const argv = process.argv.slice(2);
const dtype = argValue(argv, 'dtype') ?? 'f16';
const threads = Number(argValue(argv, 'threads') ?? 1);
const [K, N] = (argValue(argv, 'shape') ?? '768x3072').split('x').map(Number);
const spread = Number(argValue(argv, 'spread') ?? 0.0346);
const dram = argv.includes('--dram');
const calls = Number(argValue(argv, 'calls') ?? 0);
const wasmPath = argValue(argv, 'wasm');
const variant = (argValue(argv, 'variant') ?? 'simd-threads') as WasmVariant;
const align = Number(argValue(argv, 'align') ?? 0); // extra bytes before each weight matrix
const flush = argv.includes('--flush'); // f16: subnormal halves replaced by signed zeros

const esize = dtype === 'f32' ? 4 : 2;
const wb = N * K * esize;
const copies = dram ? Math.max(2, Math.ceil((256 << 20) / wb)) : 1;
const wasmModule = wasmPath ? new WebAssembly.Module(readFileSync(wasmPath)) : undefined;
if (argv.includes('--layers')) { await layers(); process.exit(0); }
const backend = await Backend.create({ threads, variant, wasmModule, initialBytes: copies * (wb + 4096) + (64 << 20) });
const A = backend.arena, k = backend.k;
const x = A.alloc('x', K * 4).ptr, y = A.alloc('y', N * 4).ptr;
const r = rng(3), xs = A.f32(x, K);
for (let i = 0; i < K; i++) xs[i] = (r() * 2 - 1) * 2;
const ws: number[] = [];
let subnormal = 0;
for (let c = 0; c < copies; c++) {
  const w = A.alloc('w', wb + align).ptr + align;
  ws.push(w);
  if (c > 0) { A.u8(w, wb).set(A.u8(ws[0], wb)); continue; }
  const rw = rng(11);
  if (dtype === 'f32') { const f = A.f32(w, N * K); for (let i = 0; i < f.length; i++) f[i] = (rw() * 2 - 1) * spread; }
  else {
    const h = A.u16(w, N * K);
    for (let i = 0; i < h.length; i++) { h[i] = floatToHalf((rw() * 2 - 1) * spread);
      if ((h[i] & 0x7c00) === 0 && (h[i] & 0x3ff) !== 0) { if (flush) h[i] &= 0x8000; else subnormal++; } }
  }
}
const call = (c: number) => dtype === 'f32' ? k.matmul_f32(x, ws[c], 0, y, 1, K, N, 0) : k.matmul_f16(x, ws[c], 0, y, 1, K, N, 0);
if (calls > 0) {
  for (let i = 0; i < calls; i++) call(i % copies);
} else {
  const w0 = performance.now();
  for (let i = 0; performance.now() - w0 < 300; i++) call(i % copies);
  const times: number[] = [];
  const reps = dram ? copies : Math.max(1, Math.round(2e7 / wb));
  for (let p = 0; p < 12; p++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call(i % copies);
    times.push((performance.now() - t0) / reps);
  }
  times.sort((a, b) => a - b);
  const ms = times[0];
  console.log(JSON.stringify({ dtype, threads: backend.threads, variant: backend.variant, K, N, dram, copies, subnormal_pct: +(100 * subnormal / (N * K)).toFixed(3), ms: +ms.toFixed(4), ms_median: +times[6].toFixed(4), gb_s: +(wb / (ms * 1e6)).toFixed(1) }));
}
let sum = 0;
for (const v of A.f32(y, N)) sum += v;
if (calls > 0) console.log(JSON.stringify({ checksum: sum }));
backend.dispose();
process.exit(0);

/** --layers: the decode sequence of GPT-2-124M's 12 blocks (qkv 768x2304, attn proj 768x768 accumulating, fc
 *  768x3072 with gelu, mlp proj 3072x768 accumulating; biases; distinct weights per layer as in the model), each
 *  call timed like bench/model.ts's profile; per shape: the min and median ms per call and their GB/s. */
async function layers(): Promise<void> {
  const E = 768, shapes: [number, number, number][] = [[E, 3 * E, 0], [E, E, 4], [E, 4 * E, 1], [4 * E, E, 4]];
  const bytes = 12 * shapes.reduce((t, [k, n]) => t + k * n * esize + n * 4 + align, 0);
  const be = await Backend.create({ threads, variant, wasmModule, initialBytes: bytes + (64 << 20) });
  const A = be.arena, kk = be.k;
  const xs = A.alloc('x', 4 * E * 4).ptr, ys = A.alloc('y', 4 * E * 4).ptr;
  const r = rng(3);
  A.f32(xs, 4 * E).forEach((_, i, a) => { a[i] = (r() * 2 - 1) * 2; });
  const rw = rng(11);
  const mats: { w: number; b: number; K: number; N: number; flags: number }[] = [];
  for (let l = 0; l < 12; l++) {
    for (const [k, n, flags] of shapes) {
      const w = A.alloc('w', k * n * esize + align).ptr + align, b = A.alloc('b', n * 4).ptr;
      const sp = n === E ? spread / Math.sqrt(24) : spread;
      if (dtype === 'f32') A.f32(w, k * n).forEach((_, i, a) => { a[i] = (rw() * 2 - 1) * sp; });
      else A.u16(w, k * n).forEach((_, i, a) => { a[i] = floatToHalf((rw() * 2 - 1) * sp); });
      A.f32(b, n).fill(0.01);
      mats.push({ w, b, K: k, N: n, flags: argv.includes('--noflags') ? 0 : flags });
    }
  }
  const f = dtype === 'f32' ? kk.matmul_f32 : kk.matmul_f16;
  const acc = new Map<string, number[]>(); // per-call ms by shape, tokens 4..23
  for (let tok = 0; tok < 24; tok++) {
    for (const m of mats) {
      const t = performance.now();
      f(xs, m.w, m.b, ys, 1, m.K, m.N, m.flags);
      const dt = performance.now() - t, key = `${m.K}x${m.N}`;
      if (tok >= 4) (acc.get(key) ?? acc.set(key, []).get(key)!).push(dt);
    }
  }
  for (const [k, v] of acc) {
    v.sort((a, b) => a - b);
    const wbytes = k.split('x').map(Number).reduce((a, b) => a * b) * esize, gb = (ms: number) => +(wbytes / (ms * 1e6)).toFixed(1);
    console.log(JSON.stringify({ dtype, shape: k, ms_min: +v[0].toFixed(4), ms_median: +v[v.length >> 1].toFixed(4), gb_s_min: gb(v[0]), gb_s_median: gb(v[v.length >> 1]) }));
  }
  be.dispose();
}
