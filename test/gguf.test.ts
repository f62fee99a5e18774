// GGUF in and out: ggml block dequantizers and quantizers against hand-built blocks, safetensors → GGUF → our
// forward (bit for bit for F32 and F16), the fixture cases from GGUF conversions, the tokenizer from GGUF
// metadata, the CLI, and a fuzz test that corrupted GGUF files fail only with typed errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { AutoTokenizer, GGUFError, GGUFFile, GGUFModelSource, GPT2LMHeadModel, GPT2WasmError, memorySource, parseGPT2Config, save_gguf, Tensor } from '../src/index.js';
import { openTensorReader } from '../src/io/gguf-model.js';
import { planWeights } from '../src/model/weights.js';
import { dequantizeBlocks, GGML_TYPES } from '../src/io/ggml-dequant.js';
import { quantizeQ4_0, quantizeQ8_0 } from '../src/runtime/quant.js';
import { bytesSource, fileSource } from '../src/io/source.js';
import { halfTable, floatToHalf } from '../src/io/half.js';
import { randomCheckpoint, writeRandomGPT2 } from './helpers/checkpoint.js';
import { sendBytes, startServer } from './helpers/http-server.js';
import { compareClose, kernelOpts, modelDir, readCase, readReference, repoRoot } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-gguf-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const opts = { threads: 1, ...kernelOpts() };
const f = Math.fround;
const H = halfTable();
const half = (v: number) => floatToHalf(v);
const le16 = (b: Uint8Array, o: number, h: number) => { b[o] = h & 255; b[o + 1] = h >>> 8; };
const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: any, what: string) => {
  const msg = compareClose(got, want, tol, what);
  if (msg) assert.unreachable(msg);
};
const sameBits = (a: Float32Array, b: Float32Array, what: string) => {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.unreachable(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
};

// ------------------------------------------------------------------------------------------------ blocks

// Small deterministic generator for block contents.
let seed = 12345;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

test('Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 blocks dequantize to the values they encode', () => {
  const d = 0.375, m = -1.25; // exact in f16
  const dh = half(d), mh = half(m);
  // Q4_0: element j<16 in the low nibble of byte j, element j+16 in its high nibble; value (q-8)*d
  const q = Array.from({ length: 32 }, () => rnd(16));
  const b40 = new Uint8Array(18); le16(b40, 0, dh);
  for (let j = 0; j < 16; j++) b40[2 + j] = q[j] | (q[j + 16] << 4);
  const out = new Float32Array(32);
  dequantizeBlocks(2, b40, out);
  assert.equal([...out], q.map((x) => (x - 8) * d));
  // Q4_1: value q*d + m
  const b41 = new Uint8Array(20); le16(b41, 0, dh); le16(b41, 2, mh);
  for (let j = 0; j < 16; j++) b41[4 + j] = q[j] | (q[j + 16] << 4);
  dequantizeBlocks(3, b41, out);
  assert.equal([...out], q.map((x) => f(x * d + m)));
  // Q5_0 / Q5_1: the 5th bit of element j is bit j of the u32 after the scale(s)
  const q5 = Array.from({ length: 32 }, () => rnd(32));
  let qh = 0;
  for (let j = 0; j < 32; j++) if (q5[j] & 16) qh |= 1 << j;
  const b50 = new Uint8Array(22); le16(b50, 0, dh);
  new DataView(b50.buffer).setUint32(2, qh >>> 0, true);
  for (let j = 0; j < 16; j++) b50[6 + j] = (q5[j] & 15) | ((q5[j + 16] & 15) << 4);
  dequantizeBlocks(6, b50, out);
  assert.equal([...out], q5.map((x) => (x - 16) * d));
  const b51 = new Uint8Array(24); le16(b51, 0, dh); le16(b51, 2, mh);
  new DataView(b51.buffer).setUint32(4, qh >>> 0, true);
  for (let j = 0; j < 16; j++) b51[8 + j] = (q5[j] & 15) | ((q5[j + 16] & 15) << 4);
  dequantizeBlocks(7, b51, out);
  assert.equal([...out], q5.map((x) => f(x * d + m)));
  // Q8_0: int8 * d, two blocks
  const q8 = Array.from({ length: 64 }, () => rnd(256) - 128);
  const b8 = new Uint8Array(68);
  le16(b8, 0, dh); le16(b8, 34, half(-0.5));
  q8.forEach((x, i) => { b8[(i < 32 ? 2 : 36) + (i % 32)] = x & 255; });
  const out2 = new Float32Array(64);
  dequantizeBlocks(8, b8, out2);
  assert.equal([...out2], q8.map((x, i) => x * (i < 32 ? d : -0.5)));
});

/** Pack 8 six-bit scales and mins the way ggml's K-quant quantizers store them (12 bytes). */
function packScalesK4(sc: number[], mn: number[]): Uint8Array {
  const b = new Uint8Array(12);
  for (let j = 0; j < 8; j++) {
    if (j < 4) { b[j] = sc[j]; b[j + 4] = mn[j]; }
    else { b[j + 4] = (sc[j] & 15) | ((mn[j] & 15) << 4); b[j - 4] |= (sc[j] >> 4) << 6; b[j] |= (mn[j] >> 4) << 6; }
  }
  return b;
}

test('Q4_K and Q5_K super-blocks dequantize to d*scale*q - dmin*min per 32-element sub-block', () => {
  const d = 0.0078125, dmin = 0.015625;
  const sc = Array.from({ length: 8 }, () => rnd(64)), mn = Array.from({ length: 8 }, () => rnd(64));
  const q = Array.from({ length: 256 }, () => rnd(32)); // 5 bits; Q4_K uses the low 4
  const want = (bits: number) => q.map((x, e) => {
    const s = e >> 5, v = bits === 4 ? x & 15 : x;
    return f(f(f(d * sc[s]) * v) - f(dmin * mn[s]));
  });
  // sub-block s = 2k + h uses bytes 32k..32k+31 of qs, low nibbles for h = 0 and high for h = 1
  const qs = new Uint8Array(128);
  for (let e = 0; e < 256; e++) { const s = e >> 5, l = e & 31, byte = (s >> 1) * 32 + l; qs[byte] |= (q[e] & 15) << ((s & 1) * 4); }
  const b4 = new Uint8Array(144); le16(b4, 0, half(d)); le16(b4, 2, half(dmin)); b4.set(packScalesK4(sc, mn), 4); b4.set(qs, 16);
  const out = new Float32Array(256);
  dequantizeBlocks(12, b4, out);
  assert.equal([...out], want(4));
  // Q5_K: the 5th bit of element l of sub-block s is bit s of qh[l]
  const qhb = new Uint8Array(32);
  for (let e = 0; e < 256; e++) if (q[e] & 16) qhb[e & 31] |= 1 << (e >> 5);
  const b5 = new Uint8Array(176); le16(b5, 0, half(d)); le16(b5, 2, half(dmin)); b5.set(packScalesK4(sc, mn), 4); b5.set(qhb, 16); b5.set(qs, 48);
  dequantizeBlocks(13, b5, out);
  assert.equal([...out], want(5));
});

test('Q6_K super-blocks dequantize to d*scale*(q-32) per 16-element group', () => {
  const d = 0.001953125;
  const sc = Array.from({ length: 16 }, () => rnd(256) - 128), q = Array.from({ length: 256 }, () => rnd(64));
  const b = new Uint8Array(210);
  // halves of 128; within one, 4 quarters of 32: quarter g takes ql[(g&1)*32 + l] (low nibble for g<2, high
  // for g>=2) and bits 2g..2g+1 of qh[l]; element e's scale is number e/16
  for (let e = 0; e < 256; e++) {
    const half_ = e >> 7, r = e & 127, g = r >> 5, l = r & 31;
    b[half_ * 64 + (g & 1) * 32 + l] |= (q[e] & 15) << (g < 2 ? 0 : 4);
    b[128 + half_ * 32 + l] |= (q[e] >> 4) << (2 * g);
  }
  sc.forEach((s, i) => { b[192 + i] = s & 255; });
  le16(b, 208, half(d));
  const out = new Float32Array(256);
  dequantizeBlocks(14, b, out);
  assert.equal([...out], q.map((x, e) => f(f(d * sc[e >> 4]) * (x - 32))));
});

test('quantizeQ8_0 and quantizeQ4_0 produce the blocks of ggml\'s reference rounding', () => {
  // Q8_0: d = amax/127, here exactly 1, so q = x rounded half away from zero
  const x = new Float32Array(32);
  x.set([127, 2.5, -2.5, -0.5, 126.4, 0.49]);
  const b = new Uint8Array(34);
  quantizeQ8_0(x, b);
  assert.is(H[b[0] | (b[1] << 8)], 1);
  assert.equal([...new Int8Array(b.buffer, 2, 7)], [127, 3, -3, -1, 126, 0, 0]);
  // amax 1.27: d is f16(1.27/127); every value comes back within half a step
  const x2 = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 1.27);
  quantizeQ8_0(x2, b);
  const d2 = H[b[0] | (b[1] << 8)];
  assert.ok(Math.abs(d2 - 1.27 / 127) < 1e-5);
  const back8 = new Float32Array(32);
  dequantizeBlocks(8, b, back8);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back8[i] - x2[i]) <= d2 / 2 + 1e-7, `q8 element ${i}`);
  // Q4_0: d = (value of largest magnitude) / -8 → that value maps to nibble 0; zeros map to 8
  const y = new Float32Array(32);
  y[0] = -2; y[1] = 1; y[17] = 0.25; y[31] = 2;
  const c = new Uint8Array(18);
  quantizeQ4_0(y, c);
  assert.is(c[0] | (c[1] << 8), half(0.25)); // -2 / -8
  const nib = (j: number) => (j < 16 ? c[2 + j] & 15 : c[2 + j - 16] >> 4);
  assert.is(nib(0), 0); // -2 * 4 + 8.5 → 0
  assert.is(nib(1), 12); // 1 * 4 + 8.5 = 12.5 → 12
  assert.is(nib(17), 9); // 0.25 * 4 + 8.5 = 9.5 → 9
  assert.is(nib(31), 15); // 2 * 4 + 8.5 = 16.5 → 16, clamped to 15
  assert.is(nib(5), 8);
  // and the dequantizer reads back what was encoded
  const back = new Float32Array(32);
  dequantizeBlocks(2, c, back);
  assert.equal([back[0], back[1], back[17], back[31], back[5]], [-2, 1, 0.25, 1.75, 0]);
});

