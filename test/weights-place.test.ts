// The loader's placement of a checkpoint tensor arriving in chunks (src/model/weights.ts): BlockStream stages one
// value (linear) or one source row (conv1d) per group and place_weights (here its reference twin) writes them; a
// conv1d [K, N] tensor whose chunks start and end anywhere in a row is transposed to [N, K] exactly, in f32 and f16,
// for any staging size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockStream } from '../src/model/block-stream.js';
import { DT_F16, DT_F32 } from '../src/runtime/abi.js';
import { createReferenceKernels } from '../src/runtime/reference.js';
import { floatToHalf } from '../src/io/half.js';

test('place: chunked conv1d transposition and linear copy equal the plain ones for any chunk boundaries and staging, f32 and f16', () => {
  let s = 12345;
  const rnd = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 4294967296; };
  const memory = new WebAssembly.Memory({ initial: 64 });
  const k = createReferenceKernels(memory);
  const flag = 16, stagePtr = 64, out = 1 << 20;
  for (const [K, N] of [[7, 5], [40, 33], [64, 96], [3, 200]]) {
    const src = Float32Array.from({ length: K * N }, () => rnd() * 2 - 1);
    for (const conv1d of [true, false]) for (const dt of [DT_F32, DT_F16]) {
      const want = dt === DT_F32 ? new Float32Array(N * K) : new Uint16Array(N * K);
      for (let e = 0; e < K * N; e++) want[conv1d ? (e % N) * K + Math.floor(e / N) : e] = dt === DT_F32 ? src[e] : floatToHalf(src[e]);
      const size = dt === DT_F32 ? 4 : 2;
      for (const chunk of [1, 3, N - 1, N, N + 1, 2 * N + 7, 17 * N, K * N]) for (const stagedRows of [1, 2, 5]) {
        new Uint8Array(memory.buffer).fill(0xa5);
        const staging = new Float32Array(memory.buffer, stagePtr, (conv1d ? N : 1) * stagedRows);
        const stream = new BlockStream(conv1d, conv1d ? N : K, conv1d ? K : N, staging, (first, groups) => {
          if (conv1d) k.place_weights(stagePtr, out + first * size, dt, groups, N, K, 1, flag, 0, 1);
          else k.place_weights(stagePtr, out + first * size, dt, groups, 1, 0, 0, flag, 0, 1);
        }, 1);
        for (let e = 0; e < K * N; e += chunk) {
          const n = Math.min(chunk, K * N - e);
          stream.push(n, (dst, from) => dst.set(src.subarray(e + from, e + from + dst.length)));
        }
        assert.ok(stream.complete, 'every value placed');
        const got = dt === DT_F32 ? new Float32Array(memory.buffer, out, N * K) : new Uint16Array(memory.buffer, out, N * K);
        const what = `K=${K} N=${N} conv1d=${conv1d} dt=${dt} chunk=${chunk} staged rows=${stagedRows}`;
        assert.equal(Array.from(got), Array.from(want), what);
        assert.ok(new Uint8Array(memory.buffer, out + N * K * size, 64).every((b) => b === 0xa5), `${what}: wrote past the matrix`);
        assert.is(new Int32Array(memory.buffer, flag, 1)[0], 0xa5a5a5a5 | 0, `${what}: flag set for finite values`);
      }
    }
  }
});

test.run();
