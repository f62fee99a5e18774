// BlockStream (src/model/block-stream.ts): the values it hands to each block, for any chunking of the source,
// are exactly the block's 32 inputs of one output, checked against indexing the whole source matrix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BLOCK, BlockStream } from '../src/model/block-stream.ts';
import { Random } from '../src/generation/random.ts';

/** Streams `src` (file order) in chunks of the given sizes; returns the [N, K] matrix the blocks received and the peak group size. */
function collect(conv1d: boolean, N: number, K: number, src: Float32Array, sizes: () => number): Float32Array {
  const out = new Float32Array(N * K).fill(NaN);
  const s = new BlockStream(conv1d, N, K, (n, kb, values) => {
    assert.ok(values.length % BLOCK === 0 && values.length > 0, 'whole blocks');
    for (let i = 0; i < values.length; i++) {
      assert.ok(Number.isNaN(out[n * K + kb * BLOCK + i]), `output ${n} input ${kb * BLOCK + i} written twice`);
      out[n * K + kb * BLOCK + i] = values[i];
    }
  });
  for (let off = 0; off < src.length;) {
    const n = Math.min(sizes(), src.length - off);
    assert.not.ok(s.complete, 'complete before the end');
    s.push(src.subarray(off, off + n), n);
    off += n;
  }
  assert.ok(s.complete, 'not complete at the end');
  return out;
}

for (const [conv1d, N, K] of [[false, 5, 64], [true, 7, 96], [true, 1, 32], [false, 3, 32], [true, 33, 64]] as [boolean, number, number][]) {
  test(`block stream: ${conv1d ? 'conv1d [K, N]' : 'linear [N, K]'} N=${N} K=${K}, odd chunkings`, () => {
    const rng = new Random(N * 1000 + K);
    const src = Float32Array.from({ length: N * K }, () => rng.next() * 2 - 1);
    // the [N, K] matrix the kernels want, by indexing the source directly
    const want = new Float32Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[n * K + k] = conv1d ? src[k * N + n] : src[n * K + k];
    for (const sizes of [() => 1, () => 7, () => N * K, () => 1 + Math.floor(rng.next() * 50)]) {
      assert.equal(Array.from(collect(conv1d, N, K, src, sizes)), Array.from(want));
    }
  });
}

test('block stream: an inner dimension that is not a multiple of 32 is refused', () => {
  assert.throws(() => new BlockStream(true, 4, 40, () => {}), /K = 40 is not a multiple of 32/);
});

test('block stream: a tensor that ends mid-group is not complete', () => {
  const s = new BlockStream(false, 2, 32, () => {});
  s.push(new Float32Array(40), 40);
  assert.not.ok(s.complete);
});

test.run();
