// Smoke test of issue 10: on a machine where another process keeps one core busy, decoding with 2 threads must
// not fall far behind 1 thread (a pool where every thread owns a fixed share stalls on the descheduled one;
// with chunks claimed dynamically the free threads take the work). This is the one timed assertion of the
// suite, with a wide margin (0.7x; the bench goal is 0.9x, bench/contention.ts): best of interleaved rounds,
// the spinner started and killed here and bounded in time by itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GPT2LMHeadModel, memorySource } from '../src/index.js';
import { startSpinner, stopSpinner } from '../bench/util/spinner.js';
import { randomCheckpoint } from './helpers/checkpoint.js';

// ~17M parameters (68 MB of f32 weights): decode time is dominated by the kernels, not by the host
const SHAPE = { n_embd: 512, n_head: 8, n_layer: 4, n_positions: 128, vocab_size: 8192 };
const STEPS = 12, ROUNDS = 4;

async function decodeRate(m: GPT2LMHeadModel): Promise<number> {
  const cache = m.createCache(1, 64);
  try {
    m.prefill(cache, [1, 2, 3, 4, 5, 6, 7, 8]);
    const t0 = performance.now();
    for (let s = 0; s < STEPS; s++) m.decodeStep([{ cache, id: (s * 31) % SHAPE.vocab_size, pos: cache.length }]);
    return STEPS / ((performance.now() - t0) / 1000);
  } finally { cache.dispose(); }
}

test('under contention, decode with 2 threads is at least 0.7x decode with 1 thread (fp32, q8)', async () => {
  const files = randomCheckpoint(SHAPE, 3);
  for (const dtype of ['fp32', 'q8'] as const) {
    const one = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'contention'), { dtype, threads: 1 });
    const two = await GPT2LMHeadModel.from_pretrained(memorySource(files, 'contention'), { dtype, threads: 2 });
    let best1 = 0, best2 = 0;
    try {
      await decodeRate(one); await decodeRate(two); // warm-up
      // rounds of 12 steps are short: one unlucky preemption of the 2-thread run can sink a round, so measure up to
      // three times (each with its own spinner) and judge the best rates seen, for both thread counts alike
      for (let attempt = 0; attempt < 3 && !(best2 >= 0.7 * best1); attempt++) {
        const spinner = startSpinner(40_000);
        try {
          for (let r = 0; r < ROUNDS; r++) {
            best1 = Math.max(best1, await decodeRate(one));
            best2 = Math.max(best2, await decodeRate(two));
          }
        } finally { stopSpinner(spinner); }
      }
    } finally {
      await one.dispose(); await two.dispose();
    }
    assert.ok(best2 >= 0.7 * best1, `${dtype}: 2 threads ${best2.toFixed(1)} tok/s < 0.7 x 1 thread ${best1.toFixed(1)} tok/s under contention`);
  }
});

test.run();
