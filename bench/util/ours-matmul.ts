// Our matmul kernels through the public backend (Backend.create → backend.k.matmul_*), at a given thread
// count, on GPT-2-124M shapes. This is what the model calls, pool dispatch included.
// mode 'L3': the same weight matrix every call (it stays cache-resident when it fits in L3, as in most kernel
// benches); mode 'DRAM': the calls cycle through enough distinct copies (>= STREAM_BYTES) that every call
// streams its weights from memory, as batch-1 decode does.
// Run as a child (bench/peers/index.ts, like the peers, one fresh process per round):
//   node --import tsx bench/util/ours-matmul.ts --threads 2 --shapes 1x768x3072,... [--dtypes f32,q8] [--dram 1x768x3072,...] [--quick]
import { pathToFileURL } from 'node:url';
import { Q8_BLOCK } from '../../src/runtime/abi.js';
import { q4_0Bytes, q8_0Bytes, quantizeQ4_0, quantizeQ8_0 } from '../../src/runtime/quant.js';
import { Backend } from '../../src/runtime/backend.js';
import type { WasmVariant } from '../../src/runtime/wasm.js';
import { argValue } from './child.js';
import { quietRow } from './quiet.js';
import { bestTime, fillUniform, gflops, kernelTiming, protocol, rng, round, type TimingOptions } from './timing.js';

export type Shape = [M: number, K: number, N: number];
export type MatmulMode = 'L3' | 'DRAM';
export interface MatmulRow {
  impl: string; dtype: 'f32' | 'f16' | 'q8' | 'q4'; threads: number; M: number; K: number; N: number; mode: MatmulMode;
  ms: number; gflops: number;
  /** Weight bytes read per second (GB/s), for the DRAM mode. */
  weight_gb_s?: number;
  note?: string;
}

/** Bytes of distinct weights cycled through in DRAM mode: well above the 32 MB L3. */
export const STREAM_BYTES = 160 << 20;
export const weightBytes = (dtype: string, K: number, N: number) => (dtype === 'f32' ? N * K * 4 : dtype === 'f16' ? N * K * 2 : dtype === 'q8' ? q8_0Bytes(N * K) : q4_0Bytes(N * K));
/** Fills `dst` with Q8_0 / Q4_0 blocks of uniform random weights in ±scale (real blocks: finite, normal f16 scales). */
export function fillBlocks(dst: Uint8Array, dtype: 'q8' | 'q4', count: number, scale: number, seed: number): void {
  const r = rng(seed), row = new Float32Array(Math.min(count, 1 << 16));
  const blockBytes = dtype === 'q8' ? q8_0Bytes(32) : q4_0Bytes(32);
  for (let i = 0; i < count; i += row.length) {
    const n = Math.min(row.length, count - i);
    for (let j = 0; j < n; j++) row[j] = (2 * r() - 1) * scale;
    (dtype === 'q8' ? quantizeQ8_0 : quantizeQ4_0)(row.subarray(0, n), dst.subarray((i / 32) * blockBytes, ((i + n) / 32) * blockBytes));
  }
}
export const copiesFor = (mode: MatmulMode, bytes: number) => (mode === 'L3' ? 1 : Math.max(1, Math.ceil(STREAM_BYTES / bytes)));
/** DRAM mode timing for every implementation: samples of >= 40 ms, after two passes over all the copies. */
export const dramTiming = (t: TimingOptions, copies: number): TimingOptions => ({ ...t, sampleMs: Math.max(t.sampleMs ?? 30, 40), warmupCalls: 2 * copies });

export async function oursMatmul(shapes: Shape[], threads: number, dtypes: ('f32' | 'f16' | 'q8' | 'q4')[], t: TimingOptions, variant?: WasmVariant, modes: (s: Shape) => MatmulMode[] = () => ['L3']): Promise<MatmulRow[]> {
  const backend = await Backend.create({ threads, variant, initialBytes: STREAM_BYTES + (64 << 20) });
  const rows: MatmulRow[] = [];
  try {
    const A = backend.arena, k = backend.k;
    for (const dtype of dtypes) {
      for (const [M, K, N] of shapes) {
        for (const mode of modes([M, K, N])) {
          const wb = weightBytes(dtype, K, N), copies = copiesFor(mode, wb);
          const regs = [A.alloc('x', M * K * 4), A.alloc('xq', M * K), A.alloc('xs', (M * K / Q8_BLOCK) * 4 + 4), A.alloc('y', M * N * 4)];
          const [x, xq, xs, y] = regs.map((r) => r.ptr);
          fillUniform(A.f32(x, M * K), 1, 3);
          const ws: number[] = [];
          for (let c = 0; c < copies; c++) {
            const w = A.alloc('w', wb);
            regs.push(w); ws.push(w.ptr);
            if (dtype === 'f32') fillUniform(A.f32(w.ptr, N * K), 0.05, 1 + c);
            else if (dtype === 'f16') { const h = A.u16(w.ptr, N * K), r = rng(5 + c); for (let i = 0; i < h.length; i++) h[i] = (r() < 0.5 ? 0x8000 : 0) | (0x2000 + Math.floor(r() * 0x1000)); }
            else fillBlocks(A.u8(w.ptr, wb), dtype, N * K, 0.05, 6 + c);
          }
          await quietRow();
          let i = 0;
          const next = () => { const c = i; i = i + 1 === copies ? 0 : i + 1; return c; };
          const fn = dtype === 'f32' ? () => k.matmul_f32(x, ws[next()], 0, y, M, K, N, 0)
            : dtype === 'f16' ? () => k.matmul_f16(x, ws[next()], 0, y, M, K, N, 0)
              : dtype === 'q8' ? () => { const c = next(); k.quantize_q8(x, xq, xs, M, K); k.matmul_q8(xq, xs, ws[c], 0, y, M, K, N, 0); }
                : () => { const c = next(); k.quantize_q8(x, xq, xs, M, K); k.matmul_q4(xq, xs, ws[c], 0, y, M, K, N, 0); };
          const { ms } = bestTime(fn, mode === 'DRAM' ? dramTiming(t, copies) : t);
          rows.push({
            impl: `ours (${backend.variant})`, dtype, threads: backend.threads, M, K, N, mode, ms: round(ms, 4), gflops: round(gflops(M, K, N, ms), 1),
            weight_gb_s: round(wb / (ms * 1e6), 1), note: dtype === 'q8' || dtype === 'q4' ? 'incl. activation quantisation' : undefined,
          });
          for (const r of regs) A.release(r);
        }
      }
    }
  } finally {
    backend.dispose();
  }
  return rows;
}

/** `--shapes 1x768x3072,128x768x3072` → shapes. */
export const parseShapes = (arg: string | undefined): Shape[] => (arg ?? '').split(',').filter(Boolean).map((s) => s.split('x').map(Number) as Shape);

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const dram = new Set(parseShapes(argValue(argv, 'dram')).map((s) => s.join('x')));
  const dtypes = (argValue(argv, 'dtypes') ?? 'f32').split(',') as ('f32' | 'f16' | 'q8' | 'q4')[];
  oursMatmul(parseShapes(argValue(argv, 'shapes')), Number(argValue(argv, 'threads') ?? 1), dtypes, kernelTiming(protocol(argv.includes('--quick'))), 'simd-threads',
    (s) => (dram.has(s.join('x')) ? ['L3', 'DRAM'] : ['L3']))
    .then((rows) => { console.log(JSON.stringify({ rows })); process.exit(0); })
    .catch((e) => { console.error(e); process.exit(1); });
}
