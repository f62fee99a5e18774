// The llama.cpp bench peer without llama.cpp: folding llama-bench's JSON into rows, the GPT2WASM_LLAMA_CPP
// switch, and the report (a "not measured" line when unset; llama.cpp's winning rows listed as peer wins).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ModelBenchResult, PerfRow } from '../bench/model.js';
import { LLAMA_CPP_ENV, LLAMA_CPP_UNSET, llamaBenchPath, llamaCppRows } from '../bench/peers/llamacpp.js';
import { peerWins, renderMarkdown, renderReadmeTable, type BenchResults } from '../bench/util/report.js';

const sample = (file: string, n_prompt: number, n_gen: number, n_threads: number, ns: number[]) =>
  ({ model_filename: `/tmp/x/${file}`, n_prompt, n_gen, n_threads, samples_ns: ns, samples_ts: ns.map((v) => ((n_prompt + n_gen) * 1e9) / v) });

test('llamaCppRows keeps the best sample of every process and derives the rate after a 128-token prompt', () => {
  const files = new Map([['model.q8_0.gguf', 'q8' as const]]);
  const tests = [
    sample('model.q8_0.gguf', 128, 0, 1, [400e6, 500e6]), sample('model.q8_0.gguf', 0, 32, 1, [800e6]), sample('model.q8_0.gguf', 128, 32, 1, [1300e6]),
    // a second process: a better pp sample, worse tg and pg samples
    sample('model.q8_0.gguf', 128, 0, 1, [320e6]), sample('model.q8_0.gguf', 0, 32, 1, [900e6]), sample('model.q8_0.gguf', 128, 32, 1, [1400e6]),
    // only pp at 2 threads: no complete row
    sample('model.q8_0.gguf', 128, 0, 2, [200e6]),
  ];
  const rows = llamaCppRows(tests, files, 32);
  assert.is(rows.length, 1);
  const r = rows[0];
  assert.is(r.dtype, 'q8');
  assert.is(r.threads, 1);
  assert.is(r.pp128_tok_s, 400); // 128 / 0.32 s
  assert.is(r.tg_tok_s, 40); // 32 / 0.8 s
  assert.is(r.tg_after_128_tok_s, 32.7); // 32 / (1.3 - 0.32) s = 32.65..., rounded to 0.1
});

test('llamaBenchPath: unset is null, a directory without bin/llama-bench is an error naming the variable', () => {
  assert.is(llamaBenchPath({}), null);
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-llamacpp-test-'));
  try {
    assert.throws(() => llamaBenchPath({ [LLAMA_CPP_ENV]: dir }), (e: Error) => e.message.includes(LLAMA_CPP_ENV) && e.message.includes('bin/llama-bench'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'llama-bench'), '');
    assert.is(llamaBenchPath({ [LLAMA_CPP_ENV]: dir }), join(dir, 'bin', 'llama-bench'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function results(llamacpp: ModelBenchResult['llamacpp']): BenchResults {
  const perf = { dtype: 'q8', threads: 1, kv_dtype: 'fp32', prefill_128_tok_s: 300, prefill_512_tok_s: null, decode_128_tok_s: 50, decode_1024_tok_s: null,
    recompute_128_tok_s: null, recompute_1024_tok_s: null, bytes_per_token: 1, kv_bytes_per_position: 1, decode_128_bw_gb_s: 10, decode_1024_bw_gb_s: null, variant: 'simd', weights_bytes: 1 } as PerfRow;
  return {
    meta: { date: 'd', iso: 'd', quick: true, node: 'v20', cpu: 'cpu', cores: 2, commit: 'c', dirty: false, notes: [], protocol: 'p' },
    model: { checkpoint: { shape: 's', file_bytes: 1, params: 1, written_ms: 0, temp: true }, load: [], perf: [perf], peers: [], errors: [], method: 'm', llamacpp },
    skipped: [],
  };
}

test('report: unset says how to measure llama.cpp; measured rows where llama.cpp is faster are peer wins', () => {
  const unset = results({ measured: false, note: LLAMA_CPP_UNSET, rows: [], errors: [], method: '' });
  assert.ok(renderMarkdown(unset).includes('llama.cpp: not measured (set GPT2WASM_LLAMA_CPP)'));
  assert.ok(renderReadmeTable(unset).includes('llama.cpp: not measured (set GPT2WASM_LLAMA_CPP)'));
  assert.is(peerWins(unset).length, 0);
  const measured = results({ measured: true, note: 'llama.cpp: b', build: 'b', errors: [], method: 'm',
    rows: [{ dtype: 'q8', gguf: 'Q8_0', threads: 1, pp128_tok_s: 600, tg_tok_s: 40, tg_after_128_tok_s: 45, n_gen: 32 }] });
  const wins = peerWins(measured);
  // prefill: llama.cpp 600 > ours 300 (a win); decode: ours 50 > llama.cpp tg 40 (not one)
  assert.is(wins.length, 1);
  assert.ok(wins[0].what.includes('prefill 128') && wins[0].what.includes('llama.cpp'));
  assert.is(wins[0].ours_over_peer, 0.5);
  const md = renderMarkdown(measured);
  assert.ok(md.includes('Native llama.cpp'));
  assert.ok(!md.includes('not measured (set GPT2WASM_LLAMA_CPP)'));
  assert.ok(renderReadmeTable(measured).includes('0.50x / 1.25x'));
});

test.run();
