// Copies rows of keys and values (columns kCol.., vCol.. of src rows) into the [B, H, cap, D] caches at slot
// slot0 + t, stored as f32 (kvDt = DT_F32) or as IEEE half floats (DT_F16). Split over the B*T source rows.
import { DT_F16, halfOf4, splitChunk, splitHi, splitLo } from './common';

@inline function copyF32(dst: usize, src: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

/** n floats at src -> n cache elements at dst (KV = f32: a copy; KV = u16: halves). */
@inline function storeRow<KV>(dst: usize, src: usize, n: i32): void {
  if (sizeof<KV>() == 4) { copyF32(dst, src, n); return; }
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const s = src + (<usize>i << 2);
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(halfOf4(v128.load(s)), halfOf4(v128.load(s, 16))));
  }
  if (i + 4 <= n) {
    const h = halfOf4(v128.load(src + (<usize>i << 2)));
    v128.store64_lane(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(h, h), 0);
    i += 4;
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>i32x4.extract_lane(halfOf4(f32x4.splat(load<f32>(src + (<usize>i << 2)))), 0));
}

function kvStore<KV>(src: usize, srcStride: i32, kCol: i32, vCol: i32, kc: usize, vc: usize, B: i32, T: i32, H: i32, D: i32, cap: i32, slot0: i32, ith: i32, nth: i32): void {
  const rows = B * T;
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  for (let r = r0; r < r1; r++) {
    const b = r / T, t = r - b * T;
    const sr = src + (<usize>r * <usize>srcStride << 2);
    for (let h = 0; h < H; h++) {
      const dst = ((<usize>(b * H + h) * <usize>cap) + <usize>(slot0 + t)) * <usize>D * sizeof<KV>();
      const so = <usize>(h * D) << 2;
      storeRow<KV>(kc + dst, sr + (<usize>kCol << 2) + so, D);
      storeRow<KV>(vc + dst, sr + (<usize>vCol << 2) + so, D);
    }
  }
}

export function kv_store(src: usize, srcStride: i32, kCol: i32, vCol: i32, kc: usize, vc: usize, kvDt: i32, B: i32, T: i32, H: i32, D: i32, cap: i32, slot0: i32, ith: i32, nth: i32): void {
  if (kvDt == DT_F16) kvStore<u16>(src, srcStride, kCol, vCol, kc, vc, B, T, H, D, cap, slot0, ith, nth);
  else kvStore<f32>(src, srcStride, kCol, vCol, kc, vc, B, T, H, D, cap, slot0, ith, nth);
}
