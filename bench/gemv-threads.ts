// Probe: one decode GEMV shape (q8 / q4 / f32 weights, cycling through copies totalling --mb MiB so that they
// stream from DRAM; --mb 4 keeps them cache-resident) through the worker pool at a given thread count and chunk
// count, with the caller's side of each call timed: how many chunks the caller ran, how long it then waited for
// the chunks the workers held, and how often a worker was asleep (in Atomics.wait) when the call was published.
// On one thread it also times each chunk. For "why does 2-thread decode not scale" (issue 10).
// Also the time publish() took (Atomics.notify included when a worker sleeps).
//   node --import tsx bench/gemv-threads.ts [--threads 2] [--dtype q8|q4|f32] [--shape 768x3072] [--chunks 1,2,4,8]
//     [--mb 256] [--passes 6] [--gap 0,20,100]   (us of caller-only work before each call, like decode's small ops)
//     [--worker-only] (the caller publishes and waits: the workers alone) [--sleep-wait] (the caller waits in
//     Atomics.wait without spinning) [--wasm file.wasm] (an experimental build of the same variant)
//     [--calls N] (N untimed calls per chunk count, for valgrind --tool=callgrind)
import { readFileSync } from 'node:fs';
import { KERNEL_NAMES, Q8_BLOCK } from '../src/runtime/abi.js';
import { chunkCount } from '../src/runtime/chunks.js';
import { CTL_DONE, CTL_SLEEPERS, claimChunk, finishChunk } from '../src/runtime/control.js';
import { Arena } from '../src/runtime/memory.js';
import { ThreadPool } from '../src/runtime/pool.js';
import { createMemory, detectFeatures, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';
import { argValue } from './util/child.js';
import { fillUniform } from './util/timing.js';
import { fillBlocks, weightBytes } from './util/ours-matmul.js';

const threads = Number(argValue(process.argv, 'threads') ?? 2);
const dtype = (argValue(process.argv, 'dtype') ?? 'q8') as 'q8' | 'q4' | 'f32';
const [K, N] = (argValue(process.argv, 'shape') ?? '768x3072').split('x').map(Number);
const mb = Number(argValue(process.argv, 'mb') ?? 256);
const passes = Number(argValue(process.argv, 'passes') ?? 6);
const op = dtype === 'f32' ? 'matmul_f32' : `matmul_${dtype}`;
const defaultChunks = chunkCount(op as any, dtype === 'f32' ? [0, 0, 0, 0, 1, K, N, 0] : [0, 0, 0, 0, 0, 1, K, N, 0], threads);
const sleepWait = process.argv.includes('--sleep-wait'); // the caller waits for the others in Atomics.wait only
const workerOnly = process.argv.includes('--worker-only'); // the caller publishes and waits: the workers' speed alone
const fixedCalls = argValue(process.argv, 'calls'); // exactly this many calls per chunk count, untimed (for callgrind)
const chunkList = (argValue(process.argv, 'chunks') ?? String(defaultChunks)).split(',').map(Number);

const variant = (detectFeatures().variant.replace(/-threads$/, '') + '-threads') as WasmVariant;
const memory = createMemory(mb * 2 ** 20 + (64 << 20), true);
const arena = new Arena(memory);
const wasmFile = argValue(process.argv, 'wasm');
const bytes = wasmFile ? new Uint8Array(readFileSync(wasmFile)) : wasmBytes(variant);
const inst = instantiateKernels(new WebAssembly.Module(bytes), memory);
const pool = threads > 1 ? await ThreadPool.create(arena, bytes, KERNEL_NAMES, threads) : null;
const P: any = pool;

const wb = weightBytes(dtype, K, N);
const copies = Math.max(2, Math.ceil(mb * 2 ** 20 / wb));
const x = arena.alloc('x', K * 4).ptr, xq = arena.alloc('xq', K).ptr, xs = arena.alloc('xs', (K / Q8_BLOCK) * 4).ptr, y = arena.alloc('y', N * 4).ptr;
fillUniform(arena.f32(x, K), 1, 3);
const ws: number[] = [];
for (let c = 0; c < copies; c++) {
  const w = arena.alloc('w', wb).ptr;
  ws.push(w);
  if (c === 0) {
    if (dtype === 'f32') fillUniform(arena.f32(w, N * K), 0.05, 11);
    else fillBlocks(arena.u8(w, wb), dtype, N * K, 0.05, 11);
  } else arena.u8(w, wb).set(arena.u8(ws[0], wb));
}
const fn = (inst as any)[op] as (...a: number[]) => void;
const opIndex = KERNEL_NAMES.indexOf(op as any);
(inst.quantize_q8 as any)(x, xq, xs, 1, K, 0, 1);

// the caller's side of ThreadPool.run, timed: chunks it ran, and the wait for the others after its last one
let gapUs = 0, asleep = 0, publishMs = 0;
let callerChunks = 0, waitMs = 0, chunkMs: number[] = [];
function call(c: number, nchunks: number) {
  const args = dtype === 'f32' ? [x, ws[c], 0, y, 1, K, N, 0] : [xq, xs, ws[c], 0, y, 1, K, N, 0];
  if (!pool || nchunks <= 1) {
    for (let i = 0; i < nchunks; i++) { const t = performance.now(); fn(...args, i, nchunks); chunkMs[i] = (chunkMs[i] ?? 0) + performance.now() - t; callerChunks++; }
    return;
  }
  const ctl: Int32Array = P.ctl;
  if (gapUs > 0) { const t = performance.now(); while ((performance.now() - t) * 1000 < gapUs); } // the caller's single-chunk ops between two GEMVs
  if (Atomics.load(ctl, CTL_SLEEPERS) > 0) asleep++;
  const tp = performance.now();
  const tag = P.publish(opIndex, args, nchunks);
  publishMs += performance.now() - tp;
  if (!workerOnly) for (let i = claimChunk(ctl, tag, nchunks); i >= 0; i = claimChunk(ctl, tag, nchunks)) {
    fn(...args, i, nchunks);
    finishChunk(ctl, nchunks);
    callerChunks++;
  }
  const t = performance.now();
  if (sleepWait) { let d; while ((d = Atomics.load(ctl, CTL_DONE)) !== nchunks) Atomics.wait(ctl, CTL_DONE, d, 50); } // block without spinning
  else P.waitDone(opIndex, nchunks);
  waitMs += performance.now() - t;
}

console.log(`${dtype} 1x${K}x${N} threads ${threads}, ${copies} copies of ${(wb / 2 ** 20).toFixed(1)} MiB, variant ${variant}`);
for (const gap of (argValue(process.argv, 'gap') ?? '0').split(',').map(Number)) for (const nchunks of chunkList) {
  gapUs = gap;
  if (fixedCalls) { for (let i = 0; i < Number(fixedCalls); i++) call(i % copies, nchunks); continue; }
  const w0 = performance.now();
  for (let i = 0; performance.now() - w0 < 200; i++) call(i % copies, nchunks);
  const times: number[] = [];
  callerChunks = 0; waitMs = 0; chunkMs = []; asleep = 0; publishMs = 0;
  for (let p = 0; p < passes; p++) {
    const t0 = performance.now();
    for (let c = 0; c < copies; c++) call(c, nchunks);
    times.push((performance.now() - t0) / copies);
  }
  times.sort((a, b) => a - b);
  const calls = passes * copies;
  const us = (ms: number) => (ms * 1000).toFixed(0);
  console.log(`gap ${gap} us, asleep at ${asleep} of ${calls} calls; chunks ${String(nchunks).padStart(3)}: us/call best ${us(times[0])} median ${us(times[times.length >> 1])}  GB/s ${(wb / (times[0] * 1e6)).toFixed(1)}  caller ran ${(callerChunks / calls).toFixed(2)} of ${nchunks} chunks, waited ${us(waitMs / calls)} us/call, publishing took ${(publishMs * 1000 / calls).toFixed(1)} us/call`);
  if (!pool && nchunks <= 16) console.log('   per chunk us:', chunkMs.map((t) => us(t / calls)).join(' '));
}
pool?.dispose();
