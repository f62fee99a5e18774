// Bad input of every kind gets a typed GPT2WasmError naming the problem — never a wasm trap, a hang, a NaN
// or a silent wrong answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer, DisposedError, GPT2LMHeadModel, GPT2WasmError, memorySource, save_gguf, type ModelSource } from '../src/index.js';
import { Random } from '../src/generation/random.js';
import { modelDir } from './helpers/fixtures.js';
import { expectError } from './helpers/expect-error.js';
import { randomCheckpoint, writeSafetensors } from './helpers/checkpoint.js';


const tiny = { n_embd: 8, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 20 };

test('forward inputs: ids out of range, too long, mask and shape mismatches', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    await expectError(model.forward({ input_ids: [[1, 2, 50257]] }), 'INPUT', /input_ids\[0\]\[2\] = 50257 .*\[0, 50257\)/);
    await expectError(model.forward({ input_ids: [[1, -1]] }), 'INPUT', /-1/);
    await expectError(model.forward({ input_ids: [Array(129).fill(1)] }), 'INPUT', /context too long: 129 .*n_positions = 128/);
    await expectError(model.forward({ input_ids: [[1, 2, 3]], attention_mask: [[1, 1]] }), 'INPUT', /attention_mask has dims \[1,2\], expected \[1, 3\]/);
    await expectError(model.forward({ input_ids: [[1, 2, 3], [4, 5]] }), 'INPUT', /ragged/);
    await expectError(model.forward({ input_ids: [[1, 2]], head_mask: [[1, 1]] }), 'INPUT', /head_mask has dims/);
    await expectError(model.forward({ input_ids: [[1, 2]], position_ids: [[0, 128]] }), 'INPUT', /position_ids\[0\]\[1\] = 128/);
    await expectError(model.forward({ input_ids: [[1, 2]], past_key_values: [] }), 'INPUT', /past_key_values has 0 layers, expected 2/);
    await expectError(model.forward({ input_ids: [[1]], encoder_hidden_states: [[[0]]] }), 'INPUT', /no cross-attention/);
    await expectError(model.forward({ input_ids: [[1]], logits_to_keep: -1 }), 'OPTION', /logits_to_keep/);
    await expectError(model.generate({ input_ids: [[1]], temperature: -1, do_sample: true }), 'OPTION', /temperature/);
    await expectError(model.generate({ input_ids: [[1]], max_new_tokens: 200 }), 'INPUT', /context too long/);
    await expectError(model.generate({ input_ids: [[1]], bogus: 1 } as any), 'OPTION', /unknown generate option 'bogus'/);
  } finally { await model.dispose(); }
  await expectError(model.forward({ input_ids: [[1]] }), 'DISPOSED', /disposed/);
  await model.forward({ input_ids: [[1]] }).then(() => assert.unreachable('forward after dispose'), (e) => assert.instance(e, DisposedError));
});

test('forward() refuses unknown inputs and answers an f32 overflow with an error, not NaN', async () => {
  const model = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    // typos and transformers inputs this runtime does not take were silently ignored (a wrong answer)
    for (const k of ['output_attention', 'attn_mask', 'past_key_value', 'num_logits_to_keep', 'token_type_ids', 'inputs_embeds']) {
      await expectError(model.forward({ input_ids: [[1, 2]], [k]: 1 } as any), 'OPTION', new RegExp(`unknown forward\\(\\) input '${k}'`));
    }
    await expectError(model.forward({ input_ids: [[1, 2]], head_mask: [1e38, 1, 1, 1] }), 'INPUT', /overflowed f32.*head_mask/);
    await expectError(model.forward({ input_ids: [[1, 2]], head_mask: [-1e38, 1, 1, 1] }), 'INPUT', /overflowed f32/);
    const ok = await model.forward({ input_ids: [[1, 2]], head_mask: [0.5, 1, 0, 1] });
    assert.ok((ok.logits!.data as Float32Array).every(Number.isFinite));
  } finally { await model.dispose(); }
});

