// The edge memory budget, measured on workerd (the Cloudflare Workers runtime), one isolate per run:
//   node --experimental-websocket --import tsx test/runtimes/workerd-budget.ts --model DIR --dtype q4|q8|fp16|q4,wte=q4 [--kv-dtype fp16] [--contexts 128,512]
// Serves the checkpoint in DIR over local HTTP with Range support (streamed from disk), with GPT-2's tokenizer
// (vocab.json + merges.txt of the gpt2-tiny fixture, which has GPT-2's; skipped when the fixtures are not found:
// the report says `tokenizer: false`) so that the handler loads it and decodes the reply, runs a Worker around
// createFetchHandler on workerd (workerd-run.ts) with its V8 inspector on, and for
// each context C (ascending) posts one /v1/completions of (C - 64) prompt token ids + 64 new tokens (greedy).
// Prints one line `EDGE_BUDGET {json}` with, per context, the peaks so far (wasm memory never shrinks and the
// peaks are monotonic, so running the contexts in ascending order in one isolate gives each one's own peak):
//   wasmBytes     the model's WebAssembly.Memory size, read inside the isolate (a debug route of the entry)
//   heapUsedPeak  V8 heap used (Runtime.getHeapUsage over the inspector, sampled every 20 ms; workerd gives
//                 the isolate no heap API of its own: no performance.memory, process.memoryUsage or node:v8)
//   peakBytes     wasmBytes + heapUsedPeak: the isolate's peak as Workers count it (an upper bound of the
//                 peak of the sum, as the two peaks need not coincide)
//   isolatePeak   wasmBytes + the peak of (V8 heap used + embedder heap + ArrayBuffer backing stores, which are
//                 fetched chunks and not the wasm memory) in one inspector sample: the isolate's whole footprint
//   rssGrowth     the workerd process's VmHWM (/proc/<pid>/status) minus its VmRSS before the first request:
//                 everything the isolate touched, compiled code and ArrayBuffers outside the V8 heap included
// Used by bench/edge-budget.ts and test/edge-budget.test.ts.
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendFile, startServer } from '../helpers/http-server.ts';
import { freePort, root, startWorker, type RunningWorker } from './workerd-run.ts';
import { parseDTypeSpec } from '../../src/model/weights.ts';
import { GPT2_SHAPES, writeRandomGPT2, type GPT2Shape } from '../../bench/util/checkpoint.ts';

export const BUDGET_PREFIX = 'EDGE_BUDGET ';
export const NEW_TOKENS = 64;

export interface ContextPeak {
  context: number; promptTokens: number; newTokens: number;
  wasmBytes: number; heapUsedPeak: number; peakBytes: number; rssGrowth: number; rssBaseline: number;
  backingPeak: number; isolatePeak: number;
  weightBytes: number; inUseBytes: number; requestMs: number;
}
/** Right after the model loaded (a warm-up call of the debug route), before any request. */
export interface LoadPeak { wasmBytes: number; heapUsedPeak: number; peakBytes: number; rssGrowth: number; backingPeak: number; isolatePeak: number; loadMs: number }
export interface BudgetReport {
  model: string; dtype: string; kv_dtype: string | null; workerd: string;
  /** Whether the tokenizer was served (then the handler loads it and every reply carries decoded text). */
  tokenizer: boolean;
  load?: LoadPeak; contexts: ContextPeak[]; error?: string;
}

/** The directory of GPT-2's tokenizer files among the fixtures, or null when the fixtures are not found. */
async function tokenizerDir(): Promise<string | null> {
  try {
    const dir = (await import('../helpers/fixtures.ts')).modelDir('gpt2-tiny');
    return existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt')) ? dir : null;
  } catch {
    return null;
  }
}

/** The shapes measured: GPT-2 124M and distilgpt2 (the same with 6 layers). */
export const BUDGET_SHAPES: Record<string, GPT2Shape> = { 'gpt2': GPT2_SHAPES.gpt2, 'distilgpt2': { ...GPT2_SHAPES.gpt2, n_layer: 6 } };

