// y[r,:] = wte[ids[r],:] + wpe[pos[r],:], wte f32, f16 (inf/NaN kept) or q8 (i8 · per-32 scale). Bit-exact
// with the reference: f32 and f16 sums are single f32 additions; q8 is computed as i8·scale + wpe in f64 and
// rounded once, as the reference does. Split over rows.
import { DT_F16, DT_F32, Q8_BLOCK, splitChunk, splitHi, splitLo } from './common';
import { half4Exact } from './math';

@inline function halfScalarExact(p: usize): f32 {
  const h = <i32>load<u16>(p);
  const e = (h >> 10) & 0x1f;
  if (e == 31) return reinterpret<f32>(((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13));
  return reinterpret<f32>(((h << 16) >> 3) & <i32>0x8fffe000) * <f32>5.192296858534828e33;
}

export function embed(ids: usize, pos: usize, wte: usize, wteDt: i32, wteScales: usize, wpe: usize, y: usize, rows: i32, E: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(rows, nth, 1);
  const r0 = splitLo(rows, ith, chunk), r1 = splitHi(rows, r0, chunk);
  const E4 = E & ~3;
  const eb = <usize>E << 2;
  for (let r = r0; r < r1; r++) {
    const id = <usize>load<i32>(ids + (<usize>r << 2));
    const p = <usize>load<i32>(pos + (<usize>r << 2));
    const yr = y + <usize>r * eb, pr = wpe + p * eb;
    let e = 0;
    if (wteDt == DT_F32) {
      const wr = wte + id * eb;
      for (; e < E4; e += 4) {
        const o = <usize>e << 2;
        v128.store(yr + o, f32x4.add(v128.load(wr + o), v128.load(pr + o)));
      }
      for (; e < E; e++) {
        const o = <usize>e << 2;
        store<f32>(yr + o, load<f32>(wr + o) + load<f32>(pr + o));
      }
    } else if (wteDt == DT_F16) {
      const wr = wte + id * (<usize>E << 1);
      for (; e < E4; e += 4) {
        const o = <usize>e << 2;
        v128.store(yr + o, f32x4.add(half4Exact(wr + (<usize>e << 1)), v128.load(pr + o)));
      }
      for (; e < E; e++) {
        const o = <usize>e << 2;
        store<f32>(yr + o, halfScalarExact(wr + (<usize>e << 1)) + load<f32>(pr + o));
      }
    } else {
      const wr = wte + id * <usize>E;
      const sr = wteScales + id * (<usize>(E / Q8_BLOCK) << 2);
      for (; e < E; e++) {
        const o = <usize>e << 2;
        const sc = <f64>load<f32>(sr + (<usize>(e / Q8_BLOCK) << 2));
        store<f32>(yr + o, <f32>(<f64>load<i8>(wr + <usize>e) * sc + <f64>load<f32>(pr + o)));
      }
    }
  }
}