/** A copy of safetensors bytes with the F32 tensor whose name ends in `name` changed by `edit`. */
function patchTensor(bytes: Uint8Array, name: string, edit: (a: Float32Array) => void): Uint8Array {
  const out = bytes.slice();
  const n = Number(new DataView(out.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(out.subarray(8, 8 + n)));
  const key = Object.keys(header).find((k) => k.endsWith(name))!;
  const [a, b] = header[key].data_offsets;
  edit(new Float32Array(out.buffer, 8 + n + a, (b - a) / 4));
  return out;
}

test('weights finite but extreme (a damaged checkpoint): a WeightsError naming the weights, not ±Infinity logits or blame on the inputs', async () => {
  const files = randomCheckpoint({ n_embd: 16, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 64 }, 3);
  const cases: [string, (a: Float32Array) => void][] = [
    ['wte.weight', (a) => { a[5 * 16] = -3e38; a[5 * 16 + 1] = -3e38; }], // the tied LM head: logits of token 5 overflow
    ['attn.c_proj.bias', (a) => { a[3] = 3.4e38; a[4] = 3.4e38; }], // the hidden states overflow
  ];
  for (const [name, edit] of cases) {
    const src = memorySource({ ...files, 'model.safetensors': patchTensor(files['model.safetensors'] as Uint8Array, name, edit) }, `extreme-${name}`);
    const model = await GPT2LMHeadModel.from_pretrained(src, { threads: 1 });
    try {
      await expectError(model.forward({ input_ids: [[1, 2, 3]] }), 'WEIGHTS', new RegExp(`overflowed f32.*weights of extreme-${name.replace('.', '\\.')}`));
      await expectError(model.forward({ input_ids: [[1, 2, 3]], head_mask: [1, 1] }), 'INPUT', /head_mask are too large, or the weights/);
    } finally { await model.dispose(); }
  }
});

test('KV caches: another model\'s cache is refused (it lives in that model\'s memory); bad entries and batches are typed errors', async () => {
  const a = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  const b = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 });
  try {
    const ca = a.createCache(1, 16), cb = b.createCache(1, 16);
    const want = b.prefill(cb, [1, 2, 3]).slice();
    // same shapes, same offsets in two memories: used across models, a cache read and overwrote the wrong memory
    await expectError(() => b.prefill(ca, [1, 2, 3]), 'INPUT', /created by another model/);
    a.prefill(ca, [1, 2, 3]);
    await expectError(() => b.decodeStep([{ cache: ca, id: 4, pos: 3 }]), 'INPUT', /created by another model/);
    await expectError(() => cb.copyFrom(ca), 'INPUT', /same model/);
    // b's own cache is untouched by the refused calls
    const check = b.createCache(1, 16);
    assert.equal(Array.from(b.prefill(check, [1, 2, 3])), Array.from(want));
    assert.equal(Array.from(b.decodeStep([{ cache: cb, id: 4, pos: 3 }])), Array.from(b.decodeStep([{ cache: check, id: 4, pos: 3 }])));
    // not caches at all: typed errors, not TypeErrors
    await expectError(() => b.prefill(null as any, [1]), 'INPUT', /must be a KVCache.*got null/);
    await expectError(() => b.decodeStep(null as any), 'INPUT', /array of \{ cache, id, pos \}/);
    await expectError(() => b.decodeStep([{}] as any), 'INPUT', /must be a KVCache.*got undefined/);
    await expectError(() => b.decodeStep([null] as any), 'INPUT', /entries, got null/);
    for (const batch of [0, 1.5, '2', NaN, -1]) await expectError(() => b.createCache(batch as any, 8), 'INPUT', /cache batch must be a positive integer/);
  } finally { await a.dispose(); await b.dispose(); }
});

test('checkpoints: missing, unknown, misshapen, wrong dtype, NaN tensors and bad configs', async () => {
  const files = randomCheckpoint(tiny);
  const st = files['model.safetensors'] as Uint8Array;
  const n = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n)));
  const data = st.subarray(8 + n);
  const rebuild = (edit: (t: Record<string, any>) => void) => {
    const t: Record<string, any> = {};
    for (const [k, v] of Object.entries<any>(header)) if (k !== '__metadata__') t[k] = { dtype: v.dtype, shape: v.shape, data: data.slice(v.data_offsets[0], v.data_offsets[1]) };
    edit(t);
    return memorySource({ ...files, 'model.safetensors': writeSafetensors(t) }, 'edited');
  };
  await expectError(GPT2LMHeadModel.from_pretrained(rebuild((t) => delete t['h.0.mlp.c_fc.bias'])), 'WEIGHTS', /missing tensor h\.0\.mlp\.c_fc\.bias/);
  await expectError(GPT2LMHeadModel.from_pretrained(rebuild((t) => { t['h.5.attn.c_proj.weight'] = t['h.0.attn.c_proj.weight']; })), 'WEIGHTS', /unknown tensor h\.5\.attn\.c_proj\.weight/);
  await expectError(GPT2LMHeadModel.from_pretrained(rebuild((t) => { t['ln_f.bias'] = { ...t['ln_f.bias'], shape: [2, 4] }; })), 'WEIGHTS', /ln_f\.bias has shape \[2,4\], expected \[8\]/);
  await expectError(GPT2LMHeadModel.from_pretrained(rebuild((t) => { t['ln_f.bias'] = { ...t['ln_f.bias'], dtype: 'I32' }; })), 'WEIGHTS', /ln_f\.bias has dtype I32/);
  await expectError(GPT2LMHeadModel.from_pretrained(rebuild((t) => { const d = t['h.0.ln_1.weight'].data; new DataView(d.buffer, d.byteOffset).setFloat32(4, NaN, true); })), 'WEIGHTS', /h\.0\.ln_1\.weight contains NaN/);
  // ignored buffers, prefixed keys and an untied lm_head load fine
  const ok = await GPT2LMHeadModel.from_pretrained(rebuild((t) => {
    for (const k of Object.keys(t)) { t['transformer.' + k] = t[k]; delete t[k]; }
    t['transformer.h.0.attn.bias'] = { dtype: 'F32', shape: [1, 1, 16, 16], data: new Uint8Array(16 * 16 * 4) };
    t['transformer.h.0.attn.masked_bias'] = { dtype: 'F32', shape: [], data: new Uint8Array(4) };
    t['lm_head.weight'] = t['transformer.wte.weight'];
  }));
  assert.ok(ok.weights.lm_head !== ok.weights.wte);
  await ok.dispose();
  const cfg = (c: object) => memorySource({ ...files, 'config.json': JSON.stringify({ ...JSON.parse(files['config.json'] as string), ...c }) });
  await expectError(GPT2LMHeadModel.from_pretrained(cfg({ activation_function: 'swish' })), 'CONFIG', /activation_function.*swish/);
  await expectError(GPT2LMHeadModel.from_pretrained(cfg({ n_head: 3 })), 'CONFIG', /n_embd.*n_head/);
  await expectError(GPT2LMHeadModel.from_pretrained(cfg({ tie_word_embeddings: false })), 'WEIGHTS', /tie_word_embeddings: false .*no lm_head\.weight/);
  await expectError(GPT2LMHeadModel.from_pretrained(cfg({ n_embd: 16, n_head: 2 })), 'WEIGHTS', /shape/);
  await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { dtype: 'int4' as any }), 'OPTION', /dtype/);
  await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 0 }), 'OPTION', /threads/);
  await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { thread: 2 } as any), 'OPTION', /unknown from_pretrained option 'thread'/);
});

