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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2_SHAPES, writeRandomGPT2 } from '../bench/util/checkpoint.js';
import { loadConfig } from '../src/io/config.js';
import { openSafetensorsModel } from '../src/io/safetensors.js';
import { dirSource } from '../src/io/source.js';
import { DEFAULT_PREFILL_CHUNK, GPT2LMHeadModel } from '../src/model/gpt2.js';
import { loadWeights, planWeights, type DType } from '../src/model/weights.js';
import { KERNEL_NAMES, attentionScratchBytes } from '../src/runtime/abi.js';
import { Backend } from '../src/runtime/backend.js';
import type { Arena, Region } from '../src/runtime/memory.js';
import { createReferenceKernels } from '../src/runtime/reference.js';
import { RESERVED_LOW_BYTES, compileVariant, createMemory, instantiateKernels, wasmBytes, type WasmVariant } from '../src/runtime/wasm.js';
import { modelDir } from './helpers/fixtures.js';

const G2 = 2 ** 31;
const DTYPES: DType[] = ['fp32', 'fp16', 'q8'];

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
// the workload: forward with every output (eager attention probabilities, hidden states, the head on every
// row), then a greedy prefill + decode loop through the serving API; results kept as arrays and ids

interface RunOut { arrays: Float32Array[]; ids: number[]; regions: Region[] }

async function workload(model: GPT2LMHeadModel, prompt: number[], steps: number): Promise<RunOut> {
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
    } finally { cache.dispose(); }
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
      const e = j >> 2;
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
// the tiny fixture: every dtype, both kernel sets, 1 and 2 threads

const TINY = modelDir('gpt2-tiny');
for (const dtype of DTYPES) {
  for (const [kernels, threads] of [['wasm', 1], ['wasm', 2], ['reference', 1]] as const) {
    test(`tiny ${dtype} ${kernels} threads=${threads}: bit-identical above, straddling and below 2 GiB`, async () => {
      await checkPlacements({ dir: TINY, dtype, kernels, threads, prompt: [464, 2068, 7586, 21831, 11687, 625], steps: 4 });
    });
  }
}

test.run();