test('every quantized type the reader knows has ggml\'s block sizes', () => {
  const sizes = Object.fromEntries([...GGML_TYPES.values()].map((t) => [t.name, [t.blockSize, t.typeSize]]));
  assert.equal(sizes.Q4_0, [32, 2 + 16]); assert.equal(sizes.Q8_0, [32, 2 + 32]); assert.equal(sizes.Q5_1, [32, 4 + 4 + 16]);
  assert.equal(sizes.Q4_K, [256, 4 + 12 + 128]); assert.equal(sizes.Q5_K, [256, 4 + 12 + 32 + 128]); assert.equal(sizes.Q6_K, [256, 128 + 64 + 16 + 2]);
});

// ------------------------------------------------------------------------------------------------ round trips

const ids = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]];

async function logitsOf(src: any, o: Record<string, unknown> = {}) {
  const m = await GPT2LMHeadModel.from_pretrained(src, { ...opts, ...o });
  try {
    const out = await m.forward({ input_ids: ids, output_hidden_states: true });
    return { logits: out.logits!.data as Float32Array, hidden: out.hidden_states!.map((h) => h.data as Float32Array), dtype: m.dtype };
  } finally { await m.dispose(); }
}

test('safetensors → GGUF F32 → forward equals the safetensors forward bit for bit (tiny and trained)', async () => {
  for (const name of ['gpt2-tiny', 'gpt2-trained']) {
    const out = join(tmp, `${name}-f32.gguf`);
    const res = await save_gguf(modelDir(name), out, { dtype: 'f32' });
    assert.ok(res.tensors.every((t) => t.type === 'F32'));
    const a = await logitsOf(modelDir(name)), b = await logitsOf(out);
    assert.is(b.dtype, 'fp32');
    sameBits(b.logits, a.logits, `${name} logits`);
    a.hidden.forEach((h, i) => sameBits(b.hidden[i], h, `${name} hidden ${i}`));
  }
});

test('GGUF F16 round trip: same halves as the safetensors fp16 load, bit for bit', async () => {
  const f16 = join(tmp, 'tiny-f16-from-f16.gguf');
  await save_gguf(modelDir('gpt2-tiny-f16'), f16, { dtype: 'f16' });
  const a = await logitsOf(modelDir('gpt2-tiny-f16')), b = await logitsOf(f16);
  assert.is(a.dtype, 'fp16'); assert.is(b.dtype, 'fp16');
  sameBits(b.logits, a.logits, 'f16 checkpoint logits');
  const f16b = join(tmp, 'tiny-f16-from-f32.gguf');
  await save_gguf(modelDir('gpt2-tiny'), f16b, { dtype: 'f16' });
  const c = await logitsOf(modelDir('gpt2-tiny'), { dtype: 'fp16' }), d = await logitsOf(f16b);
  sameBits(d.logits, c.logits, 'f32 checkpoint written as F16');
});

test('Q8_0 / Q4_0 GGUF files load (as q8 / q4) close to fp32; q4_0 keeps the embedding at Q8_0 unless keep says otherwise', async () => {
  const ref = await logitsOf(modelDir('gpt2-trained'));
  const maxDiff = (a: Float32Array, b: Float32Array) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };
  let scale = 0;
  for (const v of ref.logits) scale = Math.max(scale, Math.abs(v));
  const q8 = join(tmp, 'trained-q8_0.gguf'), q4 = join(tmp, 'trained-q4_0.gguf');
  await save_gguf(modelDir('gpt2-trained'), q8, { dtype: 'q8_0', name: 'trained' });
  const r4 = await save_gguf(modelDir('gpt2-trained'), q4, { dtype: 'q4_0' });
  assert.is(r4.tensors.find((t) => t.name === 'token_embd.weight')!.type, 'Q8_0'); // q4_0 keeps the embedding at Q8_0 by default
  const r4all = await save_gguf(modelDir('gpt2-trained'), join(tmp, 'trained-q4_0-all.gguf'), { dtype: 'q4_0', keep: { token_embd: 'q4_0' } });
  assert.is(r4all.tensors.find((t) => t.name === 'token_embd.weight')!.type, 'Q4_0');
  assert.is(r4.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.type, 'Q4_0');
  assert.is(r4.tensors.find((t) => t.name === 'position_embd.weight')!.type, 'F32');
  const a = await logitsOf(q8), b = await logitsOf(q4);
  assert.is(a.dtype, 'q8'); assert.is(b.dtype, 'q4');
  const d8 = maxDiff(a.logits, ref.logits), d4 = maxDiff(b.logits, ref.logits);
  assert.ok(d8 > 0 && d8 < 0.02 * scale, `q8_0 max diff ${d8} (logit scale ${scale})`);
  assert.ok(d4 > d8 && d4 < 0.2 * scale, `q4_0 max diff ${d4} (q8_0 ${d8}, scale ${scale})`);
  // loading Q8_0 as the runtime's q8 (Q8_0 blocks) gives the file's blocks byte for byte
  // and Q4_0 as q4 likewise
  for (const [file, type] of [[q8, 'Q8_0'], [q4, 'Q4_0']]) {
    const fileBytes = new Uint8Array(readFileSync(file));
    const gq = await GGUFFile.open(bytesSource(file, fileBytes));
    const mq = await GPT2LMHeadModel.from_pretrained(file, opts);
    try {
      for (const l of [0, mq.config.n_layer - 1]) {
        const t = gq.tensors.get(`blk.${l}.ffn_up.weight`)!, w = mq.weights.layers[l].fc;
        assert.is(t.typeName, type);
        const got = new Uint8Array(mq.backend.arena.memory.buffer, w.ptr, t.byteLength);
        assert.ok(Buffer.from(got).equals(Buffer.from(fileBytes.subarray(t.byteOffset, t.byteOffset + t.byteLength))), `${type} layer ${l} ffn_up blocks differ`);
      }
    } finally { await mq.dispose(); }
  }
  // Q8_0 blocks survive GGUF → f32 → Q8_0 unchanged (the block maximum is always ±127·d, so d is recovered)
  const q8b = join(tmp, 'trained-q8_0-again.gguf');
  await save_gguf(q8, q8b, { dtype: 'q8_0', name: 'trained' });
  assert.equal(new Uint8Array(readFileSync(q8b)), new Uint8Array(readFileSync(q8)));
});

