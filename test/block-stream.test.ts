// BlockStream (src/model/block-stream.ts): the values it hands to each block, for any chunking of the source,
// are exactly the block's 32 inputs of one output, checked against indexing the whole source matrix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BLOCK, BlockStream } from '../src/model/block-stream.ts';
import { Random } from '../src/generation/random.ts';

/** Streams `src` (file order) in chunks of the given sizes through a staging area of `stagedGroups` groups (plus
 *  `slack` values); returns the [N, K] matrix the staged groups make, read as the quantize_weights kernel reads them. */
function collect(conv1d: boolean, N: number, K: number, src: Float32Array, sizes: () => number, stagedGroups: number, slack: number): Float32Array {
  const out = new Float32Array(N * K).fill(NaN);
  const staging = new Float32Array(BlockStream.groupValues(conv1d, N) * stagedGroups + slack);
  let next = 0;
  const s = new BlockStream(conv1d, N, K, staging, (first, groups) => {
    assert.is(first, next, 'groups in order, none skipped');
    assert.ok(groups >= 1 && groups <= stagedGroups, `${groups} groups staged, room for ${stagedGroups}`);
    next += groups;
    const put = (n: number, k: number, v: number) => {
      assert.ok(Number.isNaN(out[n * K + k]), `output ${n} input ${k} written twice`);
      out[n * K + k] = v;
    };
    for (let g = 0; g < groups; g++) for (let j = 0; j < BLOCK; j++) {
      if (conv1d) for (let n = 0; n < N; n++) put(n, (first + g) * BLOCK + j, staging[(g * BLOCK + j) * N + n]); // row j of group g, column n
      else put(Math.floor((first + g) / (K / BLOCK)), ((first + g) % (K / BLOCK)) * BLOCK + j, staging[g * BLOCK + j]); // a block of a row
    }
  });
  for (let off = 0; off < src.length;) {
    const n = Math.min(sizes(), src.length - off);
    assert.not.ok(s.complete, 'complete before the end');
    s.push(n, (dst, from) => dst.set(src.subarray(off + from, off + from + dst.length)));
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
      for (const [groups, slack] of [[1, 0], [2, 5], [3, 31]]) assert.equal(Array.from(collect(conv1d, N, K, src, sizes, groups, slack)), Array.from(want));
    }
  });
}

test('block stream: an inner dimension that is not a multiple of 32 is refused', () => {
  assert.throws(() => new BlockStream(true, 4, 40, new Float32Array(1024), () => {}), /K = 40 is not a multiple of 32/);
});

test('block stream: a staging area smaller than one group is refused', () => {
  assert.throws(() => new BlockStream(true, 4, 64, new Float32Array(127), () => {}), /127 staged values are less than one group of 128/);
});

test('block stream: a tensor that ends mid-group is not complete', () => {
  const s = new BlockStream(false, 2, 32, new Float32Array(64), () => {});
  s.push(40, (dst) => dst.fill(1));
  assert.not.ok(s.complete);
});

test.run();
