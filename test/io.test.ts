// src/io: config parsing, safetensors reading (single and sharded), conversions, model sources, and a fuzz test
// that corrupted safetensors files only ever fail with SafetensorsError.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from './helpers/fixtures.js';
import { startServer, sendBytes } from './helpers/http-server.js';
import { tensorBytes, writeSafetensors } from './helpers/checkpoint.js';
import {
  ACT, activationId, loadConfig, loadGenerationConfig, parseGenerationConfig, parseGPT2Config,
} from '../src/io/config.js';
import {
  SafetensorsFile, convertToF32, DTYPE_SIZE, openSafetensorsModel, streamTensor,
  type STDtype,
} from '../src/io/safetensors.js';
import { bf16ToF32, floatToHalf, fp16ToF32, halfTable } from '../src/io/half.js';
import { bytesSource, dirSource, fileSource, memorySource, urlSource } from '../src/io/source.js';
import { ConfigError, GPT2WasmError, SafetensorsError, TokenizerError, WeightsError } from '../src/errors.js';

const MODELS = ['gpt2-tiny', 'gpt2-tiny-f16', 'gpt2-tiny-tokcls', 'gpt2-tiny-seqcls', 'gpt2-tiny-xattn'];

async function throwsAsync(fn: () => unknown, cls: Function, re?: RegExp): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    if (re) assert.match((e as Error).message, re);
    return e as Error;
  }
  assert.unreachable(`expected ${cls.name} to be thrown`);
  throw new Error('unreachable');
}
const throwsSync = (fn: () => unknown, cls: Function, re?: RegExp) => throwsAsync(fn, cls, re);

/** Raw header and data of a fixture, parsed independently of src/io. */
function rawFile(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
  return { n, header, data: bytes.subarray(8 + n) };
}

// ------------------------------------------------------------------------------------------------ config

test('config: every fixture config parses', async () => {
  for (const m of MODELS) {
    const cfg = await loadConfig(dirSource(modelDir(m)));
    assert.is(cfg.n_embd, 64, m);
    assert.is(cfg.n_head, 4, m);
    assert.is(cfg.n_inner, 256, m);
    assert.is(cfg.n_positions, 128, m);
    assert.is(cfg.activation_function, 'gelu_new');
    assert.is(activationId(cfg), ACT.gelu_tanh);
    assert.is(cfg.layer_norm_epsilon, 1e-5);
  }
  const xattn = await loadConfig(dirSource(modelDir('gpt2-tiny-xattn')));
  assert.is(xattn.add_cross_attention, true);
  assert.is(xattn.n_layer, 3);
  assert.is(xattn.vocab_size, 5025);
  const seq = await loadConfig(dirSource(modelDir('gpt2-tiny-seqcls')));
  assert.is(seq.pad_token_id, 0);
  assert.is(seq.num_labels, 3);
  assert.equal(seq.id2label, { 0: 'neg', 1: 'neu', 2: 'pos' });
  assert.equal(seq.label2id, { neg: 0, neu: 1, pos: 2 });
  assert.equal(seq.architectures, ['GPT2ForSequenceClassification']);
  const tok = await loadConfig(dirSource(modelDir('gpt2-tiny-tokcls')));
  assert.is(tok.num_labels, 2);
  assert.is(tok.pad_token_id, null);
  assert.is(await loadGenerationConfig(dirSource(modelDir('gpt2-tiny'))), null);
});

test('config: transformers defaults', () => {
  const c = parseGPT2Config({});
  assert.equal(
    [c.vocab_size, c.n_positions, c.n_embd, c.n_layer, c.n_head, c.n_inner, c.activation_function, c.layer_norm_epsilon],
    [50257, 1024, 768, 12, 12, 3072, 'gelu_new', 1e-5],
  );
  assert.equal(
    [c.scale_attn_weights, c.scale_attn_by_inverse_layer_idx, c.reorder_and_upcast_attn, c.add_cross_attention, c.tie_word_embeddings],
    [true, false, false, false, true],
  );
  assert.equal([c.bos_token_id, c.eos_token_id, c.pad_token_id, c.num_labels], [50256, 50256, null, 2]);
  assert.equal(c.id2label, { 0: 'LABEL_0', 1: 'LABEL_1' });
  assert.equal(c.label2id, { LABEL_0: 0, LABEL_1: 1 });
  assert.is(parseGPT2Config({ n_inner: null, n_embd: 32, n_head: 2 }).n_inner, 128);
  assert.is(parseGPT2Config({ n_inner: 100 }).n_inner, 100);
  assert.is(parseGPT2Config({ num_labels: 5 }).num_labels, 5);
  assert.is(parseGPT2Config({ num_labels: 5, id2label: { 0: 'a' } }).num_labels, 1, 'id2label wins, as in transformers');
  assert.is(parseGPT2Config({ summary_type: 'cls_index', summary_use_proj: true, n_ctx: 7, attn_pdrop: 0.3 }).n_positions, 1024);
  const eos = parseGPT2Config({ eos_token_id: [5, 7], bos_token_id: null });
  assert.equal([eos.eos_token_id, eos.eos_token_ids, eos.bos_token_id], [5, [5, 7], null]);
  assert.is(activationId(parseGPT2Config({ activation_function: 'gelu' })), ACT.gelu_erf);
  assert.is(activationId(parseGPT2Config({ activation_function: 'gelu_pytorch_tanh' })), ACT.gelu_tanh);
  assert.is(activationId(parseGPT2Config({ activation_function: 'relu' })), ACT.relu);
  assert.is(parseGPT2Config({ model_type: 'gpt2' }).model_type, 'gpt2');
});

