// onnxruntime-web (wasm backend, MLAS kernels) on the same matmul shapes: single-op ONNX graphs built in
// process (bench/util/onnx.ts), the weight a constant initializer as in an exported model so ORT can pre-pack it.
// Threads: ort.env.wasm.numThreads works under Node (its pthreads run on worker_threads).
// L3 mode: one weight shared by the graph's ops; DRAM mode: distinct weights per op (>= 160 MB in all), so every
// op streams its weights from memory as in decode.
// Run as a child: node --import tsx bench/peers/ort.ts --threads 2 --shapes 1x768x3072,... [--dtypes f32,q8] [--dram 1x768x3072,...] [--quick]
import { pathToFileURL } from 'node:url';
import { argValue } from '../util/child.js';
import { dynamicQuantMatmulModel, matmulModel } from '../util/onnx.js';
import { copiesFor, dramTiming, parseShapes, type MatmulMode, type MatmulRow, type Shape } from '../util/ours-matmul.js';
import { quietRow } from '../util/quiet.js';
import { bestTimeAsync, fillUniform, gflops, kernelTiming, protocol, rng, round } from '../util/timing.js';

export async function ortMatmul(shapes: Shape[], threads: number, dtypes: ('f32' | 'q8')[], quick: boolean, dram: Set<string>): Promise<{ rows: MatmulRow[]; version: string; runOverheadMs: number }> {
  const ort: any = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const rows: MatmulRow[] = [];
  const timing = kernelTiming(protocol(quick));
  // call overhead of session.run on a trivial graph, to judge small shapes
  let runOverheadMs = 0;
  {
    const s = await ort.InferenceSession.create(matmulModel(1, 8, 8, [new Float32Array(64)]), { executionProviders: ['wasm'] });
    const x = new ort.Tensor('float32', new Float32Array(8), [1, 8]);
    runOverheadMs = (await bestTimeAsync(() => s.run({ x }), timing)).ms;
    await s.release();
  }
  for (const dtype of dtypes) {
    for (const [M, K, N] of shapes) {
      const modes: MatmulMode[] = dram.has(`${M}x${K}x${N}`) ? ['L3', 'DRAM'] : ['L3'];
      for (const mode of modes) {
        const wb = dtype === 'f32' ? K * N * 4 : K * N + N * 4;
        // several ops per run for small (GEMV) shapes, so the per-run overhead is amortised as in a whole-model graph
        const ops = mode === 'DRAM' ? copiesFor('DRAM', wb) : M * K * N < 20e6 ? 8 : 1;
        const distinct = mode === 'DRAM' ? ops : 1;
        let bytes: Uint8Array;
        if (dtype === 'f32') bytes = matmulModel(M, K, N, Array.from({ length: distinct }, (_, c) => fillUniform(new Float32Array(K * N), 0.05, 1 + c)), ops);
        else {
          bytes = dynamicQuantMatmulModel(M, K, N, Array.from({ length: distinct }, (_, c) => {
            const q = new Int8Array(K * N), r = rng(6 + c);
            for (let i = 0; i < q.length; i++) q[i] = Math.floor(r() * 255) - 127;
            return { q, scales: fillUniform(new Float32Array(N), 0.001, 7).map(Math.abs) };
          }), ops);
        }
        const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
        const x = new ort.Tensor('float32', fillUniform(new Float32Array(M * K), 1, 3), [M, K]);
        await quietRow();
        // one run covers every DRAM copy (ops = copies), so two warm-up runs are two passes over them
        const { ms } = await bestTimeAsync(() => s.run({ x }), mode === 'DRAM' ? dramTiming(timing, 1) : timing);
        await s.release();
        const per = ms / ops;
        rows.push({
          impl: 'onnxruntime-web', dtype, threads, M, K, N, mode, ms: round(per, 4), gflops: round(gflops(M, K, N, per), 1), weight_gb_s: round(wb / (per * 1e6), 1),
          note: dtype === 'q8' ? 'DynamicQuantizeMatMul (u8 activations per tensor, i8 weights per column)' : ops > 1 ? `${ops} ops per run` : undefined,
        });
      }
    }
  }
  return { rows, version: ort.env.versions?.web ?? 'unknown', runOverheadMs: round(runOverheadMs, 4) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const shapes = parseShapes(argValue(argv, 'shapes') ?? '1x768x3072,128x768x3072');
  const dtypes = (argValue(argv, 'dtypes') ?? 'f32').split(',') as ('f32' | 'q8')[];
  const dram = new Set((argValue(argv, 'dram') ?? '').split(',').filter(Boolean));
  ortMatmul(shapes, Number(argValue(argv, 'threads') ?? 1), dtypes, argv.includes('--quick'), dram)
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); }) // ORT's worker threads keep the loop alive
    .catch((e) => { console.error(e); process.exit(1); });
}
