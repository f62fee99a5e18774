// y[i] = a[i] + b[i]. Split over n in chunks that are multiples of 4.
import { splitChunk, splitHi, splitLo } from './common';

export function add(a: usize, b: usize, y: usize, n: i32, ith: i32, nth: i32): void {
  const chunk = splitChunk(n, nth, 4);
  const i0 = splitLo(n, ith, chunk), i1 = splitHi(n, i0, chunk);
  let i = i0;
  const i4 = i0 + ((i1 - i0) & ~3);
  for (; i < i4; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(a + o) + load<f32>(b + o));
  }
}
