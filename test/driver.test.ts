// The one forward driver and the KV cache that forward() keeps in wasm memory: incremental forward() with the
// returned past_key_values equals full recomputation and the plain-array path; branching and eviction keep every
// returned past readable; memory stays flat over incremental calls; dispose() stops a generation with DISPOSED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, GPT2WasmError, Tensor } from '../src/index.js';
import { Random } from '../src/generation/random.js';
import { compareClose, kernelOpts, modelDir } from './helpers/fixtures.js';

type Model = GPT2LMHeadModel;
const f32 = (t: Tensor | undefined) => t!.data as Float32Array;
const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const close = (got: Float32Array, want: Float32Array, what: string) => {
  const msg = compareClose(got, want, { atol: 1e-4, rtol: 1e-4 }, what);
  if (msg) assert.unreachable(msg);
};
/** A past copied out to plain nested arrays: the form a user or a learned prefix would pass. */
const plainPast = (past: { key: Tensor; value: Tensor }[]) => past.map((l) => ({ key: l.key.tolist(), value: l.value.tolist() }));

async function expectCode(p: Promise<unknown> | (() => unknown), code: string) {
  let err: any;
  try { await (typeof p === 'function' ? p() : p); } catch (e) { err = e; }
  assert.ok(err instanceof GPT2WasmError, `expected a GPT2WasmError ${code}, got ${err?.stack ?? err}`);
  assert.is(err.code, code, err.message);
}

/** Random token rows; row b is left-padded by b tokens (mask 0). */
function randomBatch(rng: Random, B: number, T: number, V: number) {
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.next() * V)));
  const mask = ids.map((row, b) => row.map((_, t) => (t < b ? 0 : 1)));
  return { ids, mask };
}

/** Positions as transformers derives them from a padding mask: cumsum - 1, and 1 under the padding. */
const positionsOf = (mask: number[][], from: number, T: number) => mask.map((row) => {
  let c = 0;
  return row.slice(0, from + T).map((m) => (c += m, m ? c - 1 : 1)).slice(from);
});

test('property: incremental forward() with the returned past_key_values == full recompute == the plain-array path', async () => {
  const rng = new Random(5);
  for (const [name, threads] of [['gpt2-tiny', 1], ['gpt2-tiny', 2], ['gpt2-tiny-xattn', 1]] as const) {
    // `model` only ever extends its own returned past (in place); `ref` (same weights) runs the plain and full calls
    const opts = { threads, prefill_chunk: 5, ...kernelOpts() };
    const model = await GPT2LMHeadModel.from_pretrained(modelDir(name), opts);
    const ref = await GPT2LMHeadModel.from_pretrained(modelDir(name), opts);
    try {
      const V = model.config.vocab_size, E = model.config.n_embd;
      for (let trial = 0; trial < 3; trial++) {
        const B = 1 + Math.floor(rng.next() * 3), T0 = B + 1 + Math.floor(rng.next() * 12), steps = 2 + Math.floor(rng.next() * 5);
        const { ids, mask } = randomBatch(rng, B, T0 + steps * 2, V);
        const extra: Record<string, unknown> = {};
        if (model.config.add_cross_attention) {
          const S = 1 + Math.floor(rng.next() * 6);
          extra.encoder_hidden_states = Array.from({ length: B }, () => Array.from({ length: S }, () => Array.from({ length: E }, () => rng.next() - 0.5)));
        }
        const cols = (a: number[][], from: number, to: number) => a.map((r) => r.slice(from, to));
        const call = (m: Model, from: number, to: number, past?: unknown) => m.forward({
          input_ids: cols(ids, from, to), attention_mask: cols(mask, 0, to), position_ids: positionsOf(mask, from, to - from), past_key_values: past, ...extra,
        });
        let out = await call(model, 0, T0);
        let len = T0;
        for (let s = 0; s < steps; s++) {
          const n = 1 + Math.floor(rng.next() * 2); // one or two new tokens per call
          const inPlace = await call(model, len, len + n, out.past_key_values);
          assert.ok(out.past_key_values!.resident && inPlace.past_key_values!.resident, 'the past was not extended in place');
          const plain = await call(ref, len, len + n, plainPast(out.past_key_values!));
          const full = await call(ref, 0, len + n);
          const what = `${name} ${threads}t trial ${trial} step ${s} (B ${B}, past ${len}, new ${n})`;
          assert.ok(sameBits(f32(inPlace.logits), f32(plain.logits)), `${what}: in place != plain array`);
          const fullLast = new Float32Array(B * n * V);
          for (let b = 0; b < B; b++) fullLast.set(f32(full.logits).subarray((b * (len + n) + len) * V, (b * (len + n) + len + n) * V), b * n * V);
          close(f32(inPlace.logits), fullLast, `${what}: in place vs full`);
          // the returned past holds what a full forward's past holds
          assert.is(inPlace.past_key_values!.get_seq_length(), len + n);
          close(f32(inPlace.past_key_values![1].value), f32(full.past_key_values![1].value), `${what}: past values`);
          out = inPlace;
          len += n;
        }
      }
    } finally { await model.dispose(); await ref.dispose(); }
  }
});

