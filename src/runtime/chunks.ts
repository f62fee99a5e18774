// How many fixed chunks a kernel call is split into: the kernel's (ith, nth) = (chunk, nchunks), claimed by
// whichever threads are free (control.ts). nchunks depends on the op and its size and on the thread count only
// through CHUNKS_PER_THREAD; outputs never depend on it (every kernel computes each output the same way in any
// chunk), so results stay bit-identical for any thread count.
//  - A call with little work is one chunk, run by the caller without waking anyone: decode's one-row layer
//    norms, K/V stores and quantisations cost less than a dispatch.
//  - Otherwise CHUNKS_PER_THREAD chunks per thread (never more than the kernel's units of work): a thread
//    that is descheduled or late then holds up one small chunk while the others take the rest, and a chunk
//    stays large enough that claiming it (one compare-exchange) is noise. Measured in bench/contention.ts.
//  - Batch-1 quantised matmuls (GEMV, M <= 2) stream their weights from memory, and every chunk starts four new
//    weight streams (assembly/matmul_q8.ts), which costs about 3 us of DRAM ramp-up per chunk whichever thread
//    runs it: one thread, q8 1x768x3072 from DRAM, 1 chunk 148-157 us, 2 chunks 164, 4 chunks 170, 8 chunks 171-185
//    (cache-resident weights: no difference, 134 us), q4 1x768x3072 129-136 / 133-135 / 149 / 158-164
//    (bench/gemv-threads.ts). So a GEMV gets one chunk per thread per GEMV_CHUNK_WORK multiply-adds, at least one
//    and at most CHUNKS_PER_THREAD per thread: 2 chunks per thread for GPT-2's 768x3072 and 3072x768 layers,
//    one for 768x2304 and 768x768, four for the LM head (at 2 threads).
import type { KernelName } from './abi.js';
import { MAX_CHUNKS } from './control.js';

/** Chunks per thread of a large call. */
export const CHUNKS_PER_THREAD = 4;
/** Work (multiply-adds or elements touched, roughly) below which a call is one chunk. */
export const MIN_SPLIT_WORK = 32768;
/** Multiply-adds per chunk and thread below which a batch-1 quantised matmul is not split further. */
export const GEMV_CHUNK_WORK = 1 << 19;

type Sizer = (a: number[]) => [units: number, workPerUnit: number];
// Units each kernel splits (its splitRange n / align, src/runtime/abi.ts; attention groups of rows) and the work in one, from its arguments
// (positions as in KernelABI, without ith and nth).
const SIZES: Record<KernelName, Sizer> = {
  matmul_f32: (a) => [Math.ceil(a[6] / 16), a[4] * a[5] * 16], // N / 16 of M·K·16
  matmul_f16: (a) => [Math.ceil(a[6] / 16), a[4] * a[5] * 16],
  matmul_q8: (a) => [Math.ceil(a[7] / 16), a[5] * a[6] * 16], // (xq, xs, w, bias, y, M, K, N, …)
  matmul_q4: (a) => [Math.ceil(a[7] / 16), a[5] * a[6] * 16],
  quantize_q8: (a) => [a[3], a[4]], // M rows of K
  layernorm: (a) => [a[4], a[5]], // rows of cols
  embed: (a) => [a[6], a[7]], // rows of E
  kv_store: (a) => [a[7] * a[8], 2 * a[9] * a[10]], // B·T rows of 2·H·D (a[6] is kvDt)
  // B·H·T rows of S·D·2, four to a unit: decode attention runs rows four at a time (assembly/attention.ts)
  attention_blockwise: (a) => [Math.ceil((a[8] * a[9] * a[10]) / 4), a[12] * a[11] * 8], // a[4] is kvDt
  attention_eager: (a) => [Math.ceil((a[8] * a[9] * a[10]) / 4), a[12] * a[11] * 8],
  // (x, w, wStride, dt, rows, cols, conv1d): outputs of rows (conv1d), else blocks of 32, four to a unit
  quantize_weights: (a) => (a[6] ? [Math.ceil(a[5] / 4), a[4] * 4] : [Math.ceil((a[4] * a[5]) / 128), 128]),
  // (x, w, dt, rows, cols, wStride, conv1d): outputs of rows (conv1d), four to a unit, else values, 1024 to a unit
  place_weights: (a) => (a[6] ? [Math.ceil(a[4] / 4), a[3] * 4] : [Math.ceil((a[3] * a[4]) / 1024), 1024]),
  // (x, w, rows, cols, wStride, conv1d): as place_weights
  place_halves: (a) => (a[5] ? [Math.ceil(a[3] / 4), a[2] * 4] : [Math.ceil((a[2] * a[3]) / 1024), 1024]),
  halves_scan: (a) => [Math.ceil(a[1] / 1024), 1024], // (p, n, stride, out): chunks of 1024 halves
  halves_shift: (a) => [Math.ceil(a[1] / 1024), 1024],
};

/** Chunks for a call of kernel `name` with `args` (without ith, nth) on `threads` threads. */
export function chunkCount(name: KernelName, args: number[], threads: number): number {
  if (threads <= 1) return 1;
  const [units, perUnit] = SIZES[name](args);
  if (!(units > 1) || units * perUnit < MIN_SPLIT_WORK) return 1;
  let perThread = CHUNKS_PER_THREAD;
  if ((name === 'matmul_q8' || name === 'matmul_q4') && args[5] <= 2) {
    perThread = Math.max(1, Math.min(CHUNKS_PER_THREAD, Math.floor((units * perUnit) / (threads * GEMV_CHUNK_WORK))));
  }
  return Math.min(units, threads * perThread, MAX_CHUNKS);
}

// Token rows of each kernel's call (matmul M, attention B·T queries, ...): decode calls have one per sequence.
const ROWS: Record<KernelName, (a: number[]) => number> = {
  matmul_f32: (a) => a[4], matmul_f16: (a) => a[4], matmul_q8: (a) => a[5], matmul_q4: (a) => a[5],
  quantize_q8: (a) => a[3], layernorm: (a) => a[4], embed: (a) => a[6], kv_store: (a) => a[7] * a[8],
  attention_blockwise: (a) => a[8] * a[10], attention_eager: (a) => a[8] * a[10],
  quantize_weights: (a) => (a[6] ? a[5] : a[4]), // the weight's outputs (a load: hundreds, so on every thread)
  place_weights: () => Infinity, // a load: always on every thread
  place_halves: () => Infinity, halves_scan: () => Infinity, halves_shift: () => Infinity, // a load
};

/** Calls of at most this many token rows (decode, batched up to this many sequences) are timed for the dispatch
 *  policy; larger ones (prefill) are not: compute-bound and long, they keep every thread busy whether the threads
 *  wait hot or lazy between calls, and run in whichever mode is current. */
export const DECODE_ROWS = 16;

/** The dispatch policy's kind of a call (dispatch-policy.ts): kernel and work to a power of two, so decode's
 *  matmul shapes are told apart and attention keeps one kind as its context grows; -1 for a call of more than
 *  DECODE_ROWS rows. */
export function dispatchKind(op: number, name: KernelName, args: number[]): number {
  if (ROWS[name](args) > DECODE_ROWS) return -1;
  const [units, perUnit] = SIZES[name](args);
  return op * 64 + Math.min(63, Math.round(Math.log2(units * perUnit + 1)));
}
