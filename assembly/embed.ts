// y[r,:] = wte[ids[r],:] + wpe[pos[r],:], wte f32, f16 (inf/NaN kept), Q8_0 or Q4_0 blocks. Bit-exact with the
// reference: every sum is one f32 addition; a block value q·d (q an int8 or nibble - 8, d a finite half) is exact in
// f32 (at most 8 + 11 significant bits, never below the f32 normal range), so it is formed exactly first.
// wteDt carries the table's weight exponent offset e (common.ts): its halves or block scales hold value·2^e, and
// times 2^-e (exact) gives the value back. Split over rows.
import { DT_F16, DT_F32, DT_Q8, Q4_0_BYTES, Q8_0_BYTES, Q8_BLOCK, pow2, splitChunk, splitHi, splitLo, wexpOf } from './common';
import { half1, half4Exact } from './math';

@inline function halfScalarExact(p: usize): f32 {
  const h = <i32>load<u16>(p);
  const e = (h >> 10) & 0x1f;
  if (e == 31) return reinterpret<f32>(((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13));
  return reinterpret<f32>(((h << 16) >> 3) & <i32>0x8fffe000) * <f32>5.192296858534828e33;
}

export function embed(ids: usize, pos: usize, wte: usize, wteDt: i32, wpe: usize, y: usize, rows: i32, E: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  const E4 = E & ~3;
  const eb = <usize>E << 2;
  const dt = wteDt & 0xff;
  const down = pow2(-wexpOf(wteDt)), downv = f32x4.splat(down);
  for (let r = r0; r < r1; r++) {
    const id = <usize>load<i32>(ids + (<usize>r << 2));
    const p = <usize>load<i32>(pos + (<usize>r << 2));
    const yr = y + <usize>r * eb, pr = wpe + p * eb;
    let c = 0;
    if (dt == DT_F32) {
      const wr = wte + id * eb;
      for (; c < E4; c += 4) {
        const o = <usize>c << 2;
        v128.store(yr + o, f32x4.add(v128.load(wr + o), v128.load(pr + o)));
      }
      for (; c < E; c++) {
        const o = <usize>c << 2;
        store<f32>(yr + o, load<f32>(wr + o) + load<f32>(pr + o));
      }
    } else if (dt == DT_F16) {
      const wr = wte + id * (<usize>E << 1);
      // (e = 0 when the table holds an inf or NaN: the loader's choice, so they stay as they are)
      for (; c < E4; c += 4) {
        const o = <usize>c << 2;
        v128.store(yr + o, f32x4.add(f32x4.mul(half4Exact(wr + (<usize>c << 1)), downv), v128.load(pr + o)));
      }
      for (; c < E; c++) {
        const o = <usize>c << 2;
        store<f32>(yr + o, halfScalarExact(wr + (<usize>c << 1)) * down + load<f32>(pr + o));
      }
    } else if (dt == DT_Q8) {
      const nb = E / Q8_BLOCK;
      const wr = wte + id * <usize>nb * <usize>Q8_0_BYTES;
      for (let b = 0; b < nb; b++) {
        const p = wr + <usize>b * <usize>Q8_0_BYTES, o = yr + (<usize>b << 7), po = pr + (<usize>b << 7);
        const d = f32x4.splat(half1(p) * down);
        for (let j: usize = 0; j < 32; j += 4) {
          const q = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(p + 2 + j))));
          v128.store(o + (j << 2), f32x4.add(f32x4.mul(q, d), v128.load(po + (j << 2))));
        }
      }
    } else {
      const nb = E / Q8_BLOCK;
      const wr = wte + id * <usize>nb * <usize>Q4_0_BYTES;
      for (let b = 0; b < nb; b++) {
        const p = wr + <usize>b * <usize>Q4_0_BYTES, o = yr + (<usize>b << 7), po = pr + (<usize>b << 7);
        const d = half1(p) * down;
        for (let j: usize = 0; j < 16; j++) {
          const byte = <i32>load<u8>(p + 2 + j);
          store<f32>(o + (j << 2), <f32>((byte & 15) - 8) * d + load<f32>(po + (j << 2)));
          store<f32>(o + ((j + 16) << 2), <f32>((byte >>> 4) - 8) * d + load<f32>(po + ((j + 16) << 2)));
        }
      }
    }
  }
}
