// y = act(x · wᵀ + bias) (+ y) with w stored as IEEE half floats, converted to f32 in registers as they are
// loaded (see half4 in math.ts: bit-exact for finite halves). Same tiles and summation order as matmul_f32.
import { matmulF } from './matmul_f32';

export function matmul_f16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  matmulF<u16>(x, w, bias, y, M, K, N, flags, ith, nth);
}