test('weights past the f16 range: fp16 (alone or as a plan\'s group) is a WeightsError naming the tensor, row and column, never saturated', async () => {
  // n_embd 32: q8/q4 blocks (K a multiple of 32), not the f16 fallback
  const files = randomCheckpoint({ n_embd: 32, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 20 });
  const st = files['model.safetensors'] as Uint8Array;
  const n = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n)));
  const data = st.subarray(8 + n);
  /** The checkpoint with tensor key's (row, column) (as the file shapes it) set to each value; bf16: key stored as BF16. */
  const edited = (key: string, cells: [number, number, number][], bf16 = false) => {
    const t: Record<string, any> = {};
    for (const [k, v] of Object.entries<any>(header)) if (k !== '__metadata__') t[k] = { dtype: v.dtype, shape: v.shape, data: data.slice(v.data_offsets[0], v.data_offsets[1]) };
    const f = new Float32Array(t[key].data.buffer, t[key].data.byteOffset, t[key].data.byteLength / 4);
    for (const [r, c, v] of cells) f[r * t[key].shape[1] + c] = v;
    if (bf16) t[key] = { ...t[key], dtype: 'BF16', data: new Uint8Array(Uint16Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length), (u) => u >>> 16).buffer) };
    return memorySource({ ...files, 'model.safetensors': writeSafetensors(t) }, 'edited');
  };
  const load = (src: ModelSource, dtype: any) => GPT2LMHeadModel.from_pretrained(src, { dtype, threads: 1 });
  const wte = edited('wte.weight', [[1, 29, 1e6]]);
  for (const dtype of ['fp16', { default: 'fp32', wte: 'fp16' }]) {
    await expectError(load(wte, dtype), 'WEIGHTS', /model\.safetensors: tensor wte\.weight: weight 1000000 \(row 1, column 29\) is out of the f16 range.*load it as fp32/);
  }
  // fp32 holds it (and q8: its block scale 1e6/127 is a finite half): token 1's logit follows the weight
  for (const dtype of ['fp32', 'q8']) {
    const m = await load(wte, dtype);
    try {
      const logits = (await m.forward({ input_ids: [[5, 6]] })).logits!.data as Float32Array;
      assert.ok(logits.every(Number.isFinite) && Math.abs(logits[1]) > 1e5, `${dtype}: logit of token 1 ${logits[1]}`);
    } finally { await m.dispose(); }
  }
  // a Conv1D weight (stored [in, out], transposed on load): named by the file's row and column
  const fc = edited('h.0.mlp.c_fc.weight', [[3, 70, -7e4]]);
  for (const dtype of ['fp16', { mlp_fc: 'fp16' }]) {
    await expectError(load(fc, dtype), 'WEIGHTS', /tensor h\.0\.mlp\.c_fc\.weight: weight -70000 \(row 3, column 70\) is out of the f16 range.*mlp_fc: 'fp32'/);
  }
  // BF16 holds values f16 cannot (1e6 is 999424 in bf16)
  await expectError(load(edited('wte.weight', [[1, 29, 1e6]], true), 'fp16'), 'WEIGHTS', /tensor wte\.weight: weight 999424 \(row 1, column 29\) is out of the f16 range/);
  // the edge of the range: 65519 rounds to the largest half, 65504, and loads (with a subnormal half in the same matrix,
  // which keeps the exponent offset at 0: 65504·2^e would overflow); 65520 rounds to inf
  const edge = await load(edited('wte.weight', [[2, 0, 65519], [2, 1, -65504], [3, 3, 1e-6]]), 'fp16');
  try {
    const w = edge.weights.wte, h = new Uint16Array(edge.backend.arena.memory.buffer, w.ptr, w.N * w.K);
    assert.is(w.wexp, 0);
    assert.equal([h[2 * 32], h[2 * 32 + 1]], [0x7bff, 0xfbff]);
  } finally { await edge.dispose(); }
  await expectError(load(edited('wte.weight', [[2, 0, -65520]]), 'fp16'), 'WEIGHTS', /weight -65520 \(row 2, column 0\) is out of the f16 range/);
  // a q8/q4 block scale past the f16 range: its values are past it too, so the advice is fp32 (fp16 cannot hold them)
  const huge = /values too large for a q[48] block's f16 scale; load it as fp32/;
  await expectError(load(edited('h.0.mlp.c_fc.weight', [[3, 70, 1e38]]), 'q8'), 'WEIGHTS', /tensor h\.0\.mlp\.c_fc\.weight row 70 columns 0\.\.31/);
  await expectError(load(edited('h.0.mlp.c_fc.weight', [[3, 70, 1e38]]), 'q8'), 'WEIGHTS', huge);
  await expectError(load(edited('wte.weight', [[1, 29, 1e38]]), { default: 'fp32', wte: 'q4' }), 'WEIGHTS', /tensor wte\.weight row 1 columns 0\.\.31: .*load it as fp32/);
});

