// The performance targets from the issue (this machine: 2 cores), and the peer numbers measured earlier,
// kept in one place so the report shows each measured number beside its target.
export const TARGETS = {
  decode_ctx128: { fp32: { 1: 55, 2: 95 }, fp16: { 1: 100, 2: 170 }, q8: { 1: 180, 2: 280 } } as Record<string, Record<number, number>>,
  prefill128_fp32: { 1: 150, 2: 280 } as Record<number, number>,
  gemm_vs_best_peer: 1.2,
  prefill_2t_over_1t: 1.8,
  decode_ctx1024_max_loss: 0.15,
  load_ms: 1000,
  peak_rss_over_file: 1.3,
  q8_top1_agreement: 0.99,
};

/** Measured earlier on this machine (from the issue), for reference. */
export const EARLIER = {
  gemv_1x768x3072: { 'tfjs-backend-wasm': { 1: 18.7 }, 'onnxruntime-web': { 1: 29.3, 2: 51.0 } } as Record<string, Record<number, number>>,
  gemm_128x768x3072: { 'tfjs-backend-wasm': { 1: 31.6, 2: 60.0 }, 'onnxruntime-web': { 1: 28.3, 2: 55.0 } } as Record<string, Record<number, number>>,
  bandwidth_wasm_f32x4: { 1: 24.7, 2: 38.7 } as Record<number, number>,
};

export const met = (ok: boolean | null | undefined) => (ok == null ? 'n/a' : ok ? 'met' : '**missed**');

/** Goals of the open issues (reference machine: 2 cores, Node 20, GPT-2-124M shape, ctx 128), checked in
 *  bench/util/report.ts against the numbers of the same run. */
export const GOALS = {
  /** issue 10: decode 2t / 1t with a second process spinning on one core. */
  contention_2t_over_1t: 0.9,
  /** issue 10: decode as a share of the bandwidth bound measured right before it, at 1 and 2 threads. */
  decode_pct_of_bound: { fp32: 90, fp16: 85, q8: 80 } as Record<string, number>,
  /** issue 10: host time per decoded token outside kernels, 2 threads (ms). */
  host_ms_per_token_2t: 0.3,
  /** issue 10: q8 GEMM 128×768×3072 against onnxruntime-web's int8 matmul. */
  q8_gemm_vs_ort: 1.0,
  /** issue 10: q8 prefill-128 against our fp32 prefill-128. */
  q8_prefill_vs_fp32: 1.0,
  /** issue 10: prefill 512 fp16, 2 threads / 1 thread. */
  prefill512_fp16_2t_over_1t: 1.8,
  /** issue 8: q4 decode against our q8 decode, at 1 and 2 threads. */
  q4_decode_vs_q8: 1.3,
  /** issue 8: q4 prefill-128 against our fp32 prefill-128. */
  q4_prefill_vs_fp32: 0.8,
  /** issue 9: load a 124M-shaped Q4_0 GGUF from the page cache (ms). */
  gguf_q4_load_ms: 300,
};
