// Accuracy of the reduced-precision weight formats against our fp32 path on the same checkpoint: fp16 (weights
// stored as IEEE half) and q8 (int8 weights and activations in blocks of 32 with f32 scales). Over many
// positions (several sequences of deterministic pseudo-random token ids, all positions' logits):
//  - max |logit error| (and the mean),
//  - top-1 agreement: argmax of fp16/q8 logits equals the fp32 argmax,
//  - mean KL(p_fp32 || p_dtype) of the softmax distributions, in nats.
//   node --import tsx bench/accuracy.ts [--dir checkpoint] [--sequences 4] [--len 128] [--json]
import { pathToFileURL } from 'node:url';
import { argValue } from './util/child.js';
import { rng } from './util/timing.js';

export interface AccuracyRow {
  model: string; dtype: 'fp16' | 'q8'; positions: number;
  max_abs_logit_err: number; mean_abs_logit_err: number; top1_agreement: number; mean_kl: number; max_kl: number;
}
export interface AccuracyOptions {
  dir: string;
  /** Label for the report (default: the directory). */
  label?: string;
  sequences?: number;
  /** Tokens per sequence (capped at n_positions). */
  len?: number;
  dtypes?: ('fp16' | 'q8')[];
  threads?: number;
  seed?: number;
}

/** Logits [T, V] of every position of each sequence. */
async function allLogits(dir: string, dtype: 'fp32' | 'fp16' | 'q8', seqs: number[][], threads: number): Promise<Float32Array[]> {
  const { GPT2LMHeadModel } = await import('../src/index.js');
  const model = await GPT2LMHeadModel.from_pretrained(dir, { dtype, threads });
  try {
    const out: Float32Array[] = [];
    for (const ids of seqs) {
      const r = await model.forward({ input_ids: [ids], use_cache: false });
      out.push(r.logits!.data as Float32Array);
    }
    return out;
  } finally {
    await model.dispose();
  }
}

/** log-softmax of row `t` of a [T, V] array into `dst`. */
function logSoftmax(src: Float32Array, t: number, V: number, dst: Float64Array): void {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, src[t * V + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(src[t * V + v] - max);
  const lse = max + Math.log(s);
  for (let v = 0; v < V; v++) dst[v] = src[t * V + v] - lse;
}

/** Compares logits of one format against fp32 logits, position by position. */
export function compareLogits(ref: Float32Array[], got: Float32Array[], V: number): Omit<AccuracyRow, 'model' | 'dtype'> {
  let positions = 0, agree = 0, maxErr = 0, sumErr = 0, nErr = 0, sumKl = 0, maxKl = 0;
  const lp = new Float64Array(V), lq = new Float64Array(V);
  for (let s = 0; s < ref.length; s++) {
    const T = ref[s].length / V;
    for (let t = 0; t < T; t++) {
      let a = 0, b = 0;
      for (let v = 0; v < V; v++) {
        const x = ref[s][t * V + v], y = got[s][t * V + v];
        const e = Math.abs(x - y);
        if (!(e <= maxErr)) maxErr = e; // NaN-safe: a NaN becomes the max
        sumErr += e; nErr++;
        if (x > ref[s][t * V + a]) a = v;
        if (y > got[s][t * V + b]) b = v;
      }
      if (a === b) agree++;
      logSoftmax(ref[s], t, V, lp);
      logSoftmax(got[s], t, V, lq);
      let kl = 0;
      for (let v = 0; v < V; v++) kl += Math.exp(lp[v]) * (lp[v] - lq[v]);
      sumKl += kl; maxKl = Math.max(maxKl, kl);
      positions++;
    }
  }
  return {
    positions, max_abs_logit_err: maxErr, mean_abs_logit_err: sumErr / nErr, top1_agreement: agree / positions,
    mean_kl: sumKl / positions, max_kl: maxKl,
  };
}

export async function measureAccuracy(o: AccuracyOptions): Promise<AccuracyRow[]> {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const cfg = JSON.parse(readFileSync(join(o.dir, 'config.json'), 'utf8'));
  const V: number = cfg.vocab_size, P: number = cfg.n_positions ?? cfg.n_ctx ?? 1024;
  const len = Math.min(o.len ?? 128, P);
  const r = rng(o.seed ?? 99);
  const seqs = Array.from({ length: o.sequences ?? 4 }, () => Array.from({ length: len }, () => Math.floor(r() * V)));
  const threads = o.threads ?? 1;
  const ref = await allLogits(o.dir, 'fp32', seqs, threads);
  const rows: AccuracyRow[] = [];
  for (const dtype of o.dtypes ?? ['fp16', 'q8']) {
    const got = await allLogits(o.dir, dtype, seqs, threads);
    rows.push({ model: o.label ?? o.dir, dtype, ...compareLogits(ref, got, V) });
  }
  return rows;
}

export function formatAccuracy(rows: AccuracyRow[]): string[] {
  return rows.map((a) => `${a.model} ${a.dtype}: ${a.positions} positions, top-1 agreement ${(100 * a.top1_agreement).toFixed(2)}%, ` +
    `max |logit err| ${a.max_abs_logit_err.toExponential(2)} (mean ${a.mean_abs_logit_err.toExponential(2)}), mean KL ${a.mean_kl.toExponential(2)} nats`);
}

// no top-level await: the tests import this module through a CommonJS transform
async function main(argv: string[]) {
  let dir = argValue(argv, 'dir');
  if (!dir) dir = (await import('../test/helpers/fixtures.js')).modelDir('gpt2-tiny');
  const rows = await measureAccuracy({
    dir, label: argValue(argv, 'label'), sequences: Number(argValue(argv, 'sequences') ?? 4), len: Number(argValue(argv, 'len') ?? 128),
    threads: Number(argValue(argv, 'threads') ?? 1),
  });
  if (argv.includes('--json')) console.log(JSON.stringify(rows));
  else for (const l of formatAccuracy(rows)) console.log(l);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1); });
}
