// Single-thread kernel throughput: GFLOP/s of the matmul kernels (GEMV decode shapes and GEMM prefill shapes of
// GPT-2 small, f32 / f16 / q8 weights) and attention times (prefill T=128 and decode T=1), for the plain-SIMD build
// and the relaxed-SIMD build (the latter in a child `node --experimental-wasm-relaxed-simd` when this Node needs
// the flag). These matmul numbers reuse one weight matrix, which stays cache-resident.
// The DRAM section (on by default from the command line, `dram: true` from code) measures what batch-1 decode
// does: GEMV calls cycling through distinct weight matrices totalling >= 256 MiB (8x the L3), through the
// public Backend at 1 and 2 threads (pool dispatch included), reported as weight GB/s next to the machine's
// read bandwidth measured by bench/bandwidth.ts.
// Each matmul row also gives GFLOP/s per CPU-second of the process (best batch): on a shared machine a descheduled
// batch inflates wall time but not CPU time, so this column tracks kernel changes where wall time cannot.
//   node --import tsx bench/kernels.ts [--quick] [--json] [--variant simd|relaxed]... [--no-dram] [--dram-only]
//     [--dtypes q8,q4] [--kinds gemm] [--no-attention]   (e.g. only the q8/q4 GEMM shapes: --dtypes q8,q4 --kinds gemm --no-attention --no-dram)
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DT_F16, DT_F32, DT_Q4, DT_Q8, Q8_BLOCK, attentionScratchBytes, type KernelABI } from '../src/runtime/abi.js';
import { Backend } from '../src/runtime/backend.js';
import { floatToHalf } from '../src/io/half.js';
import { fillBlocks, weightBytes } from './util/ours-matmul.js';
import { RESERVED_LOW_BYTES, compileVariant, createMemory, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';

export type KernelBenchVariant = 'simd' | 'relaxed';

export interface KernelBenchOptions {
  /** Builds to measure; default both. Relaxed runs in a child process if this engine needs the flag. */
  variants?: KernelBenchVariant[];
  /** Weight formats; default f32, f16, q8. */
  dtypes?: ('f32' | 'f16' | 'q8' | 'q4')[];
  /** Matmul kinds to measure (default both: GEMV decode shapes, GEMM prefill shapes). */
  kinds?: ('gemv' | 'gemm')[];
  /** Measure the attention kernels (default true). */
  attention?: boolean;
  /** Fewer and shorter repetitions. */
  quick?: boolean;
  /** Seconds of timing per measurement (default 0.4, quick 0.12). */
  seconds?: number;
  /** Use the shared-memory (threads) builds; default true (what the runtime runs), still one thread. */
  shared?: boolean;
  /** Print a table (default true). */
  print?: boolean;
  /** Run the DRAM GEMV section (default false; the command line turns it on unless --no-dram). */
  dram?: boolean;
  /** Only the DRAM GEMV section. */
  dramOnly?: boolean;
  /** Thread counts of the DRAM section (default 1, 2). */
  dramThreads?: number[];
  /** Skip measuring the read bandwidth (child processes: the parent measures it once). */
  noBandwidth?: boolean;
}

export interface MatmulBenchRow {
  variant: KernelBenchVariant; dtype: string; kind: 'gemv' | 'gemm'; M: number; K: number; N: number;
  /** Best batch (ms per call, GFLOP/s) and the median batch's GFLOP/s. */
  ms: number; gflops: number; gflops_median: number;
  /** GFLOP per CPU-second of this process in the best batch by CPU time (robust to being descheduled). */
  gflops_cpu?: number;
}
export interface AttentionBenchRow {
  variant: KernelBenchVariant; kernel: 'blockwise' | 'eager'; B: number; H: number; T: number; S: number; D: number;
  /** 'cached': the same K/V every call; 'dram' (T = 1, with the DRAM section): calls cycle through >= 96 MiB of
   *  K/V, as decode sees them (each layer's cache is evicted by the weights streamed between two visits). */
  kv: 'cached' | 'dram';
  /** Element type of the K/V caches (f16: kv_dtype fp16; blockwise only). */
  kv_dtype: 'f32' | 'f16';
  /** Best and median batch, ms per call. */
  ms: number; ms_median: number;
}
export interface DramGemvRow {
  variant: KernelBenchVariant; dtype: 'f32' | 'f16' | 'q8' | 'q4'; threads: number; K: number; N: number;
  /** Distinct weight matrices cycled through, and their total bytes. */
  copies: number; total_mb: number;
  /** Best pass: ms per GEMV call and weight bytes (int8 + scales for q8) per second; median pass's GB/s. */
  ms: number; gb_s: number; gb_s_median: number;
  /** gb_s as a share of the measured read bandwidth at this thread count. */
  of_bandwidth: number;
}
export interface KernelBenchResult {
  threads: 1;
  node: string;
  matmul: MatmulBenchRow[];
  attention: AttentionBenchRow[];
  /** DRAM-level GEMV (when run) and the read bandwidth it is compared with (GB/s by thread count). */
  dram?: { bandwidth: Record<string, number>; rows: DramGemvRow[]; note: string };
  /** Variants that could not run here, with the reason. */
  skipped: { variant: KernelBenchVariant; reason: string }[];
}

const GEMV: [number, number, number][] = [[1, 768, 3072], [1, 768, 768], [1, 3072, 768], [1, 768, 50257]];
const GEMM: [number, number, number][] = [[128, 768, 3072], [128, 768, 768], [128, 3072, 768]];
const ATTN: [number, number][] = [[128, 128], [128, 1024], [1, 128], [1, 1024]]; // [T, S]: prefill, then decode (also from DRAM)
/** Decode GEMV shapes [K, N] of GPT-2 small: qkv, attn proj, mlp fc, mlp proj, LM head. */
const DRAM_GEMV: [number, number][] = [[768, 2304], [768, 768], [768, 3072], [3072, 768], [768, 50257]];
const DRAM_BYTES = 256 << 20; // per row, the weights cycled through: 8x the 32 MiB L3

function validates(v: WasmVariant) { try { return WebAssembly.validate(wasmBytes(v)); } catch { return false; } }

/** Fills `n` bytes at p with deterministic small values of the given kind (q8/q4 blocks: fillBlocks). */
function fill(mem: WebAssembly.Memory, p: number, n: number, kind: 'f32' | 'f16', seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
  if (kind === 'f32') {
    const a = new Float32Array(mem.buffer, p, n >>> 2);
    for (let i = 0; i < a.length; i++) a[i] = next() * 2 - 1;
  } else {
    const a = new Uint16Array(mem.buffer, p, n >>> 1);
    for (let i = 0; i < a.length; i++) a[i] = (next() < 0.5 ? 0x8000 : 0) | (0x3000 + Math.floor(next() * 0x0c00)); // ±[2^-3, 1)
  }
}

/** Best and median per-call times (ms) of batches run for about `seconds`, after a warm-up long enough for the
 *  engine to tier the kernels up from its baseline compiler. The best batch is the kernel's speed on this
 *  machine; the median shows how much other load there was (the machine is shared). */
function time(fn: () => void, seconds: number): { best: number; median: number; bestCpu: number } {
  const w0 = performance.now();
  for (let i = 0; i < 5 || performance.now() - w0 < 60; i++) fn();
  const samples: number[] = [];
  const t0 = performance.now();
  let reps = 1, bestCpu = Infinity;
  while (true) {
    const c = process.cpuUsage();
    const s = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const dt = (performance.now() - s) / reps;
    const cu = process.cpuUsage(c);
    // CPU time has ~1 ms granularity on some systems: only batches of >= 5 ms count
    if (dt * reps >= 5) bestCpu = Math.min(bestCpu, (cu.user + cu.system) / 1000 / reps);
    samples.push(dt);
    if (dt * reps < 5) reps *= 2;
    if (performance.now() - t0 > seconds * 1000 && samples.length >= 3) break;
  }
  samples.sort((a, b) => a - b);
  return { best: samples[0], median: samples[samples.length >> 1], bestCpu };
}

function benchInProcess(variant: KernelBenchVariant, opts: KernelBenchOptions): { matmul: MatmulBenchRow[]; attention: AttentionBenchRow[] } {
  const shared = opts.shared ?? true;
  const wv = (shared ? `${variant}-threads` : variant) as WasmVariant;
  const seconds = opts.seconds ?? (opts.quick ? 0.12 : 0.4);
  const dtypes = opts.dtypes ?? ['f32', 'f16', 'q8', 'q4'];
  const memory = createMemory(RESERVED_LOW_BYTES + (180 << 20), shared);
  const k: KernelABI = instantiateKernels(compileVariant(wv), memory);
  const matmul: MatmulBenchRow[] = [];
  const kinds = opts.kinds ?? ['gemv', 'gemm'];
  const shapes = [...GEMV.map((s) => ['gemv', s] as const), ...GEMM.map((s) => ['gemm', s] as const)].filter(([kind]) => kinds.includes(kind));
  for (const dtype of dtypes) {
    for (const [kind, [M, K, N]] of shapes) {
      if (opts.quick && N === 50257 && dtype !== 'f32') continue;
      let top = RESERVED_LOW_BYTES;
      const alloc = (bytes: number) => { const p = top; top = (top + bytes + 63) & ~63; return p; };
      const wb = weightBytes(dtype === 'f32' ? 'f32' : dtype === 'f16' ? 'f16' : dtype, K, N);
      const w = alloc(wb);
      const x = alloc(M * K * 4), xq = alloc(M * K), xs = alloc(M * (K / 32) * 4);
      const bias = alloc(N * 4), y = alloc(M * N * 4);
      if (dtype === 'q8' || dtype === 'q4') fillBlocks(new Uint8Array(memory.buffer, w, wb), dtype, N * K, 0.05, 1);
      else fill(memory, w, wb, dtype, 1);
      fill(memory, x, M * K * 4, 'f32', 3);
      fill(memory, bias, N * 4, 'f32', 4);
      const dt = dtype === 'f32' ? DT_F32 : dtype === 'f16' ? DT_F16 : dtype === 'q8' ? DT_Q8 : DT_Q4;
      let fn: () => void;
      if (dt === DT_F32) fn = () => k.matmul_f32(x, w, bias, y, M, K, N, 0, 0, 1);
      else if (dt === DT_F16) fn = () => k.matmul_f16(x, w, bias, y, M, K, N, 0, 0, 1);
      else if (dt === DT_Q8) {
        // the q8/q4 paths include quantising the activations, as the model runs them
        fn = () => { k.quantize_q8(x, xq, xs, M, K, 0, 1); k.matmul_q8(xq, xs, w, bias, y, M, K, N, 0, 0, 1); };
      } else fn = () => { k.quantize_q8(x, xq, xs, M, K, 0, 1); k.matmul_q4(xq, xs, w, bias, y, M, K, N, 0, 0, 1); };
      const t = time(fn, seconds);
      const gf = (ms: number) => round((2 * M * K * N) / (ms * 1e6), 2);
      matmul.push({ variant, dtype, kind, M, K, N, ms: round(t.best, 4), gflops: gf(t.best), gflops_median: gf(t.median), ...(Number.isFinite(t.bestCpu) ? { gflops_cpu: gf(t.bestCpu) } : {}) });
    }
  }
  const attention: AttentionBenchRow[] = [];
  const B = 1, H = 12, D = 64;
  for (const [T, S] of opts.attention === false ? [] : ATTN) {
    let top = RESERVED_LOW_BYTES;
    const alloc = (bytes: number) => { const p = top; top = (top + bytes + 63) & ~63; return p; };
    const qStride = 3 * H * D, cap = S;
    const q = alloc(B * T * qStride * 4), kc = alloc(B * H * cap * D * 4), vc = alloc(B * H * cap * D * 4);
    const out = alloc(B * T * H * D * 4), scratch = alloc(attentionScratchBytes(S, D));
    fill(memory, q, B * T * qStride * 4, 'f32', 5);
    fill(memory, kc, B * H * cap * D * 4, 'f32', 6);
    fill(memory, vc, B * H * cap * D * 4, 'f32', 7);
    const past = S - T;
    for (const kernel of ['blockwise', 'eager'] as const) {
      const f = kernel === 'blockwise' ? k.attention_blockwise : k.attention_eager;
      const t = time(() => f(q, qStride, kc, vc, DT_F32, cap, out, H * D, B, H, T, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1), seconds);
      attention.push({ variant, kernel, B, H, T, S, D, kv: 'cached', kv_dtype: 'f32', ms: round(t.best, 3), ms_median: round(t.median, 3) });
    }
    {
      // the same keys and values rounded to f16 caches (in the first halves of kc/vc), blockwise
      for (const p of [kc, vc]) {
        const f = new Float32Array(memory.buffer, p, B * H * cap * D), hv = new Uint16Array(memory.buffer, p, B * H * cap * D);
        for (let i = 0; i < f.length; i++) hv[i] = floatToHalf(f[i]);
      }
      const t = time(() => k.attention_blockwise(q, qStride, kc, vc, DT_F16, cap, out, H * D, B, H, T, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1), seconds);
      attention.push({ variant, kernel: 'blockwise', B, H, T, S, D, kv: 'cached', kv_dtype: 'f16', ms: round(t.best, 3), ms_median: round(t.median, 3) });
      fill(memory, kc, B * H * cap * D * 4, 'f32', 6);
      fill(memory, vc, B * H * cap * D * 4, 'f32', 7);
    }
    if (T !== 1 || !opts.dram) continue;
    // decode from DRAM (with the DRAM section): copies of the caches, called in turn
    const kvBytes = B * H * cap * D * 4;
    const sets = Math.ceil((96 << 20) / (2 * kvBytes));
    const kv = [kc];
    for (let c = 1; c < sets; c++) {
      const p = alloc(2 * kvBytes);
      new Uint8Array(memory.buffer, p, 2 * kvBytes).set(new Uint8Array(memory.buffer, kc, 2 * kvBytes));
      kv.push(p);
    }
    for (const kernel of ['blockwise', 'eager'] as const) {
      const f = kernel === 'blockwise' ? k.attention_blockwise : k.attention_eager;
      let c = 0;
      const t = time(() => { const p = kv[c]; c = c + 1 === sets ? 0 : c + 1; f(q, qStride, p, p + kvBytes, DT_F32, cap, out, H * D, B, H, T, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1); }, seconds);
      attention.push({ variant, kernel, B, H, T, S, D, kv: 'dram', kv_dtype: 'f32', ms: round(t.best, 3), ms_median: round(t.median, 3) });
    }
  }
  return { matmul, attention };
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;


/** Decode GEMVs streaming their weights from DRAM: for each (threads, dtype, shape), `copies` distinct weight
 *  matrices (>= DRAM_BYTES in all) are called in turn, so every call reads its weights from memory as batch-1
 *  decode does (each weight is read once per token and 130-500 MB of them pass through the 32 MB L3 between
 *  uses). One pass = one call per copy; the best and median of the passes are reported. Weights: f32 uniform,
 *  f16 normal halves (no subnormals), q8/q4 Q8_0/Q4_0 blocks of uniform random weights; q8/q4 include quantising x, as the model does. */
async function benchDram(variant: KernelBenchVariant, opts: KernelBenchOptions): Promise<Omit<DramGemvRow, 'of_bandwidth'>[]> {
  const shared = opts.shared ?? true;
  const wv = (shared ? `${variant}-threads` : variant) as WasmVariant;
  const passes = opts.quick ? 4 : 8;
  const rows: Omit<DramGemvRow, 'of_bandwidth'>[] = [];
  for (const threads of opts.dramThreads ?? [1, 2]) {
    if (threads > 1 && !shared) continue;
    const backend = await Backend.create({ threads, variant: wv, initialBytes: DRAM_BYTES + (96 << 20) });
    try {
      const A = backend.arena, k = backend.k;
      for (const dtype of opts.dtypes ?? ['f32', 'f16', 'q8', 'q4']) {
        for (const [K, N] of DRAM_GEMV) {
          const wb = weightBytes(dtype, K, N);
          const copies = Math.max(2, Math.ceil(DRAM_BYTES / wb));
          const regs = [A.alloc('x', K * 4), A.alloc('xq', K), A.alloc('xs', (K / Q8_BLOCK) * 4), A.alloc('y', N * 4)];
          const [x, xq, xs, y] = regs.map((r) => r.ptr);
          fill(A.memory, x, K * 4, 'f32', 3);
          const ws: number[] = [];
          for (let c = 0; c < copies; c++) {
            const w = A.alloc('w', wb);
            regs.push(w); ws.push(w.ptr);
            if (c === 0) {
              if (dtype === 'q8' || dtype === 'q4') fillBlocks(A.u8(w.ptr, wb), dtype, N * K, 0.05, 11);
              else fill(A.memory, w.ptr, wb, dtype, 11);
            } else { // copies of the first matrix: same values, distinct memory
              A.u8(w.ptr, wb).set(A.u8(ws[0], wb));
            }
          }
          const call = (c: number) => {
            if (dtype === 'f32') k.matmul_f32(x, ws[c], 0, y, 1, K, N, 0);
            else if (dtype === 'f16') k.matmul_f16(x, ws[c], 0, y, 1, K, N, 0);
            else if (dtype === 'q8') { k.quantize_q8(x, xq, xs, 1, K); k.matmul_q8(xq, xs, ws[c], 0, y, 1, K, N, 0); }
            else { k.quantize_q8(x, xq, xs, 1, K); k.matmul_q4(xq, xs, ws[c], 0, y, 1, K, N, 0); }
          };
          // warm-up: enough calls for the engine to tier the kernels up, then one full pass
          const w0 = performance.now();
          for (let i = 0; performance.now() - w0 < 150; i++) call(i % copies);
          for (let c = 0; c < copies; c++) call(c);
          const times: number[] = [];
          for (let p = 0; p < passes; p++) {
            const t0 = performance.now();
            for (let c = 0; c < copies; c++) call(c);
            times.push((performance.now() - t0) / copies);
          }
          times.sort((a, b) => a - b);
          const gb = (ms: number) => round(wb / (ms * 1e6), 1);
          rows.push({ variant, dtype, threads: backend.threads, K, N, copies, total_mb: round(copies * wb / 2 ** 20, 0), ms: round(times[0], 4), gb_s: gb(times[0]), gb_s_median: gb(times[times.length >> 1]) });
          for (const r of regs) A.release(r);
        }
      }
    } finally { backend.dispose(); }
  }
  return rows;
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<KernelBenchResult> {
  const result: KernelBenchResult = { threads: 1, node: process.version, matmul: [], attention: [], skipped: [] };
  const shared = opts.shared ?? true;
  const dram = opts.dram || opts.dramOnly;
  const dramRows: Omit<DramGemvRow, 'of_bandwidth'>[] = [];
  for (const variant of opts.variants ?? (['simd', 'relaxed'] as KernelBenchVariant[])) {
    const wv = (shared ? `${variant}-threads` : variant) as WasmVariant;
    if (validates(wv)) {
      if (!opts.dramOnly) {
        const r = benchInProcess(variant, opts);
        result.matmul.push(...r.matmul); result.attention.push(...r.attention);
      }
      if (dram) dramRows.push(...await benchDram(variant, opts));
      continue;
    }
    if (variant !== 'relaxed' || process.env.KERNEL_BENCH_CHILD) { result.skipped.push({ variant, reason: `${wv} does not validate here` }); continue; }
    const args = ['--experimental-wasm-relaxed-simd', '--import', 'tsx', fileURLToPath(import.meta.url), '--json', '--variant', 'relaxed'];
    if (opts.quick) args.push('--quick');
    if (opts.seconds) args.push('--seconds', String(opts.seconds));
    if (opts.dtypes) args.push('--dtypes', opts.dtypes.join(','));
    if (opts.kinds) args.push('--kinds', opts.kinds.join(','));
    if (opts.attention === false) args.push('--no-attention');
    if (!shared) args.push('--unshared');
    args.push(opts.dramOnly ? '--dram-only' : dram ? '--dram' : '--no-dram', '--no-bandwidth');
    if (opts.dramThreads) args.push('--dram-threads', opts.dramThreads.join(','));
    const res = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, KERNEL_BENCH_CHILD: '1' }, maxBuffer: 16 << 20 });
    try {
      const child = JSON.parse(res.stdout) as KernelBenchResult;
      result.matmul.push(...child.matmul); result.attention.push(...child.attention); result.skipped.push(...child.skipped);
      if (child.dram) dramRows.push(...child.dram.rows);
    } catch {
      result.skipped.push({ variant, reason: `child process failed: ${(res.stderr || '').slice(-500)}` });
    }
  }
  if (dram) {
    // the ceiling: the machine's read bandwidth at each thread count, measured the same way bench/bandwidth.ts does
    let bandwidth: Record<string, number> = {};
    if (!opts.noBandwidth) {
      const { runBandwidthBench } = await import('./bandwidth.js');
      bandwidth = (await runBandwidthBench({ quick: true, threads: opts.dramThreads ?? [1, 2], print: false })).wasm_f32x4;
    }
    result.dram = {
      bandwidth,
      rows: dramRows.map((r) => ({ ...r, of_bandwidth: bandwidth[String(r.threads)] ? round(r.gb_s / bandwidth[String(r.threads)], 2) : 0 })),
      note: `GEMV (M=1) calls cycling through >= ${DRAM_BYTES >> 20} MiB of distinct weights (L3 is 32 MiB); weight bytes (q8/q4: whole Q8_0/Q4_0 blocks) per second of the best pass (median pass in parentheses), through Backend (pool dispatch included); bandwidth: bench/bandwidth.ts wasm f32x4 read loop`,
    };
  }
  if (opts.print ?? true) printResult(result);
  return result;
}