test('config: the default labels of a huge num_labels are not made until read (a model without a classification head never reads them)', () => {
  const t0 = performance.now();
  const big = parseGPT2Config({ num_labels: 3_000_000 }); // made at parse time, these took 10 s (10^7: minutes; 2^31 - 1: out of memory)
  assert.ok(performance.now() - t0 < 1000, `parse took ${performance.now() - t0} ms`);
  assert.is(big.num_labels, 3_000_000);
  assert.is(parseGPT2Config({ num_labels: 2147483647 }).num_labels, 2147483647);
  // read, they are transformers' defaults, as before; assigned, the value is kept
  const c = parseGPT2Config({ num_labels: 3 });
  assert.equal(c.id2label, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
  assert.equal(c.label2id, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 });
  assert.ok(c.id2label === c.id2label, 'made once');
  assert.equal(Object.keys(c).filter((k) => k.includes('label')), ['num_labels', 'id2label', 'label2id']);
  const d = parseGPT2Config({ num_labels: 3, label2id: { x: 0 } });
  d.id2label = { 0: 'x' };
  assert.equal([d.id2label, d.label2id], [{ 0: 'x' }, { x: 0 }]);
});

test('config: rejects what we cannot run, naming file, field and value', async () => {
  const bad: [unknown, RegExp][] = [
    [null, /my\.json: expected a JSON object/],
    [[1], /an array/],
    [{ n_embd: 100, n_head: 3 }, /n_embd \(100\) must be divisible by n_head \(3\)/],
    [{ n_layer: 0 }, /"n_layer" must be a positive integer, got 0/],
    [{ n_head: -4 }, /"n_head" must be a positive integer, got -4/],
    [{ n_embd: 64.5 }, /"n_embd" must be a positive integer, got 64\.5/],
    [{ vocab_size: '50257' }, /"vocab_size" must be a positive integer, got "50257"/],
    [{ n_positions: 2 ** 40 }, /"n_positions"/],
    [{ n_inner: 0 }, /"n_inner"/],
    [{ model_type: 'llama' }, /model_type is "llama".*only runs "gpt2"/],
    [{ activation_function: 'swish' }, /activation_function "swish" is not supported; supported: gelu_new, gelu_pytorch_tanh, gelu, relu/],
    [{ activation_function: 'quick_gelu' }, /quick_gelu/],
    [{ activation_function: 'toString' }, /toString/],
    [{ layer_norm_epsilon: 0 }, /layer_norm_epsilon/],
    [{ layer_norm_epsilon: 'small' }, /layer_norm_epsilon/],
    [{ scale_attn_weights: 'yes' }, /"scale_attn_weights" must be true or false/],
    [{ add_cross_attention: 1 }, /add_cross_attention/],
    [{ eos_token_id: -1 }, /eos_token_id/],
    [{ bos_token_id: [1, 2] }, /bos_token_id/],
    [{ pad_token_id: 1.5 }, /pad_token_id/],
    [{ id2label: { 0: 'a', 2: 'b' } }, /id2label keys must be the integers 0\.\.1, got key "2"/],
    [{ id2label: { 0: 5 } }, /id2label\[0\] must be a string/],
    [{ id2label: ['a'] }, /id2label/],
    [{ label2id: { a: 'x' } }, /label2id/],
    [{ architectures: 'GPT2LMHeadModel' }, /architectures/],
    [{ num_labels: 0 }, /num_labels/],
  ];
  for (const [json, re] of bad) await throwsSync(() => parseGPT2Config(json, 'my.json'), ConfigError, re);
  await throwsSync(() => activationId({ activation_function: 'swish' }), ConfigError, /swish/);
});

test('config: generation_config typed passthrough', async () => {
  const g = parseGenerationConfig({ do_sample: true, max_length: 50, top_k: 40, top_p: 0.9, temperature: 0.7, eos_token_id: [1, 2], pad_token_id: null, foo: 1, transformers_version: '4.40.0' });
  assert.equal(g, { do_sample: true, max_length: 50, top_k: 40, top_p: 0.9, temperature: 0.7, eos_token_id: [1, 2], pad_token_id: null, transformers_version: '4.40.0' });
  await throwsSync(() => parseGenerationConfig({ top_k: 'x' }), ConfigError, /generation_config\.json: "top_k" must be a non-negative integer, got "x"/);
  await throwsSync(() => parseGenerationConfig({ do_sample: 1 }), ConfigError, /do_sample/);
  await throwsSync(() => parseGenerationConfig({ temperature: null }), ConfigError, /temperature/);
  await throwsSync(() => parseGenerationConfig({ bad_words_ids: [1] }), ConfigError, /bad_words_ids/);
  await throwsSync(() => parseGenerationConfig([]), ConfigError);
  // the ranges generate() holds them to (suppress_tokens' ids within config.json's vocab_size, when given)
  await throwsSync(() => parseGenerationConfig({ repetition_penalty: -2 }), ConfigError, /generation_config\.json: repetition_penalty must be a positive number, got -2/);
  await throwsSync(() => parseGenerationConfig({ suppress_tokens: [5, 10] }, 'g.json', 10), ConfigError, /g\.json: suppress_tokens must be an array of token ids in \[0, 10\), got \[5,10\]/);
  assert.equal(parseGenerationConfig({ suppress_tokens: [5, 9], repetition_penalty: 1.2, temperature: 0 }, 'g.json', 10), { suppress_tokens: [5, 9], repetition_penalty: 1.2, temperature: 0 });
  const src = memorySource({ 'config.json': '{"n_embd": 8, "n_head": 2}', 'generation_config.json': '{"max_new_tokens": 3}' });
  assert.is((await loadConfig(src)).n_embd, 8);
  assert.equal(await loadGenerationConfig(src), { max_new_tokens: 3 });
  await throwsAsync(() => loadConfig(memorySource({ 'config.json': '{"n_embd": ' })), ConfigError, /memory\/config\.json: invalid JSON/);
  await throwsAsync(() => loadConfig(memorySource({ 'config.json': '{"n_layer": -1}' })), ConfigError, /memory\/config\.json: "n_layer"/);
});