test('a checkpoint too big for wasm32 fails before allocating, naming a dtype that fits', async () => {
  // gpt2-xl's shapes, served lazily: header real, data all zeros, never materialised
  const cfg = { model_type: 'gpt2', n_embd: 1600, n_head: 25, n_layer: 48, n_positions: 1024, vocab_size: 50257 };
  const E = 1600, I = 6400, tensors: Record<string, number[]> = { 'wte.weight': [50257, E], 'wpe.weight': [1024, E], 'ln_f.weight': [E], 'ln_f.bias': [E] };
  for (let l = 0; l < 48; l++) Object.assign(tensors, {
    [`h.${l}.ln_1.weight`]: [E], [`h.${l}.ln_1.bias`]: [E], [`h.${l}.attn.c_attn.weight`]: [E, 3 * E], [`h.${l}.attn.c_attn.bias`]: [3 * E],
    [`h.${l}.attn.c_proj.weight`]: [E, E], [`h.${l}.attn.c_proj.bias`]: [E], [`h.${l}.ln_2.weight`]: [E], [`h.${l}.ln_2.bias`]: [E],
    [`h.${l}.mlp.c_fc.weight`]: [E, I], [`h.${l}.mlp.c_fc.bias`]: [I], [`h.${l}.mlp.c_proj.weight`]: [I, E], [`h.${l}.mlp.c_proj.bias`]: [E],
  });
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, shape] of Object.entries(tensors)) { const b = shape.reduce((a, c) => a * c, 1) * 4; header[k] = { dtype: 'F32', shape, data_offsets: [off, off + b] }; off += b; }
  const hb = new TextEncoder().encode(JSON.stringify(header));
  const size = 8 + hb.length + off;
  const lazy = {
    name: 'xl.safetensors', async size() { return size; },
    async read(o: number, len: number) {
      const out = new Uint8Array(len);
      for (let i = 0; i < len; i++) { const p = o + i; if (p < 8) out[i] = Number((BigInt(hb.length) >> BigInt(8 * p)) & 255n); else if (p < 8 + hb.length) out[i] = hb[p - 8]; }
      return out;
    },
  };
  const mem = memorySource({ 'config.json': JSON.stringify(cfg) }, 'xl');
  const src: ModelSource = Object.assign(Object.create(Object.getPrototypeOf(mem)), mem, {
    exists: async (f: string) => f === 'config.json' || f === 'model.safetensors',
    open: async (f: string) => (f === 'model.safetensors' ? lazy : mem.open(f)),
  });
  await expectError(GPT2LMHeadModel.from_pretrained(src, { dtype: 'fp32' }), 'MEMORY', /wasm32.*load with dtype 'fp16'/);
});

test('a forced kernel build the engine cannot validate says so (not that run-time compilation is refused)', async () => {
  const { detectFeatures } = await import('../src/runtime/wasm.js');
  const d = detectFeatures();
  const variant = !d.relaxedSimd ? (d.threads ? 'relaxed-threads' : 'relaxed') : null;
  if (!variant) return; // this engine runs every build (Node >= 22): nothing to refuse
  await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, variant }), 'RUNTIME', new RegExp(`cannot run the ${variant} kernels .*it runs '${d.variant}': leave variant unset`));
});