test('GGUF → GGUF of the same block type copies the blocks as stored (Q4_0 too), dequantizing nothing', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gguf-copy-'));
  for (const type of ['q8_0', 'q4_0'] as const) {
    const first = join(tmp, `trained-${type}.gguf`), again = join(tmp, `trained-${type}-again.gguf`);
    await save_gguf(modelDir('gpt2-trained'), first, { dtype: type, name: 'trained' });
    const { src, readers } = await tracedGGUF(first);
    await save_gguf(src, again, { dtype: type, name: 'trained' });
    assert.is(readers.at(-1)!.dequantized, 0, `${type}: blocks were dequantized and requantized`);
    assert.equal(new Uint8Array(readFileSync(again)), new Uint8Array(readFileSync(first)), `${type}: the file changed`);
  }
});

/** A GGUF source whose tensor readers are kept, to see what a load did with them (readers[i].dequantized). */
async function tracedGGUF(file: string | Uint8Array) {
  const src = await GGUFModelSource.open(async () => (typeof file === 'string' ? fileSource(file) : bytesSource('patched.gguf', file)));
  const readers: Array<{ dequantized: number }> = [];
  const open = src.openTensors.bind(src);
  src.openTensors = async () => { const r = await open(); readers.push(r); return r; };
  return { src, readers };
}

/** Runs f with console.warn captured; returns the lines. */
async function warnings(f: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [], orig = console.warn;
  console.warn = (...a: unknown[]) => { lines.push(a.join(' ')); };
  try { await f(); } finally { console.warn = orig; }
  return lines;
}

test('Q8_0 / Q4_0 blocks are copied as stored: logits equal the safetensors model at q8 / q4 bit for bit, nothing dequantized', async () => {
  for (const [type, dtype] of [['q8_0', 'q8'], ['q4_0', 'q4']] as const) {
    const file = join(tmp, `stored-trained-${type}.gguf`);
    await save_gguf(modelDir('gpt2-trained'), file, { dtype: type });
    const want = await logitsOf(modelDir('gpt2-trained'), { dtype });
    const { src, readers } = await tracedGGUF(file);
    let got: Awaited<ReturnType<typeof logitsOf>> | undefined;
    const warned = await warnings(async () => { got = await logitsOf(src); });
    assert.is(got!.dtype, dtype);
    sameBits(got!.logits, want.logits, `${type} logits`);
    want.hidden.forEach((h, i) => sameBits(got!.hidden[i], h, `${type} hidden ${i}`));
    assert.is(readers.length, 1);
    assert.is(readers[0].dequantized, 0, `${type}: tensors were dequantized instead of copied`);
    assert.equal(warned, [], `${type}: no conversion notice expected`);
  }
  // 'auto' keeps every group in its stored blocks: a file whose embedding is Q4_0 too runs it at q4 (not the q4 plan's q8)
  const all4 = join(tmp, 'stored-trained-q4_0-all.gguf');
  await save_gguf(modelDir('gpt2-trained'), all4, { dtype: 'q4_0', keep: { wte: 'q4_0' } });
  {
    const { src, readers } = await tracedGGUF(all4);
    const m = await GPT2LMHeadModel.from_pretrained(src, opts);
    try {
      assert.is(m.weights.plan.wte, 'q4');
      assert.is(m.weights.wte.dt, m.weights.layers[0].fc.dt);
      assert.is(readers[0].dequantized, 0, 'all-Q4_0 file: nothing dequantized');
      const want = await logitsOf(modelDir('gpt2-trained'), { dtype: { default: 'q4', wte: 'q4' } });
      sameBits((await m.forward({ input_ids: ids })).logits!.data as Float32Array, want.logits, 'all-Q4_0 logits');
    } finally { await m.dispose(); }
  }
  // a plan other than the stored blocks converts them (dequantize, then place as the plan says), with one notice
  const { src, readers } = await tracedGGUF(join(tmp, 'stored-trained-q8_0.gguf'));
  let got: Awaited<ReturnType<typeof logitsOf>> | undefined;
  const warned = await warnings(async () => { got = await logitsOf(src, { dtype: 'q4' }); });
  assert.is(got!.dtype, 'q4');
  assert.ok(readers[0].dequantized > 0, 'Q8_0 at q4 must be converted');
  assert.is(warned.length, 1, warned.join('\n'));
  assert.match(warned[0], /Q8_0 → q4/);
  assert.not.match(warned[0], /Q8_0 → q8/); // the embedding stays q8 under the q4 plan: copied as stored
});

test('a tied head is written again as output.weight (llama.cpp requires it) and loaded once; without the mark, untied', async () => {
  const file = join(tmp, 'tied-trained-q8_0.gguf');
  await save_gguf(modelDir('gpt2-trained'), file, { dtype: 'q8_0' });
  const bytes = new Uint8Array(readFileSync(file));
  const g = await GGUFFile.open(bytesSource('tied.gguf', bytes));
  const out = g.tensors.get('output.weight'), wte = g.tensors.get('token_embd.weight');
  assert.ok(out && wte, 'output.weight and token_embd.weight are written');
  assert.is(out!.typeName, wte!.typeName);
  assert.equal(out!.dims, wte!.dims);
  assert.ok(Buffer.from(bytes.subarray(out!.byteOffset, out!.byteOffset + out!.byteLength))
    .equals(bytes.subarray(wte!.byteOffset, wte!.byteOffset + wte!.byteLength)), 'output.weight holds the embedding\'s bytes');
  assert.is(g.get('gpt2wasm.tied_output'), true);
  const want = await logitsOf(modelDir('gpt2-trained'), { dtype: 'q8' });
  const weightBytes = async (src: unknown) => {
    const m = await GPT2LMHeadModel.from_pretrained(src as string, { ...opts, dtype: 'q8' });
    try {
      sameBits((await m.forward({ input_ids: ids })).logits!.data as Float32Array, want.logits, 'logits');
      return { bytes: m.memoryUsage().weights, tied: m.config.tie_word_embeddings, head: m.weights.lm_head === m.weights.wte || m.weights.lm_head === null };
    } finally { await m.dispose(); }
  };
  const ref = await weightBytes(modelDir('gpt2-trained'));
  const marked = await weightBytes(file);
  assert.equal(marked, ref, 'marked copy: one embedding in memory, as the safetensors model');
  // the same file without the mark (as llama.cpp's converter writes GPT-2): an untied head, the same answer
  const key = new TextEncoder().encode('gpt2wasm.tied_output');
  const at = Buffer.from(bytes).indexOf(Buffer.from(key));
  assert.ok(at > 0);
  const unmarked = bytes.slice();
  unmarked[at + key.length - 1] = 'X'.charCodeAt(0);
  const plain = await weightBytes(await GGUFModelSource.open(async () => bytesSource('unmarked.gguf', unmarked)));
  assert.is(plain.tied, false);
  const extra = plain.bytes - ref.bytes - wte!.byteLength; // the head's region is aligned: at most a few bytes more
  assert.ok(extra >= 0 && extra < 256, `unmarked: the head must be a second matrix (${plain.bytes} vs ${ref.bytes} + ${wte!.byteLength})`);
});

