// The same GPT-2-124M-shaped checkpoint in every runtime the package supports, side by side:
//   node --import tsx bench/runtimes.ts [--quick] [--dir CHECKPOINT] [--runtimes node,deno,bun,chromium,chromium-page]
//                                       [--dtypes fp32,q8,q4] [--threads 1,2] [--no-write] [--json]
// Node, Deno and Bun run bench/runtimes/child.ts on the built package (dist/index.js, so `npm run build` first)
// reading the checkpoint directory; Chromium (headless, cross-origin isolated so threads work) runs
// bench/runtimes/browser-entry.ts in a Web Worker (and, in a full run, on the page itself) reading the checkpoint
// over HTTP from 127.0.0.1 with urlSource. Per (dtype, threads): load time, prefill of 128 tokens, decode at
// context 128 (32 decodeStep calls after the prefill, greedy argmax fed back), and the wasm build picked.
// Every runtime is a child process (its own process group, killed on timeout). The runtimes run in turn, in
// passes (the bench protocol's processes, bench/util/timing.ts, while the time budget allows), each with the
// protocol's runs and warm-up, and the best of every round is kept: on a shared 2-core machine a 2-thread run
// collapses whenever another process takes a core, and passes spread over time filter that.
// --quick is fp32 only and skips the Chromium page column.
// Budget: full < 10 min, --quick < 3 min. Writes bench/results/runtimes-latest.{md,json} unless --no-write.
// runRuntimesBench(opts) is the programmatic entry (bench/run.ts); it does not write files unless asked.
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT2_SHAPES, writeRandomGPT2 } from './util/checkpoint.js';
import { describeProtocol, protocol } from './util/timing.js';
import { BENCH_PREFIX, paramsToArgs, type BenchConfig, type BenchDType, type BenchRow, type MeasureParams, type RuntimeBenchReport } from './runtimes/measure.ts';

export type RuntimeName = 'node' | 'deno' | 'bun' | 'chromium' | 'chromium-page';
export const ALL_RUNTIMES: RuntimeName[] = ['node', 'deno', 'bun', 'chromium', 'chromium-page'];

export interface RuntimesBenchOptions {
  quick?: boolean;
  /** An existing checkpoint directory (config.json + model.safetensors); default: a random 124M one in a temp dir. */
  dir?: string;
  /** Default: node, deno, bun, chromium, plus chromium-page in a full run. */
  runtimes?: RuntimeName[];
  /** Default: fp32, q8 and q4 (fp32 only with quick). */
  dtypes?: BenchDType[];
  threads?: number[];
  /** Timed rounds per config and pass (default: the protocol's runs). */
  rounds?: number;
  /** decodeStep calls per round (default: the protocol's decode steps, at least 32). */
  steps?: number;
  /** Passes over all runtimes (default: the protocol's processes; a later pass of a runtime only runs while the budget allows). */
  passes?: number;
  /** Wall-clock budget in ms for the whole bench (default 9.5 min full, 2.75 min quick). */
  budgetMs?: number;
  /** Progress on stdout (default true). */
  print?: boolean;
  /** Write bench/results/runtimes-latest.{md,json} (or into this directory). Default false. */
  write?: boolean | string;
}

export interface RuntimeColumn extends Partial<RuntimeBenchReport> {
  name: RuntimeName;
  label: string;
  /** Child process wall time per pass, ms. */
  wall_ms: number[];
  rows: BenchRow[];
  errors: string[];
}

