// The loader's placement of a chunk of a checkpoint tensor (src/model/weights.ts place): a conv1d [K, N] tensor
// arriving in chunks that start and end anywhere in a row is transposed to [N, K] exactly, in f32 and f16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { place } from '../src/model/weights.js';
import { DT_F16, DT_F32 } from '../src/runtime/abi.js';
import { floatToHalf } from '../src/io/half.js';

test('place: chunked conv1d transposition equals the plain one for any chunk boundaries, f32 and f16', () => {
  let s = 12345;
  const rnd = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 4294967296; };
  for (const [K, N] of [[7, 5], [40, 33], [64, 96], [3, 200]]) {
    const src = Float32Array.from({ length: K * N }, () => rnd() * 2 - 1);
    for (const dt of [DT_F32, DT_F16]) {
      const want = dt === DT_F32 ? new Float32Array(N * K) : new Uint16Array(N * K);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) want[n * K + k] = dt === DT_F32 ? src[k * N + n] : floatToHalf(src[k * N + n]);
      for (const chunk of [1, 3, N - 1, N, N + 1, 2 * N + 7, 17 * N, K * N]) {
        const ptr = 64, buf = new ArrayBuffer(ptr + N * K * 4);
        const backend = { arena: { memory: { buffer: buf } } } as any;
        for (let e = 0; e < K * N; e += chunk) {
          const n = Math.min(chunk, K * N - e);
          place(backend, src.slice(e, e + n), n, e, ptr, dt, true, N, K);
        }
        const got = dt === DT_F32 ? new Float32Array(buf, ptr, N * K) : new Uint16Array(buf, ptr, N * K);
        assert.equal(Array.from(got), Array.from(want), `K=${K} N=${N} dt=${dt} chunk=${chunk}`);
      }
    }
  }
});

test.run();
