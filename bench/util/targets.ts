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
