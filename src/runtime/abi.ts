// The kernel ABI: the one contract between the host and assembly/. A kernel call is (name, numbers): byte
// pointers into the one memory, sizes, scalars, and last `ith, nth` — the chunk to compute and the number of
// chunks the call is split into (src/runtime/chunks.ts; any thread may run any chunk). Each kernel computes
// its own slice of the output from (ith, nth) in fixed chunks, so every output element is computed by the
// same instructions in the same order whatever the split: results are bit-identical for 1 or N threads.
// Every kernel has a plain TypeScript twin in ./reference.ts.
// Per-thread scratch is indexed by the real thread t (0 = the caller, set in each wasm instance once by
// set_thread_index): besides the scratch pointers passed in, thread t < 15 may use [64 KiB + t*60 KiB, +60 KiB)
// of the reserved low 1 MiB (RESERVED_LOW_BYTES) as scratch within one call; a kernel must give the same bits
// without it (assembly/common.ts). The host never places anything below RESERVED_LOW_BYTES.
// Pointers are unsigned and may exceed 2^31 (compute byte offsets in usize); no buffer ends at 2^32 (the arena keeps
// the last page), so an end pointer `p + bytes` never wraps to 0.

/** Matmul epilogue flags: y = act(x·Wᵀ + b), optionally added into y (fused residual). */
export const ACT_NONE = 0;
export const ACT_GELU_TANH = 1; // gelu_new, gelu_pytorch_tanh
export const ACT_GELU_ERF = 2; // gelu
export const ACT_RELU = 3;
export const FLAG_ACCUMULATE = 4; // y += result (residual add fused into the projection)
/** Bits WEXP_SHIFT..+3 of a matmul's flags and of embed's wteDt: the matrix's weight exponent offset e (0..10). The
 *  halves of a DT_F16 matrix and the f16 block scales of DT_Q8/DT_Q4 are stored as value·2^e, e chosen per tensor
 *  at load (src/model/weights.ts) so that no half is subnormal: the kernels' shift-only half conversions would
 *  make a subnormal f32 of one, which x86 multiplies take a slow path on (tens of cycles). */
export const WEXP_SHIFT = 8;
export const wexpBits = (e: number) => e << WEXP_SHIFT;
export const wexpOf = (word: number) => (word >> WEXP_SHIFT) & 15;

/** Weight storage formats; a weight matrix is always [N rows (outputs), K cols (inputs)], row-major. DT_F32 and
 *  DT_F16 are also the element types of a KV cache (kvDt of kv_store and the attention kernels). */
export const DT_F32 = 0;
export const DT_F16 = 1;
/** GGUF's Q8_0 blocks (./quant.ts): each row of K (a multiple of 32) is K/32 blocks of 34 bytes, an f16 scale d then
 *  32 int8 q; value = q·d. */
export const DT_Q8 = 2;
/** GGUF's Q4_0 blocks (./quant.ts): K/32 blocks of 18 bytes per row, an f16 scale d then 16 bytes whose byte j holds
 *  element j (low nibble) and j + 16 (high nibble); value = (nibble - 8)·d. */
export const DT_Q4 = 3;
/** Values per block of the quantised weights and of the int8 activations (quantize_q8). */
export const Q8_BLOCK = 32;

export type Ptr = number;

