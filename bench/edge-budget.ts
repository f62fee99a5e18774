// The 128 MB edge budget, measured in workerd (the Cloudflare Workers runtime) through createFetchHandler:
//   node --import tsx bench/edge-budget.ts [--shapes gpt2,distilgpt2] [--contexts 128,512] [--only q8] [--out bench/results/edge-budget-latest.md]
// For each shape and run dtype, one fresh workerd isolate loads a random F32 checkpoint of that shape over local
// HTTP (with GPT-2's tokenizer from the fixtures, which the handler loads to decode the replies), then serves one
// completion per context C: C - 64 prompt token ids + 64 new tokens (test/runtimes/workerd-budget.ts
// measures; each runs in a child node with a WebSocket for the V8 inspector). Memory figures do not depend on
// machine load; the load and request times in the JSON do.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUDGET_PREFIX, budgetCheckpoint, type BudgetReport } from '../test/runtimes/workerd-budget.ts';
import { table } from './util/report.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k: string) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : undefined; };
const shapes = (arg('--shapes') ?? 'gpt2,distilgpt2').split(',');
const contexts = (arg('--contexts') ?? '128,512').split(',').map(Number);
const out = arg('--out') ?? join(root, 'bench', 'results', 'edge-budget-latest.md');

/** The run configurations, q4 weights with an f16 KV cache first (the edge configuration). */
export const BUDGET_RUNS: { label: string; dtype: string; kv_dtype: string | null }[] = [
  { label: 'q4 + fp16 KV', dtype: 'q4', kv_dtype: 'fp16' },
  { label: 'q4 everywhere (wte too) + fp16 KV', dtype: 'q4,wte=q4', kv_dtype: 'fp16' },
  { label: 'q8', dtype: 'q8', kv_dtype: null },
  { label: 'fp16', dtype: 'fp16', kv_dtype: null },
];
const runs = arg('--only') ? BUDGET_RUNS.filter((r) => r.label === arg('--only') || r.dtype === arg('--only')) : BUDGET_RUNS;

/** One measurement in a child node (Node 20 needs --experimental-websocket for the inspector client). */
export function runBudget(model: string, dtype: string, kvDtype: string | null, ctx: number[]): Promise<BudgetReport> {
  const args = ['--experimental-websocket', '--import', 'tsx', join(root, 'test', 'runtimes', 'workerd-budget.ts'), '--model', model, '--dtype', dtype, '--contexts', ctx.join(',')];
  if (kvDtype) args.push('--kv-dtype', kvDtype);
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith(BUDGET_PREFIX));
      done(line ? JSON.parse(line.slice(BUDGET_PREFIX.length))
        : { model, dtype, kv_dtype: kvDtype, workerd: '?', tokenizer: false, contexts: [], error: `exit ${code}: ${(stderr || stdout).slice(-1500)}` });
    });
  });
}

const MB = (b: number) => (b / 1e6).toFixed(1);

async function main() {
  const reports: { shape: string; label: string; r: BudgetReport }[] = [];
  for (const shape of shapes) {
    const dir = budgetCheckpoint(shape);
    for (const run of runs) {
      const r = await runBudget(dir, run.dtype, run.kv_dtype, contexts);
      reports.push({ shape, label: run.label, r });
      console.error(`${shape} ${run.label}: ${r.error ? 'ERROR ' + r.error.split('\n')[0] : r.contexts.map((c) => `ctx ${c.context} peak ${MB(c.peakBytes)} MB, rss +${MB(c.rssGrowth)} MB`).join('; ')}`);
    }
  }
  const rows: (string | number)[][] = [];
  for (const { shape, label, r } of reports) {
    if (r.error) { rows.push([shape, label, '—', '—', '—', '—', '—', '—', '—', `error: ${r.error.split('\n')[0].slice(0, 160)}`]); continue; }
    if (r.load) rows.push([shape, label, 'load only', MB(r.contexts[0]?.weightBytes ?? 0), MB(r.load.wasmBytes), MB(r.load.heapUsedPeak), `**${MB(r.load.peakBytes)}**`, MB(r.load.isolatePeak), MB(r.load.rssGrowth), '']);
    for (const c of r.contexts) {
      const goal = c.context <= 128 ? 120e6 : 128e6;
      rows.push([shape, label, `${c.promptTokens} + ${c.newTokens} = ${c.context}`, MB(c.weightBytes), MB(c.wasmBytes), MB(c.heapUsedPeak), `**${MB(c.peakBytes)}**`, MB(c.isolatePeak), MB(c.rssGrowth),
        label.startsWith('q4') && shape === 'gpt2' ? (c.peakBytes < goal ? `under ${goal / 1e6} MB` : `over ${goal / 1e6} MB`) : '']);
    }
  }
  const version = reports.find((x) => !x.r.error)?.r.workerd ?? '?';
  const md = [
    `# Edge memory budget in workerd ${version} — ${new Date().toISOString().slice(0, 10)}`,
    '',
    '`node --import tsx bench/edge-budget.ts` · one fresh workerd isolate per row group, createFetchHandler with its defaults (threads 1, prefill_chunk 64), the simd kernel build,',
    'weights streamed over local HTTP (Range) from a random F32 checkpoint of the shape' + (reports.every((x) => x.r.tokenizer) ? ', and GPT-2\'s tokenizer (vocab.json + merges.txt), which the handler loads to decode each reply' : ' (no tokenizer served: fixtures not found)') + '.',
    'Context C = (C - 64) prompt token ids + 64 greedy new tokens in one /v1/completions request; the contexts run in ascending order in the same isolate,',
    'and every figure is a peak so far (wasm memory never shrinks).',
    '',
    '- **wasm**: the model\'s WebAssembly.Memory size, read inside the isolate.',
    '- **V8 heap used**: the peak of Runtime.getHeapUsage over workerd\'s inspector, sampled every 20 ms (workerd gives an isolate no heap API of its own).',
    '- **peak = wasm + heap**: what a Workers isolate is charged, as an upper bound (the two peaks may not coincide). Goal for q4 + fp16 KV on gpt2: < 120 MB at context 128, < 128 MB at 512.',
    '- **isolate**: wasm + the peak of (V8 heap used + embedder heap + ArrayBuffer backing stores outside the wasm memory, e.g. fetched chunks awaiting GC) from one inspector sample: the whole isolate as V8 accounts it.',
    '- **RSS growth**: the workerd process\'s VmHWM minus its VmRSS before the first request: also compiled code, ArrayBuffers outside the V8 heap (fetch chunks), allocator slack.',
    '',
    'MB = 10^6 bytes.',
    '',
    table(['shape', 'run', 'context (prompt + new)', 'weights MB', 'wasm MB', 'V8 heap used MB', 'peak MB', 'isolate MB', 'RSS growth MB', 'goal'], rows),
    '',
  ].join('\n');
  console.log(md);
  writeFileSync(out, md);
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify(reports, null, 2) + '\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main().catch((e) => { console.error(e); process.exit(1); });