export interface RuntimesBenchResult {
  meta: {
    date: string; iso: string; quick: boolean; node: string; cpu: string; cores: number; commit: string; dirty: boolean;
    dist_built: string | null; seconds: number; passes: number; loadavg_start: number[]; loadavg_end: number[];
  };
  checkpoint: { shape: string; file_bytes: number; params: number | null; temp: boolean; written_ms: number };
  params: { dtypes: BenchDType[]; threads: number[]; rounds: number; prompt: number; steps: number };
  columns: RuntimeColumn[];
  /** Per dtype: whether every runtime and thread count produced the same greedy continuation. */
  greedy_agreement: Record<string, { same: boolean; variants: number }>;
  method: string;
  skipped: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const CHILD = join(here, 'runtimes', 'child.ts');
const BROWSER = join(here, 'runtimes', 'browser.ts');

/** node_modules/.bin first (the devDependencies), then PATH. */
function findBin(name: string): string | null {
  for (const d of [join(root, 'node_modules', '.bin'), ...(process.env.PATH ?? '').split(delimiter)]) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

function git(args: string[]): string {
  try { return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return ''; }
}

interface Target { name: RuntimeName; cmd: string; args: string[] }

function target(name: RuntimeName, dir: string, p: MeasureParams): Target | string {
  const margs = [`--dir=${dir}`, ...paramsToArgs(p)];
  switch (name) {
    case 'node': return { name, cmd: process.execPath, args: ['--import', 'tsx', CHILD, ...margs] };
    case 'deno': {
      const deno = findBin('deno');
      return deno ? { name, cmd: deno, args: ['run', '-A', CHILD, ...margs] } : 'deno not installed (node scripts/setup-runtimes.mjs)';
    }
    case 'bun': {
      const bun = findBin('bun');
      return bun ? { name, cmd: bun, args: [CHILD, ...margs] } : 'bun not installed (node scripts/setup-runtimes.mjs)';
    }
    case 'chromium':
    case 'chromium-page': {
      const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
      if (!existsSync(chromium)) return `chromium not found at ${chromium} (set CHROMIUM_PATH)`;
      if (!existsSync(join(root, 'node_modules', 'playwright-core', 'package.json'))) return 'playwright-core not installed';
      return { name, cmd: process.execPath, args: ['--import', 'tsx', BROWSER, `--where=${name === 'chromium' ? 'worker' : 'page'}`, ...margs] };
    }
  }
}

interface ChildOutcome { report: RuntimeBenchReport | null; error: string | null; ms: number }

const active = new Set<number>();
function killGroup(pid: number, signal: NodeJS.Signals) {
  try { process.kill(-pid, signal); } catch { /* gone */ }
}

/** Runs one runtime in its own process group; SIGTERM then SIGKILL on timeout. Echoes progress lines. */
function runTarget(t: Target, timeoutMs: number, echo: (s: string) => void): Promise<ChildOutcome> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(t.cmd, t.args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    const pid = child.pid!;
    active.add(pid);
    let out = '';
    let err = '';
    let partial = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => {
      err += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (/^\[(node|deno|bun|chromium)/.test(l)) echo(l);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(pid, 'SIGTERM');
      setTimeout(() => killGroup(pid, 'SIGKILL'), 5000).unref();
    }, timeoutMs);
    const finish = (error: string | null) => {
      clearTimeout(timer);
      active.delete(pid);
      killGroup(pid, 'SIGKILL'); // anything the child left behind
      const line = out.split('\n').filter((l) => l.startsWith(BENCH_PREFIX)).pop();
      let report: RuntimeBenchReport | null = null;
      if (line) { try { report = JSON.parse(line.slice(BENCH_PREFIX.length)); } catch { /* reported below */ } }
      const tail = err.trim().split('\n').slice(-4).join(' | ').slice(0, 600);
      if (!report && !error) error = `no ${BENCH_PREFIX.trim()} line${tail ? `: ${tail}` : ''}`;
      done({ report, error: timedOut ? `timed out after ${Math.round(timeoutMs / 1000)} s` : error, ms: performance.now() - t0 });
    };
    child.on('error', (e) => finish(String(e)));
    child.on('close', (code, signal) => finish(code === 0 || code === 1 ? null : `exit ${code ?? signal}`));
  });
}

const LABELS: Record<RuntimeName, string> = { node: 'Node', deno: 'Deno', bun: 'Bun', chromium: 'Chromium', 'chromium-page': 'Chromium' };
const WHERE: Partial<Record<RuntimeName, string>> = { chromium: 'worker', 'chromium-page': 'page' };
const heading = (c: RuntimeColumn) => `${c.label}${c.version ? ` ${c.version}` : ''}${WHERE[c.name] ? ` (${WHERE[c.name]})` : ''}`;

/** Keeps the best of every measure across passes (samples concatenated); an errored pass does not erase a good one. */
function mergeRow(into: BenchRow | undefined, r: BenchRow): BenchRow {
  if (!into || (into.error && !r.error)) return { ...r, load_samples: r.load_ms != null ? [r.load_ms] : [] };
  if (r.error) return into;
  const max = (a?: number, b?: number) => (a == null ? b : b == null ? a : Math.max(a, b));
  return {
    ...into,
    load_ms: Math.min(into.load_ms!, r.load_ms!),
    prefill_tok_s: max(into.prefill_tok_s, r.prefill_tok_s),
    decode_tok_s: max(into.decode_tok_s, r.decode_tok_s),
    load_samples: [...(into.load_samples ?? []), r.load_ms!],
    prefill_samples: [...(into.prefill_samples ?? []), ...(r.prefill_samples ?? [])],
    decode_samples: [...(into.decode_samples ?? []), ...(r.decode_samples ?? [])],
  };
}

