// Renders the combined bench results as markdown: the goals of the open issues and the older targets first (each
// measured number beside its goal, met/missed, computed from this run), every row where a peer wins, then one
// section per bench; and the README's "Latest benchmark" table (renderReadmeTable).
import type { ContentionResult } from '../contention.js';
import type { AccuracyRow } from '../accuracy.js';
import type { BandwidthResult } from '../bandwidth.js';
import type { GGUFBenchType, LargeLoadResult, LoadRow, ModelBenchResult, PerfRow } from '../model.js';
import type { KernelCompareResult } from '../peers/index.js';
import { LLAMA_CPP_UNSET, type LlamaCppRow } from '../peers/llamacpp.js';
import { renderRuntimesTable, type RuntimesBenchResult } from '../runtimes.js';
import type { MatmulRow } from './ours-matmul.js';
import type { SizeRow } from './sizes.js';
import { EARLIER, GOALS, TARGETS, met } from './targets.js';

export interface BenchResults {
  meta: { date: string; iso: string; quick: boolean; node: string; cpu: string; cores: number; commit: string; dirty: boolean; seconds?: number; notes: string[]; protocol: string;
    /** Set while the run is still going (the report is rewritten after every section): what has finished. */
    partial?: string };
  bandwidth?: BandwidthResult;
  kernels?: KernelCompareResult;
  kernel_detail?: any;
  model?: ModelBenchResult;
  contention?: ContentionResult;
  runtimes?: RuntimesBenchResult;
  accuracy?: AccuracyRow[];
  sizes?: SizeRow[];
  large_load?: LargeLoadResult[];
  tokenizer?: any;
  server?: any;
  skipped: string[];
  targets?: TargetRow[];
}
export interface TargetRow { what: string; measured: string; target: string; status: string; why?: string }
export interface GoalRow extends TargetRow { issue: number }
export interface PeerWin { what: string; ours: string; peer: string; ours_over_peer: number }

