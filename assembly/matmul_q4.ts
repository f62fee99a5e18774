// Q4_0 weights (DT_Q4): GGUF's 18-byte blocks, an f16 scale d then 16 bytes whose byte j holds element j in its low
// nibble and element j + 16 in its high nibble, value (nibble - 8)·d. The tiling, the exact per-block integer dot
// product and the f32 accumulation order are matmul_q8's (assembly/matmul_q8.ts), instantiated for nibbles.
import { matmulBlocks } from './matmul_q8';

export function matmul_q4(xq: usize, xs: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  matmulBlocks<u8>(xq, xs, w, bias, y, M, K, N, flags, ith, nth);
}