test('a past used twice (branching), evicted, or from another model stays correct and readable', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  const other = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const prompt = [464, 2068, 7586, 21831, 13];
    const base = await model.forward({ input_ids: [prompt] });
    const a = await model.forward({ input_ids: [[11, 12]], past_key_values: base.past_key_values });
    assert.ok(base.past_key_values!.resident && a.past_key_values!.resident);
    const b = await model.forward({ input_ids: [[40]], past_key_values: base.past_key_values }); // overwrites slot 5 that `a` uses
    assert.ok(!a.past_key_values!.resident && b.past_key_values!.resident && base.past_key_values!.resident, 'only `a` is copied out');
    // without use_cache the past is read, not extended: same logits, and it stays where it is
    const noCache = await model.forward({ input_ids: [[11, 12]], past_key_values: base.past_key_values, use_cache: false });
    assert.ok(sameBits(f32(noCache.logits), f32(a.logits)), 'use_cache: false with a resident past');
    assert.is(noCache.past_key_values, undefined);
    assert.ok(base.past_key_values!.resident && b.past_key_values!.resident);
    const fullA = await other.forward({ input_ids: [[...prompt, 11, 12]] });
    const fullB = await other.forward({ input_ids: [[...prompt, 40]], logits_to_keep: 1 });
    close(f32(b.logits), f32(fullB.logits), 'branch b logits');
    // `a` was copied out before its slots were reused: it still reads as the full forward's past
    for (let l = 0; l < model.config.n_layer; l++) {
      close(f32(a.past_key_values![l].key), f32(fullA.past_key_values![l].key), `branch a key ${l}`);
      close(f32(a.past_key_values![l].value), f32(fullA.past_key_values![l].value), `branch a value ${l}`);
    }
    // and extending `a` now goes through the plain path, still right
    const a2 = await model.forward({ input_ids: [[99]], past_key_values: a.past_key_values });
    const fullA2 = await other.forward({ input_ids: [[...prompt, 11, 12, 99]], logits_to_keep: 1 });
    close(f32(a2.logits), f32(fullA2.logits), 'a extended after eviction');
    // a past of another model is read through its layers (plain path)
    const cross = await model.forward({ input_ids: [[99]], past_key_values: fullA.past_key_values });
    close(f32(cross.logits), f32(fullA2.logits), 'past from another model');
    // a learned prefix as plain arrays, then extended in place
    const pre = await model.forward({ input_ids: [[7]], past_key_values: plainPast(base.past_key_values!) });
    const pre2 = await model.forward({ input_ids: [[8]], past_key_values: pre.past_key_values });
    close(f32(pre2.logits), f32((await other.forward({ input_ids: [[...prompt, 7, 8]], logits_to_keep: 1 })).logits), 'prefix then in place');
  } finally { await model.dispose(); await other.dispose(); }
});