export interface KernelABI {
  /** y[M,N] = act(x[M,K] · w[N,K]ᵀ + bias[N]) (or += with FLAG_ACCUMULATE); bias 0 = none; flags: ACT_* |
   *  FLAG_ACCUMULATE | wexpBits(e) (the f16 and block formats; 0 for f32). Split over N. */
  matmul_f32(x: Ptr, w: Ptr, bias: Ptr, y: Ptr, M: number, K: number, N: number, flags: number, ith: number, nth: number): void;
  /** As matmul_f32 with w stored as IEEE half floats. */
  matmul_f16(x: Ptr, w: Ptr, bias: Ptr, y: Ptr, M: number, K: number, N: number, flags: number, ith: number, nth: number): void;
  /** Quantise activations x[M,K] (K a multiple of 32; the loader keeps other matrices in f16) to int8 blocks of 32 (xq [M,K] i8, xs [M,K/32] f32 scales, symmetric, round-to-nearest). Split over M. */
  quantize_q8(x: Ptr, xq: Ptr, xs: Ptr, M: number, K: number, ith: number, nth: number): void;
  /** As matmul_f32 with quantised activations (from quantize_q8) and w [N rows of K/32 Q8_0 blocks]: per block the exact
   *  integer dot product isum, then acc += isum·xscale·d over the blocks. */
  matmul_q8(xq: Ptr, xs: Ptr, w: Ptr, bias: Ptr, y: Ptr, M: number, K: number, N: number, flags: number, ith: number, nth: number): void;
  /** As matmul_q8 with w [N rows of K/32 Q4_0 blocks] (isum over q·(nibble - 8)). */
  matmul_q4(xq: Ptr, xs: Ptr, w: Ptr, bias: Ptr, y: Ptr, M: number, K: number, N: number, flags: number, ith: number, nth: number): void;
  /** Quantise f32 weights x [rows, cols] into Q8_0 (dt = DT_Q8) or Q4_0 (DT_Q4) blocks with exactly the rounding of
   *  ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref (quantizeQ8_0 / quantizeQ4_0 in ./quant.ts): block kb of
   *  output n goes to w + n·wStride + kb·(34 or 18). conv1d = 0: rows are the outputs, cols (a multiple of 32) their
   *  inputs; split over the rows·cols/32 blocks. conv1d = 1: rows (a multiple of 32) are inputs and cols the outputs,
   *  so source rows 32g … 32g + 31 make block g of every output (a [K, N] Conv1D weight, 32·G rows at a time); split
   *  over the outputs. The i32 at `flag` is set to 1 when any value is NaN or ±inf (else left as it is). The loader's
   *  path from a checkpoint's floats to q8/q4 weights. */
  quantize_weights(x: Ptr, w: Ptr, wStride: number, dt: number, rows: number, cols: number, conv1d: number, flag: Ptr, ith: number, nth: number): void;
  /** f32 weights x [rows, cols] → DT_F32 or DT_F16 elements at w (halves rounded as floatToHalf of src/io/half.ts: nearest
   *  even, |x| ≥ 65520 → ±inf), and the i32 at `flag` set to 1 when any value is NaN or ±inf (else left as it is).
   *  conv1d = 0: rows·cols consecutive elements, in order (wStride unused); split over the values. conv1d = 1: rows
   *  are inputs and cols the outputs (source rows of a [K, N] Conv1D weight): value (r, c) goes to element
   *  c·wStride + r; split over the outputs. The loader's path from a checkpoint's floats to fp32/fp16 weights. */
  place_weights(x: Ptr, w: Ptr, dt: number, rows: number, cols: number, wStride: number, conv1d: number, flag: Ptr, ith: number, nth: number): void;
  /** Halves x [rows, cols] → the DT_F16 elements at w as they are, in place_weights' layouts (conv1d = 0: consecutive,
   *  split over the values; 1: half (r, c) → element c·wStride + r, split over the outputs). The loader's path for an
   *  F16 checkpoint's matrices run as fp16 (NaN/inf: halves_scan afterwards). */
  place_halves(x: Ptr, w: Ptr, rows: number, cols: number, wStride: number, conv1d: number, ith: number, nth: number): void;
  /** y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta, biased variance, f32 accumulation. Split over rows. */
  layernorm(x: Ptr, gamma: Ptr, beta: Ptr, y: Ptr, rows: number, cols: number, eps: number, ith: number, nth: number): void;
  /** y[r,:] = wte[ids[r],:] + wpe[pos[r],:]; ids/pos are i32; wte rows of dtype wteDt & 0xff (f32, f16, Q8_0 or Q4_0
   *  blocks; | wexpBits(e) for f16 and blocks), wpe f32. Split over rows. */
  embed(ids: Ptr, pos: Ptr, wte: Ptr, wteDt: number, wpe: Ptr, y: Ptr, rows: number, E: number, ith: number, nth: number): void;
  /** Copy rows of keys and values into a cache [B, H, cap, D]: for row (b,t), K = src[(b*T+t)*srcStride + kCol + h*D + d],
   *  V likewise at vCol; written to slot (slot0 + t) of (b,h). The caches hold kvDt elements: DT_F32 (a copy) or
   *  DT_F16, IEEE halves rounded to nearest even as floatToHalf (src/io/half.ts): |x| ≥ 65520 → ±inf, NaN → a
   *  quiet NaN (0x7e00 | sign), |x| ≤ 2^-25 → ±0, f32 subnormals included. Split over B*T rows. */
  kv_store(src: Ptr, srcStride: number, kCol: number, vCol: number, kc: Ptr, vc: Ptr, kvDt: number, B: number, T: number, H: number, D: number, cap: number, slot0: number, ith: number, nth: number): void;
  /**
   * Multi-head attention of T queries per batch row against S cached keys/values (slots 0..S-1 of [B,H,cap,D]).
   * q row (b,t), head h: q[(b*T+t)*qStride + h*D + d]; out likewise with outStride. Key j is visible to query t
   * iff (!causal || j <= past + t) and (mask == 0 || mask[b*S + j] != 0) (mask is f32 [B,S]). A query with no
   * visible key gets a zero output (and zero probabilities) rather than NaN. scale multiplies q·k.
   * headMask (f32 [H], 0 = none) multiplies the probabilities; probs (f32 [B,H,T,S], 0 = none) receives them.
   * kvDt says how kc and vc are stored (as kv_store wrote them): DT_F32, or DT_F16 halves, which are read exactly
   * when finite (the wasm kernels read an inf/NaN half as a finite ±65536·(1 + m/1024), as matmul_f16 its weights;
   * the reference twin reads it exactly: only finite caches are specified).
   * attention_blockwise never forms a score row (online softmax over blocks of keys) and ignores headMask/probs;
   * attention_eager is the exact path that writes probs. Split over B*H*T query rows.
   */
  attention_blockwise(q: Ptr, qStride: number, kc: Ptr, vc: Ptr, kvDt: number, cap: number, out: Ptr, outStride: number, B: number, H: number, T: number, D: number, S: number, past: number, causal: number, mask: Ptr, scale: number, headMask: Ptr, probs: Ptr, scratch: Ptr, ith: number, nth: number): void;
  attention_eager(q: Ptr, qStride: number, kc: Ptr, vc: Ptr, kvDt: number, cap: number, out: Ptr, outStride: number, B: number, H: number, T: number, D: number, S: number, past: number, causal: number, mask: Ptr, scale: number, headMask: Ptr, probs: Ptr, scratch: Ptr, ith: number, nth: number): void;
  /** The halves at p + i·stride, i < n (an f16 matrix's elements: stride 2; its Q8_0/Q4_0 block scales: 34 or 18):
   *  the i32 at out becomes the largest of its value and their magnitudes (h & 0x7fff), and the i32 at out + 4 is
   *  set to 1 when one of them is subnormal (else left as it is). Split over chunks of 1024 halves. */
  halves_scan(p: Ptr, n: number, stride: number, out: Ptr, ith: number, nth: number): void;
  /** The same halves times 2^e in place, exactly (the caller keeps them finite: largest magnitude·2^e ≤ 65504). */
  halves_shift(p: Ptr, n: number, stride: number, e: number, ith: number, nth: number): void;
  /** Not a kernel (no chunks, no reference twin; absent from the reference kernels): 1 when this instance runs the
   *  relaxed Q4_0 GEMV and GEMM tiles, i.e. it is a relaxed build and the engine's i16x8.relaxed_dot_i8x16_i7x16_s
   *  passed the instance's one-time check (assembly/matmul_q8.ts; it uses the thread's low scratch slot), else 0. */
  relaxed_dot_exact?(): number;
}

/** The kernels proper (relaxed_dot_exact is a query). */
export type KernelName = Exclude<keyof KernelABI, 'relaxed_dot_exact'>;
export const KERNEL_NAMES: KernelName[] = [
  'matmul_f32', 'matmul_f16', 'quantize_q8', 'matmul_q8', 'matmul_q4', 'layernorm', 'embed', 'kv_store',
  'attention_blockwise', 'attention_eager', 'quantize_weights', 'place_weights', 'place_halves', 'halves_scan', 'halves_shift',
];

/** Bytes of scratch the attention kernels need per thread (`scratch + t * attentionScratchBytes(S, D)`, t the thread):
 *  a score row of S floats (eager) and two D-vectors, rounded up to 64 bytes. */
export const attentionScratchBytes = (S: number, D: number) => (4 * (S + 2 * D + 20) + 63) & ~63;

/** The fixed work split every kernel uses: rows [lo, hi) of n for thread ith of nth, chunk a multiple of align. */
export function splitRange(n: number, ith: number, nth: number, align = 1): [number, number] {
  let chunk = Math.ceil(n / nth);
  chunk = Math.ceil(chunk / align) * align;
  const lo = Math.min(n, ith * chunk);
  return [lo, Math.min(n, lo + chunk)];
}
