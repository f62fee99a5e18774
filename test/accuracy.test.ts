// Accuracy of the reduced-precision formats against our fp32 path (bench/accuracy.ts does the measuring):
// q8 must agree with fp32 on the top-1 token at >= 99% of positions of a fixture model, over >= 200 positions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareLogits, measureAccuracy, type AccuracyRow } from '../bench/accuracy.js';
import { modelDir } from './helpers/fixtures.js';

let rows: AccuracyRow[] | null = null;
async function tinyRows(): Promise<AccuracyRow[]> {
  // 4 sequences × 128 tokens (n_positions of the fixture) = 512 positions
  rows ??= await measureAccuracy({ dir: modelDir('gpt2-tiny'), label: 'gpt2-tiny', sequences: 4, len: 128, threads: 1 });
  return rows;
}
const show = (r: AccuracyRow) => `top-1 ${(100 * r.top1_agreement).toFixed(2)}% over ${r.positions} positions, max |err| ${r.max_abs_logit_err.toExponential(2)}, mean KL ${r.mean_kl.toExponential(2)}`;

test('compareLogits: identical logits agree everywhere with zero error and zero KL', () => {
  const V = 5;
  const a = [Float32Array.from([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])];
  const r = compareLogits(a, [a[0].slice()], V);
  assert.is(r.positions, 2);
  assert.is(r.top1_agreement, 1);
  assert.is(r.max_abs_logit_err, 0);
  assert.ok(Math.abs(r.mean_kl) < 1e-12);
});

test('compareLogits: counts top-1 flips, the largest error and KL(p || q)', () => {
  const V = 2;
  // position 0: p = softmax(0, 0) = (.5, .5), q = softmax(0, ln 3) = (.25, .75): KL = .5 ln 2 + .5 ln(2/3); top-1 ties resolve to index 0 vs 1
  // position 1: identical
  const p = [Float32Array.from([0, 0, 1, 0])], q = [Float32Array.from([0, Math.log(3), 1, 0])];
  const r = compareLogits(p, q, V);
  assert.is(r.positions, 2);
  assert.is(r.top1_agreement, 0.5);
  assert.ok(Math.abs(r.max_abs_logit_err - Math.log(3)) < 1e-6);
  const kl0 = 0.5 * Math.log(2) + 0.5 * Math.log(2 / 3);
  assert.ok(Math.abs(r.mean_kl - kl0 / 2) < 1e-6, `mean KL ${r.mean_kl}, want ${kl0 / 2}`);
});

test('fp16 weights stay close to fp32 on gpt2-tiny', async () => {
  const r = (await tinyRows()).find((x) => x.dtype === 'fp16')!;
  assert.ok(r.positions >= 200);
  assert.ok(r.max_abs_logit_err < 2e-2, `fp16: ${show(r)}`);
  assert.ok(r.mean_kl < 1e-6, `fp16: ${show(r)}`);
  assert.ok(r.top1_agreement >= 0.98, `fp16: ${show(r)}`);
});

test('q8 stays in a sane error range on gpt2-tiny (catches broken scales or blocks)', async () => {
  const r = (await tinyRows()).find((x) => x.dtype === 'q8')!;
  assert.ok(r.max_abs_logit_err < 0.5, `q8: ${show(r)}`);
  assert.ok(r.mean_kl < 1e-3, `q8: ${show(r)}`);
});

test('q8 top-1 agreement with fp32 is >= 99% on gpt2-tiny over >= 200 positions', async () => {
  const r = (await tinyRows()).find((x) => x.dtype === 'q8')!;
  assert.ok(r.positions >= 200, `only ${r.positions} positions`);
  assert.ok(r.top1_agreement >= 0.99, `q8: ${show(r)}`);
});

test.run();
