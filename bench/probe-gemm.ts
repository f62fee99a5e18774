// Probe for the q8/q4 GEMM (not part of `npm run bench`): quantize_q8 + matmul_q8 (or q4) on one cache-resident
// weight matrix, 1 thread by default, CPU time per call, alternating between builds of the kernels (--wasm a,b,...:
// an A/B in one process on a noisy machine), or --calls N (no timing) for callgrind instruction counts:
//   node --import tsx bench/probe-gemm.ts [--shape 128x768x3072] [--dtype q8|q4] [--threads 1] [--wasm a.wasm,b.wasm] [--rounds 6]
//     [--variant relaxed-threads]  (the build the --wasm files are; relaxed needs --experimental-wasm-relaxed-simd on Node 20)
//   valgrind --tool=callgrind --dump-instr=yes --smc-check=all-non-file node --no-liftoff --print-wasm-code \
//     --import tsx bench/probe-gemm.ts --calls 5 > code.txt   (then sum callgrind's counts on the wasm code's addresses)
import { readFileSync } from 'node:fs';
import { Q8_BLOCK } from '../src/runtime/abi.js';
import { Backend } from '../src/runtime/backend.js';
import { argValue } from './util/child.js';
import { fillBlocks, weightBytes } from './util/ours-matmul.js';
import { bestTime, fillUniform, gflops } from './util/timing.js';

const argv = process.argv.slice(2);
const [M, K, N] = (argValue(argv, 'shape') ?? '128x768x3072').split('x').map(Number);
const dtype = (argValue(argv, 'dtype') ?? 'q8') as 'q8' | 'q4';
const threads = Number(argValue(argv, 'threads') ?? 1);
const calls = Number(argValue(argv, 'calls') ?? 0);
const rounds = Number(argValue(argv, 'rounds') ?? 6);
const wasms = (argValue(argv, 'wasm') ?? '').split(',').filter(Boolean);
const builds = wasms.length ? wasms : [''];
const fns: (() => void)[] = [];
for (const path of builds) {
  const wasmModule = path ? new WebAssembly.Module(readFileSync(path)) : undefined;
  const backend = await Backend.create({ threads, wasmModule, variant: (argValue(argv, 'variant') ?? 'simd-threads') as any, initialBytes: 64 << 20 });
  const A = backend.arena, k = backend.k;
  const x = A.alloc('x', M * K * 4).ptr, xq = A.alloc('xq', M * K).ptr, xs = A.alloc('xs', (M * K / Q8_BLOCK) * 4 + 4).ptr;
  const y = A.alloc('y', M * N * 4).ptr, wb = weightBytes(dtype, K, N), w = A.alloc('w', wb).ptr;
  fillUniform(A.f32(x, M * K), 1, 3);
  fillBlocks(A.u8(w, wb), dtype, N * K, 0.05, 6);
  fns.push(dtype === 'q8' ? () => { k.quantize_q8(x, xq, xs, M, K); k.matmul_q8(xq, xs, w, 0, y, M, K, N, 0); }
    : () => { k.quantize_q8(x, xq, xs, M, K); k.matmul_q4(xq, xs, w, 0, y, M, K, N, 0); });
}
if (calls > 0) { for (let i = 0; i < calls; i++) fns[0](); process.exit(0); }
const best = builds.map(() => Infinity);
for (let r = 0; r < rounds; r++) {
  builds.forEach((_, i) => { best[i] = Math.min(best[i], bestTime(fns[i], { samples: 3, sampleMs: 100, warmupMs: r ? 20 : 300 }).ms); });
}
builds.forEach((b, i) => console.log(`${b || 'embedded'}: ${best[i].toFixed(3)} ms ${gflops(M, K, N, best[i]).toFixed(1)} GF/s`));
process.exit(0);
