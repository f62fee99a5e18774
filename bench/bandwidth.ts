// Memory read bandwidth, the ceiling for batch-1 decode (every weight is read once per token):
//  - wasm: a SIMD loop (8 × v128.load + f32x4.add per 128 bytes, four streams as the GEMVs read) over a buffer
//    much larger than the caches,
//    written here as WAT and assembled with binaryen, on a shared memory; 1 thread and N threads (worker_threads,
//    each summing its own slice, started together through Atomics);
//  - js: a plain Float64Array sum on one thread (a lower bound: what scalar JS reaches).
//   node --import tsx bench/bandwidth.ts [--quick] [--mb 512] [--threads 1,2] [--json]
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { argValue } from './util/child.js';
import { round } from './util/timing.js';

export interface BandwidthOptions { quick?: boolean; mb?: number; threads?: number[]; passes?: number; print?: boolean }
export interface BandwidthResult {
  buffer_mb: number;
  /** GB/s (1e9 bytes/s) by thread count, best pass. */
  wasm_f32x4: Record<string, number>;
  js_f64_1t: number;
  note: string;
}

const WAT = `
(module
  (import "env" "memory" (memory 1 65536 shared))
  ;; sums f32 lanes of [p, end) (end - p a multiple of 128) as four streams, one per quarter, 32 bytes of each per
  ;; step: the access pattern of the GEMV kernels (four far-apart weight rows at a time), whose hardware prefetch
  ;; reaches more bandwidth than one stream does (one stream measured 26 GB/s where the f32 GEMV read 31-37).
  ;; The result only keeps the loads alive.
  (func (export "sum") (param $p i32) (param $end i32) (result f32)
    (local $a v128) (local $b v128) (local $c v128) (local $d v128)
    (local $e v128) (local $f v128) (local $g v128) (local $h v128)
    (local $q i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $stop i32)
    (local.set $q (i32.shr_u (i32.sub (local.get $end) (local.get $p)) (i32.const 2)))
    (local.set $stop (i32.add (local.get $p) (local.get $q)))
    (local.set $p1 (local.get $stop))
    (local.set $p2 (i32.add (local.get $p1) (local.get $q)))
    (local.set $p3 (i32.add (local.get $p2) (local.get $q)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $stop)))
        (local.set $a (f32x4.add (local.get $a) (v128.load offset=0 (local.get $p))))
        (local.set $b (f32x4.add (local.get $b) (v128.load offset=16 (local.get $p))))
        (local.set $c (f32x4.add (local.get $c) (v128.load offset=0 (local.get $p1))))
        (local.set $d (f32x4.add (local.get $d) (v128.load offset=16 (local.get $p1))))
        (local.set $e (f32x4.add (local.get $e) (v128.load offset=0 (local.get $p2))))
        (local.set $f (f32x4.add (local.get $f) (v128.load offset=16 (local.get $p2))))
        (local.set $g (f32x4.add (local.get $g) (v128.load offset=0 (local.get $p3))))
        (local.set $h (f32x4.add (local.get $h) (v128.load offset=16 (local.get $p3))))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 32)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 32)))
        (local.set $p3 (i32.add (local.get $p3) (i32.const 32)))
        (br $next)))
    (local.set $a (f32x4.add (f32x4.add (f32x4.add (local.get $a) (local.get $b)) (f32x4.add (local.get $c) (local.get $d)))
                             (f32x4.add (f32x4.add (local.get $e) (local.get $f)) (f32x4.add (local.get $g) (local.get $h)))))
    (f32.add (f32.add (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
             (f32.add (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))
)`;

let wasmCache: Uint8Array | null = null;
/** Assembles the WAT above with binaryen (a devDependency). */
export async function bandwidthWasm(): Promise<Uint8Array> {
  if (wasmCache) return wasmCache;
  const binaryen = (await import('binaryen')).default as any;
  const mod = binaryen.parseText(WAT);
  mod.setFeatures(binaryen.Features.MVP | binaryen.Features.SIMD128 | binaryen.Features.Atomics | binaryen.Features.BulkMemory);
  if (!mod.validate()) throw new Error('bandwidth kernel failed to validate');
  wasmCache = mod.emitBinary() as Uint8Array;
  mod.dispose();
  return wasmCache;
}