// ------------------------------------------------------------------------------------------------ safetensors

test('safetensors: every fixture model reads, shapes and bytes match an independent parse', async () => {
  for (const m of MODELS) {
    const path = join(modelDir(m), 'model.safetensors');
    const bytes = new Uint8Array(readFileSync(path));
    const raw = rawFile(bytes);
    const model = await openSafetensorsModel(dirSource(modelDir(m)));
    try {
      const names = Object.keys(raw.header).filter((k) => k !== '__metadata__');
      assert.is(model.tensors.size, names.length, m);
      assert.equal(model.metadata, { format: 'pt' });
      const dtype = m === 'gpt2-tiny-f16' ? 'F16' : 'F32';
      let prevOffset = -1;
      for (const t of model.tensors.values()) {
        const h = raw.header[t.name];
        assert.ok(h, `${m}: ${t.name}`);
        assert.is(t.dtype, dtype);
        assert.equal(t.shape, h.shape);
        assert.is(t.byteOffset, 8 + raw.n + h.data_offsets[0]);
        assert.is(t.byteLength, h.data_offsets[1] - h.data_offsets[0]);
        assert.ok(t.byteOffset > prevOffset, 'map is in file order');
        prevOffset = t.byteOffset;
        assert.is(t.file, path);
        const want = raw.data.subarray(h.data_offsets[0], h.data_offsets[1]);
        assert.ok(Buffer.from(await tensorBytes(model, t.name)).equals(want), `${m}: ${t.name} bytes`);
      }
      const wte = model.get(m.includes('cls') ? 'transformer.wte.weight' : 'wte.weight');
      assert.equal(wte.shape, [m.includes('cls') ? 1000 : m === 'gpt2-tiny-xattn' ? 5025 : 50257, 64]);
      if (m === 'gpt2-tiny-xattn') assert.ok(model.tensors.has('h.0.crossattention.c_attn.weight'));
      if (m === 'gpt2-tiny-tokcls') assert.equal(model.get('classifier.weight').shape, [2, 64]);
      if (m === 'gpt2-tiny-seqcls') { assert.equal(model.get('score.weight').shape, [3, 64]); assert.not.ok(model.tensors.has('score.bias')); }
      await throwsAsync(() => tensorBytes(model, 'nope'), WeightsError, /no tensor named "nope"/);
    } finally {
      await model.close();
    }
  }
});

test('safetensors: chunks stream sequentially through one bounded, reused buffer', async () => {
  const path = join(modelDir('gpt2-tiny'), 'model.safetensors');
  const f = await SafetensorsFile.open(await fileSource(path));
  try {
    const name = 'wte.weight';
    const t = f.get(name);
    const whole = await tensorBytes(f, name);
    for (const chunkBytes of [1 << 20, 1000, 4096 + 3]) {
      const copy = new Uint8Array(t.byteLength);
      let expect = 0;
      let buffer: ArrayBufferLike | null = null;
      for await (const { offset, bytes } of f.chunks(name, chunkBytes)) {
        assert.is(offset, expect, 'sequential');
        assert.ok(bytes.byteLength <= chunkBytes && bytes.byteLength % 8 === 0 || offset + bytes.byteLength === t.byteLength);
        assert.ok(bytes.buffer.byteLength <= chunkBytes, `buffer ${bytes.buffer.byteLength} <= ${chunkBytes}`);
        if (buffer) assert.ok(bytes.buffer === buffer, 'buffer reused');
        buffer = bytes.buffer;
        copy.set(bytes, offset);
        expect += bytes.byteLength;
      }
      assert.is(expect, t.byteLength);
      assert.ok(Buffer.from(copy).equals(whole));
    }
    // Chunks convert independently: F16 converted chunk by chunk equals converting the whole tensor.
    const g = await SafetensorsFile.open(await fileSource(join(modelDir('gpt2-tiny-f16'), 'model.safetensors')));
    const ti = g.get('h.0.mlp.c_fc.weight');
    const all = new Float32Array(ti.byteLength / 2);
    convertToF32('F16', await tensorBytes(g, ti.name), all);
    const parts = new Float32Array(all.length);
    for await (const { offset, bytes } of g.chunks(ti.name, 1002)) convertToF32('F16', bytes, parts.subarray(offset / 2));
    assert.equal(parts, all);
    assert.ok(all.every(Number.isFinite));
    await g.close();
  } finally {
    await f.close();
  }
});

