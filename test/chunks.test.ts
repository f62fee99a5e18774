// Dynamic chunking (src/runtime/chunks.ts, pool.ts): a call is split into fixed chunks that any thread may
// claim, so the output must not depend on the thread count or on which thread ran which chunk. The fixture
// model is small enough that decode runs most ops as one chunk; this checkpoint is large enough that every
// decode op is split, and its weights are random enough that a wrong chunk boundary changes the logits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, memorySource } from '../src/index.js';
import { CHUNKS_PER_THREAD, GEMV_CHUNK_WORK, chunkCount, dispatchKind } from '../src/runtime/chunks.js';
import { KERNEL_NAMES } from '../src/runtime/abi.js';
import { HOT, LAZY, SOLO, type DispatchPolicy } from '../src/runtime/dispatch-policy.js';
import { randomCheckpoint } from './helpers/checkpoint.js';

const SHAPE = { n_embd: 256, n_head: 4, n_layer: 2, n_positions: 64, vocab_size: 700 };

/** Logits of a 9-token prefill, then of `steps` decode steps, concatenated; `counts` receives how many split
 *  calls ran with the threads waiting hot and lazy. */
async function prefillAndDecode(opts: Record<string, unknown>, steps = 3, counts?: { hot: number; lazy: number; solo: number }, before?: (m: GPT2LMHeadModel) => void): Promise<Float32Array> {
  const m = await GPT2LMHeadModel.from_pretrained(memorySource(randomCheckpoint(SHAPE, 5), 'chunks'), opts as any);
  try {
    before?.(m);
    const cache = m.createCache(1, 16 + steps);
    const parts = [Float32Array.from(m.prefill(cache, [5, 17, 300, 2, 699, 41, 8, 123, 77]))];
    for (let s = 0; s < steps; s++) parts.push(Float32Array.from(m.decodeStep([{ cache, id: [9, 650, 33][s % 3] + s, pos: cache.length }])));
    cache.dispose();
    if (counts) Object.assign(counts, m.backend.dispatchCounts());
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  } finally { await m.dispose(); }
}

test('decode ops of a mid-size model are split into several chunks (the property below is not vacuous)', () => {
  const E = SHAPE.n_embd;
  // decode (M = 1): the QKV and MLP matmuls, and attention over 4 heads at ctx 12
  assert.ok(chunkCount('matmul_f32', [0, 0, 0, 0, 1, E, 3 * E, 0], 2) > 2);
  assert.ok(chunkCount('matmul_f32', [0, 0, 0, 0, 1, 4 * E, E, 0], 3) > 3);
  assert.is(chunkCount('layernorm', [0, 0, 0, 0, 1, E, 1e-5], 3), 1); // one row: run by the caller alone
});

test('chunk counts: 1 for one thread, never more than the units of work or CHUNKS_PER_THREAD per thread', () => {
  const sizes: Record<string, number[]> = {
    matmul_f32: [0, 0, 0, 0, 7, 768, 3000, 0], matmul_f16: [0, 0, 0, 0, 1, 768, 50257, 0],
    matmul_q8: [0, 0, 0, 0, 0, 3, 768, 100, 0], matmul_q4: [0, 0, 0, 0, 0, 3, 768, 100, 0], // (xq, xs, w, bias, y, M, K, N, flags)
    quantize_q8: [0, 0, 0, 5, 768], layernorm: [0, 0, 0, 0, 300, 768, 1e-5], embed: [0, 0, 0, 0, 0, 0, 64, 768],
    kv_store: [0, 0, 0, 0, 0, 0, 0, 2, 60, 12, 64, 128, 0], // (src, srcStride, kCol, vCol, kc, vc, kvDt, B, T, H, D, cap, slot0)
    // (q, qStride, kc, vc, kvDt, cap, out, outStride, B, H, T, D, S, …)
    attention_blockwise: [0, 0, 0, 0, 0, 0, 0, 0, 1, 12, 1, 64, 128], attention_eager: [0, 0, 0, 0, 0, 0, 0, 0, 2, 12, 30, 64, 128],
    quantize_weights: [0, 0, 0, 2, 64, 768, 0, 0], // (x, w, wStride, dt, rows, cols, conv1d, flag): 64 rows of 768
    place_weights: [0, 0, 1, 64, 768, 64, 1], // (x, w, dt, rows, cols, wStride, conv1d): 64 source rows of a [K, 768] Conv1D
    place_halves: [0, 0, 64, 768, 64, 1], halves_scan: [0, 768 * 3072, 2, 0], halves_shift: [0, 768 * 3072 / 32, 34, 10], // (p, n, stride, out | e)
  };
  for (const name of KERNEL_NAMES) {
    const a = sizes[name];
    assert.ok(a, `no sample call for ${name}`);
    assert.is(chunkCount(name, a, 1), 1, name);
    for (const t of [2, 3, 8]) {
      const n = chunkCount(name, a, t);
      assert.ok(Number.isInteger(n) && n >= 1 && n <= t * CHUNKS_PER_THREAD, `${name} ${t} threads: ${n} chunks`);
    }
  }
  // the sizes read the right arguments: these calls have enough work to split on 2 threads
  for (const name of ['matmul_q8', 'matmul_q4', 'kv_store', 'attention_blockwise', 'attention_eager', 'embed', 'quantize_weights', 'place_weights', 'place_halves', 'halves_scan', 'halves_shift'] as const) assert.ok(chunkCount(name, sizes[name], 2) > 1, `${name} splits`);
  // the dispatch policy sees decode calls (a few token rows) and leaves prefill calls (many rows) on every thread
  const rows = (name: string, a: number[], r: number) => {
    const b = a.slice();
    const at: Record<string, number[]> = { matmul_f32: [4], matmul_f16: [4], matmul_q8: [5], matmul_q4: [5], quantize_q8: [3], layernorm: [4], embed: [6], kv_store: [7, 8], attention_blockwise: [8, 10], attention_eager: [8, 10], quantize_weights: [4] };
    b[at[name][0]] = r;
    for (const i of at[name].slice(1)) b[i] = 1;
    return b;
  };
  KERNEL_NAMES.forEach((name, op) => {
    if (name === 'place_weights' || name === 'place_halves' || name === 'halves_scan' || name === 'halves_shift') { assert.is(dispatchKind(op, name, sizes[name]), -1, `${name}: not a decode op, never measured`); return; }
    assert.ok(dispatchKind(op, name, rows(name, sizes[name], 1)) >= 0, `${name}: one row goes by the policy`);
    assert.is(dispatchKind(op, name, rows(name, sizes[name], 128)), -1, `${name}: 128 rows never measured`);
  });
  // a matmul with N = 20 has two units of 16 columns: never more than two chunks
  assert.ok(chunkCount('matmul_f32', [0, 0, 0, 0, 64, 768, 20, 0], 8) <= 2);
});