// Worker: instantiates the kernel on the shared memory and sums its slice each time the generation counter moves.
const WORKER = `
const { parentPort } = require('node:worker_threads');
parentPort.once('message', async ({ memory, wasm, ctl, lo, hi }) => {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { memory } });
  const c = new Int32Array(ctl);
  let seen = 0, sink = 0;
  // many short calls so V8 tiers the function up from its baseline compiler before the timed passes
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 2000; i++) sink += inst.exports.sum(lo, lo + 65536);
    await new Promise((res) => setTimeout(res, 30));
  }
  parentPort.postMessage('ready');
  for (;;) {
    Atomics.wait(c, 0, seen);
    seen = Atomics.load(c, 0);
    if (seen < 0) break;
    sink += inst.exports.sum(lo, hi);
    if (Atomics.sub(c, 1, 1) === 1) Atomics.notify(c, 1);
  }
  parentPort.postMessage(sink);
});`;

export async function runBandwidthBench(opts: BandwidthOptions = {}): Promise<BandwidthResult> {
  const mb = opts.mb ?? (opts.quick ? 256 : 512);
  const passes = opts.passes ?? (opts.quick ? 8 : 16);
  const threadCounts = opts.threads ?? [1, 2];
  const bytes = mb << 20;
  const base = 1 << 16;
  const memory = new WebAssembly.Memory({ initial: (base + bytes) / 65536 + 1, maximum: 65536, shared: true } as any);
  // write every page first: untouched pages all map to the kernel's zero page, which would read from cache
  const f32 = new Float32Array(memory.buffer, base, bytes / 4);
  for (let i = 0; i < f32.length; i += 1) f32[i] = (i & 1023) * 1e-3;
  const wasm = await bandwidthWasm();
  const inst = new WebAssembly.Instance(new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>), { env: { memory } });
  const sum = inst.exports.sum as (p: number, end: number) => number;
  const wasmRes: Record<string, number> = {};
  let sink = 0;
  // V8 runs new wasm in its baseline tier and swaps in optimised code only for later calls: warm up with many
  // short calls and give the background compiler a moment
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 2000; i++) sink += sum(base, base + 65536);
    await new Promise((res) => setTimeout(res, 30));
  }
  for (const nt of threadCounts) {
    const slice = Math.floor(bytes / nt / 128) * 128;
    const ctl = new SharedArrayBuffer(8);
    const c = new Int32Array(ctl);
    const workers: Worker[] = [];
    for (let i = 1; i < nt; i++) {
      const w = new Worker(WORKER, { eval: true });
      await new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
        w.postMessage({ memory, wasm, ctl, lo: base + i * slice, hi: base + (i + 1) * slice });
      });
      workers.push(w);
    }
    let best = Infinity;
    for (let p = 0; p < passes + 1; p++) {
      const t = performance.now();
      Atomics.store(c, 1, nt - 1);
      Atomics.add(c, 0, 1);
      Atomics.notify(c, 0);
      sink += sum(base, base + slice);
      while (Atomics.load(c, 1) !== 0) Atomics.wait(c, 1, Atomics.load(c, 1), 1);
      const dt = performance.now() - t;
      if (p > 0) best = Math.min(best, dt); // pass 0 warms the code up
    }
    Atomics.store(c, 0, -1);
    Atomics.notify(c, 0);
    await Promise.all(workers.map((w) => w.terminate()));
    wasmRes[String(nt)] = round((slice * nt) / (best * 1e6), 1);
  }
  // scalar JS lower bound
  const f64 = new Float64Array(memory.buffer, base, bytes / 8);
  let bestJs = Infinity;
  for (let p = 0; p < Math.max(3, passes >> 1); p++) {
    const t = performance.now();
    let a = 0, b = 0, c2 = 0, d = 0;
    for (let i = 0; i < f64.length; i += 4) { a += f64[i]; b += f64[i + 1]; c2 += f64[i + 2]; d += f64[i + 3]; }
    sink += a + b + c2 + d;
    bestJs = Math.min(bestJs, performance.now() - t);
  }
  const result: BandwidthResult = {
    buffer_mb: mb,
    wasm_f32x4: wasmRes,
    js_f64_1t: round(bytes / (bestJs * 1e6), 1),
    note: `best of ${passes} passes over ${mb} MiB (pages pre-written); sink ${Number.isFinite(sink) ? 'ok' : 'nan'}`,
  };
  if (opts.print ?? true) {
    console.log(`memory read bandwidth (${result.note})`);
    for (const [t, v] of Object.entries(wasmRes)) console.log(`  wasm f32x4, ${t} thread(s): ${v} GB/s`);
    console.log(`  js Float64Array sum, 1 thread: ${result.js_f64_1t} GB/s`);
  }
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
  const r = await runBandwidthBench({
    quick: argv.includes('--quick'), print: !json,
    mb: argValue(argv, 'mb') ? Number(argValue(argv, 'mb')) : undefined,
    threads: argValue(argv, 'threads')?.split(',').map(Number),
  });
  if (json) console.log(JSON.stringify(r));
}