const f = (v: number | null | undefined, d = 1) => (v == null || !Number.isFinite(v) ? '-' : v.toFixed(d));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export function table(head: string[], rows: (string | number)[][]): string {
  const line = (r: (string | number)[]) => `| ${r.map((c) => String(c)).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

const shapeKey = (r: { M: number; K: number; N: number }) => `${r.M}x${r.K}x${r.N}`;
function findRow(rows: MatmulRow[], impl: string, dtype: string, threads: number, shape: string, mode = 'L3'): MatmulRow | undefined {
  return rows.find((r) => r.impl.startsWith(impl) && r.dtype === dtype && r.threads === threads && shapeKey(r) === shape && (r.mode ?? 'L3') === mode);
}

/** Best f32 peer GFLOP/s for a shape and thread count. */
function bestPeer(rows: MatmulRow[], threads: number, shape: string, dtype = 'f32', mode = 'L3'): MatmulRow | undefined {
  return rows.filter((r) => !r.impl.startsWith('ours') && r.dtype === dtype && r.threads === threads && shapeKey(r) === shape && (r.mode ?? 'L3') === mode)
    .sort((a, b) => b.gflops - a.gflops)[0];
}

/** A perf row's dtype, with its KV cache type when that is not fp32. */
const perfLabel = (p: PerfRow) => (p.kv_dtype === 'fp16' ? `${p.dtype} + fp16 KV` : p.dtype);
function perf(m: ModelBenchResult | undefined, dtype: string, threads: number): PerfRow | undefined {
  return m?.perf.find((p) => p.dtype === dtype && p.threads === threads && (p.kv_dtype ?? 'fp32') === 'fp32');
}

export function computeTargets(r: BenchResults): TargetRow[] {
  const out: TargetRow[] = [];
  const m = r.model;
  for (const dtype of ['fp32', 'fp16', 'q8']) {
    for (const t of [1, 2]) {
      const p = perf(m, dtype, t), target = TARGETS.decode_ctx128[dtype][t];
      out.push({
        what: `decode ${dtype} ${t}t, ctx 128 (tok/s)`, measured: f(p?.decode_128_tok_s), target: `>= ${target}`,
        status: p ? met(p.decode_128_tok_s >= target) : 'n/a',
        why: p?.decode_128_bound_tok_s ? `bandwidth bound ${f(p.decode_128_bound_tok_s)} tok/s; at ${f(p.decode_128_pct_of_bound, 0)}% of it` : undefined,
      });
    }
  }
  for (const t of [1, 2]) {
    const p = perf(m, 'fp32', t), target = TARGETS.prefill128_fp32[t];
    out.push({ what: `prefill 128 fp32 ${t}t (tok/s)`, measured: f(p?.prefill_128_tok_s), target: `>= ${target}`, status: p ? met(p.prefill_128_tok_s >= target) : 'n/a' });
  }
  const krows = r.kernels?.rows ?? [];
  for (const t of [1, 2]) {
    for (const shape of ['128x768x3072', '128x768x768', '128x3072x768']) {
      const ours = findRow(krows, 'ours', 'f32', t, shape), peer = bestPeer(krows, t, shape);
      if (!ours && shape !== '128x768x3072') continue;
      const ratio = ours && peer ? ours.gflops / peer.gflops : null;
      out.push({
        what: `GEMM ${shape} f32 ${t}t vs best wasm peer`, measured: ratio == null ? '-' : `${f(ratio, 2)}x (${f(ours?.gflops)} vs ${peer?.impl} ${f(peer?.gflops)} GF/s)`,
        target: `>= ${TARGETS.gemm_vs_best_peer}x`, status: ratio == null ? 'n/a' : met(ratio >= TARGETS.gemm_vs_best_peer),
      });
    }
  }
  for (const dtype of ['fp32', 'fp16', 'q8']) {
    for (const n of [128, 512] as const) {
      const a = perf(m, dtype, 1), b = perf(m, dtype, 2);
      const va = n === 128 ? a?.prefill_128_tok_s : a?.prefill_512_tok_s, vb = n === 128 ? b?.prefill_128_tok_s : b?.prefill_512_tok_s;
      if (va == null || vb == null) continue;
      const s = vb / va;
      out.push({ what: `prefill ${n} ${dtype}: 2t / 1t`, measured: `${f(s, 2)}x`, target: `>= ${TARGETS.prefill_2t_over_1t}x`, status: met(s >= TARGETS.prefill_2t_over_1t) });
    }
  }
  for (const p of m?.perf ?? []) {
    if (p.decode_1024_tok_s == null) continue;
    const loss = 1 - p.decode_1024_tok_s / p.decode_128_tok_s;
    out.push({
      what: `decode ${perfLabel(p)} ${p.threads}t: ctx 1024 vs 128`, measured: `${f(100 * loss, 0)}% slower (${f(p.decode_1024_tok_s)} vs ${f(p.decode_128_tok_s)})`,
      target: `<= ${100 * TARGETS.decode_ctx1024_max_loss}% slower`, status: met(loss <= TARGETS.decode_ctx1024_max_loss),
      why: `KV bytes read per token grow ${f((896 * p.kv_bytes_per_position) / 2 ** 20, 0)} MiB from ctx 128 to 1024 (+${f((100 * 896 * p.kv_bytes_per_position) / p.bytes_per_token, 0)}% of the weight bytes)`,
    });
  }
  for (const l of (m?.load ?? []).filter((x) => x.source !== 'gguf')) {
    out.push({ what: `load 124M ${l.dtype} from page cache`, measured: `${f(l.load_ms, 0)} ms${floorNote(l)}`, target: `< ${TARGETS.load_ms} ms`, status: met(l.load_ms < TARGETS.load_ms) });
    out.push({
      what: `peak RSS loading ${l.dtype} / file size`, measured: `${f(l.rss_ratio, 2)}x (${mib(l.max_rss_bytes)}; ${f(l.rss_ratio_above_baseline, 2)}x above the ${mib(l.rss_before_bytes)} baseline)`,
      target: `< ${TARGETS.peak_rss_over_file}x`, status: met(l.rss_ratio < TARGETS.peak_rss_over_file),
    });
  }
  const fx = r.accuracy?.find((a) => a.dtype === 'q8' && a.model.startsWith('fixture'));
  if (fx) out.push({ what: `q8 top-1 agreement vs fp32, ${fx.model} (${fx.positions} positions)`, measured: `${f(100 * fx.top1_agreement, 2)}%`, target: `>= ${100 * TARGETS.q8_top1_agreement}%`, status: met(fx.top1_agreement >= TARGETS.q8_top1_agreement) });
  return out;
}

/** The floor of a load on this machine beside its time: writing the weights' bytes once into fresh memory,
 *  measured in the same process (rows of runs before it was measured: nothing). */
const floorNote = (l: LoadRow) => (l.first_touch_ms != null ? `; ${l.threads ?? '?'} threads; first touch of ${mib(l.weights_bytes)} on one thread here: ${f(l.first_touch_ms, 0)} ms` : '');

/** The GGUF type of a load row (rows of runs before Q8_0 was measured: Q4_0). */
const ggufType = (l: LoadRow): GGUFBenchType => l.gguf_type ?? 'Q4_0';

/** The goals of issues 8, 9 and 10, each checked against the numbers of this run (n/a where not measured). */
export function computeGoals(r: BenchResults): GoalRow[] {
  const out: GoalRow[] = [];
  const m = r.model;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b ? a / b : null);
  const goal = (issue: number, what: string, value: number | null, min: number, unit: string, measured: string) =>
    out.push({ issue, what, measured: value == null ? '-' : measured, target: `>= ${min}${unit}`, status: value == null ? 'n/a' : met(value >= min) });
  for (const dtype of ['fp32', 'fp16', 'q8']) {
    const x = r.contention?.ratios.find((c) => c.dtype === dtype)?.ratio_2t_1t ?? null;
    goal(10, `decode ${dtype} under contention: 2t / 1t`, x, GOALS.contention_2t_over_1t, 'x', `${f(x, 2)}x`);
  }
  for (const dtype of ['fp32', 'fp16', 'q8']) {
    for (const t of [1, 2]) {
      const p = perf(m, dtype, t);
      // native llama.cpp's decode after a 128-token prompt against the same bound (its weights are the same
      // bytes; its F16 K/V cache reads less at ctx 128, a fraction of a percent of them): what this machine gives
      // a native AVX2 build, for scale
      const lc = m?.llamacpp?.rows.find((x) => x.dtype === dtype && x.threads === t)?.tg_after_128_tok_s;
      const native = lc && p?.decode_128_bound_tok_s ? `; llama.cpp (native) ${f((100 * lc) / p.decode_128_bound_tok_s, 0)}% of the same bound` : '';
      const pct = p?.decode_128_pct_of_bound ?? null;
      goal(10, `decode ${dtype} ${t}t ctx 128: % of the ${t}-thread bandwidth bound`, pct, GOALS.decode_pct_of_bound[dtype], '%',
        `${f(pct, 0)}% (${f(p?.decode_128_tok_s)} of ${f(p?.decode_128_bound_tok_s)} tok/s at ${f(p?.decode_128_bw_gb_s)} GB/s${native})`);
      // above 100 % the bound itself was measured too low (a slowdown of the machine while it was measured)
      if (pct != null && pct > 100) out[out.length - 1].status = 'bound mismeasured';
    }
  }
  for (const dtype of ['fp32', 'fp16', 'q8']) {
    const p = perf(m, dtype, 2), v = p?.host_ms_per_token ?? null;
    out.push({ issue: 10, what: `host time per decoded token outside kernels, ${dtype} 2t`, measured: v == null ? '-' : `${f(v, 3)} ms`, target: `<= ${GOALS.host_ms_per_token_2t} ms`,
      status: v == null ? 'n/a' : met(v <= GOALS.host_ms_per_token_2t) });
  }
  for (const t of [1, 2]) {
    const krows = r.kernels?.rows ?? [];
    const ours = findRow(krows, 'ours', 'q8', t, '128x768x3072'), ort = findRow(krows, 'onnxruntime', 'q8', t, '128x768x3072');
    const x = ratio(ours?.gflops, ort?.gflops);
    goal(10, `q8 GEMM 128x768x3072 ${t}t vs onnxruntime-web int8`, x, GOALS.q8_gemm_vs_ort, 'x', `${f(x, 2)}x (${f(ours?.gflops)} vs ${f(ort?.gflops)} GF/s)`);
  }
  for (const t of [1, 2]) {
    const q8 = perf(m, 'q8', t), fp32 = perf(m, 'fp32', t), x = ratio(q8?.prefill_128_tok_s, fp32?.prefill_128_tok_s);
    goal(10, `q8 prefill 128 ${t}t vs our fp32`, x, GOALS.q8_prefill_vs_fp32, 'x', `${f(x, 2)}x (${f(q8?.prefill_128_tok_s)} vs ${f(fp32?.prefill_128_tok_s)} tok/s)`);
  }
  {
    const a = perf(m, 'fp16', 1)?.prefill_512_tok_s, b = perf(m, 'fp16', 2)?.prefill_512_tok_s, x = ratio(b, a);
    goal(10, 'prefill 512 fp16: 2t / 1t', x, GOALS.prefill512_fp16_2t_over_1t, 'x', `${f(x, 2)}x (${f(b)} vs ${f(a)} tok/s)`);
  }
  for (const t of [1, 2]) {
    const q4 = perf(m, 'q4', t), q8 = perf(m, 'q8', t), x = ratio(q4?.decode_128_tok_s, q8?.decode_128_tok_s);
    goal(8, `q4 decode ${t}t ctx 128 vs our q8`, x, GOALS.q4_decode_vs_q8, 'x', `${f(x, 2)}x (${f(q4?.decode_128_tok_s)} vs ${f(q8?.decode_128_tok_s)} tok/s)`);
  }
  for (const t of [1, 2]) {
    const q4 = perf(m, 'q4', t), fp32 = perf(m, 'fp32', t), x = ratio(q4?.prefill_128_tok_s, fp32?.prefill_128_tok_s);
    goal(8, `q4 prefill 128 ${t}t vs our fp32`, x, GOALS.q4_prefill_vs_fp32, 'x', `${f(x, 2)}x (${f(q4?.prefill_128_tok_s)} vs ${f(fp32?.prefill_128_tok_s)} tok/s)`);
  }
  // issue 9 names Q4_0; Q8_0 (blocks copied as stored too) is held to the same budget
  const ggufLoads = m?.load.filter((l) => l.source === 'gguf') ?? [];
  for (const l of ggufLoads) {
    out.push({ issue: 9, what: `load 124M ${ggufType(l)} GGUF from page cache`, measured: `${f(l.load_ms, 0)} ms (as ${l.dtype})${floorNote(l)}`, target: `< ${GOALS.gguf_q4_load_ms} ms`,
      status: met(l.load_ms < GOALS.gguf_q4_load_ms) });
  }
  if (!ggufLoads.some((l) => ggufType(l) === 'Q4_0')) {
    out.push({ issue: 9, what: 'load 124M Q4_0 GGUF from page cache', measured: '-', target: `< ${GOALS.gguf_q4_load_ms} ms`, status: 'n/a', why: 'not measured in this run' });
  }
  return out;
}

/** Every row of this run where a peer is faster than us: matmul kernels (each dtype, shape, thread count and
 *  weight regime) and the whole model against onnxruntime-web. */
export function peerWins(r: BenchResults): PeerWin[] {
  const out: PeerWin[] = [];
  const krows = r.kernels?.rows ?? [];
  for (const ours of krows.filter((x) => x.impl.startsWith('ours'))) {
    for (const peer of krows.filter((x) => !x.impl.startsWith('ours') && x.dtype === ours.dtype && x.threads === ours.threads && shapeKey(x) === shapeKey(ours) && (x.mode ?? 'L3') === (ours.mode ?? 'L3'))) {
      if (peer.gflops <= ours.gflops) continue;
      out.push({ what: `${ours.dtype} matmul ${shapeKey(ours)} ${ours.threads}t (${ours.mode ?? 'L3'}) vs ${peer.impl}`, ours: `${f(ours.gflops)} GF/s`, peer: `${f(peer.gflops)} GF/s`, ours_over_peer: ours.gflops / peer.gflops });
    }
  }
  for (const p of r.model?.peers ?? []) {
    const dtype = p.dtype === 'f32' ? 'fp32' : 'q8', ours = perf(r.model, dtype, p.threads);
    if (!ours) continue;
    const figures: [string, number | null, number | null][] = [
      ['prefill 128', ours.prefill_128_tok_s, p.prefill_128_tok_s], ['decode ctx 128', ours.decode_128_tok_s, p.decode_128_tok_s], ['decode ctx 1024', ours.decode_1024_tok_s, p.decode_1024_tok_s],
    ];
    for (const [what, a, b] of figures) {
      if (a == null || b == null || b <= a) continue;
      out.push({ what: `whole model ${dtype} ${what} ${p.threads}t vs onnxruntime-web`, ours: `${f(a)} tok/s`, peer: `${f(b)} tok/s`, ours_over_peer: a / b });
    }
  }
  for (const p of r.model?.llamacpp?.rows ?? []) {
    const ours = perf(r.model, p.dtype, p.threads);
    if (!ours) continue;
    for (const [what, a, b] of llamaFigures(ours, p)) {
      if (b <= a) continue;
      out.push({ what: `whole model ${p.dtype} ${what} ${p.threads}t vs llama.cpp (native, ${p.gguf} GGUF)`, ours: `${f(a)} tok/s`, peer: `${f(b)} tok/s`, ours_over_peer: a / b });
    }
  }
  return out.sort((a, b) => a.ours_over_peer - b.ours_over_peer);
}

/** Our figure and llama.cpp's for each compared quantity: prefill 128 vs pp128; decode at ctx 128 vs llama-bench's
 *  tg from an empty context (its "after a 128-token prompt" figure is a difference of two timings, too noisy on a
 *  shared machine to rank by; the report prints it beside). */
function llamaFigures(ours: PerfRow, p: LlamaCppRow): [string, number, number][] {
  return [
    ['prefill 128', ours.prefill_128_tok_s, p.pp128_tok_s],
    [`decode ctx 128 (llama.cpp: tg${p.n_gen} from ctx 0)`, ours.decode_128_tok_s, p.tg_tok_s],
  ];
}

const goalsTable = (goals: GoalRow[]) => table(['issue', 'goal', 'measured', 'target', 'status'], goals.map((g) => [`#${g.issue}`, g.what, g.measured, g.target, g.status + (g.why ? ` (${g.why})` : '')]));
const winsTable = (wins: PeerWin[]) => table(['where a peer wins', 'ours', 'peer', 'ours / peer'], wins.map((w) => [w.what, w.ours, w.peer, `${f(w.ours_over_peer, 2)}x`]));

/** The README's "Latest benchmark" table, goals and peer wins, all from this run. */
export function renderReadmeTable(r: BenchResults): string {
  const M = r.meta, s: string[] = [];
  s.push(`From \`npm run bench${M.quick ? ' -- --quick' : ''}\` on ${M.date} (commit ${M.commit}${M.dirty ? ' + uncommitted changes' : ''}, ${M.seconds ? `${(M.seconds / 60).toFixed(0)} min` : ''}): ` +
    `${M.quick ? '**a quick run** (fewer runs and rows than a full one), ' : ''}${M.cores} cores of ${M.cpu}, Node ${M.node}, a random GPT-2-124M-shaped checkpoint, batch 1. ` +
    '**The machine was shared with other jobs while measuring**, so absolute numbers are noisy; the protocol: ' + `${M.protocol}.` +
    (M.partial ? ` **Partial run: the run was cut short; ${M.partial}.**` : ''));
  s.push('');
  const rows: (string | number)[][] = [];
  const both = (what: string, cell: (t: number) => string) => rows.push([what, cell(1), cell(2)]);
  const m = r.model;
  for (const p of (m?.perf ?? []).filter((x) => x.threads === 1)) {
    const two = m!.perf.find((x) => x.dtype === p.dtype && x.kv_dtype === p.kv_dtype && x.threads === 2);
    const cell = (x?: PerfRow) => (x ? `${f(x.decode_128_tok_s)} (${f(x.decode_128_pct_of_bound, 0)}% of ${f(x.decode_128_bw_gb_s)} GB/s)` : '-');
    rows.push([`decode ${perfLabel(p)}, ctx 128 (tok/s; % of the bandwidth bound measured just before)`, cell(p), cell(two)]);
  }
  for (const p of (m?.perf ?? []).filter((x) => x.threads === 1 && x.kv_dtype === 'fp32')) {
    const two = perf(m, p.dtype, 2);
    rows.push([`prefill 128 ${p.dtype} (tok/s)`, f(p.prefill_128_tok_s), f(two?.prefill_128_tok_s)]);
  }
  both('decode fp32 ctx 1024 (tok/s)', (t) => f(perf(m, 'fp32', t)?.decode_1024_tok_s));
  both('host time per decoded token outside kernels, fp32 (ms)', (t) => f(perf(m, 'fp32', t)?.host_ms_per_token, 3));
  if (r.contention) both('decode under contention (a second process spins on one core), fp32 / fp16 / q8 (tok/s)',
    (t) => ['fp32', 'fp16', 'q8'].map((d) => f(r.contention!.rows.find((x) => x.dtype === d && x.threads === t)?.decode_128_tok_s)).join(' / '));
  for (const dtype of ['f32', 'q8']) {
    both(`GEMM 128×768×3072 ${dtype}: ours vs onnxruntime-web (GFLOP/s)`, (t) => {
      const o = findRow(r.kernels?.rows ?? [], 'ours', dtype, t, '128x768x3072'), p = findRow(r.kernels?.rows ?? [], 'onnxruntime', dtype, t, '128x768x3072');
      return `${f(o?.gflops)} vs ${f(p?.gflops)}`;
    });
  }
  for (const dtype of ['f32', 'q8'] as const) {
    both(`whole model ${dtype === 'f32' ? 'fp32' : 'q8'} vs onnxruntime-web: prefill 128 / decode ctx 128 (ours / ort)`, (t) => {
      const p = m?.peers.find((x) => x.dtype === dtype && x.threads === t), o = perf(m, dtype === 'f32' ? 'fp32' : 'q8', t);
      return p && o ? `${f(o.prefill_128_tok_s / p.prefill_128_tok_s, 2)}x / ${f(o.decode_128_tok_s / p.decode_128_tok_s, 2)}x` : '-';
    });
  }
  for (const dtype of [...new Set((m?.llamacpp?.rows ?? []).map((x) => x.dtype))]) {
    both(`whole model ${dtype} vs llama.cpp (native, ${m!.llamacpp!.rows.find((x) => x.dtype === dtype)!.gguf} GGUF): prefill 128 / decode ctx 128 (ours / llama.cpp)`, (t) => {
      const p = m!.llamacpp!.rows.find((x) => x.dtype === dtype && x.threads === t), o = perf(m, dtype, t);
      return p && o ? llamaFigures(o, p).map(([, a, b]) => `${f(a / b, 2)}x`).join(' / ') : '-';
    });
  }
  for (const l of m?.load ?? []) rows.push([`load 124M ${l.source === 'gguf' ? `${ggufType(l)} GGUF` : `${l.dtype} (safetensors)`} from page cache; peak RSS / file`, `${f(l.load_ms / 1000, 2)} s; ${f(l.rss_ratio, 2)}x`, '']);
  for (const c of r.runtimes?.columns ?? []) {
    const row = (t: number) => c.rows.find((x) => x.dtype === 'fp32' && x.threads_requested === t);
    if (c.rows.length) rows.push([`${c.label}${c.version ? ` ${c.version}` : ''}${c.name === 'chromium' ? ' (worker)' : c.name === 'chromium-page' ? ' (page)' : ''}: fp32 prefill 128 / decode ctx 128 (tok/s)`,
      ...[1, 2].map((t) => `${f(row(t)?.prefill_tok_s)} / ${f(row(t)?.decode_tok_s)}`)]);
  }
  s.push(table(['', '1 thread', '2 threads'], rows));
  s.push('');
  if (m && !m.llamacpp?.rows.length) { s.push(`${m.llamacpp?.note ?? LLAMA_CPP_UNSET}.`); s.push(''); }
  const acc = (r.accuracy ?? []).filter((x) => !x.model.startsWith('fixture'));
  if (acc.length) {
    s.push(`Accuracy against our fp32 path on the 124M-shaped random model: ${acc.map((x) => `${x.dtype} max logit error ${x.max_abs_logit_err.toExponential(1)}, ` +
      `mean KL ${x.mean_kl.toExponential(1)}, top-1 ${(100 * x.top1_agreement).toFixed(1)}%`).join('; ')} (random weights have near-flat next-token distributions, so top-1 flips are far more frequent than on a trained GPT-2).`);
    s.push('');
  }
  const wins = peerWins(r);
  const peersMeasured = (r.kernels?.rows ?? []).some((x) => !x.impl.startsWith('ours')) || !!r.model?.peers.length || !!r.model?.llamacpp?.rows.length;
  s.push(!peersMeasured ? 'No peer was measured in this run.' : wins.length ? `Every row of this run where a peer is faster (${wins.length}):` : 'No peer is faster than us in any row of this run.');
  s.push('');
  if (wins.length) { s.push(winsTable(wins)); s.push(''); }
  const goals = computeGoals(r);
  s.push(`Goals of the open issues, checked against this run: ${goals.filter((g) => g.status === 'met').length} of ${goals.length} met, ` +
    `${goals.filter((g) => g.status === '**missed**').length} missed, ${goals.filter((g) => g.status === 'n/a').length} not measured:`);
  s.push('');
  s.push(goalsTable(goals));
  return s.join('\n');
}

/** The llama.cpp rows of the whole-model peers section (or the line saying why it was not measured). */
function renderLlamaCpp(r: BenchResults): string[] {
  const lc = r.model?.llamacpp, s: string[] = [];
  if (!r.model) return s;
  if (!lc?.rows.length) {
    s.push(`- ${lc?.note ?? LLAMA_CPP_UNSET}.`);
    for (const e of lc?.errors ?? []) s.push(`- llama.cpp error: ${e}`);
    return s;
  }
  s.push('');
  s.push(`Native llama.cpp (${lc.build}) running GGUF conversions of the same checkpoint, written by our save_gguf (bench/peers/llamacpp.ts):`);
  s.push('');
  s.push(table(['dtype (ours / GGUF)', 'threads', 'prefill 128 tok/s ours / llama.cpp pp128', 'ours / llama.cpp', 'decode ctx 128 tok/s ours', 'llama.cpp tg from ctx 0 (after a 128-token prompt, by difference)', 'ours / llama.cpp tg'], lc.rows.map((p) => {
    const ours = perf(r.model, p.dtype, p.threads);
    const [pre, dec] = ours ? llamaFigures(ours, p) : [];
    return [`${p.dtype} / ${p.gguf}`, p.threads, `${f(ours?.prefill_128_tok_s)} / ${f(p.pp128_tok_s)}`, pre ? `${f(pre[1] / pre[2], 2)}x` : '-', f(ours?.decode_128_tok_s),
      `${f(p.tg_tok_s)} (${f(p.tg_after_128_tok_s)})`, dec ? `${f(dec[1] / dec[2], 2)}x` : '-'];
  })));
  s.push('');
  s.push(`- llama.cpp protocol: ${lc.method}. Ours: the protocol in the header (fresh processes, best of the timed runs, our decode at ctx 128 with an F32 K/V cache). ` +
    'llama-bench repeats its runs inside one process and warms up with one run of the same test; it cannot start generation at a given depth, so decode is compared with tg from an empty context; the figure after a 128-token prompt (-pg minus pp) is printed in brackets but is the difference of two timings and noisy.');
  for (const e of lc.errors) s.push(`- llama.cpp error: ${e}`);
  return s;
}

export function renderMarkdown(r: BenchResults): string {
  const s: string[] = [];
  const M = r.meta;
  s.push(`# gpt2-wasm bench — ${M.date}${M.quick ? ' (quick subset)' : ''}`);
  s.push('');
  s.push(`\`npm run bench${M.quick ? ' -- --quick' : ''}\` · Node ${M.node} · ${M.cpu} · ${M.cores} cores · commit ${M.commit}${M.dirty ? ' (+ uncommitted changes in the tree)' : ''}${M.seconds ? ` · ${M.seconds.toFixed(0)} s` : ''}`);
  s.push('');
  s.push('Numbers are the best of several runs (the machine is shared with other jobs, so single runs are noisy); throughputs are higher-is-better.');
  s.push(`- protocol: ${M.protocol}.`);
  for (const n of M.notes) s.push(`- ${n}`);
  s.push('');
  s.push('## Goals of the open issues (issues 8, 9, 10), from this run');
  s.push('');
  s.push(goalsTable(computeGoals(r)));
  s.push('');
  const wins = peerWins(r);
  s.push(`## Every row where a peer wins (${wins.length})`);
  s.push('');
  s.push(wins.length ? winsTable(wins) : (r.kernels?.rows ?? []).some((x) => !x.impl.startsWith('ours')) || r.model?.peers.length || r.model?.llamacpp?.rows.length ? 'None in this run.' : 'No peer was measured in this run.');
  s.push('');
  const targets = r.targets ?? computeTargets(r);
  s.push('## Targets (from the earlier issue)');
  s.push('');
  s.push(table(['what', 'measured', 'target', 'status', 'note'], targets.map((t) => [t.what, t.measured, t.target, t.status, t.why ?? ''])));
  s.push('');

  if (r.bandwidth) {
    const b = r.bandwidth;
    s.push('## Memory read bandwidth (GB/s)');
    s.push('');
    s.push(table(['loop', '1 thread', '2 threads', 'issue (earlier)'], [
      ['wasm f32x4 (8 × v128.load per 128 B, four streams)', f(b.wasm_f32x4['1']), f(b.wasm_f32x4['2']), `${EARLIER.bandwidth_wasm_f32x4[1]} / ${EARLIER.bandwidth_wasm_f32x4[2]}`],
      ['JS Float64Array sum (lower bound)', f(b.js_f64_1t), '-', ''],
    ]));
    s.push('');
    s.push(b.note);
    s.push('');
  }

  if (r.kernels) {
    const k = r.kernels;
    s.push('## Matmul kernels, GPT-2-124M shapes (GFLOP/s)');
    s.push('');
    s.push('M×K×N: M rows of activations, K inputs, N outputs; M = 1 is a decode GEMV, M = 128 a prefill GEMM; 1×768×50257 is the LM head.');
    s.push('');
    const shapes = [...new Set(k.rows.map(shapeKey))].sort((a, b) => Number(a.split('x')[0]) - Number(b.split('x')[0]) || a.localeCompare(b));
    const threads = [...new Set(k.rows.map((x) => x.threads))].sort();
    const rows: (string | number)[][] = [];
    for (const dtype of ['f32', 'f16', 'q8']) {
      for (const shape of shapes) {
        for (const mode of ['L3', 'DRAM']) {
          for (const t of threads) {
            const ours = findRow(k.rows, 'ours', dtype, t, shape, mode);
            if (!ours) continue;
            const tf = findRow(k.rows, 'tfjs', dtype, t, shape, mode), ort = findRow(k.rows, 'onnxruntime', dtype, t, shape, mode);
            const peer = bestPeer(k.rows, t, shape, dtype, mode);
            const earlier = mode === 'L3' && dtype === 'f32' ? (shape === '1x768x3072' ? EARLIER.gemv_1x768x3072 : shape === '128x768x3072' ? EARLIER.gemm_128x768x3072 : null) : null;
            const e = earlier ? `tfjs ${earlier['tfjs-backend-wasm'][t] ?? '-'}, ort ${earlier['onnxruntime-web'][t] ?? '-'}` : '';
            const cell = (x?: MatmulRow) => (x ? (mode === 'DRAM' ? `${f(x.gflops)} (${f(x.weight_gb_s)} GB/s)` : f(x.gflops)) : '-');
            rows.push([dtype, shape, mode, t, cell(ours), cell(tf), cell(ort), peer ? `${f(ours.gflops / peer.gflops, 2)}x` : '-', e]);
          }
        }
      }
    }
    s.push(table(['dtype', 'M×K×N', 'weights', 'threads', 'ours', 'tfjs-backend-wasm', 'onnxruntime-web', 'ours / best peer', 'peers in the issue'], rows));
    s.push('');
    s.push(`- ${k.method}.`);
    s.push('- q8 peer: onnxruntime-web DynamicQuantizeMatMul (what transformers.js q8 exports run): u8 activations with one scale per tensor, i8 weights with one scale per column; ours: i8 blocks of 32 on both sides. tfjs has no int8 matmul. No peer runs f16 weights on wasm.');
    for (const p of k.peers) s.push(`- ${p.name} ${p.version}, ${p.threads} thread(s): ${p.note}.`);
    if (Object.keys(k.ort_run_overhead_ms).length) s.push(`- onnxruntime-web session.run overhead (1×8×8 graph): ${Object.entries(k.ort_run_overhead_ms).map(([t, v]) => `${t}t ${f(v * 1000, 0)} µs`).join(', ')}; GEMV rows run 8 ops per session.run to amortise it.`);
    for (const e of k.errors) s.push(`- error: ${e}`);
    s.push('');
  }

  if (r.kernel_detail?.matmul?.length) {
    const d = r.kernel_detail;
    s.push('## Kernel detail (bench/kernels.ts, 1 thread, by build)');
    s.push('');
    const variants = [...new Set<string>(d.matmul.map((x: any) => x.variant))];
    const keys = [...new Set<string>(d.matmul.map((x: any) => `${x.dtype} ${x.kind} ${x.M}x${x.K}x${x.N}`))];
    s.push(table(['kernel', ...variants.map((v) => `${v} GF/s`)], keys.map((key) => [key, ...variants.map((v) => {
      const x = d.matmul.find((y: any) => y.variant === v && `${y.dtype} ${y.kind} ${y.M}x${y.K}x${y.N}` === key);
      return x ? f(x.gflops) : '-';
    })])));
    if (d.attention?.length) {
      s.push('');
      s.push(table(['attention (B=1, H=12, D=64)', 'build', 'ms'], d.attention.map((a: any) => [`${a.kernel} T=${a.T} S=${a.S}`, a.variant, f(a.ms, 2)])));
    }
    for (const sk of d.skipped ?? []) s.push(`- skipped ${sk.variant}: ${sk.reason}`);
    s.push('');
  }

  if (r.model) {
    const m = r.model;
    s.push(`## Whole model: GPT-2-124M-shaped random checkpoint (${m.checkpoint.shape}, ${mib(m.checkpoint.file_bytes)} safetensors)`);
    s.push('');
    if (m.load.length) {
      s.push(table(['dtype (threads)', 'load (page cache)', 'target', 'first touch of the weights\' bytes here, one thread', 'peak RSS', 'RSS / file', 'target', 'weights in wasm memory'], m.load.map((l) => [
        `${l.source === 'gguf' ? `${l.dtype} from its ${ggufType(l)} GGUF (goal < ${GOALS.gguf_q4_load_ms} ms: ${met(l.load_ms < GOALS.gguf_q4_load_ms)})` : l.dtype}${l.threads ? ` (${l.threads})` : ''}`, `${f(l.load_ms, 0)} ms`, met(l.load_ms < TARGETS.load_ms),
        l.first_touch_ms != null ? `${f(l.first_touch_ms, 0)} ms (again: ${f(l.second_touch_ms, 0)} ms)` : '-', mib(l.max_rss_bytes), `${f(l.rss_ratio, 2)}x`, met(l.rss_ratio < TARGETS.peak_rss_over_file), mib(l.weights_bytes),
      ])));
      s.push('');
      if (m.load.some((l) => l.first_touch_ms != null)) {
        s.push('- First touch: a fresh WebAssembly.Memory of the weights\' size written once on one thread, in the same process right after the load; every byte of the weights is written once by any loader, so on one thread no load here can be faster; the second write of the same memory shows what page faults add (on a Firecracker VM the host\'s as well as the guest\'s). Loads run with the default thread count; with a pool the loader first has every thread fault in the weights\' pages (assembly/touch.ts), so such a load can beat the one-thread figure.');
        s.push('');
      }
    }
    if (m.perf.length) {
      s.push(table(['dtype', 'threads', 'prefill 128 tok/s', 'prefill 512 tok/s', 'decode ctx 128 tok/s (target)', 'decode ctx 1024 tok/s', 'bandwidth measured before decode 128 / 1024 (GB/s)', 'bandwidth bound ctx 128 / 1024', '% of bound 128 / 1024', 'host ms/token outside kernels', 'recompute ctx 128 / 1024 tok/s', 'KV cache speed-up 128 / 1024'],
        m.perf.map((p) => {
          const tgt = TARGETS.decode_ctx128[p.dtype]?.[p.threads];
          const sp = (a: number | null, b: number | null) => (a != null && b ? `${f(a / b, 0)}x` : '-');
          return [perfLabel(p), p.threads, f(p.prefill_128_tok_s), f(p.prefill_512_tok_s), `${f(p.decode_128_tok_s)} (${tgt ?? '-'}: ${met(tgt ? p.decode_128_tok_s >= tgt : null)})`, f(p.decode_1024_tok_s),
            `${f(p.decode_128_bw_gb_s)} / ${f(p.decode_1024_bw_gb_s)}`, `${f(p.decode_128_bound_tok_s)} / ${f(p.decode_1024_bound_tok_s)}`, `${f(p.decode_128_pct_of_bound, 0)}% / ${f(p.decode_1024_pct_of_bound, 0)}%`, f(p.host_ms_per_token, 3),
            `${f(p.recompute_128_tok_s, 2)} / ${f(p.recompute_1024_tok_s, 2)}`, `${sp(p.decode_128_tok_s, p.recompute_128_tok_s)} / ${sp(p.decode_1024_tok_s, p.recompute_1024_tok_s)}`];
        })));
      s.push('');
      const p0 = m.perf[0];
      s.push(`- Bound = read bandwidth / (weight bytes read per token + K/V bytes at that context), the bandwidth measured in the same process with the same thread count right before each decode figure (bench/bandwidth.ts, 256 MiB); weight bytes per token: ${m.perf.map((p) => p.dtype).filter((v, i, a) => a.indexOf(v) === i).map((d) => `${d} ${mib(m.perf.find((p) => p.dtype === d)!.bytes_per_token)}`).join(', ')}; K/V ${f(p0.kv_bytes_per_position / 1024, 0)} KiB per position (half that with an fp16 KV cache).`);
      s.push(`- ${m.method}.`);
      s.push('- Recompute = generate({ use_cache: false }): the whole sequence is run again for every new token.');
    }
    for (const e of m.errors) s.push(`- error: ${e}`);
    s.push('');
  }

  const profiled = (r.model?.perf ?? []).filter((p) => p.profile);
  if (profiled.length) {
    const label = (k: string) => {
      const m = k.match(/^matmul_(\w+) (\d+)x(\d+)$/);
      if (!m) return k;
      const names: Record<string, string> = { '768x2304': 'qkv', '768x768': 'attn proj', '768x3072': 'mlp fc', '3072x768': 'mlp proj', '768x50257': 'LM head' };
      return `matmul ${m[2]}x${m[3]}${names[`${m[2]}x${m[3]}`] ? ` (${names[`${m[2]}x${m[3]}`]})` : ''}`;
    };
    for (const which of ['decode', 'prefill'] as const) {
      const keys = [...new Set(profiled.flatMap((p) => p.profile![which].map((x) => label(x.kernel))))];
      const cell = (p: PerfRow, key: string) => {
        const x = p.profile![which].filter((y) => label(y.kernel) === key);
        if (!x.length) return '-';
        const us = x.reduce((a, y) => a + y.us_per_token, 0), share = x.reduce((a, y) => a + y.share, 0);
        return `${f(us / 1000, 2)} (${f(100 * share, 0)}%)`;
      };
      keys.sort((a, b) => profiled.reduce((t, p) => t + (p.profile![which].find((y) => label(y.kernel) === b)?.us_per_token ?? 0), 0) - profiled.reduce((t, p) => t + (p.profile![which].find((y) => label(y.kernel) === a)?.us_per_token ?? 0), 0));
      s.push(`### Where a ${which === 'decode' ? 'decode step (ctx ~128)' : '128-token prefill'} spends its time: ms per token by kernel (share)`);
      s.push('');
      s.push(table(['kernel', ...profiled.map((p) => `${perfLabel(p)} ${p.threads}t`)], [
        ...keys.map((k) => [k, ...profiled.map((p) => cell(p, k))]),
        ['total', ...profiled.map((p) => f(p.profile![which].reduce((a, y) => a + y.us_per_token, 0) / 1000, 2))],
      ]));
      s.push('');
    }
    s.push('- Measured by timing every backend kernel call (pool dispatch included) after the timed runs; matmul rows are K×N of the weight; q8 matmuls exclude quantize_q8, which has its own row.');
    s.push('');
  }

  s.push('## Whole-model peers');
  s.push('');
  const mp = r.model?.peers ?? [];
  if (mp.length) {
    s.push('onnxruntime-web (wasm) running the same random checkpoint as an ONNX graph built in process (bench/peers/ort-gpt2.ts: the ops of an optimum "decoder with past" export; q8 = DynamicQuantizeMatMul with int8 weights per column). K/V go in and out of session.run every step, as with transformers.js on wasm.');
    s.push('');
    s.push(table(['dtype (ours / ort)', 'threads', 'prefill 128 tok/s ours / ort', 'decode ctx 128 tok/s ours / ort', 'decode ctx 1024 tok/s ours / ort', 'ours / ort decode 128'], mp.map((p) => {
      const ours = perf(r.model, p.dtype === 'f32' ? 'fp32' : 'q8', p.threads);
      return [`${p.dtype === 'f32' ? 'fp32' : 'q8'} / ${p.dtype}`, p.threads, `${f(ours?.prefill_128_tok_s)} / ${f(p.prefill_128_tok_s)}`, `${f(ours?.decode_128_tok_s)} / ${f(p.decode_128_tok_s)}`,
        `${f(ours?.decode_1024_tok_s)} / ${f(p.decode_1024_tok_s)}`, ours ? `${f(ours.decode_128_tok_s / p.decode_128_tok_s, 2)}x` : '-'];
    })));
    s.push('');
    const c = r.model?.peer_check;
    if (c) s.push(`- Check: the f32 graph's logits match our fp32 model to ${c.max_abs_diff_prefill.toExponential(1)} (8-token prefill) and ${c.max_abs_diff_decode.toExponential(1)} (one cached decode step); same argmax: ${c.same_argmax}.`);
    const firstOf = (d: string) => mp.find((p) => p.dtype === d);
    s.push(`- Building the graph and creating the session (not part of the timings): ${['f32', 'q8'].map(firstOf).filter((p) => p).map((p) => `${p!.dtype} ${f(p!.build_ms / 1000)} s + ${f(p!.session_ms / 1000)} s`).join(', ')}.`);
  }
  s.push(...renderLlamaCpp(r));
  s.push('- transformers.js itself (@huggingface/transformers) needs an ONNX export of GPT-2 (decoder_model_merged.onnx); there is none on this machine and no network to fetch one, so it is not run. The graph above runs on the same engine (onnxruntime-web/wasm) with the same ops.');
  s.push('');

  if (r.contention?.rows.length) {
    const c = r.contention;
    s.push('## Decode under contention (a second process spins on one core)');
    s.push('');
    s.push(table(['dtype', 'threads', 'decode ctx 128 (tok/s)', 'host outside kernels (ms/token)', 'in kernel calls (ms/token)', '2t / 1t (goal >= 0.9x)'],
      c.rows.map((row) => [row.dtype, row.threads, f(row.decode_128_tok_s), f(row.host_ms_per_token, 3), f(row.kernel_ms_per_token, 2),
        row.threads === 2 ? f(c.ratios.find((x) => x.dtype === row.dtype)?.ratio_2t_1t, 2) : ''])));
    s.push('');
    s.push(`- ${c.method}.`);
    for (const e of c.errors) s.push(`- error: ${e}`);
    s.push('');
  }

  if (r.runtimes) {
    const rt = r.runtimes;
    s.push(`## The same model across runtimes (bench/runtimes.ts${rt.meta.quick ? ' --quick: fp32, no Chromium page column' : ''})`);
    s.push('');
    s.push(renderRuntimesTable(rt));
    s.push('');
    s.push(`- ${rt.method}`);
    for (const c of rt.columns) for (const e of c.errors) s.push(`- ${c.label}: ${e.replace(/\n/g, ' ').slice(0, 300)}`);
    for (const x of rt.skipped) s.push(`- skipped: ${x}`);
    s.push('');
  }

  if (r.accuracy?.length) {
    s.push('## Accuracy of fp16 and q8 against our fp32 path');
    s.push('');
    s.push(table(['model', 'dtype', 'positions', 'max abs logit error', 'mean abs logit error', 'top-1 agreement', 'mean KL (nats)', 'max KL'], r.accuracy.map((a) => [
      a.model, a.dtype, a.positions, a.max_abs_logit_err.toExponential(2), a.mean_abs_logit_err.toExponential(2), `${(100 * a.top1_agreement).toFixed(2)}%`, a.mean_kl.toExponential(2), a.max_kl.toExponential(2),
    ])));
    s.push('');
    s.push('- Token ids are deterministic pseudo-random; every position of every sequence is compared. Both models have random weights, so top-1/top-2 logit margins are far smaller than in a trained GPT-2 and top-1 flips are more frequent than they would be on real text.');
    s.push('');
  }

  if (r.sizes?.length) {
    s.push('## Larger GPT-2 shapes in wasm32 (4 GiB)');
    s.push('');
    const models = [...new Set(r.sizes.map((x) => x.model))];
    s.push(table(['model', 'params', 'fp32 weights', 'fp16 weights', 'q8 weights', 'KV cache (1024 tokens)', 'fp32', 'fp16', 'q8'], models.map((name) => {
      const rows = r.sizes!.filter((x) => x.model === name);
      const g = (d: string) => rows.find((x) => x.dtype === d)!;
      const fit = (x: SizeRow) => (x.fits_full_context ? `fits (${gib(x.total_bytes)})` : x.loads ? `loads, no room for full context (${gib(x.total_bytes)})` : `**does not fit** (${gib(x.weights_bytes)} weights)`);
      return [name, `${(g('fp32').params / 1e6).toFixed(0)}M`, mib(g('fp32').weights_bytes), mib(g('fp16').weights_bytes), mib(g('q8').weights_bytes), mib(g('fp32').kv_cache_bytes), fit(g('fp32')), fit(g('fp16')), fit(g('q8'))];
    })));
    s.push('');
    s.push('- From estimateWeightBytes (src/model/weights.ts) + a batch-1 KV cache of n_positions tokens + one 128-token prefill chunk of activations and LM-head rows.');
    for (const l of r.large_load ?? []) {
      if (l.load) s.push(`- Loaded for real: ${l.model}-shaped random checkpoint (${mib(l.file_bytes)} F32 file) as ${l.dtype}: ${f(l.load.load_ms, 0)} ms, peak RSS ${mib(l.load.max_rss_bytes)} (${f(l.load.rss_ratio, 2)}x file), ${mib(l.load.weights_bytes)} of weights, decode ${f(l.load.decode_tok_s)} tok/s (1 thread, ctx < 32).`);
      else s.push(`- ${l.model} ${l.dtype} load failed: ${l.error}`);
    }
    s.push('');
  }

  if (r.tokenizer?.rows?.length) {
    s.push('## Tokenizer (bench/tokenizer.ts)');
    s.push('');
    s.push(table(['impl', 'encode cold MB/s', 'encode warm MB/s', 'decode MB/s', 'load ms'], r.tokenizer.rows.map((x: any) => [x.impl, f(x.encode_cold_mb_s), f(x.encode_warm_mb_s), f(x.decode_mb_s), f(x.load_ms, 0)])));
    s.push('');
    s.push(`- corpus ${(r.tokenizer.corpus_bytes / 1e6).toFixed(1)} MB, ${r.tokenizer.tokens} tokens; id mismatches vs js-tiktoken: ${r.tokenizer.mismatches}.`);
    s.push('');
  }
  if (r.server?.levels?.length) {
    const v = r.server;
    s.push(`## Server (bench/server.ts: ${v.model}, ${v.dtype}, ${v.threads} threads)`);
    s.push('');
    s.push(table(['clients', 'requests ok/failed/lost', 'tokens/s', 'TTFT p50 / p99 ms', 'inter-token p50 / p99 ms', 'mean batch', 'peak RSS MB'], v.levels.map((l: any) => [
      l.clients, `${l.ok}/${l.failed}/${l.lost}`, f(l.tokens_per_s), `${f(l.ttft_ms?.p50)} / ${f(l.ttft_ms?.p99)}`, `${f(l.itl_ms?.p50)} / ${f(l.itl_ms?.p99)}`, f(l.mean_batch, 2), f(l.rss_peak_mb, 0),
    ])));
    s.push('');
  }
  if (r.skipped.length) {
    s.push('## Skipped');
    s.push('');
    for (const x of r.skipped) s.push(`- ${x}`);
    s.push('');
  }
  return s.join('\n');
}
