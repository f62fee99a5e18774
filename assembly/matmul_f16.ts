// y = act(x · wᵀ + bias) (+ y) with w stored as IEEE half floats, converted to f32 in registers as they are
// loaded (bit-exact for finite halves; see math.ts). Same tiles and summation order as matmul_f32. The halves hold
// w·2^e (e in the flags; common.ts). When every |x| < 2^15 the weights are only shifted into place (w·2^(e-112))
// and x is pre-scaled by 2^(112-e): the products and so all results are bit-identical to converting the weights,
// with one multiply fewer per weight vector.
import { setWexp } from './common';
import { matmulF } from './matmul_f32';

/** max |x[i]| < 2^15 for i < n (false if any is NaN or larger). */
function xSmall(x: usize, n: i32): bool {
  const lim = f32x4.splat(32768.0);
  let bad = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) bad = v128.or(bad, v128.not(f32x4.lt(f32x4.abs(v128.load(x + (<usize>i << 2))), lim)));
  let ok = !v128.any_true(bad);
  for (; i < n; i++) ok = ok && abs<f32>(load<f32>(x + (<usize>i << 2))) < 32768.0;
  return ok;
}

export function matmul_f16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, flags: i32, ith: i32, nth: i32): void {
  setWexp(flags); // the halves hold w·2^e (common.ts)
  if (xSmall(x, M * K)) matmulF<u16>(x, w, bias, y, M, K, N, flags, ith, nth);
  else matmulF<i16>(x, w, bias, y, M, K, N, flags, ith, nth);
}