test('wasm memory stays flat over 50 incremental forward() calls; dispose() of the past gives it back', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, ...kernelOpts() });
  try {
    const seq = [464, 2068, 7586, 21831];
    let out = await model.forward({ input_ids: [seq] });
    const first = model.memoryUsage().inUse;
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      out = await model.forward({ input_ids: [[(i * 37) % 50257]], past_key_values: out.past_key_values });
      seen.add(model.memoryUsage().inUse);
    }
    assert.equal([...seen], [first], 'memory in use changed during incremental calls');
    assert.is(out.past_key_values!.get_seq_length(), 54);
    const read0 = out.past_key_values![0].key; // read before dispose: stays readable
    out.past_key_values!.dispose();
    const afterDispose = model.memoryUsage().inUse;
    assert.ok(afterDispose < first, `dispose gave nothing back (${afterDispose} >= ${first})`);
    assert.equal(read0.dims, [1, model.config.n_head, 54, model.config.n_embd / model.config.n_head]);
    await expectCode(() => out.past_key_values![1].key, 'DISPOSED');
    // fresh forward() calls reuse one cache: flat too
    const fresh = new Set<number>();
    for (let i = 0; i < 50; i++) { await model.forward({ input_ids: [seq.slice(0, 1 + (i % 4))] }); fresh.add(model.memoryUsage().inUse); }
    assert.is(fresh.size, 1, `memory in use took ${fresh.size} values over 50 fresh calls`);
  } finally { await model.dispose(); }
});

test('batched decode within a reserved workspace allocates nothing', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 2, ...kernelOpts() });
  try {
    const bytes = model.reserveWorkspace(3, 32);
    assert.is(bytes, model.workspaceBytes(3, 32));
    const caches = [0, 1, 2].map(() => model.createCache(1, 32));
    const prompts = [[15496, 11, 616], [464, 2068, 7586, 21831, 13], [7454]];
    let next = prompts.map((p, i) => { const l = model.prefill(caches[i], p); let b = 0; for (let v = 1; v < l.length; v++) if (l[v] > l[b]) b = v; return b; });
    const used = model.memoryUsage().inUse;
    const V = model.config.vocab_size;
    for (let step = 0; step < 8; step++) {
      const logits = model.decodeStep(next.map((id, i) => ({ cache: caches[i], id, pos: caches[i].length })));
      next = next.map((_, i) => { const l = logits.subarray(i * V, (i + 1) * V); let b = 0; for (let v = 1; v < V; v++) if (l[v] > l[b]) b = v; return b; });
      assert.is(model.memoryUsage().inUse, used, `step ${step} allocated`);
    }
    caches[1].dispose();
    await expectCode(() => model.decodeStep([{ cache: caches[1], id: 1, pos: 9 }]), 'DISPOSED');
    await expectCode(() => model.prefill(caches[1], [1]), 'DISPOSED');
    caches.forEach((c) => c.dispose());
  } finally { await model.dispose(); }
});

for (const threads of [1, 2]) {
  test(`dispose() during generate() stops it promptly with DISPOSED (${threads} thread${threads > 1 ? 's' : ''})`, async () => {
    // from another task (between steps)
    let model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads, ...kernelOpts() });
    let steps = 0;
    await expectCode(model.generate({
      input_ids: [[464, 2068]], max_new_tokens: 100, do_sample: false, eos_token_id: null,
      streamer: { put: () => { if (++steps === 4) setImmediate(() => void model.dispose()); }, end: () => {} },
    }), 'DISPOSED');
    assert.ok(steps <= 5, `generation went on for ${steps - 1} steps after dispose()`);
    // from inside the streamer (synchronously)
    model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads, ...kernelOpts() });
    steps = 0;
    let ended = false;
    await expectCode(model.generate({
      input_ids: [[464, 2068], [7454, 2402]], max_new_tokens: 100, do_sample: false, eos_token_id: null,
      streamer: { put: () => { if (++steps === 3) void model.dispose(); }, end: () => { ended = true; } },
    }), 'DISPOSED');
    assert.is(steps, 3, 'a step ran after dispose()');
    assert.ok(ended, 'streamer.end() not called');
    await expectCode(model.forward({ input_ids: [[1]] }), 'DISPOSED');
  });
}

test.run();