test('from_pretrained options of a wrong type or size are typed errors; a given wasmModule runs on every pool thread', async () => {
  const { compileVariant } = await import('../src/runtime/wasm.js');
  const dir = modelDir('gpt2-tiny');
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 2n } as any), 'OPTION', /threads must be an integer from 1 to 256, got 2/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: '2' } as any), 'OPTION', /got "2"/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, variant: 42 } as any), 'OPTION', /variant must be one of .*got 42/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, variant: 'bogus' } as any), 'OPTION', /variant must be one of/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, wasmModule: {} } as any), 'OPTION', /wasmModule must be a WebAssembly\.Module/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 2, wasmModule: compileVariant('simd') } as any), 'OPTION', /wasmModule is not the simd-threads build/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, initialBytes: NaN }), 'OPTION', /initialBytes/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, initialBytes: 1e12 }), 'MEMORY', /past the 4 GiB of wasm32/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { threads: 1, prefill_chunk: 1e9 }), 'MEMORY', /./);
  // the caller's module, whatever variant says, is the one the pool threads run too (they compiled the variant's
  // bytes, so a module of another build mixed two builds' bits within one op)
  const plain = await GPT2LMHeadModel.from_pretrained(dir, { threads: 2, variant: 'simd-threads' });
  const given = await GPT2LMHeadModel.from_pretrained(dir, { threads: 2, variant: 'relaxed-threads', wasmModule: compileVariant('simd-threads') } as any);
  try {
    const want = Array.from((await plain.forward({ input_ids: [[464, 2068, 7586, 21831, 11, 290]] })).logits!.data as Float32Array);
    for (let i = 0; i < 3; i++) {
      assert.equal(Array.from((await given.forward({ input_ids: [[464, 2068, 7586, 21831, 11, 290]] })).logits!.data as Float32Array), want);
    }
  } finally { await plain.dispose(); await given.dispose(); }
});

test('typos in tokenizer and save_gguf options are errors; dtype takes the CLI\'s string plan', async () => {
  await expectError(AutoTokenizer.from_pretrained(modelDir('gpt2-tiny'), { zzz: 1 } as any), 'OPTION', /unknown tokenizer from_pretrained option 'zzz'/);
  await expectError(save_gguf(modelDir('gpt2-tiny'), join(tmpdir(), 'never-written.gguf'), { dtpye: 'q8_0' } as any), 'OPTION', /unknown save_gguf option 'dtpye'/);
  assert.not.ok(existsSync(join(tmpdir(), 'never-written.gguf')));
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, dtype: 'q4,wte=fp16', device: 'cpu' });
  try { assert.is(m.weights.plan.wte, 'fp16'); assert.is(m.weights.plan.mlp_fc, 'q4'); } finally { await m.dispose(); }
  await expectError(GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1, dtype: 'q4,wte=fp17' as any }), 'OPTION', /fp17/);
});