test('convert refuses weights its output type cannot hold (an f16 overflow, a Q8_0/Q4_0 scale past the f16 range), naming the tensor', async () => {
  const dir = mkdtempSync(join(tmp, 'huge-'));
  for (const f of ['config.json', 'vocab.json', 'merges.txt']) writeFileSync(join(dir, f), readFileSync(join(modelDir('gpt2-tiny'), f)));
  const st = new Uint8Array(readFileSync(join(modelDir('gpt2-tiny'), 'model.safetensors')));
  const n = Number(Buffer.from(st).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(st.subarray(8, 8 + n)).toString('utf8'));
  const key = Object.keys(header).find((k) => /h\.0\.mlp\.c_fc\.weight$/.test(k))!;
  assert.is(header[key].dtype, 'F32');
  const cfg = JSON.parse(readFileSync(join(modelDir('gpt2-tiny'), 'config.json'), 'utf8'));
  // Conv1D [in, out]: element (in 40, out 3) is row 3, column 40 of the GGUF matrix, in block 1
  const idx = 40 * (cfg.n_inner ?? 4 * cfg.n_embd) + 3;
  new DataView(st.buffer).setFloat32(8 + n + header[key].data_offsets[0] + 4 * idx, 1e7, true);
  writeFileSync(join(dir, 'model.safetensors'), st);
  for (const [dtype, msg] of [['f16', /out of the f16 range/], ['q8_0', /Q8_0 scale of row 3 block 1 \(columns 32\.\.63\) overflows f16/], ['q4_0', /Q4_0 scale of row 3 block 1/]] as const) {
    const out = join(tmp, `huge-${dtype}.gguf`);
    const err = await save_gguf(dir, out, { dtype }).then(() => null, (e) => e);
    assert.ok(err instanceof GPT2WasmError, `${dtype}: expected a GPT2WasmError, got ${err}`);
    assert.match(err.message, /mlp\.c_fc\.weight/);
    assert.match(err.message, msg);
    assert.not.ok(readdirSync(tmp).some((f) => f.startsWith(`huge-${dtype}.gguf`)), `${dtype}: no file left behind`);
  }
  await save_gguf(dir, join(tmp, 'huge-f32.gguf'), { dtype: 'f32' }); // f32 holds it
});

test('stored blocks: read in bounded chunks of whole blocks, and a non-finite f16 scale is an error naming the tensor', async () => {
  const file = join(tmp, 'tiny-q8_0-blocks.gguf');
  await save_gguf(modelDir('gpt2-tiny'), file, { dtype: 'q8_0' });
  const bytes = new Uint8Array(readFileSync(file));
  const g = await GGUFFile.open(bytesSource(file, bytes));
  const t = g.tensors.get('blk.1.ffn_up.weight')!;
  const { src } = await tracedGGUF(bytes);
  const reader = await src.openTensors();
  try {
    const parts: Uint8Array[] = [];
    for await (const c of reader.blockChunks('h.1.mlp.c_fc.weight', 1000)) {
      assert.ok(c.bytes.byteLength <= 1000 && c.bytes.byteLength % 34 === 0, `chunk of ${c.bytes.byteLength} bytes`);
      parts.push(c.bytes.slice());
    }
    assert.equal(Buffer.concat(parts), Buffer.from(bytes.subarray(t.byteOffset, t.byteOffset + t.byteLength)));
    assert.throws(() => reader.blockChunks('h.1.ln_1.weight'), (e: Error) => e instanceof GGUFError && /blk\.1\.attn_norm\.weight is F32/.test(e.message));
  } finally { await reader.close(); }
  // block 5 of row 2 (K = 64: two blocks a row) gets the f16 scale +infinity
  const bad = bytes.slice(), K = t.dims[0], at = t.byteOffset + (2 * (K / 32) + 1) * 34;
  bad[at] = 0x00; bad[at + 1] = 0x7c;
  for (const dtype of ['q8', 'fp32'] as const) { // copied as stored, and dequantized
    const { src: s2 } = await tracedGGUF(bad);
    await warnings(() => assert_rejects(GPT2LMHeadModel.from_pretrained(s2, { ...opts, dtype }), 'WEIGHTS',
      dtype === 'q8' ? /tensor h\.1\.mlp\.c_fc\.weight row 2 columns 32\.\.63: the Q8_0 block's f16 scale is not finite/ : /tensor h\.1\.mlp\.c_fc\.weight contains (Infinity|-Infinity|NaN)/));
  }
});

test('fixture cases run from GGUF F32 conversions within their tolerances', async () => {
  const gg = join(tmp, 'fixture-tiny-f32.gguf'), gg16 = join(tmp, 'fixture-tiny-f16.gguf');
  await save_gguf(modelDir('gpt2-tiny'), gg, { dtype: 'f32' });
  await save_gguf(modelDir('gpt2-tiny-f16'), gg16, { dtype: 'f16' });
  const model = await GPT2LMHeadModel.from_pretrained(gg, opts);
  try {
    let c = readCase('lm_forward'), ref = readReference(c.expected);
    let out = await model.forward({ input_ids: [c.input_ids], output_attentions: true, output_hidden_states: true });
    close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'lm_forward logits');
    out.hidden_states!.forEach((h, i) => close(h.data as Float32Array, ref[`hidden_states.${i}`].data, c.tolerance, `hidden_states.${i}`));
    out.attentions!.forEach((a, i) => close(a.data as Float32Array, ref[`attentions.${i}`].data, c.tolerance, `attentions.${i}`));

    c = readCase('lm_batch_left_padding'); ref = readReference(c.expected);
    out = await model.forward({ input_ids: c.input_ids, attention_mask: c.attention_mask, position_ids: c.position_ids, logits_to_keep: 1 });
    close(out.logits!.data as Float32Array, ref.last_logits.data, c.tolerance, 'lm_batch_left_padding');

    c = readCase('lm_head_mask'); ref = readReference(c.expected);
    out = await model.forward({ input_ids: [c.input_ids], head_mask: c.head_mask });
    close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'lm_head_mask');

    c = readCase('lm_prefix_past_key_values'); ref = readReference(c.expected);
    const past = Array.from({ length: model.config.n_layer }, (_, l) => ({
      key: new Tensor('float32', ref[`past.${l}.key`].data, [1, ...ref[`past.${l}.key`].shape]),
      value: new Tensor('float32', ref[`past.${l}.value`].data, [1, ...ref[`past.${l}.value`].shape]),
    }));
    out = await model.forward({ input_ids: [c.input_ids], past_key_values: past });
    close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'lm_prefix_past_key_values');

    c = readCase('lm_greedy');
    const seq = await model.generate({ input_ids: [c.input_ids], max_new_tokens: c.max_new_tokens, do_sample: false });
    assert.equal(Array.from(seq.data as BigInt64Array, Number), c.expected_ids);
  } finally { await model.dispose(); }
  const m16 = await GPT2LMHeadModel.from_pretrained(gg16, opts);
  try {
    const c = readCase('lm_f16_forward'), ref = readReference(c.expected);
    assert.is(m16.dtype, 'fp16');
    const out = await m16.forward({ input_ids: [c.input_ids] });
    close(out.logits!.data as Float32Array, ref.logits.data, c.tolerance, 'lm_f16_forward');
  } finally { await m16.dispose(); }
});