test('batch-1 quantised matmuls get fewer, larger chunks (each chunk restarts its weight streams), at least one per thread', () => {
  const q = (name: 'matmul_q8' | 'matmul_q4', M: number, K: number, N: number, t: number) => chunkCount(name, [0, 0, 0, 0, 0, M, K, N, 0], t);
  for (const name of ['matmul_q8', 'matmul_q4'] as const) {
    for (const t of [2, 3, 4]) {
      assert.is(q(name, 1, 768, 768, t), t, `${name} 768x768 on ${t} threads: one chunk per thread`);
      assert.is(q(name, 1, 768, 50257, t), t * CHUNKS_PER_THREAD, `${name} LM head on ${t} threads`);
      // K·N / (t·GEMV_CHUNK_WORK) chunks per thread, rounded down, 1 ≤ · ≤ CHUNKS_PER_THREAD
      const per = Math.max(1, Math.min(CHUNKS_PER_THREAD, Math.floor((768 * 3072) / (t * GEMV_CHUNK_WORK))));
      assert.is(q(name, 1, 768, 3072, t), t * per, `${name} 768x3072 on ${t} threads`);
      assert.is(q(name, 2, 768, 768, t), t, `${name} M = 2 is a GEMV too`);
    }
    // prefill (M > 2) keeps CHUNKS_PER_THREAD per thread
    assert.is(q(name, 128, 768, 768, 2), 2 * CHUNKS_PER_THREAD, `${name} GEMM`);
  }
  assert.is(q('matmul_q8', 1, 768, 3072, 2), 4); // 2.36M multiply-adds: two chunks per thread
});

test('1, 2 and 3 threads give bit-identical prefill and decode logits with split decode ops (fp32, fp16, q8)', async () => {
  for (const dtype of ['fp32', 'fp16', 'q8', 'q4']) {
    const base = await prefillAndDecode({ threads: 1, dtype });
    for (const threads of [2, 3]) {
      const other = await prefillAndDecode({ threads, dtype, dispatch: 'parallel' });
      assert.ok(Buffer.from(base.buffer).equals(Buffer.from(other.buffer)), `${dtype}: ${threads} threads differ from 1`);
    }
  }
});

test('split calls with the threads waiting lazy or on the caller alone (the adaptive dispatch\'s other modes) give the same bits as hot', async () => {
  const base = await prefillAndDecode({ threads: 1 }, 12);
  const counts = { hot: 0, lazy: 0, solo: 0 };
  // the mode changes every call, so workers asleep, spinning and left asleep all meet every kind of op
  const adaptive = await prefillAndDecode({ threads: 2, dispatch: 'adaptive' }, 12, counts, (m) => {
    const policy = (m.backend as any).pool.policy as DispatchPolicy;
    let i = 0;
    policy.mode = () => [LAZY, HOT, SOLO, HOT, SOLO, LAZY][i++ % 6] as typeof HOT;
  });
  assert.ok(counts.hot > 20 && counts.lazy > 20 && counts.solo > 20, `calls: ${JSON.stringify(counts)}`);
  assert.ok(Buffer.from(base.buffer).equals(Buffer.from(adaptive.buffer)), 'calls with lazy threads or the caller alone differ from 1 thread');
  const forced = { hot: 0, lazy: 0, solo: 0 };
  await prefillAndDecode({ threads: 2, dispatch: 'parallel' }, 2, forced);
  assert.ok(forced.hot > 0 && forced.lazy === 0 && forced.solo === 0, `dispatch 'parallel': ${JSON.stringify(forced)}`);
});

test('the reference kernels run the same chunks and agree with the wasm kernels', async () => {
  const wasm = await prefillAndDecode({ threads: 3 });
  const ref = await prefillAndDecode({ threads: 3, kernels: 'reference' });
  let worst = 0;
  for (let i = 0; i < wasm.length; i++) worst = Math.max(worst, Math.abs(wasm[i] - ref[i]) / (1e-3 + Math.abs(ref[i])));
  assert.ok(worst < 1e-3, `wasm vs reference: worst relative difference ${worst}`);
});

test.run();
