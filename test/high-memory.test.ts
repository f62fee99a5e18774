// Exact at every address (issue 12 part 1): wasm addresses are unsigned and the memory reaches 4 GiB, so any
// signed step on a pointer (`>> 2`, `|0`, Int32Array, i32 byte offsets) breaks once a buffer sits at or above
// 2 GiB. These tests place weights, KV caches and the forward workspaces above 2 GiB and straddling it, and
// demand bit-identical results to the same run placed low; then release the reservation and run low again
// (a high run that wrote through a wrapped index would have damaged the low weights).
//
// Placement is done with filler regions in the model's own arena (`reserveUpTo`), and every placement is
// verified from the arena's allocations (`recordAllocs`) — a test that meant to run high but ran low fails.
// To load weights at a chosen address the test builds the model as from_pretrained does, on a Backend it
// created first (`loadOn`): no test hook in the library.
//
// The memory is kept below 4 GiB on purpose: a negative element index into a view of the whole memory counts
// from the end of the view, which is only the right element when the memory is exactly 4 GiB.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2_SHAPES, writeRandomGPT2 } from '../bench/util/checkpoint.js';
import { loadConfig } from '../src/io/config.js';
import { openSafetensorsModel } from '../src/io/safetensors.js';
import { dirSource } from '../src/io/source.js';
import { DEFAULT_PREFILL_CHUNK, GPT2LMHeadModel } from '../src/model/gpt2.js';
import { floatToHalf } from '../src/io/half.js';
import { loadWeights, planWeights, type DType } from '../src/model/weights.js';
import { Random } from '../src/generation/random.js';
import { ACT_GELU_TANH, ACT_NONE, DT_F16, DT_F32, DT_Q4, DT_Q8, FLAG_ACCUMULATE, Q8_BLOCK, attentionScratchBytes, type KernelABI } from '../src/runtime/abi.js';
import { q4_0Bytes, q8_0Bytes, quantizeQ4_0, quantizeQ8_0 } from '../src/runtime/quant.js';
import { Backend } from '../src/runtime/backend.js';
import { MemoryLimitError } from '../src/errors.js';
import { Arena, type Region } from '../src/runtime/memory.js';
import { createReferenceKernels } from '../src/runtime/reference.js';
import { PAGE, RESERVED_LOW_BYTES, compileVariant, createMemory, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';
import { modelDir } from './helpers/fixtures.js';

const G2 = 2 ** 31;
const DTYPES: DType[] = ['fp32', 'fp16', 'q8', 'q4'];

// ---------------------------------------------------------------------------------------------------------
// placement

/** Builds a GPT2LMHeadModel from a directory on an existing backend (from_pretrained without creating one). */
async function loadOn(backend: Backend, dir: string, dtype: DType): Promise<GPT2LMHeadModel> {
  const source = dirSource(dir);
  const config = await loadConfig(source);
  const st = await openSafetensorsModel(source);
  try {
    const plan = planWeights(config, st, 'lm', dtype, st.name);
    const weights = await loadWeights(config, st, plan, backend);
    return new GPT2LMHeadModel(config, null, backend, weights, source, DEFAULT_PREFILL_CHUNK);
  } finally { await st.close(); }
}

/** Where the arena's next allocation goes (a probe, released again). */
function nextPtr(arena: Arena): number {
  const p = arena.alloc('probe', 1);
  arena.release(p);
  return p.ptr;
}

/** A filler region so that the arena's next allocation starts at `addr` (or just after, by alignment). */
function reserveUpTo(arena: Arena, addr: number): Region {
  const at = nextPtr(arena);
  assert.ok(at <= addr, `cannot place at ${addr}: the arena already hands out ${at}`);
  return arena.alloc('test filler', Math.max(1, addr - at));
}

/** Runs fn while recording every region the arena hands out (name, ptr, bytes). */
async function recordAllocs<T>(arena: Arena, fn: () => Promise<T>): Promise<{ result: T; regions: Region[] }> {
  const regions: Region[] = [];
  const orig = arena.alloc;
  arena.alloc = function (name: string, bytes: number) { const r = orig.call(this, name, bytes); regions.push(r); return r; };
  try { return { result: await fn(), regions }; } finally { arena.alloc = orig; }
}

const above = (r: { ptr: number }) => r.ptr >= G2;
const straddles = (r: { ptr: number; bytes: number }) => r.ptr < G2 && r.ptr + r.bytes > G2;
const below = (r: { ptr: number; bytes: number }) => r.ptr + r.bytes <= G2;
const where = (rs: Region[]) => rs.slice(0, 8).map((r) => `${r.name}@0x${r.ptr.toString(16)}+${r.bytes}`).join(', ') + (rs.length > 8 ? ', ...' : '');

// ---------------------------------------------------------------------------------------------------------
// the workload: forward with every output (eager attention probabilities, hidden states, the head on the last
// two rows: a gather of several rows), then a greedy prefill + decode loop through the serving API (blockwise
// and decode attention); results kept as arrays and ids

interface RunOut { arrays: Float32Array[]; ids: number[]; regions: Region[] }

async function workload(model: GPT2LMHeadModel, prompt: number[], steps: number): Promise<RunOut> {
  // the model keeps its workspace and forward()'s cache between calls: start and end each run without them, so
  // every run places its own where the test put the arena's free space
  model.releaseMemory();
  const { result, regions } = await recordAllocs(model.backend.arena, async () => {
    const arrays: Float32Array[] = [];
    const f = await model.forward({ input_ids: [prompt], output_attentions: true, output_hidden_states: true, logits_to_keep: 2 });
    for (const t of [f.logits!, f.last_hidden_state, ...f.hidden_states!, ...f.attentions!]) arrays.push(t.data as Float32Array);
    for (const kv of f.past_key_values!) arrays.push(kv.key.data as Float32Array, kv.value.data as Float32Array);
    const cache = model.createCache(1, prompt.length + steps);
    const ids: number[] = [];
    try {
      let logits = model.prefill(cache, prompt);
      for (let s = 0; s < steps; s++) {
        arrays.push(logits.slice());
        const id = argmax(logits);
        ids.push(id);
        logits = model.decodeStep([{ cache, id, pos: prompt.length + s }]);
      }
      arrays.push(logits.slice());
    } finally { cache.dispose(); model.releaseMemory(); }
    return { arrays, ids };
  });
  return { ...result, regions };
}

const argmax = (v: Float32Array) => { let b = 0; for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i; return b; };

/** Bit-for-bit equality of two runs' outputs (NaN payloads included). */
function sameBits(got: RunOut, want: RunOut, what: string): void {
  assert.equal(got.ids, want.ids, `${what}: greedy ids differ`);
  assert.is(got.arrays.length, want.arrays.length, `${what}: number of outputs`);
  for (let i = 0; i < want.arrays.length; i++) {
    const a = new Uint8Array(got.arrays[i].buffer, got.arrays[i].byteOffset, got.arrays[i].byteLength);
    const b = new Uint8Array(want.arrays[i].buffer, want.arrays[i].byteOffset, want.arrays[i].byteLength);
    if (Buffer.compare(a, b) !== 0) {
      let j = 0;
      while (j < a.length && a[j] === b[j]) j++;
      const e = j >>> 2;
      assert.unreachable(`${what}: output #${i} differs first at element ${e}: got ${got.arrays[i][e]}, want ${want.arrays[i][e]}`);
    }
  }
}

/** Every region of the run satisfies `ok`, and (for a straddle) one region spans 2 GiB. */
function expectPlaced(run: RunOut, ok: (r: Region) => boolean, what: string, needStraddle = false): void {
  assert.ok(run.regions.length > 0, `${what}: the run allocated nothing`);
  const bad = run.regions.filter((r) => !ok(r));
  assert.ok(bad.length === 0, `${what}: regions not where intended: ${where(bad)}`);
  if (needStraddle) assert.ok(run.regions.some(straddles), `${what}: no region spans 2 GiB: ${where(run.regions)}`);
}

/** Address span of a model's weight regions. */
const weightSpan = (m: GPT2LMHeadModel) => {
  const rs = m.weights.regions;
  return { lo: Math.min(...rs.map((r) => r.ptr)), hi: Math.max(...rs.map((r) => r.ptr + r.bytes)), regions: rs };
};

// ---------------------------------------------------------------------------------------------------------
// one backend, every placement

interface Case { dir: string; dtype: DType; kernels: 'wasm' | 'reference'; threads: number; prompt: number[]; steps: number }

async function checkPlacements(c: Case): Promise<void> {
  const tag = `${c.dir.split('/').pop()} ${c.dtype} ${c.kernels} threads=${c.threads}`;
  const backend = await Backend.create({ kernels: c.kernels, threads: c.threads });
  const A = backend.arena;
  try {
    // 1. everything low: the baseline
    const low = await loadOn(backend, c.dir, c.dtype);
    const wl = weightSpan(low);
    assert.ok(wl.hi <= G2, `${tag}: weights did not load low`);
    const base = await workload(low, c.prompt, c.steps);
    expectPlaced(base, below, `${tag} baseline`);
    const span = Math.max(...base.regions.map((r) => r.ptr + r.bytes)) - Math.min(...base.regions.map((r) => r.ptr));

    // 2. low weights; KV caches and workspaces above 2 GiB
    let filler = reserveUpTo(A, G2 + 4096 + 64);
    const high = await workload(low, c.prompt, c.steps);
    expectPlaced(high, above, `${tag} caches/workspaces above 2 GiB`);
    sameBits(high, base, `${tag} caches/workspaces above 2 GiB`);
    A.release(filler);

    // 3. the same, straddling 2 GiB (2 GiB falls inside the run's allocations)
    filler = reserveUpTo(A, G2 - Math.floor(span / 2));
    const mid = await workload(low, c.prompt, c.steps);
    expectPlaced(mid, (r) => r.ptr >= filler.ptr + filler.bytes, `${tag} caches/workspaces straddling 2 GiB`, true);
    sameBits(mid, base, `${tag} caches/workspaces straddling 2 GiB`);
    A.release(filler);

    // 4. weights loaded straddling 2 GiB (2 GiB inside the first tensor loaded, wte), so the layers lie above;
    //    caches and workspaces after them, above 2 GiB
    const first = wl.regions.reduce((a, r) => (r.ptr < a.ptr ? r : a));
    filler = reserveUpTo(A, G2 - Math.floor(first.bytes / 2));
    const hiModel = await loadOn(backend, c.dir, c.dtype);
    const wh = weightSpan(hiModel);
    assert.ok(wh.regions.some(straddles), `${tag}: no weight region spans 2 GiB: ${where(wh.regions)}`);
    assert.ok(wh.regions.filter(above).length >= wh.regions.length - 1, `${tag}: weights not above 2 GiB: ${where(wh.regions)}`);
    const hw = await workload(hiModel, c.prompt, c.steps);
    expectPlaced(hw, above, `${tag} weights straddling/above 2 GiB`);
    sameBits(hw, base, `${tag} weights straddling/above 2 GiB`);

    // 5. release the reservation: the high weights with low caches and workspaces, then the low model again —
    //    nothing the high runs did may have touched the low weights
    A.release(filler);
    const hwLow = await workload(hiModel, c.prompt, c.steps);
    expectPlaced(hwLow, below, `${tag} high weights, low caches/workspaces`);
    sameBits(hwLow, base, `${tag} high weights, low caches/workspaces`);
    const again = await workload(low, c.prompt, c.steps);
    expectPlaced(again, below, `${tag} low again after the high runs`);
    sameBits(again, base, `${tag} low again after the high runs`);
  } finally {
    backend.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// every kernel, on one block of inputs and outputs placed low, above 2 GiB and straddling it: the block's bytes
// after the calls must not depend on where it sits (wasm builds with nth 1 and 2, and the reference twins)

/** Lays out inputs for every kernel from `base`, runs them all (nth threads' slices in turn), returns the block's
 *  bytes and its regions. The same seed and layout at any base: only the addresses differ. */
function kernelBlock(mem: WebAssembly.Memory, k: KernelABI, base: number, nth: number): { bytes: Uint8Array; regions: Region[] } {
  const regions: Region[] = [];
  let top = base;
  const alloc = (name: string, bytes: number) => {
    const ptr = top;
    top += Math.ceil(bytes / 64) * 64;
    new Uint8Array(mem.buffer, ptr, top - ptr).fill(0); // outputs and scratch start from the same bytes everywhere
    regions.push({ name, ptr, bytes });
    return ptr;
  };
  const rnd = new Random(99);
  const f32 = (name: string, n: number, scale = 1) => {
    const p = alloc(name, n * 4);
    const v = new Float32Array(mem.buffer, p, n);
    for (let i = 0; i < n; i++) v[i] = (rnd.next() * 2 - 1) * scale;
    return p;
  };
  const run = (fn: (ith: number, nth: number) => void) => { for (let ith = 0; ith < nth; ith++) fn(ith, nth); };
  const M = 3, K = 64, N = 40;
  const x = f32('x', M * K), bias = f32('bias', N);
  const w32 = f32('w f32', N * K, 0.5);
  const w16 = alloc('w f16', N * K * 2);
  new Uint16Array(mem.buffer, w16, N * K).set(Array.from({ length: N * K }, () => floatToHalf((rnd.next() * 2 - 1) * 0.5)));
  // Q8_0 and Q4_0 weight blocks of the same values (quantised on the host, as the loader does)
  const wq = alloc('w q8', q8_0Bytes(N * K)), w4 = alloc('w q4', q4_0Bytes(N * K));
  quantizeQ8_0(new Float32Array(mem.buffer, w32, N * K), new Uint8Array(mem.buffer, wq, q8_0Bytes(N * K)));
  quantizeQ4_0(new Float32Array(mem.buffer, w32, N * K), new Uint8Array(mem.buffer, w4, q4_0Bytes(N * K)));
  const xq = alloc('x q8', M * K), xs = alloc('x q8 scales', M * (K / Q8_BLOCK) * 4);
  run((i, n) => k.quantize_q8(x, xq, xs, M, K, i, n));
  for (const m of [1, M]) { // GEMV and GEMM paths
    const y32 = f32('y f32', m * N), y16 = f32('y f16', m * N), yq = f32('y q8', m * N), y4 = f32('y q4', m * N);
    run((i, n) => k.matmul_f32(x, w32, bias, y32, m, K, N, ACT_GELU_TANH | FLAG_ACCUMULATE, i, n));
    run((i, n) => k.matmul_f16(x, w16, bias, y16, m, K, N, ACT_NONE, i, n));
    run((i, n) => k.matmul_q8(xq, xs, wq, bias, yq, m, K, N, ACT_NONE, i, n));
    run((i, n) => k.matmul_q4(xq, xs, w4, bias, y4, m, K, N, ACT_NONE, i, n));
  }
  const gamma = f32('gamma', K), beta = f32('beta', K), yl = alloc('ln out', M * K * 4);
  run((i, n) => k.layernorm(x, gamma, beta, yl, M, K, 1e-5, i, n));
  const V = 9, P = 7, rows = 5;
  const ids = alloc('ids', rows * 4), pos = alloc('pos', rows * 4);
  new Int32Array(mem.buffer, ids, rows).set([0, 8, 3, 8, 1]);
  new Int32Array(mem.buffer, pos, rows).set([0, 6, 2, 1, 5]);
  const wpe = f32('wpe', P * K);
  for (const [dt, wte] of [[DT_F32, w32], [DT_F16, w16], [DT_Q8, wq], [DT_Q4, w4]]) {
    const y = alloc(`embed ${dt}`, rows * K * 4);
    run((i, n) => k.embed(ids, pos, wte, dt, wpe, y, Math.min(rows, V), K, i, n));
  }
  // attention: prefill (T = 3 after 2 cached) eager with probs and blockwise, and decode (T = 1, 4-row groups)
  const B = 1, H = 4, D = 16, cap = 8, T = 3, past = 2, S = past + T;
  const src = f32('qkv', B * T * 3 * H * D);
  const mask = alloc('mask', B * S * 4);
  new Float32Array(mem.buffer, mask, B * S).set([1, 0, 1, 1, 1]);
  const headMask = f32('head mask', H);
  const scratch = alloc('scratch', nth * attentionScratchBytes(S, D));
  for (const kvDt of [DT_F32, DT_F16]) { // an f32 and an f16 KV cache
    const kc = f32(`k cache ${kvDt}`, B * H * cap * D), vc = f32(`v cache ${kvDt}`, B * H * cap * D);
    run((i, n) => k.kv_store(src, 3 * H * D, H * D, 2 * H * D, kc, vc, kvDt, B, T, H, D, cap, past, i, n));
    const oe = alloc(`out eager ${kvDt}`, B * T * H * D * 4), probs = alloc(`probs ${kvDt}`, B * H * T * S * 4);
    run((i, n) => k.attention_eager(src, 3 * H * D, kc, vc, kvDt, cap, oe, H * D, B, H, T, D, S, past, 1, mask, 0.25, headMask, probs, scratch, i, n));
    const ob = alloc(`out blockwise ${kvDt}`, B * T * H * D * 4);
    run((i, n) => k.attention_blockwise(src, 3 * H * D, kc, vc, kvDt, cap, ob, H * D, B, H, T, D, S, past, 1, mask, 0.25, 0, 0, scratch, i, n));
    const od = alloc(`out decode ${kvDt}`, B * H * D * 4);
    run((i, n) => k.attention_blockwise(src, 3 * H * D, kc, vc, kvDt, cap, od, H * D, B, H, 1, D, S, S - 1, 1, mask, 0.25, 0, 0, scratch, i, n));
  }
  return { bytes: new Uint8Array(mem.buffer, base, top - base).slice(), regions };
}

// Node 20 validates the relaxed builds only under --experimental-wasm-relaxed-simd: there this file runs its kernel
// test again in a child under that flag, for those builds only (HIGH_MEMORY_CHILD_BUILDS; the model tests below are
// not registered in the child).
const childBuilds = process.env.HIGH_MEMORY_CHILD_BUILDS?.split(',') as WasmVariant[] | undefined;
const modelTest = (childBuilds ? () => {} : test) as typeof test;
const validates = (v: WasmVariant) => { try { return WebAssembly.validate(wasmBytes(v)); } catch { return false; } };
const ALL_BUILDS: WasmVariant[] = ['simd', 'simd-threads', 'relaxed', 'relaxed-threads'];
const variants = (childBuilds ?? ALL_BUILDS).filter(validates);
for (const impl of [...variants, ...(childBuilds ? [] : ['reference' as const])]) {
  test(`[${impl}] every kernel gives the same bytes with its buffers low, above 2 GiB and straddling 2 GiB`, () => {
    const mem = createMemory(G2 + (64 << 20), impl.endsWith('threads'));
    const k = impl === 'reference' ? createReferenceKernels(mem) : instantiateKernels(compileVariant(impl), mem);
    for (const nth of impl === 'reference' ? [1] : [1, 2]) {
      const low = kernelBlock(mem, k, RESERVED_LOW_BYTES, nth);
      const placements: [number, (rs: Region[]) => boolean][] = [
        [G2 + 4096 + 64, (rs) => rs.every(above)],
        [G2 - Math.floor(low.bytes.length / 2 / 64) * 64, (rs) => rs.some(straddles)],
      ];
      for (const [base, placed] of placements) {
        const at = kernelBlock(mem, k, base, nth);
        assert.ok(placed(at.regions), `not placed as intended at 0x${base.toString(16)}: ${where(at.regions)}`);
        const what = `${impl} nth=${nth} at 0x${base.toString(16)}`;
        if (Buffer.compare(at.bytes, low.bytes) !== 0) {
          const bad = at.regions.find((r) => Buffer.compare(at.bytes.subarray(r.ptr - base, r.ptr - base + r.bytes), low.bytes.subarray(r.ptr - base, r.ptr - base + r.bytes)) !== 0)!;
          assert.unreachable(`${what}: region '${bad.name}' differs from the low run`);
        }
      }
    }
  });
}

const needFlag = ALL_BUILDS.filter((v) => v.startsWith('relaxed') && !validates(v));
if (!childBuilds && needFlag.length) {
  test(`relaxed SIMD builds (${needFlag.join(', ')}): the same kernel test under --experimental-wasm-relaxed-simd`, () => {
    const res = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, HIGH_MEMORY_CHILD_BUILDS: needFlag.join(',') }, encoding: 'utf8', timeout: 300_000,
    });
    const out = `${res.stdout}\n${res.stderr}`;
    assert.is(res.status, 0, `child failed:\n${out.slice(-4000)}`);
    assert.match(out, new RegExp(`Total:\\s+${needFlag.length}\\b`), `child should run ${needFlag.length} tests:\n${out.slice(-2000)}`);
    assert.match(out, new RegExp(`Passed:\\s+${needFlag.length}\\b`));
  });
}

