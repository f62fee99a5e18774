// Copies rows of keys and values (columns kCol.., vCol.. of src rows) into the [B, H, cap, D] caches at slot
// slot0 + t. Split over the B*T source rows.
import { splitChunk, splitHi, splitLo } from './common';

@inline function copyF32(dst: usize, src: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

export function kv_store(src: usize, srcStride: i32, kCol: i32, vCol: i32, kc: usize, vc: usize, B: i32, T: i32, H: i32, D: i32, cap: i32, slot0: i32, ith: i32, nth: i32): void {
  const rows = B * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  for (let r = r0; r < r1; r++) {
    const b = r / T, t = r - b * T;
    const sr = src + (<usize>r * <usize>srcStride << 2);
    for (let h = 0; h < H; h++) {
      const dst = (((<usize>(b * H + h) * <usize>cap) + <usize>(slot0 + t)) * <usize>D) << 2;
      const so = <usize>(h * D) << 2;
      copyF32(kc + dst, sr + (<usize>kCol << 2) + so, D);
      copyF32(vc + dst, sr + (<usize>vCol << 2) + so, D);
    }
  }
}
