// @tensorflow/tfjs-backend-wasm (XNNPACK kernels) on the same matmul shapes.
//
// Threads under Node take three workarounds, all applied here in the child process only (--force-threads):
//  1. the backend reports no thread support when IS_NODE (tfjs issue 3830): we set WASM_HAS_MULTITHREAD_SUPPORT;
//  2. its pthread workers are created from blob: URLs, which Node's Worker rejects, and the worker script then
//     importScripts() the main script from another blob: URL: we hand Node's Worker the worker source (read from
//     the installed bundle) with `eval: true`, prefixed with the bundle-level helpers the factory refers to, and
//     patched to read the main-script Blob with blob.text() instead of importScripts;
//  3. the C++ side caps the pool at half the logical cores (1 on this 2-core machine): we make os.cpus()
//     report twice the cores so setThreadsCount(2) gives 2.
// Without --force-threads it runs the plain SIMD build on one thread, which is what a Node user gets.
//   node --import tsx bench/peers/tfjs.ts --threads 1|2 --shapes 1x768x3072,... [--quick]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { argValue } from '../util/child.js';
import { quietRow } from '../util/quiet.js';
import { fillUniform, gflops, kernelTiming, protocol, round, bestTime } from '../util/timing.js';
import { copiesFor, dramTiming, parseShapes, type MatmulMode, type MatmulRow, type Shape } from '../util/ours-matmul.js';

const require = createRequire(import.meta.url);

/** Makes tfjs-backend-wasm's threaded build start under Node (see the header). Returns what was patched. */
function enableNodeThreads(): string {
  const wt = require('node:worker_threads');
  const os = require('node:os');
  const bundle = readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
  const lit = bundle.match(/var wasmWorkerContents = ("(?:[^"\\]|\\.)*");/);
  if (!lit) throw new Error('tfjs-backend-wasm bundle layout changed: worker source not found');
  // tfjs itself escapes newlines before making the Blob
  let src: string = JSON.parse(lit[1]).replace(/\n/g, '\\n');
  const load = 'var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}WasmBackendModuleThreadedSimd(Module)';
  if (!src.includes(load)) throw new Error('tfjs-backend-wasm worker layout changed: main-script loading not found');
  src = src.replace(load, 'e.data.urlOrBlob.text().then(s=>{(0,eval)(s);WasmBackendModuleThreadedSimd(Module)});return}WasmBackendModuleThreadedSimd(Module)');
  const h0 = bundle.indexOf('/* global Reflect, Promise */');
  const h1 = bundle.indexOf('\n}\n', bundle.indexOf('function __spreadArray')) + 3;
  if (h0 < 0 || h1 < 3) throw new Error('tfjs-backend-wasm bundle layout changed: helpers not found');
  const prelude = 'globalThis.require$$0=require("fs");globalThis.require$$1=require("path");globalThis.require$$3=require("perf_hooks");' +
    'globalThis.require$$4=require("os");globalThis.commonjsGlobal=globalThis;(0,eval)(' + JSON.stringify(bundle.slice(h0, h1)) + ');';
  src = prelude + src;
  const NodeWorker = wt.Worker;
  wt.Worker = class extends NodeWorker {
    constructor(file: unknown, options?: object) {
      if (typeof file === 'string' && file.startsWith('blob:')) super(src, { ...options, eval: true });
      else super(file, options);
    }
  };
  const cpus = os.cpus;
  os.cpus = () => { const c = cpus(); return [...c, ...c]; };
  return 'threads forced under Node (flag, eval worker, os.cpus doubled)';
}

export async function tfjsMatmul(shapes: Shape[], threads: number, forceThreads: boolean, quick: boolean, dram: Set<string> = new Set()): Promise<{ rows: MatmulRow[]; version: string; actualThreads: number; note: string }> {
  const note = forceThreads ? enableNodeThreads() : 'plain SIMD build (Node default: no threads)';
  const tf: any = await import('@tensorflow/tfjs-core');
  const wasm: any = await import('@tensorflow/tfjs-backend-wasm');
  if (forceThreads) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend failed to initialise');
  await tf.ready();
  const actualThreads = wasm.getThreadsCount();
  const rows: MatmulRow[] = [];
  const timing = kernelTiming(protocol(quick));
  for (const [M, K, N] of shapes) {
    const modes: MatmulMode[] = dram.has(`${M}x${K}x${N}`) ? ['L3', 'DRAM'] : ['L3'];
    for (const mode of modes) {
      const a = tf.tensor2d(fillUniform(new Float32Array(M * K), 1, 3), [M, K]);
      // [K, N] as in a Dense/MatMul layer; DRAM mode cycles through distinct weights. The wasm backend runs
      // synchronously, so timing the op is enough.
      const bs = Array.from({ length: copiesFor(mode, K * N * 4) }, (_, c) => tf.tensor2d(fillUniform(new Float32Array(K * N), 0.05, 1 + c), [K, N]));
      let i = 0;
      await quietRow();
      const { ms } = bestTime(() => { tf.matMul(a, bs[i]).dispose(); i = i + 1 === bs.length ? 0 : i + 1; }, mode === 'DRAM' ? dramTiming(timing, bs.length) : timing);
      rows.push({ impl: 'tfjs-backend-wasm', dtype: 'f32', threads: actualThreads, M, K, N, mode, ms: round(ms, 4), gflops: round(gflops(M, K, N, ms), 1), weight_gb_s: round((K * N * 4) / (ms * 1e6), 1) });
      a.dispose();
      for (const b of bs) b.dispose();
    }
  }
  return { rows, version: wasm.version_wasm ?? tf.version_core ?? 'unknown', actualThreads, note };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const shapes = parseShapes(argValue(argv, 'shapes') ?? '1x768x3072,128x768x3072');
  const threads = Number(argValue(argv, 'threads') ?? 1);
  const dram = new Set((argValue(argv, 'dram') ?? '').split(',').filter(Boolean));
  tfjsMatmul(shapes, threads, argv.includes('--force-threads'), argv.includes('--quick'), dram)
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
    .catch((e) => { console.error(e); process.exit(1); });
}