test('tokenizer from GGUF metadata gives the ids of vocab.json/merges.txt on the tokenizer fixture', async () => {
  const gg = join(tmp, 'tok-tiny.gguf');
  await save_gguf(modelDir('gpt2-tiny'), gg, { dtype: 'f32' });
  const c = readCase('tokenizer');
  const fromFiles = await AutoTokenizer.from_pretrained(modelDir(c.model));
  const src = await GGUFModelSource.open(async () => bytesSource(gg, new Uint8Array(readFileSync(gg))));
  const fromGguf = await AutoTokenizer.from_pretrained(src);
  c.texts.forEach((t: string, i: number) => {
    assert.equal(fromGguf.encode(t), c.expected_ids[i], `text ${i}`);
    assert.equal(fromGguf.encode(t), fromFiles.encode(t), `text ${i} vs files`);
    assert.is(fromGguf.decode(c.expected_ids[i]), fromFiles.decode(c.expected_ids[i]));
  });
  assert.equal(fromGguf.encode('a<|endoftext|>b'), fromFiles.encode('a<|endoftext|>b'));
  assert.is(fromGguf.eos_token_id, 50256);
});

test('from_pretrained: gguf_file in a directory, and typed errors for a wrong architecture or missing keys', async () => {
  const dir = mkdtempSync(join(tmp, 'dir-'));
  await save_gguf(modelDir('gpt2-tiny'), join(dir, 'model-f32.gguf'), { dtype: 'f32' });
  const m = await GPT2LMHeadModel.from_pretrained(dir, { ...opts, gguf_file: 'model-f32.gguf' });
  assert.is(m.config.n_layer, 2);
  await m.dispose();
  await assert_rejects(GPT2LMHeadModel.from_pretrained(dir, { ...opts, gguf_file: 'nope.gguf' }), 'WEIGHTS', /nope\.gguf/);
  const bytes = new Uint8Array(readFileSync(join(dir, 'model-f32.gguf')));
  const patched = (from: string, to: string) => {
    const b = bytes.slice(), needle = new TextEncoder().encode(from), rep = new TextEncoder().encode(to);
    const at = Buffer.from(b).indexOf(Buffer.from(needle));
    b.set(rep, at);
    return GGUFModelSource.open(async () => bytesSource('patched.gguf', b));
  };
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await patched('gpt2', 'gptj'), opts))(), 'GGUF', /general\.architecture is "gptj"/);
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await patched('gpt2.block_count', 'gpt2.block_cnt__'), opts))(), 'GGUF', /missing metadata key gpt2\.block_count/);
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await patched('blk.1.ffn_up.weight', 'blk.1.ffn_xx.weight'), opts))(), 'WEIGHTS', /blk\.1\.ffn_xx\.weight|h\.1\.mlp\.c_fc\.weight/);
  // a bad shape value is named by its GGUF key, not by the config field it becomes (n_head, n_positions)
  const withU32 = (key: string, v: number) => {
    const b = bytes.slice(), at = Buffer.from(b).indexOf(Buffer.from(key)) + key.length;
    const dv = new DataView(b.buffer);
    assert.is(dv.getUint32(at, true), 4, `${key} is a UINT32`);
    dv.setUint32(at + 4, v, true);
    return GGUFModelSource.open(async () => bytesSource('patched.gguf', b));
  };
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await withU32('gpt2.attention.head_count', 0), opts))(), 'GGUF', /gpt2\.attention\.head_count must be a positive integer, got 0/);
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await withU32('gpt2.attention.head_count', 3), opts))(), 'GGUF', /gpt2\.embedding_length \(64\) must be a multiple of gpt2\.attention\.head_count \(3\)/);
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await withU32('gpt2.context_length', 0), opts))(), 'GGUF', /gpt2\.context_length must be a positive integer/);
  // a block count past the file's layers: the first missing tensor, at once (not a spec per layer of 2^31 - 1 first)
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await withU32('gpt2.block_count', 2147483647), opts))(), 'WEIGHTS',
    /patched\.gguf: missing tensor h\.2\.ln_1\.weight: the config has n_layer=2147483647, but the file has no tensor of layer h\.2 \(it has h\.0 to h\.1\)/);
  // a tensor literally named with the Hugging Face name of another (blk.0.ffn_down.bias reads as h.0.mlp.c_proj.bias)
  // would silently replace it; renamed in place, so blk.1.ffn_norm.bias (same length, same shape) is the impostor
  await assert_rejects((async () => GPT2LMHeadModel.from_pretrained(await patched('blk.1.ffn_norm.bias', 'h.0.mlp.c_proj.bias'), opts))(), 'GGUF',
    /patched\.gguf: tensors (blk\.0\.ffn_down\.bias and h\.0\.mlp\.c_proj\.bias|h\.0\.mlp\.c_proj\.bias and blk\.0\.ffn_down\.bias) both map to the Hugging Face tensor h\.0\.mlp\.c_proj\.bias/);
});

test('a directory with no config.json and one .gguf file loads that file (model and tokenizer); with two, an error listing both', async () => {
  const dir = mkdtempSync(join(tmp, 'gguf-only-'));
  const file = join(dir, 'tiny.Q8_0.gguf');
  await save_gguf(modelDir('gpt2-tiny'), file, { dtype: 'q8_0' });
  writeFileSync(join(dir, 'README.md'), 'a llama.cpp-style model folder\n');
  mkdirSync(join(dir, 'not-a-file.gguf')); // a directory named like one is not a GGUF file
  const byPath = await logitsOf(file), byDir = await logitsOf(dir);
  assert.is(byDir.dtype, byPath.dtype);
  sameBits(byDir.logits, byPath.logits, 'logits from the directory');
  const tokDir = await AutoTokenizer.from_pretrained(dir), tokFile = await AutoTokenizer.from_pretrained(file);
  assert.equal(tokDir.encode('Hello GGUF world'), tokFile.encode('Hello GGUF world'));
  // with config.json, the directory is a Hugging Face checkpoint as before: its missing weights are the error
  writeFileSync(join(dir, 'config.json'), readFileSync(join(modelDir('gpt2-tiny'), 'config.json')));
  await assert_rejects(GPT2LMHeadModel.from_pretrained(dir, opts), 'WEIGHTS', /model\.safetensors/);
  rmSync(join(dir, 'config.json'));
  // two GGUF files: which one is meant is the caller's to say
  writeFileSync(join(dir, 'other.gguf'), new Uint8Array(readFileSync(file)));
  const listed = /has no config\.json and 2 GGUF files \(other\.gguf, tiny\.Q8_0\.gguf\); pass one file's path \(e\.g\. ".*other\.gguf"\), or the directory with gguf_file/;
  await assert_rejects(GPT2LMHeadModel.from_pretrained(dir, opts), 'OPTION', listed);
  await assert_rejects(AutoTokenizer.from_pretrained(dir), 'OPTION', listed);
  // ... as gguf_file does
  sameBits((await logitsOf(dir, { gguf_file: 'tiny.Q8_0.gguf' })).logits, byPath.logits, 'gguf_file in the directory');
});