test('a directory where a weights file belongs is named as such, not as a missing file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'gpt2wasm-dir-'));
  try {
    const files = randomCheckpoint(tiny);
    writeFileSync(join(root, 'config.json'), files['config.json'] as string);
    mkdirSync(join(root, 'model.safetensors'));
    await expectError(GPT2LMHeadModel.from_pretrained(root, { threads: 1 }), 'WEIGHTS', /model\.safetensors is not a regular file \(a directory\)/);
    rmSync(join(root, 'model.safetensors'), { recursive: true });
    writeFileSync(join(root, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'wte.weight': 'model-00001-of-00001.safetensors' } }));
    mkdirSync(join(root, 'model-00001-of-00001.safetensors'));
    await expectError(GPT2LMHeadModel.from_pretrained(root, { threads: 1 }), 'WEIGHTS', /model-00001-of-00001\.safetensors is not a regular file/);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('a FIFO or a device where a model file belongs is named as such, without blocking on it', async () => {
  if (process.platform === 'win32') return; // no mkfifo, no /dev/zero
  const root = mkdtempSync(join(tmpdir(), 'gpt2wasm-special-'));
  const fifo = (name: string) => { execFileSync('mkfifo', [join(root, name)]); return join(root, name); };
  // a plain open of a FIFO waits for a writer: bounded here, and a blocked open released, so a regression fails
  const bounded = async (p: Promise<unknown>, path: string) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([p, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`blocked on ${path}`)), 5000); })]);
    } finally {
      clearTimeout(timer);
      if (lstatSync(path).isFIFO()) closeSync(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
    }
  };
  try {
    const files = randomCheckpoint(tiny);
    writeFileSync(join(root, 'model.safetensors'), files['model.safetensors']);
    const config = fifo('config.json');
    await expectError(bounded(GPT2LMHeadModel.from_pretrained(root, { threads: 1 }), config), 'CONFIG', /config\.json is not a regular file \(a FIFO\)/);
    rmSync(config);
    symlinkSync('/dev/zero', config); // read to its end, it never ends
    await expectError(bounded(GPT2LMHeadModel.from_pretrained(root, { threads: 1 }), config), 'CONFIG', /config\.json is not a regular file \(a device\)/);
    const gguf = fifo('model.gguf');
    await expectError(bounded(GPT2LMHeadModel.from_pretrained(gguf, { threads: 1 }), gguf), 'WEIGHTS', /model\.gguf is not a regular file \(a FIFO\)/);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('config.json: a huge n_layer is an error naming the first missing tensor, before a spec of each layer is built', async () => {
  const files = randomCheckpoint(tiny); // n_layer 1
  const config = JSON.parse(files['config.json'] as string);
  const load = (patch: object) => GPT2LMHeadModel.from_pretrained(memorySource({ ...files, 'config.json': JSON.stringify({ ...config, ...patch }) }, 'layers'), { threads: 1 });
  for (const n of [2, 1_000_000, 2147483647]) {
    await expectError(load({ n_layer: n }), 'WEIGHTS',
      new RegExp(`model\\.safetensors: missing tensor h\\.1\\.ln_1\\.weight: the config has n_layer=${n}, but the file has no tensor of layer h\\.1 \\(it has h\\.0\\)`));
  }
  // fewer layers than the file has: its other layers' tensors are unknown, as before
  const two = randomCheckpoint({ ...tiny, n_layer: 2 });
  await expectError(GPT2LMHeadModel.from_pretrained(memorySource({ ...two, 'config.json': JSON.stringify(config) }, 'fewer'), { threads: 1 }), 'WEIGHTS', /unknown tensors .*h\.1\..*n_layer=1/);
});

test('a malformed generation_config.json is an error naming the file (a missing one is fine)', async () => {
  const files = randomCheckpoint(tiny);
  const load = (extra: Record<string, string>) => GPT2LMHeadModel.from_pretrained(memorySource({ ...files, ...extra }, 'gencfg'), { threads: 1 });
  await expectError(load({ 'generation_config.json': '{"max_new_tokens": ' }), 'CONFIG', /gencfg\/generation_config\.json: invalid JSON/);
  await expectError(load({ 'generation_config.json': '{"top_k": "many"}' }), 'CONFIG', /gencfg\/generation_config\.json: "top_k"/);
  const ok = await load({ 'generation_config.json': '{"max_new_tokens": 3}' });
  try { assert.is(ok.generation_config?.max_new_tokens, 3); } finally { await ok.dispose(); }
  const none = await load({});
  try { assert.is(none.generation_config, null); } finally { await none.dispose(); }
});

test('generation_config.json values generate() refuses are an error at load naming the file; a sampling value is named as the file\'s at generate()', async () => {
  const files = randomCheckpoint(tiny); // vocab_size 20
  const load = (gen: object) => GPT2LMHeadModel.from_pretrained(memorySource({ ...files, 'generation_config.json': JSON.stringify(gen) }, 'gencfg'), { threads: 1 });
  await expectError(load({ repetition_penalty: -2 }), 'CONFIG', /gencfg\/generation_config\.json: repetition_penalty must be a positive number, got -2/);
  await expectError(load({ repetition_penalty: 0 }), 'CONFIG', /generation_config\.json: repetition_penalty/);
  await expectError(load({ suppress_tokens: [999999] }), 'CONFIG', /gencfg\/generation_config\.json: suppress_tokens must be an array of token ids in \[0, 20\), got \[999999\]/);
  await expectError(load({ begin_suppress_tokens: [3, 20] }), 'CONFIG', /generation_config\.json: begin_suppress_tokens must be an array of token ids in \[0, 20\)/);
  await expectError(load({ bad_words_ids: [[1], []] }), 'CONFIG', /generation_config\.json: bad_words_ids must be an array of non-empty arrays of token ids/);
  await expectError(load({ bad_words_ids: [[1], [2, 20]] }), 'CONFIG', /generation_config\.json: bad_words_ids\[1\] must be an array of token ids in \[0, 20\), got \[2,20\]/);
  const ok = await load({ repetition_penalty: 1.3, suppress_tokens: [19], bad_words_ids: [[4, 5]] });
  try {
    assert.is((await ok.generate({ input_ids: [[1, 2]], max_new_tokens: 3 })).dims[1], 5);
  } finally { await ok.dispose(); }
  // temperature counts only when sampling (a do_sample false file may hold 0.0, as transformers allows): it loads,
  // and a sampling generate() that takes the file's value says where it came from
  const hot = await load({ do_sample: true, temperature: 0 });
  try {
    await expectError(hot.generate({ input_ids: [[1, 2]], max_new_tokens: 1 }), 'OPTION', /temperature must be a positive number, got 0 \(from gencfg\/generation_config\.json\)/);
    await expectError(hot.generate({ input_ids: [[1, 2]], max_new_tokens: 1, temperature: -1 }), 'OPTION', /temperature must be a positive number, got -1$/);
    assert.is((await hot.generate({ input_ids: [[1, 2]], max_new_tokens: 1, temperature: 0.5 })).dims[1], 3);
    assert.is((await hot.generate({ input_ids: [[1, 2]], max_new_tokens: 1, do_sample: false })).dims[1], 3);
  } finally { await hot.dispose(); }
});

/** The fuzz test's corrupted and truncated variants of the gpt2-tiny checkpoint (the same 40 every run). */
function corruptedCheckpoints(): Uint8Array[] {
  const base = new Uint8Array(readFileSync(join(modelDir('gpt2-tiny'), 'model.safetensors')));
  const n = Number(new DataView(base.buffer).getBigUint64(0, true));
  const rng = new Random(3);
  const out: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    let bytes: Uint8Array;
    const kind = i % 4;
    if (kind === 0) bytes = base.slice(0, Math.floor(rng.next() * base.length)); // truncated anywhere
    else if (kind === 1) { bytes = base.slice(); for (let j = 0; j < 3; j++) bytes[8 + Math.floor(rng.next() * n)] ^= 1 << Math.floor(rng.next() * 8); } // header bit flips
    else if (kind === 2) { bytes = base.slice(); new DataView(bytes.buffer).setBigUint64(0, BigInt(Math.floor(rng.next() * 2 ** 40)), true); } // header length
    else { bytes = base.slice(); for (let j = 0; j < 64; j++) bytes[8 + n + Math.floor(rng.next() * (base.length - 8 - n))] = 0xff; } // data: NaN patterns
    out.push(bytes);
  }
  return out;
}
const tinyConfig = () => ({ 'config.json': readFileSync(join(modelDir('gpt2-tiny'), 'config.json'), 'utf8') });

