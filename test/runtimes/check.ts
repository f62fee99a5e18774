// The portability checks, shared by every runtime script (Deno, Bun, the Chromium page). Platform neutral:
// no node:* imports, no Deno/Bun globals; the caller passes the built package, a way to read fixture files
// and what to hand to from_pretrained. Each script prints one `RUNTIME_RESULT {json}` line that
// test/runtimes.test.ts parses, and exits non-zero when a check fails.

export interface CheckResult {
  name: string;
  /** 'pass' | 'fail' | 'skip' */
  status: 'pass' | 'fail' | 'skip';
  threadsRequested: number;
  threads?: number;
  variant?: string;
  ms?: number;
  message?: string;
}

export interface RuntimeReport {
  platform: string;
  kernels: string;
  features?: unknown;
  crossOriginIsolated?: boolean;
  results: CheckResult[];
}

export interface CheckOptions {
  /** The module namespace of dist/index.js. */
  api: any;
  platform: string;
  /** Reads a file under the fixtures directory, e.g. 'cases/lm_forward.json'. */
  readFixture: (path: string) => Promise<Uint8Array>;
  /** What from_pretrained gets for a fixture model: a directory path or a ModelSource. */
  modelSource: (name: string) => unknown;
  threads: number[];
  kernels: 'wasm' | 'reference';
  /** Threads the backend should end up with when `requested` are asked for (default: requested). */
  expectThreads?: (requested: number) => number;
}

export const RESULT_PREFIX = 'RUNTIME_RESULT ';

const json = async (read: CheckOptions['readFixture'], path: string) => JSON.parse(new TextDecoder().decode(await read(path)));

/** The F32 tensors of a reference safetensors file (kept independent of src/io on purpose). */
export function parseF32Safetensors(bytes: Uint8Array): Record<string, { shape: number[]; data: Float32Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`reference tensor ${name} is ${info.dtype}, expected F32`);
    const [a, b] = info.data_offsets as [number, number];
    const data = new Float32Array((b - a) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(8 + n + a, 8 + n + b));
    out[name] = { shape: info.shape, data };
  }
  return out;
}

/** null when |got - want| <= atol + rtol*|want| everywhere, else a message naming the worst element. */
export function compareLogits(got: ArrayLike<number>, want: ArrayLike<number>, tol: { atol: number; rtol: number }): string | null {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i] - want[i]) - (tol.atol + tol.rtol * Math.abs(want[i]));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) { worst = i; worstExcess = excess; }
  }
  return worst < 0 ? null : `element ${worst}: got ${got[worst]}, want ${want[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`;
}

const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/** Loads gpt2-tiny once per thread count and runs lm_forward (logits) and lm_greedy (generate) on it. */
export async function runChecks(o: CheckOptions): Promise<RuntimeReport> {
  const report: RuntimeReport = { platform: o.platform, kernels: o.kernels, results: [] };
  try { report.features = o.api.detectFeatures(); } catch (e) { report.features = { error: errText(e) }; }
  if (typeof (globalThis as any).crossOriginIsolated === 'boolean') report.crossOriginIsolated = (globalThis as any).crossOriginIsolated;

  const fwd = await json(o.readFixture, 'cases/lm_forward.json');
  const fwdRef = parseF32Safetensors(await o.readFixture(`cases/${fwd.expected}`));
  const greedy = await json(o.readFixture, 'cases/lm_greedy.json');

  for (const requested of o.threads) {
    const want = o.expectThreads ? o.expectThreads(requested) : requested;
    const base = { threadsRequested: requested };
    let model: any = null;
    try {
      model = await o.api.GPT2LMHeadModel.from_pretrained(o.modelSource(fwd.model), { threads: requested, kernels: o.kernels });
    } catch (e) {
      report.results.push({ name: 'lm_forward', status: 'fail', ...base, message: `from_pretrained: ${errText(e)}` });
      continue;
    }
    const info = { ...base, threads: model.backend?.threads, variant: model.backend?.variant };
    try {
      // lm_forward: logits for every position
      const t1 = Date.now();
      try {
        const out = await model.forward({ input_ids: [fwd.input_ids] });
        const dims = out.logits?.dims;
        let msg = JSON.stringify(dims) === JSON.stringify([1, fwd.input_ids.length, fwdRef.logits.shape[1]]) ? null : `logits dims ${JSON.stringify(dims)}`;
        msg ??= compareLogits(out.logits.data, fwdRef.logits.data, fwd.tolerance);
        if (!msg && info.threads !== want) msg = `backend has ${info.threads} threads, expected ${want}`;
        report.results.push({ name: 'lm_forward', status: msg ? 'fail' : 'pass', ...info, ms: Date.now() - t1, ...(msg ? { message: msg } : {}) });
      } catch (e) {
        report.results.push({ name: 'lm_forward', status: 'fail', ...info, message: errText(e) });
      }

      // lm_greedy: exact ids from generate (prompt included), when this build has generate()
      const t2 = Date.now();
      if (typeof model.generate !== 'function') {
        report.results.push({ name: 'lm_greedy', status: 'skip', ...info, message: 'this build has no generate()' });
      } else {
        try {
          const seq = await model.generate({ input_ids: [greedy.input_ids], max_new_tokens: greedy.max_new_tokens, do_sample: false });
          const ids: number[] = Array.from(seq?.data ?? seq?.[0] ?? [], Number);
          const same = ids.length === greedy.expected_ids.length && ids.every((v, i) => v === greedy.expected_ids[i]);
          report.results.push({
            name: 'lm_greedy', status: same ? 'pass' : 'fail', ...info, ms: Date.now() - t2,
            ...(same ? {} : { message: `ids ${JSON.stringify(ids)}, expected ${JSON.stringify(greedy.expected_ids)}` }),
          });
        } catch (e) {
          report.results.push({ name: 'lm_greedy', status: 'fail', ...info, message: errText(e) });
        }
      }
    } finally {
      await model.dispose();
    }
  }
  if (o.kernels === 'wasm') report.results.push(await relaxedQ4Check(o, fwd));
  return report;
}