modelTest('the arena never hands out the last page of 4 GiB: a region ending at 2^32 has an end pointer of 0 in u32', () => {
  // (a matmul_f32 with one weight row ending exactly at 2^32 returns 0: its loop bound w0 + 4K wraps to 0)
  const arena = new Arena(createMemory(0, false));
  let last = arena.alloc('most of memory', 2 ** 32 - 2 * RESERVED_LOW_BYTES);
  assert.ok(above(last) || straddles(last));
  try {
    for (;;) last = arena.alloc('the rest', RESERVED_LOW_BYTES);
  } catch (e) { assert.instance(e, MemoryLimitError); }
  assert.ok(last.ptr + last.bytes <= 2 ** 32 - PAGE, `a region ends at 0x${(last.ptr + last.bytes).toString(16)}`);
});

// ---------------------------------------------------------------------------------------------------------
// the tiny fixture: every dtype, both kernel sets, 1 and 2 threads

const TINY = modelDir('gpt2-tiny');
for (const dtype of DTYPES) {
  for (const [kernels, threads] of [['wasm', 1], ['wasm', 2], ['reference', 1]] as const) {
    modelTest(`tiny ${dtype} ${kernels} threads=${threads}: bit-identical above, straddling and below 2 GiB`, async () => {
      await checkPlacements({ dir: TINY, dtype, kernels, threads, prompt: [464, 2068, 7586, 21831, 11687, 625], steps: 4 });
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// a 124M-shaped random checkpoint (gpt2's dimensions: 12 layers of E 768, H 12, vocab 50257), wasm kernels: each
// dtype once, alternating 1 and 2 threads (two loads of a 124M model per case; the tiny model above covers the
// full matrix, the reference kernels included, which would take minutes at this size)

const dir124 = mkdtempSync(join(tmpdir(), 'gpt2wasm-124m-'));
let written = false;
for (const [dtype, threads] of [['fp32', 2], ['fp16', 1], ['q8', 2], ['q4', 1]] as const) {
  modelTest(`124M-shaped ${dtype} wasm threads=${threads}: bit-identical above, straddling and below 2 GiB`, async () => {
    if (!written) { writeRandomGPT2(dir124, GPT2_SHAPES.gpt2, 7); written = true; }
    await checkPlacements({ dir: dir124, dtype, kernels: 'wasm', threads, prompt: [464, 2068, 7586, 21831, 11687], steps: 3 });
  });
}
test.after(() => rmSync(dir124, { recursive: true, force: true }));

test.run();
