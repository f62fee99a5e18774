// Load test of the HTTP server: starts it in-process on 127.0.0.1 (port chosen by the OS), then for 1, 4 and 16
// concurrent streaming clients measures aggregate tokens/s, time to first token and inter-token latency
// (p50/p99), RSS before/after (and peak), and requests that failed (an error status or error event) or were lost
// (the stream ended without [DONE]). Each level is bounded in requests and in time. The clients run in the
// same process as the server, so their own work is part of the measured latency.
//   node --import tsx bench/server.ts [--model DIR|ID] [--quick] [--threads N] [--dtype fp32|fp16|q8] [--json]
import { setMaxListeners } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { pathToFileURL } from 'node:url';
import { GPT2LMHeadModel } from '../src/model/gpt2.js';
import { resolveSource } from '../src/io/resolve.js';
import { AutoTokenizer } from '../src/tokenizer/index.js';
import { createServer } from '../src/server/index.js';

export interface ServerBenchOptions {
  /** Model directory or Hub id; default the gpt2-tiny fixture. */
  model?: string;
  /** Fewer requests and tokens. */
  quick?: boolean;
  /** Concurrent clients per level (default [1, 4, 16]). */
  concurrency?: number[];
  /** Requests each client sends one after another (default 3, quick 2). */
  requestsPerClient?: number;
  /** max_tokens of every request (default 64, quick 32; capped so prompt + max_tokens fit the context). */
  maxTokens?: number;
  /** Server slots (default: the largest level, so every client is batched). */
  maxConcurrency?: number;
  threads?: number;
  dtype?: 'auto' | 'fp32' | 'fp16' | 'q8';
  /** Each level stops sending new requests after this long and abandons the rest after twice it (default 60 s). */
  levelTimeMs?: number;
  /** Print a table (default true). */
  print?: boolean;
}

export interface LatencyStats { p50: number; p99: number; mean: number; n: number }

export interface ServerBenchLevel {
  clients: number;
  requests: number;
  ok: number;
  failed: number;
  lost: number;
  completion_tokens: number;
  wall_s: number;
  tokens_per_s: number;
  ttft_ms: LatencyStats;
  itl_ms: LatencyStats;
  /** Mean sequences per decode step on the server during this level. */
  mean_batch: number;
  /** Mean time of one batched decode step on the server (the inter-token latency every client shares). */
  step_ms: number;
  /** Time the server spent in prefills, as a share of the level's wall time. */
  prefill_share: number;
  rss_peak_mb: number;
}

export interface ServerBenchResult {
  model: string;
  dtype: string;
  threads: number;
  wasm: string;
  max_concurrency: number;
  max_tokens: number;
  prompt_tokens: number;
  rss_before_mb: number;
  rss_after_mb: number;
  levels: ServerBenchLevel[];
}

const PROMPTS = [
  'The history of the city begins in the early years of the nineteenth century, when',
  'In a quiet village at the edge of the forest there lived an old carpenter who',
  'Researchers at the university announced on Tuesday that they had discovered a new',
  'The recipe calls for two cups of flour, a pinch of salt, and three eggs, which',
  'When the spacecraft finally reached orbit, the crew looked out of the window and',
  'The committee will meet next week to discuss the budget for the coming year and',
  'She opened the letter slowly, knowing that whatever it said would change how she',
  'Engineers have long debated whether the bridge should be replaced or repaired, since',
];

const mb = (b: number) => +(b / 2 ** 20).toFixed(1);

function stats(xs: number[]): LatencyStats {
  if (!xs.length) return { p50: 0, p99: 0, mean: 0, n: 0 };
  const s = xs.slice().sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const r = (x: number) => +x.toFixed(2);
  return { p50: r(q(0.5)), p99: r(q(0.99)), mean: r(s.reduce((a, b) => a + b, 0) / s.length), n: s.length };
}

interface Outcome { kind: 'ok' | 'failed' | 'lost'; ttft: number | null; gaps: number[]; tokens: number }