async function warmPageCache(file: string): Promise<void> {
  await new Promise<void>((ok, fail) => {
    const s = createReadStream(file, { highWaterMark: 8 << 20 });
    s.on('data', () => {}); s.on('end', () => ok()); s.on('error', fail);
  });
}

export async function runRuntimesBench(opts: RuntimesBenchOptions = {}): Promise<RuntimesBenchResult> {
  const t0 = performance.now();
  const quick = !!opts.quick;
  const print = opts.print ?? true;
  const log = (s: string) => { if (print) console.log(`[runtimes ${((performance.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}`); };
  const budget = opts.budgetMs ?? (quick ? 165_000 : 570_000);
  const deadline = t0 + budget;
  const dtypes = opts.dtypes ?? (quick ? ['fp32'] : ['fp32', 'q8', 'q4']);
  const threads = opts.threads ?? [1, 2];
  const proto = protocol(quick);
  const params: MeasureParams = {
    configs: dtypes.flatMap((dtype) => threads.map((t): BenchConfig => ({ dtype, threads: t }))),
    rounds: opts.rounds ?? proto.runs, prompt: 128, steps: Math.max(32, opts.steps ?? proto.decodeSteps),
    warmupPrefill: proto.warmupPrefill, warmupSteps: proto.warmupSteps,
  };
  const names = opts.runtimes ?? (quick ? ALL_RUNTIMES.filter((n) => n !== 'chromium-page') : ALL_RUNTIMES);
  const passes = opts.passes ?? proto.processes;
  const skipped: string[] = [];
  const distFile = join(root, 'dist', 'index.js');
  if (!existsSync(distFile)) throw new Error('dist/index.js is missing: run npm run build first');

  let dir = opts.dir;
  let temp = false;
  let written_ms = 0;
  let nParams: number | null = null;
  let fileBytes = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    for (const pid of active) killGroup(pid, 'SIGKILL');
    if (temp && dir) rmSync(dir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const loadStart = loadavg().map((v) => Math.round(v * 100) / 100);
  const columns: RuntimeColumn[] = [];
  try {
    if (!dir) {
      dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-runtimes-'));
      temp = true;
      const w0 = performance.now();
      nParams = writeRandomGPT2(dir, GPT2_SHAPES.gpt2).params;
      written_ms = Math.round(performance.now() - w0);
      log(`wrote a GPT-2-124M-shaped random F32 checkpoint to ${dir} in ${(written_ms / 1000).toFixed(1)} s`);
    }
    fileBytes = statSync(join(dir, 'model.safetensors')).size;
    await warmPageCache(join(dir, 'model.safetensors'));

    const targets: Target[] = [];
    for (const n of names) {
      const t = target(n, dir, params);
      if (typeof t === 'string') { skipped.push(`${n}: ${t}`); log(`skip ${n}: ${t}`); }
      else targets.push(t);
      columns.push({ name: n, label: LABELS[n], wall_ms: [], rows: [], errors: typeof t === 'string' ? [t] : [] });
    }
    for (let pass = 0; pass < passes; pass++) {
      for (const t of targets) {
        const col = columns.find((c) => c.name === t.name)!;
        const left = deadline - performance.now();
        // later passes only when the last one of this runtime fits in what is left (with a margin)
        const need = col.wall_ms.length ? col.wall_ms[col.wall_ms.length - 1] * 1.3 + 5000 : 0;
        if (left < 15_000 || (pass > 0 && need > left)) {
          skipped.push(`${t.name} pass ${pass + 1}: out of time budget (${Math.round(left / 1000)} s left)`);
          continue;
        }
        log(`${t.name}: pass ${pass + 1}/${passes}`);
        const out = await runTarget(t, left, (l) => log(`  ${l}`));
        col.wall_ms.push(Math.round(out.ms));
        if (out.error) col.errors.push(`pass ${pass + 1}: ${out.error}`);
        const r = out.report;
        if (!r) continue;
        if (r.error) col.errors.push(`pass ${pass + 1}: ${r.error}`);
        Object.assign(col, { runtime: r.runtime, version: r.version, where: r.where, source: r.source, features: r.features, crossOriginIsolated: r.crossOriginIsolated });
        for (const row of r.rows) {
          const i = col.rows.findIndex((x) => x.dtype === row.dtype && x.threads_requested === row.threads_requested);
          if (i < 0) col.rows.push(mergeRow(undefined, row)); else col.rows[i] = mergeRow(col.rows[i], row);
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (temp && dir) rmSync(dir, { recursive: true, force: true });
  }

  // greedy continuations should agree wherever the arithmetic is the same; report, do not judge
  const greedy_agreement: RuntimesBenchResult['greedy_agreement'] = {};
  for (const d of dtypes) {
    const seqs = new Set(columns.flatMap((c) => c.rows.filter((r) => r.dtype === d && r.greedy_ids).map((r) => r.greedy_ids!.join(','))));
    greedy_agreement[d] = { same: seqs.size <= 1, variants: seqs.size };
  }
  const now = new Date();
  const result: RuntimesBenchResult = {
    meta: {
      date: now.toISOString().slice(0, 10), iso: now.toISOString(), quick, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
      commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
      dist_built: existsSync(distFile) ? statSync(distFile).mtime.toISOString() : null,
      seconds: Math.round((performance.now() - t0) / 100) / 10, passes,
      loadavg_start: loadStart, loadavg_end: loadavg().map((v) => Math.round(v * 100) / 100),
    },
    checkpoint: { shape: temp ? 'gpt2 (124M), random F32' : dir!, file_bytes: fileBytes, params: nParams, temp, written_ms },
    params: { dtypes, threads, rounds: params.rounds, prompt: params.prompt, steps: params.steps },
    columns, greedy_agreement, skipped,
    method: `${describeProtocol(proto)}; each runtime in its own child process on dist/index.js; per (dtype, threads) a fresh from_pretrained (load = its wall time), ` +
      `a ${params.warmupPrefill}-token warm-up prefill + ${params.warmupSteps} steps, then ${params.rounds} round(s) of: reset, prefill ${params.prompt} tokens (timed), ` +
      `${params.steps} decodeStep calls feeding back the greedy argmax (timed, argmax included); ` +
      `${passes} pass(es) over the runtimes, best of all rounds (shared 2-core machine: single runs are noisy). ` +
      'Node/Deno/Bun read the checkpoint directory (page cache warm); Chromium reads it with urlSource over HTTP on 127.0.0.1 ' +
      '(4 MiB Range requests), so its load time includes the transfer through the browser network stack.',
  };
  if (opts.write) {
    const outDir = typeof opts.write === 'string' ? opts.write : join(here, 'results');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'runtimes-latest.md'), renderRuntimesMarkdown(result) + '\n');
    writeFileSync(join(outDir, 'runtimes-latest.json'), JSON.stringify(result, null, 1) + '\n');
    log(`wrote ${join(outDir, 'runtimes-latest.md')} and runtimes-latest.json`);
  }
  return result;
}

// ----------------------------------------------------------------------------------------------------------
// markdown

const fmt = (v: number | undefined, d = 1) => (v == null || !Number.isFinite(v) ? '-' : v.toFixed(d));

function cell(col: RuntimeColumn, dtype: string, t: number, pick: (r: BenchRow) => string): string {
  const r = col.rows.find((x) => x.dtype === dtype && x.threads_requested === t);
  if (!r) return col.errors.length ? 'failed' : '-';
  if (r.error) return `error: ${r.error.slice(0, 80).replace(/\|/g, '/')}`;
  const v = pick(r);
  return r.threads != null && r.threads !== t ? `${v} (ran ${r.threads}t)` : v;
}

/** The side-by-side table (runtimes as columns) and notes. */
export function renderRuntimesTable(res: RuntimesBenchResult): string {
  const cols = res.columns.filter((c) => c.rows.length || c.errors.length);
  const head = ['', ...cols.map(heading)];
  const rows: string[][] = [];
  for (const t of res.params.threads) {
    rows.push([`wasm build, ${t} thread${t > 1 ? 's' : ''}`, ...cols.map((c) => [...new Set(c.rows.filter((r) => r.threads_requested === t && r.variant).map((r) => r.variant!))].join(' / ') || '-')]);
  }
  for (const d of res.params.dtypes) {
    for (const t of res.params.threads) {
      const k = `${d} ${t}t`;
      rows.push([`${k}: load (ms)`, ...cols.map((c) => cell(c, d, t, (r) => fmt(r.load_ms, 0)))]);
      rows.push([`${k}: prefill ${res.params.prompt} (tok/s)`, ...cols.map((c) => cell(c, d, t, (r) => fmt(r.prefill_tok_s)))]);
      rows.push([`${k}: decode @${res.params.prompt} (tok/s)`, ...cols.map((c) => cell(c, d, t, (r) => fmt(r.decode_tok_s)))]);
    }
  }
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map(line)].join('\n');
}

export function renderRuntimesMarkdown(res: RuntimesBenchResult): string {
  const m = res.meta;
  const out: string[] = [];
  out.push(`# gpt2-wasm across runtimes — ${m.date}${m.quick ? ' (quick)' : ''}`, '');
  out.push(`\`node --import tsx bench/runtimes.ts${m.quick ? ' --quick' : ''}\` · ${m.cpu} · ${m.cores} cores · commit ${m.commit}${m.dirty ? ' (+ uncommitted changes)' : ''}` +
    ` · dist built ${m.dist_built ?? '?'} · ${m.seconds} s`, '');
  out.push(`${res.checkpoint.shape}, ${(res.checkpoint.file_bytes / 2 ** 20).toFixed(0)} MiB safetensors; prompt ${res.params.prompt} tokens, decode ${res.params.steps} steps at context ${res.params.prompt}. ` +
    'Throughputs are the best of all timed rounds (higher is better), load the best of the passes. The machine is shared (2 cores): ' +
    'a 2-thread run drops below the 1-thread speed whenever another process holds a core (the pool meets at every op), so a 2t cell ' +
    'that is still below 1t was contended in every pass, not a property of that runtime. All samples are in the JSON.', '');
  out.push(renderRuntimesTable(res), '');
  out.push('Notes:');
  for (const c of res.columns) {
    const iso = c.crossOriginIsolated != null ? `, crossOriginIsolated ${c.crossOriginIsolated}` : '';
    const feat = c.features && typeof c.features === 'object' ? `, features ${JSON.stringify(c.features)}` : '';
    if (c.version) out.push(`- ${heading(c)}: ${c.where}, ${c.source}${iso}${feat}; ${c.wall_ms.length} pass(es), ${c.wall_ms.map((v) => (v / 1000).toFixed(0) + ' s').join(' + ')}`);
    for (const e of c.errors) out.push(`- ${heading(c)}: ${e.replace(/\n/g, ' ').slice(0, 300)}`);
  }
  for (const [d, g] of Object.entries(res.greedy_agreement)) {
    out.push(`- greedy continuation, ${d}: ${g.same ? 'identical in every runtime and thread count' : `${g.variants} different sequences across runtimes/threads (relaxed vs plain SIMD rounding can flip an argmax on random weights)`}`);
  }
  out.push(`- machine load average (1/5/15 min): ${m.loadavg_start.join(' / ')} at the start, ${m.loadavg_end.join(' / ')} at the end`);
  for (const s of res.skipped) out.push(`- skipped: ${s}`);
  out.push(`- method: ${res.method}`);
  return out.join('\n');
}

// ----------------------------------------------------------------------------------------------------------
// CLI

// no top-level await: tests import this module's renderers (through bench/util/report.ts) under tsx's CJS transform
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void (async () => {
  const argv = process.argv.slice(2);
  const val = (name: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined; };
  const list = (name: string) => val(name)?.split(',').filter(Boolean);
  const res = await runRuntimesBench({
    quick: argv.includes('--quick'),
    dir: val('dir'),
    runtimes: list('runtimes') as RuntimeName[] | undefined,
    dtypes: list('dtypes') as BenchDType[] | undefined,
    threads: list('threads')?.map(Number),
    rounds: val('rounds') ? Number(val('rounds')) : undefined,
    passes: val('passes') ? Number(val('passes')) : undefined,
    write: !argv.includes('--no-write'),
  });
  console.log('\n' + renderRuntimesMarkdown(res));
  if (argv.includes('--json')) console.log(JSON.stringify(res));
  process.exit(0);
})();
