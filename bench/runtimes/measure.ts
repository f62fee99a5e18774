// The per-runtime measurement of bench/runtimes.ts, shared by every runtime (Node, Deno, Bun, a Chromium Web
// Worker). Platform neutral: no node:* imports, no Deno/Bun/DOM globals beyond performance.now(); the caller
// hands in the built package's namespace and what from_pretrained should read. For each (dtype, threads):
//   load    from_pretrained wall time (fresh backend each time: wasm instantiation, thread pool, weights);
//   warm-up a prefill of `warmupPrefill` tokens and `warmupSteps` decode steps (lets the engine tier the kernels up);
//   rounds  each: reset the cache, time a prefill of 128 tokens, then time `steps` decodeStep calls that feed
//           back the greedy argmax of the logits (the argmax is inside the timed loop, as in real decoding).
// Best round wins (the machine is shared). Each runtime script prints one `RUNTIMES_BENCH {json}` line.

export type BenchDType = 'fp32' | 'fp16' | 'q8' | 'q4';
export interface BenchConfig { dtype: BenchDType; threads: number }

export interface MeasureParams {
  configs: BenchConfig[];
  /** Timed rounds (prefill + decode) per config; the best is reported. */
  rounds: number;
  /** Prompt length: the prefill size and the decode context. */
  prompt: number;
  /** decodeStep calls timed per round. */
  steps: number;
  /** Warm-up before the rounds: a prefill of this many tokens, then this many decode steps. */
  warmupPrefill: number;
  warmupSteps: number;
}

export interface BenchRow {
  dtype: BenchDType;
  threads_requested: number;
  /** What the backend ended up with (1 where shared memory is unavailable). */
  threads?: number;
  /** The wasm build picked (relaxed-threads, simd-threads, relaxed, simd). */
  variant?: string;
  load_ms?: number;
  prefill_tok_s?: number;
  decode_tok_s?: number;
  /** Every load / round, for judging the noise (load_samples: filled in by bench/runtimes.ts across passes). */
  load_samples?: number[];
  prefill_samples?: number[];
  decode_samples?: number[];
  /** The greedy continuation of the last round (fixed prompt, so comparable across runtimes). */
  greedy_ids?: number[];
  error?: string;
}

export interface RuntimeBenchReport {
  runtime: string;
  version: string;
  /** Where the model ran, e.g. 'main thread' or 'web worker'. */
  where: string;
  crossOriginIsolated?: boolean;
  features?: unknown;
  /** How from_pretrained read the checkpoint. */
  source: string;
  rows: BenchRow[];
  error?: string;
}

export const BENCH_PREFIX = 'RUNTIMES_BENCH ';

/** Deterministic token ids (xorshift32 over the vocabulary), the same in every runtime. */
export function promptIds(n: number, vocab = 50257, seed = 0x2545f491): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    out.push((s >>> 0) % vocab);
  }
  return out;
}

export function argmax(v: ArrayLike<number>, from = 0, to = v.length): number {
  let best = from;
  let bv = v[from];
  for (let i = from + 1; i < to; i++) if (v[i] > bv) { bv = v[i]; best = i; }
  return best - from;
}

const r1 = (v: number) => Math.round(v * 10) / 10;
export const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/** Runs every config in turn; a failing config records its error and the rest still run. */
export async function measureAll(api: any, source: () => unknown, p: MeasureParams, log: (s: string) => void = () => {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const ids = promptIds(p.prompt);
  for (const c of p.configs) {
    const row: BenchRow = { dtype: c.dtype, threads_requested: c.threads };
    rows.push(row);
    let model: any = null;
    try {
      const t0 = performance.now();
      model = await api.GPT2LMHeadModel.from_pretrained(source(), { dtype: c.dtype, threads: c.threads });
      row.load_ms = Math.round(performance.now() - t0);
      row.threads = model.backend.threads;
      row.variant = model.backend.variant;
      const V = model.config.vocab_size;
      const cache = model.createCache(1, p.prompt + p.steps + 1);
      try {
        // warm-up
        model.prefill(cache, ids.slice(0, p.warmupPrefill));
        for (let s = 0; s < p.warmupSteps; s++) model.decodeStep([{ cache, id: ids[p.warmupPrefill + s], pos: cache.length }]);
        const pre: number[] = [];
        const dec: number[] = [];
        let greedy: number[] = [];
        for (let r = 0; r < p.rounds; r++) {
          cache.reset();
          const a = performance.now();
          let logits: Float32Array = model.prefill(cache, ids);
          const b = performance.now();
          let next = argmax(logits, 0, V);
          const out: number[] = [];
          const d0 = performance.now();
          for (let s = 0; s < p.steps; s++) {
            out.push(next);
            logits = model.decodeStep([{ cache, id: next, pos: cache.length }]);
            next = argmax(logits, 0, V);
          }
          const d1 = performance.now();
          pre.push(r1(p.prompt / ((b - a) / 1000)));
          dec.push(r1(p.steps / ((d1 - d0) / 1000)));
          greedy = out;
        }
        row.prefill_tok_s = Math.max(...pre);
        row.decode_tok_s = Math.max(...dec);
        row.prefill_samples = pre;
        row.decode_samples = dec;
        row.greedy_ids = greedy;
      } finally {
        cache.dispose();
      }
      log(`${c.dtype} ${c.threads}t (${row.variant}, ${row.threads}t): load ${row.load_ms} ms, prefill ${row.prefill_tok_s} tok/s, decode ${row.decode_tok_s} tok/s`);
    } catch (e) {
      row.error = errText(e);
      log(`${c.dtype} ${c.threads}t: ${row.error}`);
    } finally {
      await model?.dispose();
    }
  }
  return rows;
}

/** The query string / argv form of MeasureParams, shared by the drivers and the runtime scripts. */
export function paramsToArgs(p: MeasureParams): string[] {
  return [`--configs=${p.configs.map((c) => `${c.dtype}:${c.threads}`).join(',')}`, `--rounds=${p.rounds}`, `--prompt=${p.prompt}`, `--steps=${p.steps}`, `--warmup-prefill=${p.warmupPrefill}`, `--warmup-steps=${p.warmupSteps}`];
}

export function paramsFromArgs(get: (name: string) => string | undefined): MeasureParams {
  const configs = (get('configs') ?? 'fp32:1,fp32:2').split(',').map((s) => {
    const [dtype, t] = s.split(':');
    return { dtype: dtype as BenchDType, threads: Number(t) };
  });
  return { configs, rounds: Number(get('rounds') ?? 2), prompt: Number(get('prompt') ?? 128), steps: Number(get('steps') ?? 32),
    warmupPrefill: Number(get('warmup-prefill') ?? 64), warmupSteps: Number(get('warmup-steps') ?? 4) };
}