/** One streaming completion; resolves with its timings, never rejects. */
function streamOnce(url: string, agent: Agent, body: object, abort: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let last = 0, ttft: number | null = null, tokens = 0, done = false, failed = false, buf = '';
    const gaps: number[] = [];
    let settled = false;
    const finish = (kind: Outcome['kind']) => { if (!settled) { settled = true; resolve({ kind, ttft, gaps, tokens }); } };
    const req = httpRequest(`${url}/v1/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json' }, signal: abort }, (res) => {
      if (res.statusCode !== 200) { res.resume(); res.on('end', () => finish('failed')); return; }
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') { done = true; continue; }
          const j = JSON.parse(data);
          if (j.error) { failed = true; continue; }
          if (j.usage) { tokens = j.usage.completion_tokens; continue; }
          if (!j.choices?.[0]?.text) continue;
          const now = performance.now();
          if (ttft === null) ttft = now - t0; else gaps.push(now - last);
          last = now;
        }
      });
      res.on('end', () => finish(failed ? 'failed' : done ? 'ok' : 'lost'));
      res.on('error', () => finish('lost'));
    });
    req.on('error', () => finish('lost'));
    req.end(JSON.stringify(body));
  });
}

export async function runServerBench(opts: ServerBenchOptions = {}): Promise<ServerBenchResult> {
  const quick = !!opts.quick;
  const levels = opts.concurrency ?? [1, 4, 16];
  const perClient = opts.requestsPerClient ?? (quick ? 2 : 3);
  const levelTime = opts.levelTimeMs ?? 60_000;
  const id = opts.model ?? (await import('../test/helpers/fixtures.js')).modelDir('gpt2-tiny');
  const source = await resolveSource(id, { tokenizer: true } as any);
  const tokenizer = await AutoTokenizer.from_pretrained(source);
  const model = await GPT2LMHeadModel.from_pretrained(source, { threads: opts.threads, dtype: opts.dtype });
  const promptTokens = Math.max(...PROMPTS.map((p) => tokenizer.encode(p).length));
  const maxTokens = Math.min(opts.maxTokens ?? (quick ? 32 : 64), model.config.n_positions - promptTokens);
  const maxConcurrency = opts.maxConcurrency ?? Math.max(...levels);
  const server = createServer({ model, tokenizer, modelId: 'bench', maxConcurrency, queueSize: 4 * maxConcurrency, maxTokens, requestTimeoutMs: 2 * levelTime });
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const out: ServerBenchLevel[] = [];
  let rssBefore = 0;
  try {
    const { url } = await server.listen(0, '127.0.0.1');
    const body = (i: number) => ({ model: 'bench', prompt: PROMPTS[i % PROMPTS.length], max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
    await streamOnce(url, agent, { ...body(0), max_tokens: 4 }, new AbortController().signal); // warm-up
    rssBefore = process.memoryUsage().rss;
    for (const clients of levels) {
      const ac = new AbortController();
      setMaxListeners(0, ac.signal); // one listener per request in flight
      const t0 = performance.now();
      const stopAt = t0 + levelTime;
      const hard = setTimeout(() => ac.abort(), 2 * levelTime);
      let peak = process.memoryUsage().rss;
      const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
      const s0 = server.stats();
      const results: Outcome[] = [];
      await Promise.all(Array.from({ length: clients }, async (_, c) => {
        for (let k = 0; k < perClient && performance.now() < stopAt && !ac.signal.aborted; k++) results.push(await streamOnce(url, agent, body(c + k), ac.signal));
      }));
      const wall = (performance.now() - t0) / 1000;
      clearTimeout(hard); clearInterval(sampler);
      const s1 = server.stats();
      const ok = results.filter((r) => r.kind === 'ok');
      const tokens = ok.reduce((n, r) => n + r.tokens, 0);
      const steps = s1.decode_steps - s0.decode_steps;
      const rows = s1.decode_rows - s0.decode_rows;
      out.push({
        clients, requests: results.length, ok: ok.length, failed: results.filter((r) => r.kind === 'failed').length, lost: results.filter((r) => r.kind === 'lost').length,
        completion_tokens: tokens, wall_s: +wall.toFixed(2), tokens_per_s: +(tokens / wall).toFixed(1),
        ttft_ms: stats(ok.map((r) => r.ttft!).filter((x) => x !== null)), itl_ms: stats(ok.flatMap((r) => r.gaps)),
        mean_batch: steps ? +(rows / steps).toFixed(2) : 0, step_ms: steps ? +((s1.decode_ms - s0.decode_ms) / steps).toFixed(2) : 0,
        prefill_share: +((s1.prefill_ms - s0.prefill_ms) / 1000 / wall).toFixed(2), rss_peak_mb: mb(peak),
      });
    }
  } finally {
    agent.destroy();
    await server.close({ timeoutMs: 5_000 });
  }
  const rssAfter = process.memoryUsage().rss;
  const res: ServerBenchResult = {
    model: id, dtype: model.dtype, threads: model.backend.threads, wasm: model.backend.variant, max_concurrency: maxConcurrency, max_tokens: maxTokens,
    prompt_tokens: promptTokens, rss_before_mb: mb(rssBefore), rss_after_mb: mb(rssAfter), levels: out,
  };
  await model.dispose();
  if (opts.print !== false) printTable(res);
  return res;
}

function printTable(r: ServerBenchResult): void {
  const lines = [
    `server bench: ${r.model} (${r.dtype}, ${r.threads} threads, ${r.wasm}), max_concurrency ${r.max_concurrency}, ${r.prompt_tokens}-token prompts, max_tokens ${r.max_tokens}, greedy, streaming`,
    '',
    '| clients | requests | ok | failed | lost | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | ITL mean ms | batch | step ms | prefill share | peak RSS MiB |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.levels.map((l) => `| ${l.clients} | ${l.requests} | ${l.ok} | ${l.failed} | ${l.lost} | ${l.tokens_per_s} | ${l.ttft_ms.p50} | ${l.ttft_ms.p99} | ${l.itl_ms.p50} | ${l.itl_ms.p99} | ${l.itl_ms.mean} | ${l.mean_batch} | ${l.step_ms} | ${l.prefill_share} | ${l.rss_peak_mb} |`),
    '',
    `RSS before ${r.rss_before_mb} MiB, after ${r.rss_after_mb} MiB`,
  ];
  console.log(lines.join('\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const val = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const json = argv.includes('--json');
  const res = await runServerBench({
    model: val('--model'), quick: argv.includes('--quick'), threads: val('--threads') ? Number(val('--threads')) : undefined,
    dtype: val('--dtype') as ServerBenchOptions['dtype'], print: !json,
  });
  if (json) console.log(JSON.stringify(res, null, 2));
}
