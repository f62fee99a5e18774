// Timing helpers. The machine is shared (other processes run tests at the same time), so every number we
// report is the best (minimum time) of several samples, each sample long enough to swamp timer resolution.
// PROTOCOL is the one measuring protocol of the bench: ours and every peer, in every section, get the same
// number of fresh processes, timed runs and warm-up, so no side is favoured by getting more chances.

/** How every configuration (ours or a peer's) is measured. */
export interface Protocol {
  /** Fresh child processes per configuration; each number keeps its best over them. */
  processes: number;
  /** Timed runs per process (whole model: prefill and decode runs; kernels: samples); the best is kept. */
  runs: number;
  /** Whole model, before the timed runs: a prefill of this many tokens, then `warmupSteps` decode steps. */
  warmupPrefill: number;
  warmupSteps: number;
  /** decodeStep calls in one timed decode run. */
  decodeSteps: number;
  /** Kernels: one sample lasts at least this long (reps doubled until it does), after `kernelWarmupMs` of calls. */
  kernelSampleMs: number;
  kernelWarmupMs: number;
}

export function protocol(quick: boolean): Protocol {
  return quick
    ? { processes: 1, runs: 2, warmupPrefill: 64, warmupSteps: 4, decodeSteps: 32, kernelSampleMs: 20, kernelWarmupMs: 60 }
    : { processes: 2, runs: 4, warmupPrefill: 64, warmupSteps: 4, decodeSteps: 32, kernelSampleMs: 40, kernelWarmupMs: 150 };
}

/** The kernel timing options of a protocol (bestTime / bestTimeAsync). */
export const kernelTiming = (p: Protocol): TimingOptions => ({ samples: p.runs, sampleMs: p.kernelSampleMs, warmupMs: p.kernelWarmupMs });

/** One line for report headers. */
export function describeProtocol(p: Protocol): string {
  return `every configuration, ours and each peer's alike: ${p.processes} fresh process(es), best of ${p.runs} timed runs in each; ` +
    `whole model: warm-up = a ${p.warmupPrefill}-token prefill + ${p.warmupSteps} decode steps, a decode run = ${p.decodeSteps} steps; ` +
    `kernels: ${p.runs} samples of >= ${p.kernelSampleMs} ms after ${p.kernelWarmupMs} ms of warm-up calls`;
}

export interface TimingOptions {
  /** Target duration of one sample in ms (reps are doubled until a sample takes this long). */
  sampleMs?: number;
  /** Samples to take after warm-up; the best one is reported. */
  samples?: number;
  /** Warm-up time in ms (lets the engine tier the wasm up and caches settle). */
  warmupMs?: number;
  /** At least this many warm-up calls (e.g. one pass over every weight copy, so lazy packing is done). */
  warmupCalls?: number;
}

export interface Timing { ms: number; samples: number[]; reps: number }

/** Best per-call time of a synchronous function. */
export function bestTime(fn: () => void, o: TimingOptions = {}): Timing {
  const sampleMs = o.sampleMs ?? 30, n = o.samples ?? 7, warm = o.warmupMs ?? 50;
  for (let i = 0; i < (o.warmupCalls ?? 0); i++) fn();
  const w0 = performance.now();
  let calls = 0;
  while (calls < 2 || performance.now() - w0 < warm) { fn(); calls++; }
  const perCall = (performance.now() - w0) / calls;
  const reps = Math.max(1, Math.ceil(sampleMs / Math.max(perCall, 1e-3)));
  const samples: number[] = [];
  for (let s = 0; s < n; s++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) fn();
    samples.push((performance.now() - t) / reps);
  }
  return { ms: Math.min(...samples), samples, reps };
}

/** Best per-call time of an async function. */
export async function bestTimeAsync(fn: () => Promise<unknown>, o: TimingOptions = {}): Promise<Timing> {
  const sampleMs = o.sampleMs ?? 30, n = o.samples ?? 7, warm = o.warmupMs ?? 50;
  for (let i = 0; i < (o.warmupCalls ?? 0); i++) await fn();
  const w0 = performance.now();
  let calls = 0;
  while (calls < 2 || performance.now() - w0 < warm) { await fn(); calls++; }
  const perCall = (performance.now() - w0) / calls;
  const reps = Math.max(1, Math.ceil(sampleMs / Math.max(perCall, 1e-3)));
  const samples: number[] = [];
  for (let s = 0; s < n; s++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) await fn();
    samples.push((performance.now() - t) / reps);
  }
  return { ms: Math.min(...samples), samples, reps };
}

/** Runs `fn` (which times itself and returns a duration) `n` times and keeps the smallest result. */
export async function bestOf(n: number, fn: () => Promise<number> | number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, await fn());
  return best;
}

export const gflops = (M: number, K: number, N: number, ms: number) => (2 * M * K * N) / (ms * 1e6);
export const round = (v: number, digits = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);

/** Deterministic xorshift32 uniform in [0, 1). */
export function rng(seed = 1): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
}

/** Fills an array with uniform values in [-scale, scale). */
export function fillUniform(a: Float32Array, scale = 1, seed = 1): Float32Array {
  const r = rng(seed);
  for (let i = 0; i < a.length; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}