/**
 * `src` with the work a load does through it counted, without a clock: the bytes handed out and the read calls.
 * A loader that loops on a corrupt header (re-reading, retrying, walking a made-up tensor count) shows up here.
 */
function countingSource(src: ModelSource): { source: ModelSource; bytes: () => number; calls: () => number } {
  let bytes = 0, calls = 0;
  const note = (n: number) => { bytes += n; calls++; };
  const source: ModelSource = {
    name: src.name,
    describe: (f) => src.describe(f),
    exists: (f) => src.exists(f),
    readBytes: async (f) => { const b = await src.readBytes(f); note(b.byteLength); return b; },
    readText: async (f) => { const t = await src.readText(f); note(new TextEncoder().encode(t).byteLength); return t; },
    readJson: async (f) => { note((await src.readBytes(f)).byteLength); return src.readJson(f); },
    open: async (f) => {
      const bs = await src.open(f);
      return {
        name: bs.name, etag: bs.etag,
        size: () => bs.size(),
        read: async (o, n) => { const b = await bs.read(o, n); note(b.byteLength); return b; },
        readInto: bs.readInto && (async (o, t) => { await bs.readInto!(o, t); note(t.byteLength); }),
        close: bs.close && (() => bs.close!()),
      };
    },
  };
  return { source, bytes: () => bytes, calls: () => calls };
}

test('fuzz: corrupted and truncated checkpoints never trap, hang or produce NaN', async () => {
  const others = tinyConfig();
  const filesBytes = (weights: Uint8Array) => weights.byteLength + new TextEncoder().encode(others['config.json']).byteLength;
  // the intact checkpoint's load: how many read calls a whole, good load makes (the bound for the broken ones)
  const intact = new Uint8Array(readFileSync(join(modelDir('gpt2-tiny'), 'model.safetensors')));
  const good = countingSource(memorySource({ ...others, 'model.safetensors': intact }, 'intact'));
  await (await GPT2LMHeadModel.from_pretrained(good.source, { threads: 1 })).dispose();
  assert.ok(good.bytes() <= 2 * filesBytes(intact), `the intact load read ${good.bytes()} bytes of ${filesBytes(intact)}`);
  let loaded = 0, rejected = 0;
  for (const [i, bytes] of corruptedCheckpoints().entries()) {
    const kind = i % 4;
    // no clock: a hang or a runaway shows as more reading than a good load does (a true hang never gets here,
    // and the run's own limit catches it)
    const counted = countingSource(memorySource({ ...others, 'model.safetensors': bytes }, `fuzz-${i}`));
    try {
      const m = await GPT2LMHeadModel.from_pretrained(counted.source, { threads: 1 });
      try {
        const out = await m.forward({ input_ids: [[1, 2, 3]] });
        for (const v of out.logits!.data as Float32Array) if (!Number.isFinite(v)) assert.unreachable(`variant ${i}: non-finite logit from a model that loaded`);
        loaded++;
      } finally { await m.dispose(); }
    } catch (e) {
      if (!(e instanceof GPT2WasmError)) assert.unreachable(`variant ${i} (kind ${kind}): ${(e as Error)?.stack ?? e}`);
      rejected++;
    }
    assert.ok(counted.calls() <= good.calls(), `variant ${i} (kind ${kind}): ${counted.calls()} read calls, a good load makes ${good.calls()}`);
    assert.ok(counted.bytes() <= 2 * filesBytes(bytes), `variant ${i} (kind ${kind}): read ${counted.bytes()} bytes of ${filesBytes(bytes)}`);
  }
  assert.ok(rejected >= 30, `only ${rejected} of 40 corrupt variants were rejected`);
});

