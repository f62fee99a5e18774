// Single-thread kernel throughput: GFLOP/s of the matmul kernels (GEMV decode shapes and GEMM prefill shapes of
// GPT-2 small, f32 / f16 / q8 weights) and attention times, for the plain-SIMD build and the relaxed-SIMD build
// (the latter in a child `node --experimental-wasm-relaxed-simd` when this Node needs the flag).
//   node --import tsx bench/kernels.ts [--quick] [--json] [--variant simd|relaxed]...
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DT_F16, DT_F32, DT_Q8, attentionScratchBytes, type KernelABI } from '../src/runtime/abi.js';
import { RESERVED_LOW_BYTES, compileVariant, createMemory, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';

export type KernelBenchVariant = 'simd' | 'relaxed';

export interface KernelBenchOptions {
  /** Builds to measure; default both. Relaxed runs in a child process if this engine needs the flag. */
  variants?: KernelBenchVariant[];
  /** Weight formats; default f32, f16, q8. */
  dtypes?: ('f32' | 'f16' | 'q8')[];
  /** Fewer and shorter repetitions. */
  quick?: boolean;
  /** Seconds of timing per measurement (default 0.4, quick 0.12). */
  seconds?: number;
  /** Use the shared-memory (threads) builds; default true (what the runtime runs), still one thread. */
  shared?: boolean;
  /** Print a table (default true). */
  print?: boolean;
}

export interface MatmulBenchRow {
  variant: KernelBenchVariant; dtype: string; kind: 'gemv' | 'gemm'; M: number; K: number; N: number;
  /** Best batch (ms per call, GFLOP/s) and the median batch's GFLOP/s. */
  ms: number; gflops: number; gflops_median: number;
}
export interface AttentionBenchRow {
  variant: KernelBenchVariant; kernel: 'blockwise' | 'eager'; B: number; H: number; T: number; S: number; D: number;
  /** Best and median batch, ms per call. */
  ms: number; ms_median: number;
}
export interface KernelBenchResult {
  threads: 1;
  node: string;
  matmul: MatmulBenchRow[];
  attention: AttentionBenchRow[];
  /** Variants that could not run here, with the reason. */
  skipped: { variant: KernelBenchVariant; reason: string }[];
}

const GEMV: [number, number, number][] = [[1, 768, 3072], [1, 768, 768], [1, 3072, 768], [1, 768, 50257]];
const GEMM: [number, number, number][] = [[128, 768, 3072], [128, 768, 768], [128, 3072, 768]];
const ATTN: [number, number][] = [[128, 128], [128, 1024]]; // [T, S]

function validates(v: WasmVariant) { try { return WebAssembly.validate(wasmBytes(v)); } catch { return false; } }

/** Fills `n` bytes at p with deterministic small values of the given kind. */
function fill(mem: WebAssembly.Memory, p: number, n: number, kind: 'f32' | 'f16' | 'i8' | 'scale', seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
  if (kind === 'f32' || kind === 'scale') {
    const a = new Float32Array(mem.buffer, p, n >> 2);
    for (let i = 0; i < a.length; i++) a[i] = kind === 'scale' ? 0.01 + next() * 0.01 : next() * 2 - 1;
  } else if (kind === 'f16') {
    const a = new Uint16Array(mem.buffer, p, n >> 1);
    for (let i = 0; i < a.length; i++) a[i] = (next() < 0.5 ? 0x8000 : 0) | (0x3000 + Math.floor(next() * 0x0c00)); // ±[2^-3, 1)
  } else {
    const a = new Int8Array(mem.buffer, p, n);
    for (let i = 0; i < a.length; i++) a[i] = Math.floor(next() * 255) - 127;
  }
}

/** Best and median per-call times (ms) of batches run for about `seconds`, after a warm-up long enough for the
 *  engine to tier the kernels up from its baseline compiler. The best batch is the kernel's speed on this
 *  machine; the median shows how much other load there was (the machine is shared). */
function time(fn: () => void, seconds: number): { best: number; median: number } {
  const w0 = performance.now();
  for (let i = 0; i < 5 || performance.now() - w0 < 60; i++) fn();
  const samples: number[] = [];
  const t0 = performance.now();
  let reps = 1;
  while (true) {
    const s = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const dt = (performance.now() - s) / reps;
    samples.push(dt);
    if (dt * reps < 5) reps *= 2;
    if (performance.now() - t0 > seconds * 1000 && samples.length >= 3) break;
  }
  samples.sort((a, b) => a - b);
  return { best: samples[0], median: samples[samples.length >> 1] };
}

function benchInProcess(variant: KernelBenchVariant, opts: KernelBenchOptions): { matmul: MatmulBenchRow[]; attention: AttentionBenchRow[] } {
  const shared = opts.shared ?? true;
  const wv = (shared ? `${variant}-threads` : variant) as WasmVariant;
  const seconds = opts.seconds ?? (opts.quick ? 0.12 : 0.4);
  const dtypes = opts.dtypes ?? ['f32', 'f16', 'q8'];
  const memory = createMemory(RESERVED_LOW_BYTES + (180 << 20), shared);
  const k: KernelABI = instantiateKernels(compileVariant(wv), memory);
  const matmul: MatmulBenchRow[] = [];
  const shapes = [...GEMV.map((s) => ['gemv', s] as const), ...GEMM.map((s) => ['gemm', s] as const)];
  for (const dtype of dtypes) {
    for (const [kind, [M, K, N]] of shapes) {
      if (opts.quick && N === 50257 && dtype !== 'f32') continue;
      let top = RESERVED_LOW_BYTES;
      const alloc = (bytes: number) => { const p = top; top = (top + bytes + 63) & ~63; return p; };
      const wBytes = dtype === 'f32' ? 4 : dtype === 'f16' ? 2 : 1;
      const w = alloc(N * K * wBytes), ws = alloc(N * (K / 32) * 4);
      const x = alloc(M * K * 4), xq = alloc(M * K), xs = alloc(M * (K / 32) * 4);
      const bias = alloc(N * 4), y = alloc(M * N * 4);
      fill(memory, w, N * K * wBytes, dtype === 'f32' ? 'f32' : dtype === 'f16' ? 'f16' : 'i8', 1);
      fill(memory, ws, N * (K / 32) * 4, 'scale', 2);
      fill(memory, x, M * K * 4, 'f32', 3);
      fill(memory, bias, N * 4, 'f32', 4);
      const dt = dtype === 'f32' ? DT_F32 : dtype === 'f16' ? DT_F16 : DT_Q8;
      let fn: () => void;
      if (dt === DT_F32) fn = () => k.matmul_f32(x, w, bias, y, M, K, N, 0, 0, 1);
      else if (dt === DT_F16) fn = () => k.matmul_f16(x, w, bias, y, M, K, N, 0, 0, 1);
      else {
        // the q8 path includes quantising the activations, as the model runs it
        fn = () => { k.quantize_q8(x, xq, xs, M, K, 0, 1); k.matmul_q8(xq, xs, w, ws, bias, y, M, K, N, 0, 0, 1); };
      }
      const t = time(fn, seconds);
      const gf = (ms: number) => round((2 * M * K * N) / (ms * 1e6), 2);
      matmul.push({ variant, dtype, kind, M, K, N, ms: round(t.best, 4), gflops: gf(t.best), gflops_median: gf(t.median) });
    }
  }
  const attention: AttentionBenchRow[] = [];
  const B = 1, H = 12, D = 64;
  for (const [T, S] of ATTN) {
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
      const t = time(() => f(q, qStride, kc, vc, cap, out, H * D, B, H, T, D, S, past, 1, 0, 0.125, 0, 0, scratch, 0, 1), seconds);
      attention.push({ variant, kernel, B, H, T, S, D, ms: round(t.best, 3), ms_median: round(t.median, 3) });
    }
  }
  return { matmul, attention };
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<KernelBenchResult> {
  const result: KernelBenchResult = { threads: 1, node: process.version, matmul: [], attention: [], skipped: [] };
  const shared = opts.shared ?? true;
  for (const variant of opts.variants ?? (['simd', 'relaxed'] as KernelBenchVariant[])) {
    const wv = (shared ? `${variant}-threads` : variant) as WasmVariant;
    if (validates(wv)) {
      const r = benchInProcess(variant, opts);
      result.matmul.push(...r.matmul); result.attention.push(...r.attention);
      continue;
    }
    if (variant !== 'relaxed' || process.env.KERNEL_BENCH_CHILD) { result.skipped.push({ variant, reason: `${wv} does not validate here` }); continue; }
    const args = ['--experimental-wasm-relaxed-simd', '--import', 'tsx', fileURLToPath(import.meta.url), '--json', '--variant', 'relaxed'];
    if (opts.quick) args.push('--quick');
    if (opts.seconds) args.push('--seconds', String(opts.seconds));
    if (opts.dtypes) args.push('--dtypes', opts.dtypes.join(','));
    if (!shared) args.push('--unshared');
    const res = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, KERNEL_BENCH_CHILD: '1' }, maxBuffer: 16 << 20 });
    try {
      const child = JSON.parse(res.stdout) as KernelBenchResult;
      result.matmul.push(...child.matmul); result.attention.push(...child.attention); result.skipped.push(...child.skipped);
    } catch {
      result.skipped.push({ variant, reason: `child process failed: ${(res.stderr || '').slice(-500)}` });
    }
  }
  if (opts.print ?? true) printResult(result);
  return result;
}

