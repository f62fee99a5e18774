// Kernel entry: re-exports every kernel of the ABI in src/runtime/abi.ts. (Placeholder bodies until the kernels land.)
export function matmul_f32(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {}
export function matmul_f16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {}
export function quantize_q8(x: usize, xq: usize, xs: usize, M: i32, K: i32, ith: i32, nth: i32): void {}
export function matmul_q8(xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {}
export function layernorm(x: usize, gamma: usize, beta: usize, y: usize, rows: i32, cols: i32, eps: f32, ith: i32, nth: i32): void {}
export function embed(ids: usize, pos: usize, wte: usize, wteDt: i32, wteScales: usize, wpe: usize, y: usize, rows: i32, E: i32, ith: i32, nth: i32): void {}
export function add(a: usize, b: usize, y: usize, n: i32, ith: i32, nth: i32): void {}
export function kv_store(src: usize, srcStride: i32, kCol: i32, vCol: i32, kc: usize, vc: usize, B: i32, T: i32, H: i32, D: i32, cap: i32, slot0: i32, ith: i32, nth: i32): void {}
export function attention_blockwise(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32, B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize, probs: usize, scratch: usize, ith: i32, nth: i32): void {}
export function attention_eager(q: usize, qStride: i32, kc: usize, vc: usize, cap: i32, out: usize, outStride: i32, B: i32, H: i32, T: i32, D: i32, S: i32, past: i32, causal: i32, mask: usize, scale: f32, headMask: usize, probs: usize, scratch: usize, ith: i32, nth: i32): void {}