/** The relaxed builds' Q4_0 GEMV and GEMM (assembly/matmul_q8.ts, tileFarQ4R and tileSplatR) take their integer
 *  sums from the engine's relaxed dot product, which Node 20 runs only under a flag: this is where the tiles run on
 *  Deno, Bun and Chromium. One-token forwards (M = 1, so the GEMV) and one batch of six one-token sequences (M =
 *  6, the GEMM) of gpt2-tiny at q4, with the relaxed build and with the plain SIMD build, must give the same logits bit for bit.
 *  Where the engine has no relaxed SIMD there is nothing to compare, which the message says. */
async function relaxedQ4Check(o: CheckOptions, fwd: any): Promise<CheckResult> {
  const name = 'q4_relaxed_equals_plain';
  const features = o.api.detectFeatures();
  const base = { threadsRequested: 1, threads: 1, variant: features.variant };
  if (!features.relaxedSimd) return { name, status: 'pass', ...base, message: 'no relaxed SIMD on this engine: only the plain build runs' };
  const t0 = Date.now();
  const logits: Float32Array[][] = [];
  try {
    for (const variant of [features.threads ? 'relaxed-threads' : 'relaxed', features.threads ? 'simd-threads' : 'simd']) {
      const model = await o.api.GPT2LMHeadModel.from_pretrained(o.modelSource(fwd.model), { threads: 1, dtype: 'q4', variant, kernels: 'wasm' });
      try {
        // every engine tested here has an exact relaxed dot: a check that turned the relaxed tiles off would
        // otherwise go unnoticed (the plain tiles give the same bits)
        const want = variant.startsWith('relaxed');
        if (model.backend?.relaxedDot !== want) return { name, status: 'fail', ...base, message: `${variant}: backend.relaxedDot is ${model.backend?.relaxedDot}, expected ${want}` };
        const rows: Float32Array[] = [];
        for (const id of fwd.input_ids.slice(0, 4)) rows.push(Float32Array.from((await model.forward({ input_ids: [[id]] })).logits.data));
        // a batch of one-token sequences: M > 2 rows through the GEMM, while attention stays a single position (the
        // relaxed build fuses the f32 multiply-adds of attention, so a longer sequence may differ in the last bit)
        rows.push(Float32Array.from((await model.forward({ input_ids: fwd.input_ids.slice(0, 6).map((id: number) => [id]) })).logits.data));
        logits.push(rows);
      } finally { await model.dispose(); }
    }
  } catch (e) {
    return { name, status: 'fail', ...base, message: errText(e) };
  }
  for (let t = 0; t < logits[0].length; t++) {
    const a = new Uint32Array(logits[0][t].buffer), b = new Uint32Array(logits[1][t].buffer);
    const i = a.findIndex((v, j) => v !== b[j]);
    if (a.length !== b.length || i >= 0) return { name, status: 'fail', ...base, message: `${t < 4 ? `token ${t}` : 'batch of 6'}: logit ${i} is ${logits[0][t][i]} relaxed, ${logits[1][t][i]} plain` };
  }
  return { name, status: 'pass', ...base, ms: Date.now() - t0 };
}

/** Prints the report line and a readable summary; returns the exit code (1 when anything failed). */
export function printReport(r: RuntimeReport, log: (s: string) => void = console.log): number {
  for (const c of r.results) {
    log(`# ${r.platform} ${c.name} threads ${c.threadsRequested}->${c.threads ?? '?'} ${c.variant ?? ''}: ${c.status.toUpperCase()}${c.message ? ` (${c.message})` : ''}`);
  }
  log(RESULT_PREFIX + JSON.stringify(r));
  return r.results.some((c) => c.status === 'fail') || r.results.length === 0 ? 1 : 0;
}
