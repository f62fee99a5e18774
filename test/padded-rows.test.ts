// A left-padded row computes the bits of its unpadded run (assembly/attention.ts: key blocks start at the row's
// first visible key, in blocks of a fixed size whatever the padded length or the prefill chunk), so batching
// prompts of different lengths changes no logit. Before, the blocks followed the padded length: ~1e-6 apart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel } from '../src/index.js';
import { Random } from '../src/generation/random.js';
import { modelDir } from './helpers/fixtures.js';

for (const threads of [1, 2]) test(`padded rows equal their solo runs bit for bit (threads ${threads}, prefill chunks included)`, async () => {
  const m = await GPT2LMHeadModel.from_pretrained(modelDir('gpt2-trained'), { threads, prefill_chunk: 64 });
  try {
    const V = m.config.vocab_size, rnd = new Random(11 + threads);
    const pick = (k: number) => Math.floor(rnd.next() * k);
    for (let c = 0; c < 6; c++) {
      const n = 1 + pick(150), p = 1 + pick(90);
      const ids = Array.from({ length: n }, () => pick(V));
      const other = Array.from({ length: n + p }, () => pick(V));
      const solo = (await m.forward({ input_ids: [ids] })).logits.data as Float32Array;
      const out = (await m.forward({
        input_ids: [[...Array(p).fill(50256), ...ids], other],
        attention_mask: [[...Array(p).fill(0), ...Array(n).fill(1)], Array(n + p).fill(1)],
        position_ids: [[...Array(p).fill(0), ...ids.map((_, i) => i)], other.map((_, i) => i)],
      })).logits.data as Float32Array;
      let diff = 0;
      for (let i = 0; i < n * V; i++) if (!Object.is(solo[i], out[p * V + i])) diff++;
      assert.is(diff, 0, `n ${n}, padding ${p}: ${diff} of ${n * V} logits differ from the solo run`);
    }
  } finally { await m.dispose(); }
});

test.run();
