// npm run bench [-- --quick] [--skip a,b] [--only a,b] [--no-write] [--quiet-wait ms] [--update-readme]
// One run, side by side: memory bandwidth, matmul kernels vs tfjs-backend-wasm and onnxruntime-web (1 and 2
// threads), the other engineers' benches when present (kernels detail, tokenizer, server), the whole model on a
// GPT-2-124M-shaped random checkpoint (load, RSS, prefill, decode, recompute, share of the bandwidth bound),
// fp16/q8 accuracy, the same model in Node/Deno/Bun/Chromium, and which larger GPT-2 shapes fit wasm32. Prints a
// markdown table and writes bench/results/latest.md and bench/results/<date>.json (--quick: latest-quick.md and
// <date>-quick.json; a full run also rewrites bench/results/runtimes-latest.{md,json}). --update-readme rewrites
// the README's "Latest benchmark" table (between its bench markers) from this run.
// Sections: bandwidth, kernels, peers (kernel and whole-model peers), kernel-detail, tokenizer, server, model,
// contention (decode 1t vs 2t with a second process spinning), runtimes, accuracy, sizes, large (full runs only).
// Ours and every peer are measured with one protocol (bench/util/timing.ts), printed in the report header.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AccuracyRow } from './accuracy.js';
import { runBandwidthBench } from './bandwidth.js';
import { runContentionBench } from './contention.js';
import { loadLargeShape, runModelBench } from './model.js';
import { compareKernels } from './peers/index.js';
import { GPT2_SHAPES, writeRandomGPT2 } from './util/checkpoint.js';
import { argValue, quietPolicy, runChild } from './util/child.js';
import { quietLog, waitForQuiet } from './util/quiet.js';
import { computeTargets, renderMarkdown, renderReadmeTable, type BenchResults } from './util/report.js';
import { runRuntimesBench } from './runtimes.js';
import { describeProtocol, protocol } from './util/timing.js';
import { sizeTable } from './util/sizes.js';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argValue(argv, 'only')?.split(',');
const skip = new Set(argValue(argv, 'skip')?.split(',') ?? []);
const on = (section: string) => (only ? only.includes(section) : !skip.has(section)) && !(quick && section === 'large');
const t0 = performance.now();
const log = (m: string) => console.log(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${m}`);

function git(args: string[]): string {
  try { return execFileSync('git', args, { cwd: here, encoding: 'utf8' }).trim(); } catch { return ''; }
}

/** Fingerprint of the kernels this run uses (the embedded wasm), to notice a rebuild during the run. */
async function kernelsFingerprint(): Promise<string> {
  try {
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    return createHash('sha256').update(readFileSync(join(here, '..', 'src', 'runtime', 'embedded.gen.ts'))).digest('hex').slice(0, 12);
  } catch { return 'unknown'; }
}
const kernelsAtStart = await kernelsFingerprint();

const now = new Date();
const results: BenchResults = {
  meta: {
    date: now.toISOString().slice(0, 10), iso: now.toISOString(), quick, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '', notes: [],
    protocol: describeProtocol(protocol(quick)),
  },
  skipped: [],
};

/** Imports another engineer's bench if it exists; records why not otherwise. */
async function optional<T>(file: string, name: string): Promise<T | null> {
  if (!existsSync(join(here, file))) { results.skipped.push(`${file}: not present`); return null; }
  try { return (await import(`./${file}`)) as T; } catch (e) { results.skipped.push(`${file}: failed to import: ${(e as Error).message.split('\n')[0]}`); return null; }
}

async function section<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
  if (!on(name)) { results.skipped.push(`${name}: skipped by options${quick && name === 'large' ? ' (full run only)' : ''}`); return undefined; }
  log(`${name}...`);
  try { return await fn(); } catch (e) {
    results.skipped.push(`${name}: failed: ${(e as Error).message.split('\n')[0]}`);
    log(`${name} failed: ${(e as Error).stack}`);
    return undefined;
  }
}

// before each measurement, wait (a bounded time) for other jobs on this shared machine to quieten
quietPolicy.maxWaitMs = Number(argValue(argv, 'quiet-wait') ?? (quick ? 2000 : 15000));
quietPolicy.rowWaitMs = Math.min(quietPolicy.maxWaitMs, quick ? 1000 : 5000);
process.env.GPT2WASM_BENCH_QUIET_MS = String(quietPolicy.rowWaitMs); // for measurements made in this process

/** Writes the report (and, with --update-readme, the README table) from what has been measured so far: after
 *  every section, so a run cut short still leaves its finished sections behind, marked as partial. */
async function write(done: boolean): Promise<void> {
  const out: BenchResults = { ...results, meta: { ...results.meta, notes: [...results.meta.notes] } };
  out.meta.seconds = (performance.now() - t0) / 1000;
  if (!done) {
    out.meta.partial = `sections finished: ${finished.join(', ') || 'none'}`;
    out.meta.notes.unshift(`**partial: the run was still going when this was written** (${out.meta.partial})`);
  }
  const kernelsNow = await kernelsFingerprint();
  out.meta.notes.push(kernelsNow === kernelsAtStart
    ? `kernels (src/runtime/embedded.gen.ts) unchanged during the run: ${kernelsAtStart}`
    : `**the kernels were rebuilt during this run** (src/runtime/embedded.gen.ts ${kernelsAtStart} -> ${kernelsNow}): sections measured at different times used different kernels`);
  if (quietLog.length) {
    const busy = quietLog.map((q) => q.busy_at_start ?? 0).sort((a, b) => a - b);
    out.meta.notes.push(`before each of ${quietLog.length} measurements the bench waited up to ${quietPolicy.maxWaitMs / 1000} s for other jobs to use < 20% of the CPUs ` +
      `(waited ${(quietLog.reduce((a, q) => a + q.waited_ms, 0) / 1000).toFixed(0)} s in all; CPU busy at start: median ${(100 * busy[busy.length >> 1]).toFixed(0)}%, max ${(100 * Math.max(...busy)).toFixed(0)}%)`);
  }
  out.meta.notes.push(`machine load while running: ${loadavg().map((v) => v.toFixed(2)).join(' / ')} (1/5/15 min load average ${done ? 'at the end' : 'when written'})`);
  out.targets = computeTargets(out);
  const md = renderMarkdown(out);
  if (done) console.log('\n' + md);
  if (argv.includes('--no-write')) return;
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  // a quick subset does not overwrite the last full run's tables
  const mdName = quick ? 'latest-quick.md' : 'latest.md';
  writeFileSync(join(dir, mdName), md + '\n');
  const jsonName = `${out.meta.date}${quick ? '-quick' : ''}.json`;
  writeFileSync(join(dir, jsonName), JSON.stringify(out, null, 1) + '\n');
  log(`wrote bench/results/${mdName} and bench/results/${jsonName}${done ? '' : ' (partial)'}`);
  if (argv.includes('--update-readme')) updateReadme(out);
}

/** Replaces the README's "Latest benchmark" table (between its bench-table markers) with this run's. */
function updateReadme(r: BenchResults): void {
  const readme = join(here, '..', 'README.md');
  const [start, end] = ['<!-- bench-table:start -->', '<!-- bench-table:end -->'];
  const text = readFileSync(readme, 'utf8');
  const i = text.indexOf(start), j = text.indexOf(end);
  if (i < 0 || j < i) { log(`README.md has no ${start} ... ${end} markers: not updated`); return; }
  writeFileSync(readme, text.slice(0, i + start.length) + '\n' + renderReadmeTable(r) + '\n' + text.slice(j));
  log('updated the README table (Latest benchmark)');
}

const finished: string[] = [];
/** Runs a section, records it and writes the partial report. */
async function step<K extends keyof BenchResults>(key: K, name: string, fn: () => Promise<BenchResults[K]>): Promise<void> {
  results[key] = await section(name, fn as () => Promise<any>);
  if (!on(name)) return;
  finished.push(name);
  await write(false);
}

// The sections the open issues' goals are read from come first (model and its peers, kernels, contention,
// runtimes), so that a run cut short by the clock still has them.
let tmp: string | null = null;
try {
  await step('bandwidth', 'bandwidth', async () => { await waitForQuiet(quietPolicy.maxWaitMs); return runBandwidthBench({ quick, print: true }); });
  const needCheckpoint = on('model') || on('accuracy') || on('contention') || on('runtimes');
  if (needCheckpoint) {
    tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-bench-'));
    const w0 = performance.now();
    const { bytes } = writeRandomGPT2(tmp, GPT2_SHAPES.gpt2);
    log(`wrote a GPT-2-124M-shaped random checkpoint (${(bytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - w0) / 1000).toFixed(1)} s`);
  }
  await step('model', 'model', () => runModelBench({ quick, dir: tmp!, label: 'gpt2 (124M), random F32', print: true, peers: on('peers') }));
  await step('kernels', 'kernels', () => compareKernels({ quick, peers: on('peers') }));
  await step('contention', 'contention', () => runContentionBench({ quick, dir: tmp! }));
  // a full run re-measures bench/results/runtimes-latest.* too; a quick one (fp32 only) lands in latest-quick.md only
  await step('runtimes', 'runtimes', () => runRuntimesBench({ quick, dir: tmp!, write: !quick && !argv.includes('--no-write') }));
  await step('accuracy', 'accuracy', async () => {
    const rows: AccuracyRow[] = [];
    const runs: [string, string[]][] = [];
    let fixtures: string | null = null;
    try { fixtures = (await import('../test/helpers/fixtures.js')).modelDir('gpt2-tiny'); } catch (e) { results.skipped.push(`accuracy on fixtures: ${(e as Error).message}`); }
    if (fixtures) runs.push(['fixture gpt2-tiny', ['--dir', fixtures, '--sequences', '4', '--len', '128']]);
    runs.push(['gpt2 124M random', ['--dir', tmp!, '--sequences', quick ? '1' : '4', '--len', quick ? '64' : '128', '--threads', '2']]);
    for (const [label, args] of runs) {
      const r = await runChild<AccuracyRow[]>(join(here, 'accuracy.ts'), [...args, '--label', label, '--json'], { timeoutMs: 600_000 });
      if (r.ok) rows.push(...r.value); else results.skipped.push(`accuracy ${label}: ${r.error}`);
    }
    return rows;
  });
  if (tmp) { rmSync(tmp, { recursive: true, force: true }); tmp = null; }
  await step('kernel_detail', 'kernel-detail', async () => {
    const m = await optional<{ runKernelBench: (o: any) => Promise<any> }>('kernels.ts', 'kernels');
    return m ? m.runKernelBench({ quick: true, print: false }) : undefined;
  });
  await step('tokenizer', 'tokenizer', async () => {
    const m = await optional<{ runTokenizerBench: (o: any) => Promise<any> }>('tokenizer.ts', 'tokenizer');
    return m ? m.runTokenizerBench({ quick, print: false }) : undefined;
  });
  await step('server', 'server', async () => {
    const m = await optional<{ runServerBench: (o: any) => Promise<any> }>('server.ts', 'server');
    return m ? m.runServerBench({ quick: true, print: false }) : undefined;
  });
  await step('sizes', 'sizes', async () => sizeTable());
  await step('large_load', 'large', async () => [await loadLargeShape('gpt2-medium', 'q8')]);
} finally {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
await write(true);
process.exit(0); // peer thread pools may keep the event loop alive