test('from_pretrained: a Hub repo with gguf_file goes through the cache (then offline), and a .gguf URL reads by ranges', async () => {
  const file = join(tmp, 'hub-src.gguf');
  await save_gguf(modelDir('gpt2-tiny'), file, { dtype: 'f32' });
  const bytes = new Uint8Array(readFileSync(file));
  const commit = 'c0ffee' + '0'.repeat(34);
  const server = await startServer((req, res, path) => { // any revision, as the Hub
    if (!/^\/test-org\/tiny-GGUF\/resolve\/[^/]+\/tiny-f32\.gguf$/.test(path)) { res.writeHead(404, { 'x-error-code': 'EntryNotFound' }); res.end(); return; }
    sendBytes(req, res, bytes, { etag: '"v1"', headers: { 'x-repo-commit': commit } });
  });
  const cache = mkdtempSync(join(tmp, 'hub-cache-'));
  try {
    const hubOpts = { ...opts, endpoint: server.url, cache_dir: cache, gguf_file: 'tiny-f32.gguf' };
    const a = await GPT2LMHeadModel.from_pretrained('test-org/tiny-GGUF', hubOpts);
    const want = (await a.forward({ input_ids: ids })).logits!.data as Float32Array;
    await a.dispose();
    const cached = join(cache, 'models--test-org--tiny-GGUF', 'snapshots', commit, 'tiny-f32.gguf');
    assert.equal(new Uint8Array(readFileSync(cached)), bytes);
    const gets = server.requests.filter((r) => r.method === 'GET').length;
    const b = await GPT2LMHeadModel.from_pretrained('test-org/tiny-GGUF', { ...hubOpts, local_files_only: true });
    sameBits((await b.forward({ input_ids: ids })).logits!.data as Float32Array, want, 'offline from the cache');
    await b.dispose();
    assert.is(server.requests.filter((r) => r.method === 'GET').length, gets, 'offline load made requests');
    await assert_rejects(GPT2LMHeadModel.from_pretrained('test-org/tiny-GGUF', { ...hubOpts, gguf_file: 'other.gguf' }), 'DOWNLOAD', /other\.gguf/);
    const c = await GPT2LMHeadModel.from_pretrained(`${server.url}/test-org/tiny-GGUF/resolve/main/tiny-f32.gguf`, opts);
    sameBits((await c.forward({ input_ids: ids })).logits!.data as Float32Array, want, 'from the URL');
    await c.dispose();
    assert.ok(server.requests.some((r) => typeof r.headers.range === 'string'), 'the URL source used range requests');
  } finally { await server.close(); }
});

async function assert_rejects(p: Promise<unknown>, code: string, msg: RegExp) {
  try { await p; } catch (e) {
    assert.instance(e, GPT2WasmError);
    assert.is((e as GPT2WasmError).code, code, (e as Error).message);
    assert.match((e as Error).message, msg);
    return;
  }
  assert.unreachable(`expected a ${code} error`);
}

test('CLI: convert writes a GGUF that info describes and generate runs', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], { encoding: 'utf8', cwd: repoRoot });
  const out = join(tmp, 'cli-q8.gguf');
  const c = cli(['convert', modelDir('gpt2-tiny'), '--dtype', 'q8_0', '--keep', 'lm_head=f16', '--out', out, '--json']);
  assert.is(c.status, 0, c.stderr);
  const res = JSON.parse(c.stdout);
  // 2 layers x (8 vectors + 4 matrices) + ln_f (2) + wpe (F32) + wte (the tied head, kept at F16) and its copy
  // as output.weight (llama.cpp requires it)
  assert.equal(res.tensor_types, { F32: 19, F16: 2, Q8_0: 8 });
  const i = cli(['info', out, '--json']);
  assert.is(i.status, 0, i.stderr);
  const info = JSON.parse(i.stdout);
  assert.is(info.metadata['general.architecture'], 'gpt2');
  assert.is(info.metadata['general.file_type'], 7);
  assert.is(info.metadata['general.quantization_version'], 2);
  assert.is(info.tensors.find((t: any) => t.name === 'blk.0.attn_qkv.weight').type, 'Q8_0');
  assert.equal(info.tensors.find((t: any) => t.name === 'blk.0.attn_qkv.weight').dims, [64, 192]);
  const g = readCase('lm_greedy');
  const f32 = join(tmp, 'cli-f32.gguf');
  assert.is(cli(['convert', modelDir('gpt2-tiny'), '--dtype', 'f32', '--out', f32]).status, 0);
  const gen = cli(['generate', g.text, '--model', f32, '--greedy', '-n', String(g.max_new_tokens), '--json', '-t', '1']);
  assert.is(gen.status, 0, gen.stderr);
  assert.equal(JSON.parse(gen.stdout).ids, g.expected_ids);
  const bad = cli(['convert', modelDir('gpt2-tiny'), '--dtype', 'q3', '--out', join(tmp, 'x.gguf')]);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /dtype must be one of f32, f16, q8_0, q4_0/);
});

// ------------------------------------------------------------------------------------------------ convert: inputs and the output path

/** A copy of a fixture model directory with a tokenizer cut to its vocabulary (the classification fixtures have none). */
function modelCopy(name: string, into = mkdtempSync(join(tmp, `${name}-`))): string {
  for (const f of readdirSync(modelDir(name))) writeFileSync(join(into, f), readFileSync(join(modelDir(name), f)));
  if (!existsSync(join(into, 'vocab.json'))) {
    const V = JSON.parse(readFileSync(join(into, 'config.json'), 'utf8')).vocab_size;
    const vocab = Object.fromEntries(Object.entries<number>(JSON.parse(readFileSync(join(modelDir('gpt2-tiny'), 'vocab.json'), 'utf8'))).filter(([, id]) => id < V));
    const merges = readFileSync(join(modelDir('gpt2-tiny'), 'merges.txt'), 'utf8').split('\n').slice(1).filter((l) => {
      const [a, b] = l.split(' ');
      return l && a in vocab && b in vocab && a + b in vocab;
    });
    writeFileSync(join(into, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(into, 'merges.txt'), ['#version: 0.2', ...merges].join('\n') + '\n');
  }
  return into;
}

const leftovers = (dir: string, prefix: string) => readdirSync(dir).filter((f) => f.startsWith(prefix) && f !== prefix);

test('convert refuses classification checkpoints (score / classifier head) instead of writing an LM without the head', async () => {
  for (const [name, head] of [['gpt2-tiny-seqcls', /GPT2ForSequenceClassification head \(score\.weight/], ['gpt2-tiny-tokcls', /GPT2ForTokenClassification head \(classifier\.(weight, classifier\.bias|bias, classifier\.weight)\)/]] as const) {
    const dir = modelCopy(name), out = join(tmp, `${name}.gguf`);
    await assert_rejects(save_gguf(dir, out, { dtype: 'f32' }), 'OPTION', /cannot be written as a gpt2 GGUF: .*head/);
    await assert_rejects(save_gguf(dir, out, { dtype: 'f32' }), 'OPTION', head);
    assert.not.ok(existsSync(out), `${name}: no file written`);
    assert.equal(leftovers(tmp, `${name}.gguf`), []);
  }
});

test('convert checks --out first: a directory, symlink or FIFO is refused (not replaced), as is a missing parent or an empty path', async () => {
  const dir = mkdtempSync(join(tmp, 'outpath-'));
  const progress: string[] = [];
  const onProgress = (p: { tensor: string }) => { progress.push(p.tensor); };
  // a directory
  const d = join(dir, 'adir.gguf');
  mkdirSync(d);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), d, { onProgress }), 'OPTION', new RegExp(`output path ".*adir\\.gguf" is a directory`));
  assert.ok(statSync(d).isDirectory());
  // a symlink (to a file that must stay as it is)
  const target = join(dir, 'target.txt'), link = join(dir, 'link.gguf');
  writeFileSync(target, 'keep me');
  symlinkSync(target, link);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), link, { onProgress }), 'OPTION', /output path ".*link\.gguf" is a symbolic link/);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.is(readFileSync(target, 'utf8'), 'keep me');
  // a FIFO
  const fifo = join(dir, 'fifo.gguf');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), fifo, { onProgress }), 'OPTION', /output path ".*fifo\.gguf" is a FIFO/);
  assert.ok(lstatSync(fifo).isFIFO());
  // a device
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), '/dev/null', { onProgress }), 'OPTION', /output path "\/dev\/null" is a device/);
  // a missing parent directory
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), join(dir, 'nope', 'x.gguf'), { onProgress }), 'OPTION', /output path ".*nope\/x\.gguf": cannot write into ".*nope": no such file or directory \(ENOENT\)/);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), join(dir, 'newdir') + '/', { onProgress }), 'OPTION', /output path ".*newdir\/" ends with a path separator/);
  // empty / not a string
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), ''), 'OPTION', /output path must be a file name, got ""/);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), undefined as any), 'OPTION', /output path must be a file name/);
  assert.equal(progress, [], 'refused before any tensor was converted');
  assert.equal(readdirSync(dir).sort(), ['adir.gguf', 'fifo.gguf', 'link.gguf', 'target.txt']);
  // the CLI names --out
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'convert', modelDir('gpt2-tiny'), '--out', d], { encoding: 'utf8', cwd: repoRoot });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /--out ".*adir\.gguf" is a directory/);
});