test('safetensors: the streams of one file take turns with one read buffer; a stream running beside another gets its own', async () => {
  const path = join(modelDir('gpt2-tiny'), 'model.safetensors');
  const f = await SafetensorsFile.open(await fileSource(path));
  try {
    // one after another (as the weight loader reads): every chunk of every tensor lands in the same buffer
    const names = [...f.tensors.keys()];
    const largest = Math.max(...names.map((n) => f.get(n).byteLength));
    const chunk = Math.ceil(largest / 8) * 8; // every tensor in one chunk of the one buffer
    let first: ArrayBufferLike | null = null;
    const seen = new Set<ArrayBufferLike>();
    const file = readFileSync(path);
    for (const name of [...names].sort((a, b) => f.get(b).byteLength - f.get(a).byteLength)) { // the largest first: no growth after
      const t = f.get(name), whole = file.subarray(t.byteOffset, t.byteOffset + t.byteLength);
      const copy = new Uint8Array(whole.byteLength);
      for await (const { offset, bytes } of f.chunks(name, chunk)) { copy.set(bytes, offset); seen.add(bytes.buffer); first ??= bytes.buffer; }
      assert.ok(Buffer.from(copy).equals(whole), name);
    }
    assert.is(seen.size, 1, `${seen.size} buffers for ${names.length} tensors`);
    assert.is(first!.byteLength, largest);
    // two streams at once: the second does not get the buffer the first holds, and both read right
    const [a, b] = names;
    const ia = f.chunks(a, chunk)[Symbol.asyncIterator](), ib = f.chunks(b, chunk)[Symbol.asyncIterator]();
    const ca = (await ia.next()).value!, cb = (await ib.next()).value!;
    assert.ok(ca.bytes.buffer !== cb.bytes.buffer, 'concurrent streams share no buffer');
    assert.ok(Buffer.from(ca.bytes).equals((await tensorBytes(f, a)).subarray(0, ca.bytes.byteLength)));
    assert.ok(Buffer.from(cb.bytes).equals((await tensorBytes(f, b)).subarray(0, cb.bytes.byteLength)));
    await ia.return?.(undefined); await ib.return?.(undefined);
  } finally {
    await f.close();
  }
});