function printResult(r: KernelBenchResult) {
  const variants = [...new Set(r.matmul.map((m) => m.variant))];
  const keys = [...new Set(r.matmul.map((m) => `${m.dtype} ${m.kind} ${m.M}x${m.K}x${m.N}`))];
  console.log(`kernel bench (1 thread, ${r.node}): GFLOP/s of the best batch (median in parentheses; cpu: per CPU-second)`);
  console.log(['shape'.padEnd(28), ...variants.map((v) => v.padStart(14))].join(''));
  for (const key of keys) {
    const cells = variants.map((v) => {
      const m = r.matmul.find((x) => x.variant === v && `${x.dtype} ${x.kind} ${x.M}x${x.K}x${x.N}` === key);
      return (m ? `${m.gflops.toFixed(1)} (${m.gflops_median.toFixed(0)})${m.gflops_cpu ? ` cpu ${m.gflops_cpu.toFixed(1)}` : ''}` : '-').padStart(m?.gflops_cpu ? 24 : 14);
    });
    console.log([key.padEnd(28), ...cells].join(''));
  }
  if (r.attention.length) console.log('attention (B=1, H=12, D=64, causal), ms');
  for (const a of r.attention) console.log(`  ${a.variant.padEnd(8)} ${a.kernel.padEnd(10)} T=${a.T} S=${a.S} ${a.kv_dtype} ${a.kv === 'dram' ? 'K/V from DRAM' : 'K/V cached'}: ${a.ms.toFixed(3)} ms (median ${a.ms_median.toFixed(3)})`);
  if (r.dram) {
    const bw = Object.entries(r.dram.bandwidth).map(([t, v]) => `${t} thread(s) ${v} GB/s`).join(', ');
    console.log(`DRAM GEMV: weight GB/s of the best pass (median), share of read bandwidth (${bw || 'not measured'})`);
    for (const d of r.dram.rows) {
      console.log(`  ${d.variant.padEnd(8)} ${d.dtype} ${d.threads}t 1x${d.K}x${d.N}`.padEnd(34) + ` x${String(d.copies).padEnd(4)} ${d.gb_s.toFixed(1).padStart(5)} GB/s (${d.gb_s_median.toFixed(1)})` + (d.of_bandwidth ? `  ${Math.round(d.of_bandwidth * 100)}%` : '') + `  ${(d.ms * 1000).toFixed(0)} us/call`);
    }
  }
  for (const s of r.skipped) console.log(`  skipped ${s.variant}: ${s.reason}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const opts: KernelBenchOptions = { quick: argv.includes('--quick'), shared: !argv.includes('--unshared') };
  const variants = argv.flatMap((a, i) => (a === '--variant' ? [argv[i + 1] as KernelBenchVariant] : []));
  if (variants.length) opts.variants = variants;
  const sec = argv.indexOf('--seconds'); if (sec >= 0) opts.seconds = Number(argv[sec + 1]);
  const dts = argv.indexOf('--dtypes'); if (dts >= 0) opts.dtypes = argv[dts + 1].split(',') as any;
  const kds = argv.indexOf('--kinds'); if (kds >= 0) opts.kinds = argv[kds + 1].split(',') as any;
  if (argv.includes('--no-attention')) opts.attention = false;
  opts.dram = !argv.includes('--no-dram');
  opts.dramOnly = argv.includes('--dram-only');
  opts.noBandwidth = argv.includes('--no-bandwidth');
  const dth = argv.indexOf('--dram-threads'); if (dth >= 0) opts.dramThreads = argv[dth + 1].split(',').map(Number);
  const json = argv.includes('--json');
  opts.print = !json;
  const r = await runKernelBench(opts);
  if (json) process.stdout.write(JSON.stringify(r) + '\n');
}