test('convert writes through a temp file of its own: two converts to one --out do not mix, a failed rename or write leaves nothing, errors name --out', async () => {
  const dir = mkdtempSync(join(tmp, 'tmpfile-'));
  const out = join(dir, 'same.gguf');
  // the temp file is unique to the run (pid, random) and created next to the output
  let seen: string[] = [];
  await save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'f32', onProgress: () => { seen = readdirSync(dir); } });
  assert.is(seen.length, 1);
  assert.match(seen[0], new RegExp(`^same\\.gguf\\.${process.pid}\\.[a-z0-9]+\\.incomplete$`));
  // two at once: each writes its own temp file, and the file left is whole (one of the two)
  const [a, b] = await Promise.all([save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'f32' }), save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'q8_0' })]);
  const size = statSync(out).size;
  assert.ok(size === a.bytes || size === b.bytes, `file of ${size} bytes, neither ${a.bytes} nor ${b.bytes}`);
  const g = await GGUFFile.open(bytesSource(out, new Uint8Array(readFileSync(out))));
  assert.is(g.tensors.size, a.tensors.length);
  const model = await GPT2LMHeadModel.from_pretrained(out, opts);
  await model.dispose();
  assert.equal(readdirSync(dir), ['same.gguf']);

  // a failed rename (e.g. EACCES on the directory) and a failed write (ENOSPC): typed errors naming the output
  // path, not the temp file, and no temp file left
  const { syncBuiltinESMExports } = await import('node:module');
  const fsp = (await import('node:fs/promises')).default as any;
  const rename = fsp.rename;
  fsp.rename = async () => { throw Object.assign(new Error(`EACCES: permission denied, rename '${out}.x.incomplete' -> '${out}'`), { code: 'EACCES', syscall: 'rename' }); };
  syncBuiltinESMExports();
  try {
    const err = await save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'f32' }).then(() => null, (e) => e);
    assert.instance(err, GPT2WasmError);
    assert.is(err.code, 'OPTION', err.message);
    assert.match(err.message, /output path ".*same\.gguf": cannot rename the finished file onto it: permission denied \(EACCES\)/);
    assert.not.match(err.message, /incomplete/);
  } finally { fsp.rename = rename; syncBuiltinESMExports(); }
  assert.equal(readdirSync(dir), ['same.gguf']);
  const probe = await fsp.open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe), write = proto.write;
  await probe.close(); rmSync(join(dir, 'probe'));
  let calls = 0;
  proto.write = function (this: unknown, ...args: unknown[]) {
    if (++calls > 3) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' }));
    return write.apply(this, args);
  };
  try {
    const err = await save_gguf(modelDir('gpt2-tiny'), join(dir, 'full.gguf'), { dtype: 'f32' }).then(() => null, (e) => e);
    assert.instance(err, GPT2WasmError);
    assert.is(err.code, 'RUNTIME', err.message);
    assert.match(err.message, /output path ".*full\.gguf": cannot write: no space left on device \(ENOSPC\)/);
  } finally { proto.write = write; }
  assert.equal(readdirSync(dir), ['same.gguf']);
});

test('convert stops on its signal (library) and on SIGINT (CLI, exit 130): the partial file is removed and --out left as it was', async () => {
  const dir = mkdtempSync(join(tmp, 'abort-'));
  const out = join(dir, 'x.gguf');
  const ac = new AbortController();
  const err = await save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'q8_0', signal: ac.signal, onProgress: () => ac.abort(new Error('stop')) }).then(() => null, (e) => e);
  assert.is(err, ac.signal.reason, 'rejects with the reason');
  assert.equal(readdirSync(dir), []);
  const bad = await save_gguf(modelDir('gpt2-tiny'), out, { signal: 'no' as any }).then(() => null, (e) => e);
  assert.instance(bad, GPT2WasmError);

  // the CLI on a checkpoint large enough to be still writing when the first tensor's progress line arrives
  const src = join(dir, 'src');
  writeRandomGPT2(src, { n_embd: 256, n_layer: 4, n_head: 4, n_positions: 256, vocab_size: 50257 });
  for (const f of ['vocab.json', 'merges.txt']) writeFileSync(join(src, f), readFileSync(join(modelDir('gpt2-trained'), f)));
  const { spawn } = await import('node:child_process');
  /** Runs convert and sends `signals` once its first tensor is written; its exit code and stderr. */
  const interrupted = async (signals: NodeJS.Signals[]) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'convert', src, '--out', out, '--dtype', 'q8_0', '--verbose'], { cwd: repoRoot });
    let stderr = '', sent = false;
    child.stderr.on('data', (d) => { stderr += d; if (!sent && /\] 1\//.test(stderr)) { sent = true; for (const s of signals) child.kill(s); } });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stderr };
  };
  const once = await interrupted(['SIGINT']);
  assert.is(once.code, 130, once.stderr);
  assert.match(once.stderr, /convert stopped by SIGINT: .*x\.gguf was not written/);
  assert.equal(readdirSync(dir), ['src'], 'no temp file and no output');
  // a second signal exits at once: the exit still takes the temp file
  const twice = await interrupted(['SIGTERM', 'SIGTERM']);
  assert.is(twice.code, 143, twice.stderr);
  assert.equal(readdirSync(dir), ['src'], 'no temp file and no output');
});

test('convert --keep: names are validated (no prototype keys), two names of one tensor are refused, output.weight is the head', async () => {
  const out = join(tmp, 'keep.gguf');
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), out, { keep: JSON.parse('{"__proto__": "q8_0"}') }), 'OPTION', /keep: no weight matrix named "__proto__"/);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), out, { keep: { constructor: 'q8_0' } as any }), 'OPTION', /keep: no weight matrix named "constructor"/);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), out, { keep: { wte: 'q8_0', token_embd: 'f16' } }), 'OPTION', /keep: "wte" and "token_embd" name the same tensor \(wte\.weight/);
  // gpt2-tiny's head is tied: lm_head / output / output.weight are the embedding
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), out, { keep: { wte: 'q8_0', 'output.weight': 'f16' } }), 'OPTION', /"wte" and "output\.weight" name the same tensor/);
  await assert_rejects(save_gguf(modelDir('gpt2-tiny'), out, { keep: 'wte=q8_0' as any }), 'OPTION', /keep must be an object/);
  const r = await save_gguf(modelDir('gpt2-tiny'), out, { dtype: 'f32', keep: { 'output.weight': 'q8_0' } });
  assert.is(r.tensors.find((t) => t.name === 'token_embd.weight')!.type, 'Q8_0');
  assert.is(r.tensors.find((t) => t.name === 'output.weight')!.type, 'Q8_0');
  assert.is(r.tensors.find((t) => t.name === 'blk.0.attn_qkv.weight')!.type, 'F32');
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], { encoding: 'utf8', cwd: repoRoot });
  const p = cli(['convert', modelDir('gpt2-tiny'), '--keep', '__proto__=q8_0', '--out', out]);
  assert.is(p.status, 2, p.stderr);
  assert.match(p.stderr, /no weight matrix named "__proto__"/);
  const d = cli(['convert', modelDir('gpt2-tiny'), '--keep', 'wte=q8_0,wte=f16', '--out', out]);
  assert.is(d.status, 2, d.stderr);
  assert.match(d.stderr, /--keep names "wte" twice: wte=q8_0 and wte=f16/);
});