test('conversions: fp16/bf16 exact, bulk matches scalar at any alignment', () => {
  const f16: [number, number][] = [
    [0x0000, 0], [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14], [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  for (const [h, v] of f16) assert.is(fp16ToF32(h), v, h.toString(16));
  assert.ok(Object.is(fp16ToF32(0x8000), -0));
  assert.ok(Number.isNaN(fp16ToF32(0x7e00)));
  const bf: [number, number][] = [[0x3f80, 1], [0xc000, -2], [0x7f80, Infinity], [0x4049, 3.140625], [0x0001, 2 ** -133], [0x7f7f, 3.3895313892515355e38]];
  for (const [h, v] of bf) assert.is(bf16ToF32(h), v, h.toString(16));
  assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));

  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const src = new Uint8Array(1 + 64 * 8);
  for (let i = 0; i < src.length; i++) src[i] = rnd();
  const dv = new DataView(src.buffer);
  for (const dtype of ['F32', 'F16', 'BF16'] as STDtype[]) {
    const size = DTYPE_SIZE[dtype];
    const bytes = src.subarray(1, 1 + 64 * size); // deliberately misaligned
    const out = new Float32Array(65).subarray(1);
    assert.is(convertToF32(dtype, bytes, out), 64);
    for (let i = 0; i < 64; i++) {
      const o = 1 + i * size;
      const want = dtype === 'F16' ? fp16ToF32(dv.getUint16(o, true)) : dtype === 'BF16' ? bf16ToF32(dv.getUint16(o, true)) : dv.getFloat32(o, true);
      assert.ok(Object.is(out[i], Math.fround(want)) || (Number.isNaN(out[i]) && Number.isNaN(want)), `${dtype}[${i}]: ${out[i]} vs ${want}`);
    }
  }
  // the weight loader takes only float checkpoints: anything else is refused by name
  for (const dtype of ['F64', 'I8', 'F8_E4M3'] as STDtype[]) {
    assert.throws(() => convertToF32(dtype, new Uint8Array(8), new Float32Array(8)), (e: any) => e instanceof WeightsError && e.message.includes(dtype));
  }
  // the table agrees with the scalar conversion, and float→half inverts it on every non-NaN half
  const table = halfTable();
  for (let h = 0; h < 65536; h++) {
    const v = fp16ToF32(h);
    assert.ok(Object.is(table[h], Math.fround(v)) || (Number.isNaN(v) && Number.isNaN(table[h])), `table[${h}]`);
    if (!Number.isNaN(v) && floatToHalf(v) !== h) assert.unreachable(`floatToHalf(fp16ToF32(0x${h.toString(16)})) = 0x${floatToHalf(v).toString(16)}`);
  }
  // ties round to even: 1 + 2^-11 lies between 0x3c00 and 0x3c01, 1 + 3 * 2^-11 between 0x3c01 and 0x3c02
  assert.is(floatToHalf(1 + 2 ** -11), 0x3c00);
  assert.is(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.is(floatToHalf(65520), 0x7c00); // rounds past the largest half (65504): infinity
  assert.throws(() => convertToF32('F16', new Uint8Array(3), new Float32Array(2)), (e: any) => e instanceof WeightsError);
  assert.throws(() => convertToF32('F32', new Uint8Array(8), new Float32Array(1)), (e: any) => e instanceof WeightsError);
  assert.throws(() => convertToF32('Q4' as any, new Uint8Array(8), new Float32Array(8)), (e: any) => e instanceof WeightsError);
});

test('safetensors: strict header validation names the file and tensor', async () => {
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const file = (header: unknown, dataBytes = 8, raw?: string) => {
    const json = Buffer.from(raw ?? JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return bytesSource('t.safetensors', out);
  };
  const cases: [ReturnType<typeof bytesSource>, RegExp][] = [
    [bytesSource('t.safetensors', new Uint8Array(5)), /t\.safetensors: file is 5 bytes, too short/],
    [file({ a: ok }, 0, undefined), /tensor "a": data_offsets \[0, 8\] run past the end of the data section \(0 bytes/],
    [file(null, 0, '[1,2]'), /header does not start with "\{"/],
    [file(null, 0, '{"a": '), /header is not valid JSON/],
    [file({ a: { shape: [2], data_offsets: [0, 8] } }), /tensor "a": missing "dtype"/],
    [file({ a: { dtype: 'F32', data_offsets: [0, 8] } }), /tensor "a": missing "shape"/],
    [file({ a: { dtype: 'F32', shape: [2] } }), /tensor "a": missing "data_offsets"/],
    [file({ a: { ...ok, dtype: 'F33' } }), /tensor "a": unknown dtype "F33"/],
    [file({ a: { ...ok, dtype: 7 } }), /"dtype" must be a string/],
    [file({ a: { ...ok, shape: [-2] } }), /dimension -2/],
    [file({ a: { ...ok, shape: [2.5] } }), /dimension 2\.5/],
    [file({ a: { ...ok, shape: '2' } }), /"shape" must be a list/],
    [file({ a: { ...ok, shape: [2 ** 40, 2 ** 40] } }), /too large/],
    [file({ a: { ...ok, shape: [3] } }), /data_offsets span 8 bytes but F32 shape \[3\] needs 3 x 4 = 12/],
    [file({ a: { ...ok, data_offsets: [8, 0] } }), /end 0 is before begin 8/],
    [file({ a: { ...ok, data_offsets: [0] } }), /must be \[begin, end\]/],
    [file({ a: { ...ok, data_offsets: [-1, 7] } }), /non-negative integers/],
    [file({ a: ok, b: { ...ok, data_offsets: [4, 12] } }, 12), /tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/],
    [file({ a: 5 }), /tensor "a": entry must be an object/],
    [file({ __metadata__: { format: 1 } }), /__metadata__\["format"\] must be a string/],
  ];
  for (const [src, re] of cases) await throwsAsync(() => SafetensorsFile.open(src), SafetensorsError, re);
  // Header length prefix past the end, absurdly large, or not UTF-8.
  const big = new Uint8Array(16);
  new DataView(big.buffer).setBigUint64(0, 9n, true);
  await throwsAsync(() => SafetensorsFile.open(bytesSource('x.st', big)), SafetensorsError, /x\.st: header length 9 runs past the end of the file \(16 bytes/);
  new DataView(big.buffer).setBigUint64(0, 2n ** 62n, true);
  await throwsAsync(() => SafetensorsFile.open(bytesSource('x.st', big)), SafetensorsError, /exceeds the 100000000-byte limit/);
  const bad = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff, 0xfe, 0x7d]);
  await throwsAsync(() => SafetensorsFile.open(bytesSource('x.st', bad)), SafetensorsError, /not valid UTF-8/);
  // Allowed: holes between tensors, zero-size tensors, an empty header object, trailing spaces.
  const okFile = await SafetensorsFile.open(file({ a: ok, z: { dtype: 'F16', shape: [0, 3], data_offsets: [8, 8] }, b: { ...ok, data_offsets: [12, 20] } }, 24));
  assert.equal([...okFile.tensors.keys()], ['a', 'z', 'b']);
  assert.is((await tensorBytes(okFile, 'z')).byteLength, 0);
  const chunks = [];
  for await (const c of okFile.chunks('z')) chunks.push(c);
  assert.is(chunks.length, 0);
  assert.is((await SafetensorsFile.open(file({}, 0, '{}      '))).tensors.size, 0);
});

// ------------------------------------------------------------------------------------------------ sharded

test('sharded: index + shards merge; missing shards and misplaced tensors are reported', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gpt2wasm-io-'));
  try {
    const orig = new Uint8Array(readFileSync(join(modelDir('gpt2-tiny'), 'model.safetensors')));
    const raw = rawFile(orig);
    const names = Object.keys(raw.header).filter((k) => k !== '__metadata__');
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < 2; s++) {
      const shardName = `model-0000${s + 1}-of-00002.safetensors`;
      const entries = shards[s].map((n) => {
        const h = raw.header[n];
        return { name: n, dtype: h.dtype, shape: h.shape, data: raw.data.subarray(h.data_offsets[0], h.data_offsets[1]) };
      });
      await writeFile(join(dir, shardName), writeSafetensors(Object.fromEntries(entries.map(({ name, ...t }) => [name, t]))));
      for (const n of shards[s]) weightMap[n] = shardName;
    }
    const index = { metadata: { total_size: raw.data.byteLength }, weight_map: weightMap };
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const model = await openSafetensorsModel(dirSource(dir));
    assert.is(model.tensors.size, names.length);
    assert.is(model.files.length, 2);
    for (const n of names) {
      const h = raw.header[n];
      const t = model.get(n);
      assert.equal(t.shape, h.shape);
      assert.ok(t.file.endsWith(weightMap[n]));
      assert.ok(t.source.tensors.has(n));
      const want = raw.data.subarray(h.data_offsets[0], h.data_offsets[1]);
      assert.ok(Buffer.from(await tensorBytes(model, n)).equals(want), n);
      const copy = new Uint8Array(t.byteLength);
      for await (const c of model.chunks(n, 4096)) copy.set(c.bytes, c.offset);
      assert.ok(Buffer.from(copy).equals(want));
    }
    await model.close();

    // The same through memory and URL sources.
    const files = Object.fromEntries(['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
      .map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
    const mem = await openSafetensorsModel(memorySource(files));
    assert.is(mem.tensors.size, names.length);

    // A tensor the map puts in the wrong shard.
    const wrong = { ...index, weight_map: { ...weightMap, [names[0]]: 'model-00002-of-00002.safetensors' } };
    await throwsAsync(() => openSafetensorsModel(memorySource({ ...files, 'model.safetensors.index.json': JSON.stringify(wrong) })), WeightsError,
      new RegExp(`weight_map puts tensor "${names[0].replace(/\./g, '\\.')}" in model-00002-of-00002\\.safetensors, but memory/model-00002-of-00002\\.safetensors has no such tensor`));
    // A missing shard.
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await throwsAsync(() => openSafetensorsModel(dirSource(dir)), WeightsError, /shard "model-00002-of-00002\.safetensors" is listed in weight_map but .*model-00002-of-00002\.safetensors does not exist/);
    // Path traversal and malformed indexes.
    for (const [wm, re] of [
      [{ a: '../x.safetensors' }, /"\.\." path segment/],
      [{ a: '/etc/passwd' }, /absolute path/],
      [{ a: 3 }, /must be a file name/],
      [{}, /weight_map is empty/],
      [null, /"weight_map" must be an object/],
    ] as [unknown, RegExp][]) {
      await throwsAsync(() => openSafetensorsModel(memorySource({ 'model.safetensors.index.json': JSON.stringify({ weight_map: wm }) })), SafetensorsError, re);
    }
    // No weights at all; a PyTorch-only checkpoint gets a hint.
    await throwsAsync(() => openSafetensorsModel(memorySource({ 'config.json': '{}' })), WeightsError, /memory: no model\.safetensors or model\.safetensors\.index\.json/);
    await throwsAsync(() => openSafetensorsModel(memorySource({ 'pytorch_model.bin': 'x' })), WeightsError, /found pytorch_model\.bin; only safetensors/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------ sources

test('sources: directory, memory and missing files', async () => {
  const dir = dirSource(modelDir('gpt2-tiny'));
  assert.ok(await dir.exists('vocab.json'));
  assert.not.ok(await dir.exists('tokenizer.json'));
  assert.is(((await dir.readJson('config.json')) as any).n_layer, 2);
  assert.ok((await dir.readText('merges.txt')).startsWith('#version'));
  await throwsAsync(() => dir.readText('tokenizer.json'), TokenizerError, new RegExp(`${modelDir('gpt2-tiny')}/tokenizer\\.json: file not found`));
  await throwsAsync(() => dirSource('/nonexistent-dir').readJson('config.json'), ConfigError, /\/nonexistent-dir\/config\.json: file not found/);
  await throwsAsync(() => dirSource('/nonexistent-dir').open('model.safetensors'), WeightsError, /\/nonexistent-dir\/model\.safetensors: file not found/);
  await throwsAsync(() => dir.readText('../gpt2-tiny-f16/config.json'), ConfigError, /invalid file name/);
  const mem = memorySource({ 'config.json': '{}', 'bad.json': new Uint8Array([0xff]) }, 'mem');
  await throwsAsync(() => mem.readText('vocab.json'), TokenizerError, /mem\/vocab\.json: file not found/);
  await throwsAsync(() => mem.readText('bad.json'), GPT2WasmError, /mem\/bad\.json: not valid UTF-8/);
});

test('sources: URL base with Range reads against a local server', async () => {
  const root = modelDir('gpt2-tiny');
  let ranges = true;
  const server = await startServer((req, res, path) => {
    const file = path.replace(/^\/m\//, '');
    let bytes: Uint8Array;
    try { bytes = readFileSync(join(root, file)); } catch { res.writeHead(404); res.end(); return; }
    if (file === 'vocab.json') { res.writeHead(503); res.end(); return; }
    sendBytes(req, res, bytes, { etag: '"v1"', ranges });
  });
  try {
    const src = urlSource(`${server.url}/m`);
    assert.ok(await src.exists('config.json'));
    assert.not.ok(await src.exists('tokenizer.json'));
    assert.is(((await loadConfig(src)).n_layer), 2);
    await throwsAsync(() => src.readText('tokenizer.json'), TokenizerError, /\/m\/tokenizer\.json \(HTTP 404\): file not found/);
    await throwsAsync(() => src.readText('vocab.json'), GPT2WasmError, /vocab\.json: HTTP 503/);
    const model = await openSafetensorsModel(src);
    const local = await openSafetensorsModel(dirSource(root));
    assert.is(model.tensors.size, local.tensors.size);
    for (const n of ['ln_f.weight', 'h.1.attn.c_attn.weight']) {
      assert.ok(Buffer.from(await tensorBytes(model, n)).equals(await tensorBytes(local, n)), n);
    }
    const rangeReqs = server.requests.filter((r) => r.headers.range);
    assert.ok(rangeReqs.length >= 3, 'reads use Range');
    ranges = false; // (a fresh open: the read-ahead of the one above may hold the chunk already)
    const f = await src.open('model.safetensors');
    await throwsAsync(() => f.read(8 << 20, 16), GPT2WasmError, /ignored the Range request/);
    await f.close?.();
    await local.close();
    await model.close();
  } finally {
    await server.close();
  }
});

test('sources: URL Range reads take exactly the range asked for, from a server that sends more or cuts the body short', async () => {
  // larger than a read-ahead chunk (4 MiB), so that the chunk requests end before the end of the file
  const bytes = new Uint8Array((9 << 20) + 12_345).map((_, i) => (i * 31 + 7) & 255);
  let mode: 'exact' | 'open-end' | 'cut' = 'exact';
  const server = await startServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    const size = bytes.length;
    if (req.method === 'HEAD' || !m) { res.writeHead(200, { 'content-length': String(size), 'accept-ranges': 'bytes' }); res.end(); return; }
    const start = Number(m[1]);
    const end = mode === 'open-end' ? size - 1 : Number(m[2]); // open-end: the range's end is ignored
    const body = bytes.subarray(start, end + 1);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': String(body.length) });
    if (mode === 'cut') { res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 10)); return; }
    res.end(body);
  });
  try {
    for (const m of ['exact', 'open-end'] as const) {
      mode = m;
      const f = await urlSource(`${server.url}/m`).open('model.safetensors'); // fresh: no chunk fetched in another mode
      for (const [off, len] of [[0, 1], [123, 4567], [(4 << 20) - 10, 20], [50_000, 5 << 20], [bytes.length - 1, 1]]) {
        const got = await f.read(off, len);
        assert.is(got.byteLength, len, `${m}: ${len} bytes at ${off}`);
        assert.ok(Buffer.from(got).equals(Buffer.from(bytes.subarray(off, off + len))), `${m}: bytes at ${off}`);
      }
      await f.close?.();
    }
    mode = 'cut';
    const f = await urlSource(`${server.url}/m`).open('model.safetensors');
    const err = await throwsAsync(() => f.read(1000, 60_000), GPT2WasmError, /model\.safetensors: (transfer failed|response had|response ended)/);
    assert.is((err as GPT2WasmError & { code?: string }).code, 'DOWNLOAD');
    await f.close?.();
  } finally {
    await server.close();
  }
});

test('safetensors: a fresh chunk is released to its source once the consumer asks for the next one, never before', async () => {
  const data = new Uint8Array(100).map((_, i) => i);
  const log: string[] = [];
  const src = {
    name: 'mem', size: async () => data.length,
    read: async (offset: number, length: number) => data.slice(offset, offset + length),
    release: (b: Uint8Array) => { log.push(`release ${b[0]}`); },
  };
  for await (const { offset, bytes } of streamTensor(src, { name: 't', byteOffset: 0, byteLength: 100 }, 40)) {
    log.push(`use ${offset}`);
    assert.is(bytes[0], offset, 'a chunk is whole while it is being used');
    await new Promise((r) => setTimeout(r, 1)); // the consumer may await while it holds the chunk
  }
  assert.equal(log, ['use 0', 'release 0', 'use 40', 'release 40', 'use 80', 'release 80']);
  // a source reading into one reused buffer is never asked to release it
  const reused = { ...src, readInto: async (offset: number, target: Uint8Array) => { target.set(data.subarray(offset, offset + target.length)); } };
  log.length = 0;
  for await (const _ of streamTensor(reused, { name: 't', byteOffset: 0, byteLength: 100 }, 40)) log.push('use');
  assert.equal(log, ['use', 'use', 'use']);
});

// ------------------------------------------------------------------------------------------------ fuzz

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

test('fuzz: corrupted safetensors either read consistently or throw SafetensorsError', async () => {
  const orig = new Uint8Array(readFileSync(join(modelDir('gpt2-tiny-seqcls'), 'model.safetensors')));
  const raw = rawFile(orig);
  const names = Object.keys(raw.header).filter((k) => k !== '__metadata__');
  let seed = 0x5eed1234;
  const rand = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t ^= t + Math.imul(t ^ (t >>> 7), 61 | t); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const ri = (n: number) => Math.floor(rand() * n);
  const withHeader = (h: unknown, lengthField?: bigint, rawText?: string) => {
    const json = Buffer.from(rawText ?? JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + raw.data.byteLength);
    new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
    out.set(json, 8);
    out.set(raw.data, 8 + json.length);
    return out;
  };
  const clone = () => JSON.parse(JSON.stringify(raw.header));
  const weird = [-1, 1.5, 2 ** 53, 2 ** 64, 1e300, '4', null, [], {}, true, 2 ** 31, 0];

  const variants: { kind: string; bytes: Uint8Array; mustFail?: boolean }[] = [];
  for (let i = 0; i < 100; i++) {
    const b = orig.slice();
    const flips = 1 + ri(4);
    const alnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
    for (let k = 0; k < flips; k++) b[8 + ri(raw.n)] = i % 2 ? ri(256) : alnum.charCodeAt(ri(alnum.length));
    variants.push({ kind: 'header byte flips', bytes: b });
  }
  for (let i = 0; i < 60; i++) variants.push({ kind: 'truncation', bytes: orig.subarray(0, ri(orig.length)), mustFail: true });
  for (let i = 0; i < 20; i++) {
    const b = orig.slice();
    const dv = new DataView(b.buffer);
    const choice = ri(4);
    dv.setBigUint64(0, choice === 0 ? BigInt(orig.length - 7 + ri(1000)) : choice === 1 ? 2n ** 64n - 1n - BigInt(ri(5)) : choice === 2 ? BigInt(ri(raw.n)) : BigInt(raw.n + 1 + ri(64)), true);
    variants.push({ kind: 'header length field', bytes: b });
  }
  for (let i = 0; i < 30; i++) {
    const h = clone();
    const a = h[names[ri(names.length)]], b = h[names[ri(names.length)]];
    if (a === b || a.data_offsets[1] - a.data_offsets[0] === 0) continue;
    const len = b.data_offsets[1] - b.data_offsets[0];
    const start = a.data_offsets[0] + ri(a.data_offsets[1] - a.data_offsets[0]);
    b.data_offsets = [start, start + len];
    variants.push({ kind: 'overlapping offsets', bytes: withHeader(h), mustFail: true });
  }
  for (let i = 0; i < 30; i++) {
    const text = JSON.stringify(raw.header);
    const cut = text.slice(0, ri(text.length)) + ['', '}', ']', ',', '"', '{"a":'][ri(6)];
    variants.push({ kind: 'bad JSON', bytes: withHeader(null, undefined, cut), mustFail: true });
  }
  for (let i = 0; i < 40; i++) {
    const h = clone();
    const t = h[names[ri(names.length)]];
    const field = ['shape', 'dtype', 'data_offsets', 'dim', 'offset', 'drop'][ri(6)];
    const w = weird[ri(weird.length)];
    if (field === 'dim') t.shape[ri(t.shape.length)] = w;
    else if (field === 'offset') t.data_offsets[ri(2)] = w;
    else if (field === 'drop') delete t[['dtype', 'shape', 'data_offsets'][ri(3)]];
    else if (field === 'dtype') t.dtype = ['F33', 'f32', 'I4', 'BF16', 'F64', 'U8', 7][ri(7)];
    else t[field] = w;
    variants.push({ kind: 'bad field / huge dims', bytes: withHeader(h) });
  }
  for (let i = 0; i < 10; i++) {
    // Benign edits that must still read: renamed tensors, other metadata, trailing spaces.
    const h = clone();
    const n = names[ri(names.length)];
    h[`renamed.${i}`] = h[n];
    delete h[n];
    h.__metadata__ = { format: 'pt', note: 'x'.repeat(ri(100)) };
    variants.push({ kind: 'benign', bytes: withHeader(null, undefined, JSON.stringify(h) + ' '.repeat(ri(9))) });
  }
  for (let i = 0; i < 20; i++) {
    const b = withHeader(null, undefined, JSON.stringify(raw.header));
    b[8 + ri(raw.n)] = 0x80 + ri(0x40); // a lone continuation byte: invalid UTF-8
    variants.push({ kind: 'invalid UTF-8', bytes: b });
  }

  let ok = 0, failed = 0;
  for (const [i, v] of variants.entries()) {
    const what = `variant ${i} (${v.kind})`;
    try {
      await withTimeout((async () => {
        const f = await SafetensorsFile.open(bytesSource('fuzz.safetensors', v.bytes));
        for (const t of f.tensors.values()) {
          const count = t.shape.reduce((a, b) => a * b, 1);
          assert.is(t.byteLength, count * DTYPE_SIZE[t.dtype], what);
          assert.ok(t.byteOffset >= 8 + f.headerLength && t.byteOffset + t.byteLength <= v.bytes.byteLength, what);
          assert.is((await tensorBytes(f, t.name)).byteLength, t.byteLength, what);
          let total = 0;
          for await (const c of f.chunks(t.name, 1 << 14)) total += c.bytes.byteLength;
          assert.is(total, t.byteLength, what);
        }
      })(), 2000, what);
      assert.not.ok(v.mustFail, `${what} should have failed`);
      ok++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw new Error(`${what}: expected SafetensorsError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      assert.match(e.message, /^fuzz\.safetensors: /);
      failed++; if (process.env.FUZZ_DEBUG) console.log(what, e.message);
    }
  }
  if (process.env.FUZZ_DEBUG) console.log(`fuzz: ${variants.length} variants, ${ok} read, ${failed} rejected`);
  assert.ok(variants.length >= 250, `${variants.length} variants`);
  assert.ok(failed > 150 && ok >= 10, `ok ${ok}, failed ${failed}`);
});

test('a memorySource of Node Buffers (readFileSync) with F16 data at an odd offset gives the same logits as an aligned file', async () => {
  // Buffer.prototype.slice is a view, not a copy: a copy taken with it had the whole file as its .buffer
  const { GPT2LMHeadModel } = await import('../src/index.js');
  const { randomCheckpoint } = await import('./helpers/checkpoint.js');
  const ck = randomCheckpoint({ n_embd: 16, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 40 }, 3);
  const f32 = ck['model.safetensors'] as Uint8Array;
  const n = Number(new DataView(f32.buffer, f32.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(f32.subarray(8, 8 + n)));
  const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [name, t] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const v = new Float32Array(f32.slice(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]).buffer);
    tensors[name] = { dtype: 'F16', shape: t.shape, data: new Uint8Array(Uint16Array.from(v, floatToHalf).buffer) };
  }
  const aligned = writeSafetensors(tensors);
  // the same file with one more byte of header padding: every tensor starts at an odd offset
  const m = Number(new DataView(aligned.buffer).getBigUint64(0, true));
  const odd = new Uint8Array(aligned.length + 1);
  new DataView(odd.buffer).setBigUint64(0, BigInt(m + 1), true);
  odd.set(aligned.subarray(8, 8 + m), 8); odd[8 + m] = 0x20; odd.set(aligned.subarray(8 + m), 9 + m);
  const logits = async (st: Uint8Array) => {
    const model = await GPT2LMHeadModel.from_pretrained(memorySource({ 'config.json': Buffer.from(ck['config.json'] as string), 'model.safetensors': Buffer.from(st) }), { dtype: 'fp16', threads: 1 });
    try { return Array.from((await model.forward({ input_ids: [[1, 5, 9, 30]] })).logits.data as Float32Array); } finally { await model.dispose(); }
  };
  assert.equal(await logits(odd), await logits(aligned));
});

test.run();
