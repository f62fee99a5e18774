// The lean load path (issue 8.4): quantized blocks are made while the checkpoint streams, and equal quantizing
// each whole row of the matrix; a load commits the weights plus the first call's planned workspace, with no
// staging copy of any matrix left behind (wasm memory never shrinks); generate() adds a KV cache of the call's
// own tokens, not of n_positions. Bounds come from the loader's and the workspace's plans.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel } from '../src/model/gpt2.ts';
import { memorySource } from '../src/io/source.ts';
import { WeightsError } from '../src/errors.ts';
import { randomCheckpoint } from './helpers/checkpoint.ts';
import { PAGE, RESERVED_LOW_BYTES } from '../src/runtime/wasm.ts';
import { Q4_0_BYTES, Q8_0_BYTES, quantizeQ4_0, quantizeQ8_0 } from '../src/runtime/quant.ts';
import { fixturesDir } from './helpers/fixtures.ts';
import { parseF32Safetensors } from './runtimes/check.ts';

const tiny = join(fixturesDir, 'models', 'gpt2-tiny');

for (const [dtype, threads] of [['q4', 1], ['q8', 1], ['q4', 2], ['q8', 2]] as const) {
  test(`lean load: ${dtype} blocks streamed from gpt2-tiny (${threads} thread${threads > 1 ? 's' : ''}) equal each whole row quantized (conv1d and the embedding table)`, async () => {
    const src = parseF32Safetensors(readFileSync(join(tiny, 'model.safetensors')));
    const m = await GPT2LMHeadModel.from_pretrained(tiny, { dtype: { default: dtype, wte: dtype }, threads });
    try {
      const quantize = dtype === 'q8' ? quantizeQ8_0 : quantizeQ4_0, blockBytes = dtype === 'q8' ? Q8_0_BYTES : Q4_0_BYTES;
      const cases = [
        { name: 'wte.weight', w: m.weights.wte, conv1d: false },
        { name: 'h.0.mlp.c_fc.weight', w: m.weights.layers[0].fc, conv1d: true },
        { name: 'h.1.mlp.c_proj.weight', w: m.weights.layers[1].mlp_proj, conv1d: true },
      ];
      for (const { name, w, conv1d } of cases) {
        const t = src[name] ?? src['transformer.' + name];
        const { N, K } = w;
        const rowBytes = (K / 32) * blockBytes;
        const row = new Float32Array(K), want = new Uint8Array(rowBytes);
        const got = new Uint8Array(m.backend.arena.memory.buffer, w.ptr, N * rowBytes);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) row[k] = conv1d ? t.data[k * N + n] : t.data[n * K + k]; // [K, N] or [N, K] in the file
          quantize(row, want);
          const at = got.subarray(n * rowBytes, (n + 1) * rowBytes);
          if (!want.every((b, i) => b === at[i])) assert.unreachable(`${name} (${dtype}) row ${n}: blocks differ from the row quantized whole`);
        }
      }
    } finally {
      await m.dispose();
    }
  });
}

// The f16 scale of a block quantized on load overflows when its values are too large: an error naming the tensor,
// the output row and the columns of the block, in the embedding table ([N, K] rows) and a conv1d weight ([K, N]).
for (const dtype of ['q8', 'q4'] as const) {
  test(`lean load: a ${dtype} block whose f16 scale overflows is an error naming the tensor, row and columns`, async () => {
    const shape = { n_embd: 64, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 50 };
    for (const { name, at, want } of [
      { name: 'wte.weight', at: 3 * 64 + 40, want: /tensor wte\.weight row 3 columns 32\.\.63: values too large/ }, // [V, E]: row 3, input 40
      { name: 'h.0.mlp.c_fc.weight', at: 40 * 256 + 5, want: /tensor h\.0\.mlp\.c_fc\.weight row 5 columns 32\.\.63: values too large/ }, // [E, 4E]: input 40 of output 5
    ]) {
      const files = randomCheckpoint(shape, 3);
      const st = files['model.safetensors'] as Uint8Array;
      const headerLen = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + headerLen)));
      const key = Object.keys(header).find((k) => k === name || k === 'transformer.' + name)!;
      new DataView(st.buffer, st.byteOffset + 8 + headerLen + header[key].data_offsets[0] + at * 4).setFloat32(0, 1e7, true); // 1e7 / 127 and 1e7 / 8 > 65504
      const err = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'big'), { dtype: { default: dtype, wte: dtype }, threads: 1 }).then(() => null, (e) => e);
      assert.instance(err, WeightsError, `${name}: ${err}`);
      assert.match(err.message, want);
      // the same weights load as fp32
      const m = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'big'), { dtype: 'fp32', threads: 1 });
      await m.dispose();
      // a NaN there is named with its element (quantize_weights flags it; the loader finds it in the staged values)
      new DataView(st.buffer, st.byteOffset + 8 + headerLen + header[key].data_offsets[0] + at * 4).setFloat32(0, NaN, true);
      const nan = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'nan'), { dtype: { default: dtype, wte: dtype }, threads: 1 }).then(() => null, (e) => e);
      assert.instance(nan, WeightsError, `${name}: ${nan}`);
      assert.match(nan.message, new RegExp(`tensor ${name.replace(/\./g, '\\.')} contains NaN at element ${at} `));
    }
  });
}

for (const dtype of ['q4', 'q8', 'fp16', 'fp32'] as const) {
  test(`memory plan: loading gpt2-tiny as ${dtype} commits weights + one workspace, and generate() a cache of its own tokens`, async () => {
    const m = await GPT2LMHeadModel.from_pretrained(tiny, { dtype, threads: 1 });
    try {
      const committed = () => m.backend.arena.memory.buffer.byteLength;
      const ws = m.workspaceBytes(1, m.config.n_positions);
      const afterLoad = RESERVED_LOW_BYTES + m.weights.bytes + ws;
      assert.ok(committed() <= afterLoad + PAGE, `after load: ${committed()} bytes committed, plan ${afterLoad} (weights ${m.weights.bytes} + workspace ${ws})`);
      const prompt = [464, 2068, 7586, 21831, 18045, 625, 262, 16931];
      // a short call, then a longer one: each commits at most weights + workspace + its own cache
      for (const max_new_tokens of [8, 40]) {
        const out = await m.generate({ input_ids: [prompt], max_new_tokens });
        assert.is(out.dims[1], prompt.length + max_new_tokens);
        // one cache of prompt + new tokens (f32 K and V per layer, and its mask), the workspace for that capacity
        const S = prompt.length + max_new_tokens, c = m.config;
        const cacheBytes = c.n_layer * 2 * S * c.n_embd * 4 + S * 4 + (2 * c.n_layer + 1) * 64;
        const afterGenerate = RESERVED_LOW_BYTES + m.weights.bytes + Math.max(ws, m.workspaceBytes(1, S)) + cacheBytes;
        assert.ok(committed() <= afterGenerate + PAGE, `after generate (${S} tokens): ${committed()} bytes committed, plan ${afterGenerate}`);
      }
    } finally {
      await m.dispose();
    }
  });
}

test.run();