/** A random F32 checkpoint of `shape` in the temp dir, written once and reused (~500 MB for gpt2). */
export function budgetCheckpoint(shape: string): string {
  const dir = join(tmpdir(), `gpt2wasm-edge-${shape}`);
  if (existsSync(join(dir, 'done'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.${process.pid}`;
  writeRandomGPT2(tmp, BUDGET_SHAPES[shape]);
  writeFileSync(join(tmp, 'done'), '');
  renameSync(tmp, dir);
  return dir;
}

const VARIANT = 'simd';

/** VmRSS and VmHWM of a process, in bytes. */
function procMemory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** A minimal V8 inspector client: Runtime.getHeapUsage, sampled on a timer, keeping the peak. */
async function heapSampler(inspectorPort: number) {
  const list = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json() as { webSocketDebuggerUrl: string }[];
  const ws = new (globalThis as any).WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('inspector websocket failed')); });
  let id = 0, peak = 0, last = 0, pending = false, backingPeak = 0, jsPeak = 0;
  ws.onmessage = (ev: { data: string }) => {
    const r = JSON.parse(String(ev.data)).result;
    if (r?.usedSize === undefined) return;
    last = r.usedSize;
    peak = Math.max(peak, last);
    backingPeak = Math.max(backingPeak, r.backingStorageSize ?? 0);
    jsPeak = Math.max(jsPeak, last + (r.embedderHeapUsedSize ?? 0) + (r.backingStorageSize ?? 0));
    pending = false;
  };
  const ask = () => { if (!pending) { pending = true; ws.send(JSON.stringify({ id: ++id, method: 'Runtime.getHeapUsage' })); } };
  const timer = setInterval(ask, 20);
  return {
    get peak() { return peak; },
    /** ArrayBuffer backing stores outside the wasm memory (fetched chunks), and heap + embedder + those, sampled together. */
    get backingPeak() { return backingPeak; },
    get jsPeak() { return jsPeak; },
    /** One fresh sample (waits for the isolate to answer). */
    async settle() { for (let i = 0; i < 100 && pending; i++) await new Promise((r) => setTimeout(r, 10)); pending = false; ask(); for (let i = 0; i < 200 && pending; i++) await new Promise((r) => setTimeout(r, 10)); return last; },
    close() { clearInterval(timer); ws.close(); },
  };
}

export async function measureBudget(modelDir: string, dtype: string, kvDtype: string | null, contexts: number[]): Promise<BudgetReport> {
  const version = (() => { try { return JSON.parse(readFileSync(join(root, 'node_modules', 'workerd', 'package.json'), 'utf8')).version; } catch { return '?'; } })();
  const tokDir = await tokenizerDir();
  const report: BudgetReport = { model: modelDir, dtype, kv_dtype: kvDtype, workerd: version, tokenizer: tokDir !== null, contexts: [] };
  const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-budget-'));
  const files = await startServer((req, res, path) => {
    const name = path.replace(/^\/model\//, '');
    if (tokDir && (name === 'vocab.json' || name === 'merges.txt')) { sendFile(req, res, join(tokDir, name)); return; }
    if (!['config.json', 'model.safetensors'].includes(name)) { res.writeHead(404); res.end(); return; }
    sendFile(req, res, join(modelDir, name));
  });
  let worker: RunningWorker | null = null;
  let sampler: Awaited<ReturnType<typeof heapSampler>> | null = null;
  try {
    // the Worker: the edge handler plus a debug route reporting the model's wasm memory from inside the isolate
    const opts: Record<string, unknown> = { modelUrl: `${files.url}/model/`, modelName: 'budget', threads: 1, variant: VARIANT, dtype: parseDTypeSpec(dtype) };
    if (kvDtype) opts.kv_dtype = kvDtype;
    const entry = [
      `import { createFetchHandler } from ${JSON.stringify(join(root, 'src/edge/handler.ts'))};`,
      `import kernels from './kernels.wasm';`,
      `const handler = createFetchHandler({ ...${JSON.stringify(opts)}, wasmModule: kernels });`,
      `export default { async fetch(request) {`,
      `  if (new URL(request.url).pathname !== '/__budget') return handler.fetch(request);`,
      `  const t0 = Date.now(); let m;`,
      `  try { m = await handler.model(); } catch (e) { return Response.json({ error: String(e && e.message || e) }, { status: 500 }); }`,
      `  const loadMs = Date.now() - t0;`,
      `  const u = m.memoryUsage();`,
      `  return Response.json({ wasmBytes: m.backend.arena.memory.buffer.byteLength, weightBytes: u.weights, inUseBytes: u.inUse, loadMs });`,
      `} };`,
    ].join('\n');
    const inspector = await freePort();
    worker = await startWorker(dir, entry, VARIANT, [`--inspector-addr=127.0.0.1:${inspector}`]);
    const { api, child } = worker;
    sampler = await heapSampler(inspector);
    await sampler.settle();
    const rssBaseline = procMemory(child.pid!).rss;
    const inspect = async () => {
      const res = await fetch(`${api}/__budget`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`loading the model in workerd failed: HTTP ${res.status}: ${text.slice(0, 500)}`);
      return JSON.parse(text) as { wasmBytes: number; weightBytes: number; inUseBytes: number; loadMs: number };
    };
    // the load alone: the first call of the debug route loads the model
    const loaded = await inspect();
    await sampler.settle();
    report.load = { wasmBytes: loaded.wasmBytes, heapUsedPeak: sampler.peak, peakBytes: loaded.wasmBytes + sampler.peak, rssGrowth: procMemory(child.pid!).hwm - rssBaseline,
      backingPeak: sampler.backingPeak, isolatePeak: loaded.wasmBytes + sampler.jsPeak, loadMs: loaded.loadMs };

    const vocab = cfg.vocab_size as number;
    for (const C of [...contexts].sort((a, b) => a - b)) {
      const promptTokens = C - NEW_TOKENS;
      // a fixed pseudo-random prompt (token ids, so no tokenizer is needed); never the end-of-text id
      const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919 + 13) % (vocab - 1));
      const t0 = Date.now();
      const res = await fetch(`${api}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt, max_tokens: NEW_TOKENS, temperature: 0 }) });
      const body = await res.json() as any;
      const requestMs = Date.now() - t0;
      if (res.status !== 200) throw new Error(`context ${C}: HTTP ${res.status}: ${JSON.stringify(body)}`);
      if (tokDir && typeof body.choices?.[0]?.text !== 'string') throw new Error(`context ${C}: the reply has no decoded text (was the tokenizer loaded?): ${JSON.stringify(body).slice(0, 300)}`);
      const inside = await inspect();
      await sampler.settle();
      const heapUsedPeak = sampler.peak;
      const { hwm } = procMemory(child.pid!);
      report.contexts.push({
        context: C, promptTokens, newTokens: body.usage?.completion_tokens ?? -1,
        wasmBytes: inside.wasmBytes, heapUsedPeak, peakBytes: inside.wasmBytes + heapUsedPeak, rssGrowth: hwm - rssBaseline, rssBaseline,
        backingPeak: sampler.backingPeak, isolatePeak: inside.wasmBytes + sampler.jsPeak,
        weightBytes: inside.weightBytes, inUseBytes: inside.inUseBytes, requestMs,
      });
    }
  } catch (e) {
    report.error = `${(e as Error).message}\n${worker?.log().slice(-2000) ?? ''}`;
  } finally {
    sampler?.close();
    await worker?.stop();
    await files.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (k: string) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : undefined; };
  const model = arg('--model');
  if (!model) { console.error('usage: workerd-budget.ts --model DIR --dtype D [--kv-dtype fp16] [--contexts 128,512]'); process.exit(2); }
  if (typeof (globalThis as any).WebSocket !== 'function') { console.error('needs a global WebSocket: run node with --experimental-websocket (Node 20) or Node >= 22'); process.exit(2); }
  measureBudget(model, arg('--dtype') ?? 'q8', arg('--kv-dtype') ?? null, (arg('--contexts') ?? '128,512').split(',').map(Number)).then((r) => {
    console.log(BUDGET_PREFIX + JSON.stringify(r));
    process.exit(r.error ? 1 : 0);
  });
}
