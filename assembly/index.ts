// Kernel entry: every kernel of the ABI in src/runtime/abi.ts (signatures and semantics documented there).
// No static data, no allocation, no runtime calls: each export computes its (ith, nth) slice on raw pointers.
export { matmul_f32 } from './matmul_f32';
export { matmul_f16 } from './matmul_f16';
export { quantize_q8, matmul_q8, relaxed_dot_exact } from './matmul_q8';
export { matmul_q4 } from './matmul_q4';
export { quantize_weights } from './quantize';
export { place_weights, place_halves } from './place';
export { layernorm } from './layernorm';
export { embed } from './embed';
export { kv_store } from './kv';
export { attention_blockwise, attention_eager } from './attention';
export { halves_scan, halves_shift } from './halves';
export { set_thread_index } from './common';