// Open descriptors of this process (Linux /proc; the CI platform).
const openFds = (): string[] => readdirSync('/proc/self/fd');

test('a failed load closes every file it opened (each corrupted checkpoint of the fuzz, from disk)', async () => {
  assert.ok(existsSync('/proc/self/fd'), 'this test counts descriptors in /proc/self/fd (Linux)');
  const root = mkdtempSync(join(tmpdir(), 'gpt2wasm-fd-'));
  try {
    const variants = corruptedCheckpoints();
    const dirs = variants.map((bytes, i) => {
      const d = join(root, `v${i}`);
      mkdirSync(d);
      writeFileSync(join(d, 'config.json'), tinyConfig()['config.json']);
      writeFileSync(join(d, 'model.safetensors'), bytes);
      return d;
    });
    // one good load first, so that anything opened once per process is open before counting
    await (await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-tiny'), { threads: 1 })).dispose();
    let failed = 0;
    for (const [i, d] of dirs.entries()) {
      const before = openFds();
      try {
        await (await GPT2LMHeadModel.from_pretrained(d, { threads: 1 })).dispose();
      } catch (e) {
        if (!(e instanceof GPT2WasmError)) throw e;
        failed++;
      }
      const after = openFds();
      const leaked = after.filter((fd) => !before.includes(fd));
      assert.equal(leaked, [], `variant ${i}: descriptors ${leaked.join(', ')} left open after ${failed ? 'a failed' : 'a'} load`);
    }
    assert.ok(failed >= 30, `only ${failed} of 40 corrupt variants failed to load`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('where-to-find options of the wrong type are OptionErrors before any request; a GGUF inside a ModelSource loads with gguf_file', async () => {
  const dir = modelDir('gpt2-tiny');
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { revision: {} as any }), 'OPTION', /revision must be a non-empty string, got \{\}/);
  await expectError(GPT2LMHeadModel.from_pretrained('org/x', { endpoint: 5 as any }), 'OPTION', /endpoint must be a non-empty string/);
  await expectError(GPT2LMHeadModel.from_pretrained('org/x', { endpoint: 'not a url' }), 'OPTION', /endpoint must be an http\(s\) URL/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { progress_callback: 'x' as any }), 'OPTION', /progress_callback must be a function/);
  await expectError(GPT2LMHeadModel.from_pretrained(dir, { local_files_only: 'yes' as any }), 'OPTION', /local_files_only must be true or false/);
  await expectError(GPT2LMHeadModel.from_pretrained('   '), 'OPTION', /model id, directory path or URL must be a non-empty string/);
  await expectError(AutoTokenizer.from_pretrained(dir, { token: 5 as any }), 'OPTION', /token must be a string or null/);
  // local_files_only with a URL: nothing is cached for URLs outside browsers, so nothing is requested
  await expectError(GPT2LMHeadModel.from_pretrained('http://127.0.0.1:9/m/', { local_files_only: true }), 'DOWNLOAD', /config\.json is not cached here and local_files_only is set/);

  // a user's GGUF file held in memory (a browser File read into an ArrayBuffer)
  const tmp = mkdtempSync(join(tmpdir(), 'gguf-src-'));
  try {
    const path = join(tmp, 'm.gguf');
    await save_gguf(dir, path, { dtype: 'f32' });
    const src = memorySource({ 'm.gguf': readFileSync(path) }, 'picked');
    const a = await GPT2LMHeadModel.from_pretrained(src, { gguf_file: 'm.gguf', threads: 1 });
    const b = await GPT2LMHeadModel.from_pretrained(path, { threads: 1 });
    const tok = await AutoTokenizer.from_pretrained(src, { gguf_file: 'm.gguf' });
    try {
      const ids = tok.encode('Hello world');
      assert.equal(ids, (await AutoTokenizer.from_pretrained(dir)).encode('Hello world'));
      const la = (await a.forward({ input_ids: [ids] })).logits.data, lb = (await b.forward({ input_ids: [ids] })).logits.data;
      assert.equal(Array.from(la as Float32Array), Array.from(lb as Float32Array));
    } finally { await a.dispose(); await b.dispose(); }
    // and converted from there (save_gguf took the ModelSource as a model directory: 'config.json not found')
    const again = await save_gguf(src, join(tmp, 'again.gguf'), { gguf_file: 'm.gguf', dtype: 'f32' });
    assert.ok(readFileSync(again.path).equals(readFileSync(path)), 'an f32 GGUF converted to f32 is the same file');
    await expectError(GPT2LMHeadModel.from_pretrained(src, { gguf_file: 'm.bin' }), 'OPTION', /gguf_file must be the name of a \.gguf file/);
    await expectError(GPT2LMHeadModel.from_pretrained(src, { gguf_file: 'other.gguf' }), 'WEIGHTS', /other\.gguf/);
  } finally { rmSync(tmp, { recursive: true, force: true }); }
});

test.run();