function printResult(r: KernelBenchResult) {
  const variants = [...new Set(r.matmul.map((m) => m.variant))];
  const keys = [...new Set(r.matmul.map((m) => `${m.dtype} ${m.kind} ${m.M}x${m.K}x${m.N}`))];
  console.log(`kernel bench (1 thread, ${r.node}): GFLOP/s of the best batch (median in parentheses)`);
  console.log(['shape'.padEnd(28), ...variants.map((v) => v.padStart(14))].join(''));
  for (const key of keys) {
    const cells = variants.map((v) => {
      const m = r.matmul.find((x) => x.variant === v && `${x.dtype} ${x.kind} ${x.M}x${x.K}x${x.N}` === key);
      return (m ? `${m.gflops.toFixed(1)} (${m.gflops_median.toFixed(0)})` : '-').padStart(14);
    });
    console.log([key.padEnd(28), ...cells].join(''));
  }
  console.log('attention (B=1, H=12, D=64, causal), ms');
  for (const a of r.attention) console.log(`  ${a.variant.padEnd(8)} ${a.kernel.padEnd(10)} T=${a.T} S=${a.S}: ${a.ms.toFixed(2)} ms (median ${a.ms_median.toFixed(2)})`);
  for (const s of r.skipped) console.log(`  skipped ${s.variant}: ${s.reason}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const opts: KernelBenchOptions = { quick: argv.includes('--quick'), shared: !argv.includes('--unshared') };
  const variants = argv.flatMap((a, i) => (a === '--variant' ? [argv[i + 1] as KernelBenchVariant] : []));
  if (variants.length) opts.variants = variants;
  const sec = argv.indexOf('--seconds'); if (sec >= 0) opts.seconds = Number(argv[sec + 1]);
  const dts = argv.indexOf('--dtypes'); if (dts >= 0) opts.dtypes = argv[dts + 1].split(',') as any;
  const json = argv.includes('--json');
  opts.print = !json;
  const r = await runKernelBench(opts);
  if (json) process.stdout.write(JSON.stringify(r) + '\n');
}