test('convert: GGUF → GGUF keeps general.name; --out over one of the source\'s own files is refused', async () => {
  const first = join(tmp, 'named.gguf'), again = join(tmp, 'named-again.gguf'), renamed = join(tmp, 'named-renamed.gguf');
  await save_gguf(modelDir('gpt2-tiny'), first, { dtype: 'f32', name: 'my-tiny' });
  await save_gguf(first, again, { dtype: 'f16' });
  await save_gguf(first, renamed, { dtype: 'f16', name: 'other' });
  const nameOf = async (f: string) => (await GGUFFile.open(bytesSource(f, new Uint8Array(readFileSync(f))))).get('general.name');
  assert.is(await nameOf(again), 'my-tiny');
  assert.is(await nameOf(renamed), 'other');
  const dir = modelCopy('gpt2-tiny');
  for (const f of ['model.safetensors', 'config.json', 'vocab.json']) {
    const before = readFileSync(join(dir, f));
    await assert_rejects(save_gguf(dir, join(dir, f), { dtype: 'f32' }), 'OPTION', new RegExp(`output path ".*${f.replace('.', '\\.')}" is the source's own file`));
    assert.ok(readFileSync(join(dir, f)).equals(before), `${f} unchanged`);
  }
  assert.equal(leftovers(dir, 'model.safetensors'), []);
  // a GGUF rewritten in place is allowed (the temp file is renamed over it when complete)
  const inPlace = join(tmp, 'in-place.gguf');
  await save_gguf(modelDir('gpt2-tiny'), inPlace, { dtype: 'f32' });
  const r = await save_gguf(inPlace, inPlace, { dtype: 'q8_0' });
  assert.is(statSync(inPlace).size, r.bytes);
});

// ------------------------------------------------------------------------------------------------ fuzz

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); })]).finally(() => clearTimeout(timer));
}

test('fuzz: corrupted GGUF files read consistently or fail with typed errors, and leave no file open', async () => {
  // a small model with a small byte-level vocabulary, so each variant parses quickly
  const V = 40;
  const files = randomCheckpoint({ n_embd: 32, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: V }, 7);
  const vocab: Record<string, number> = {};
  for (let i = 0; i < V - 1; i++) vocab[String.fromCharCode(0x21 + i)] = i;
  vocab['<|endoftext|>'] = V - 1;
  const src = memorySource({ ...files, 'vocab.json': JSON.stringify(vocab), 'merges.txt': '#version: 0.2\n! "\n# $\n' }, 'fuzz-model');
  const path = join(tmp, 'fuzz-base.gguf');
  await save_gguf(src, path, { dtype: 'q8_0' });
  const orig = new Uint8Array(readFileSync(path));
  const g0 = await GGUFFile.open(bytesSource('base', orig));
  const header = g0.dataOffset, table = [...g0.tensors.values()].reduce((s, t) => s + 8 + t.name.length + 4 + 8 * t.dims.length + 12, 0);
  let s = 0x9e3779b9;
  const rand = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
  const ri = (n: number) => Math.floor(rand() * n);
  const variants: { kind: string; bytes: Uint8Array; mustFail?: boolean; mustRead?: boolean }[] = [];
  for (let i = 0; i < 60; i++) variants.push({ kind: 'truncation', bytes: orig.subarray(0, ri(orig.length - 1)), mustFail: true });
  const flips = (kind: string, lo: number, hi: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const b = orig.slice();
      for (let k = 1 + ri(3); k > 0; k--) b[lo + ri(hi - lo)] = ri(4) === 0 ? 0xff : ri(256);
      variants.push({ kind, bytes: b });
    }
  };
  flips('magic/version/counts', 0, 24, 40);
  flips('metadata', 24, header - table, 80);
  flips('tensor table (names, dims, types, offsets)', header - table - 8, header, 120);
  for (let i = 0; i < 20; i++) {
    // a huge count or length at a u64 field in the table
    const b = orig.slice(), at = header - table + 8 * ri(Math.floor(table / 8));
    new DataView(b.buffer).setBigUint64(Math.min(at, b.length - 8), [2n ** 63n, 2n ** 64n - 1n, 2n ** 40n, 123456789n][ri(4)], true);
    variants.push({ kind: 'huge u64', bytes: b });
  }
  const f32s = [...g0.tensors.values()].filter((t) => t.typeName === 'F32');
  for (let i = 0; i < 20; i++) {
    // benign: the low mantissa byte of an f32 element changes a weight, never into NaN or infinity
    const b = orig.slice(), t = f32s[ri(f32s.length)];
    b[t.byteOffset + 4 * ri(t.count)] ^= 1 + ri(255);
    variants.push({ kind: 'weight mantissa', bytes: b, mustRead: true });
  }
  const mk = (bytes: Uint8Array) => GGUFModelSource.open(async () => bytesSource('fuzz.gguf', bytes));
  let ok = 0, failed = 0, loaded = 0;
  for (const [i, v] of variants.entries()) {
    const what = `variant ${i} (${v.kind})`;
    try {
      await withTimeout((async () => {
        // the reader side for every variant: header, config, tokenizer, weight plan, every tensor's data
        const source = await mk(v.bytes);
        for (const t of source.gguf.tensors.values()) {
          assert.ok(t.byteOffset % source.gguf.alignment === 0 && t.byteOffset + t.byteLength <= v.bytes.length, what);
        }
        const cfg = parseGPT2Config(await source.readJson('config.json'));
        await AutoTokenizer.from_pretrained(source);
        const reader = await openTensorReader(source);
        try {
          const plan = planWeights(cfg, reader, 'lm', 'auto');
          for (const [key, t] of plan.byKey) {
            let n = 0;
            for await (const c of reader.chunks(t.name, 1 << 12)) n += c.bytes.byteLength;
            assert.is(n, t.byteLength, `${what}: ${key}`);
          }
        } finally { await reader.close(); }
        // and a full load and forward for the first variants that read
        if (loaded++ < 12) {
          const m = await GPT2LMHeadModel.from_pretrained(source, opts);
          try {
            const out = await m.forward({ input_ids: [[1, 2, 3]] });
            assert.is(out.logits!.dims[2], m.config.vocab_size, what);
          } finally { await m.dispose(); }
        }
      })(), 5000, what);
      assert.not.ok(v.mustFail, `${what} should have failed`);
      ok++;
    } catch (e) {
      if (!(e instanceof GPT2WasmError)) throw new Error(`${what}: expected a GPT2WasmError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack}`);
      if (v.mustRead) throw e;
      if (v.kind === 'truncation') assert.instance(e, GGUFError, `${what}: ${e.message}`);
      failed++;
      if (process.env.FUZZ_DEBUG) console.log(what, e.code, e.message.slice(0, 160));
    }
  }
  if (process.env.FUZZ_DEBUG) console.log(`gguf fuzz: ${variants.length} variants, ${ok} read, ${failed} rejected`);
  assert.ok(failed > 150 && ok >= 25, `ok ${ok}, failed ${failed}`);

  // the same through real files: no handle stays open after failures or successes
  const handles = () => (process as any).getActiveResourcesInfo().filter((r: string) => r === 'FileHandle').length;
  const before = handles();
  for (let i = 0; i < 12; i++) {
    const p = join(tmp, `fuzz-${i}.gguf`);
    writeFileSync(p, variants[(i * 7) % variants.length].bytes);
    try { const m = await GPT2LMHeadModel.from_pretrained(p, opts); await m.dispose(); } catch (e) { assert.instance(e, GPT2WasmError); }
  }
  assert.is(handles(), before, 'file handles left open');
});

test.run();
