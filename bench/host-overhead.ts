// Host overhead per decoded token: wall time of decode steps minus the time inside backend kernel calls (the
// split bench/model.ts and bench/contention.ts report), on a GPT-2-124M-shaped checkpoint at ctx 128. Each
// (dtype, threads) runs in its own child process, which alternates passes of 32 steps of three decode loops:
//  - decodeStep writing into one reused logits array (as the server and the other benches decode),
//  - decodeStep returning a new array per step (the API's default),
//  - generate() (greedy; the logits are read in place, argmax and the loop's bookkeeping included), timed from
//    one step's start to the next (the prefill and the call's setup left out).
// Per loop: the median over passes of the pass's mean host ms per token, and the best pass. The timers' own cost
// (a wrapper and two performance.now() per kernel call, measured on a no-op) is counted in, as in the other benches.
// The new-array figure runs right after a pass that allocates nothing, so its arrays tend to land on memory the
// allocator has just given back (page faults): it is the pessimistic case of a loop that allocates per token.
//   node --import tsx bench/host-overhead.ts [--dir checkpoint] [--dtypes fp32,fp16,q8] [--threads 1,2] [--passes 9] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchIds, type DType } from './model.js';
import { GPT2_SHAPES, writeRandomGPT2 } from './util/checkpoint.js';
import { argValue, runChild } from './util/child.js';
import { round } from './util/timing.js';

interface Figure { median: number; best: number }
export interface HostRow {
  dtype: DType; threads: number;
  /** ms per token outside kernel calls. */
  reused: Figure; fresh: Figure; generate: Figure;
  kernel_calls_per_token: number;
  /** The timers' cost per kernel call (us), included in the figures. */
  timer_us_per_call: number;
}

const SELF = fileURLToPath(import.meta.url);
const STEPS = 32, CTX = 128;

async function child(dir: string, dtype: DType, threads: number, passes: number): Promise<HostRow> {
  const { GPT2LMHeadModel } = await import('../src/index.js');
  const model = await GPT2LMHeadModel.from_pretrained(dir, { dtype, threads });
  const ids = benchIds(CTX + STEPS);
  const cache = model.createCache(1, CTX + STEPS);
  const logits = new Float32Array(model.config.vocab_size);
  const k = model.backend.k as unknown as Record<string, (...a: number[]) => void>;
  let inside = 0, calls = 0;
  const starts: [number, number][] = []; // generate(): (time, inside) at each step's embed
  for (const name of Object.keys(k)) {
    const f = k[name];
    k[name] = (...a: number[]) => {
      const t = performance.now();
      if (name === 'embed') starts.push([t, inside]);
      f(...a); inside += performance.now() - t; calls++;
    };
  }
  const decode = (out?: Float32Array) => {
    cache.length = CTX; inside = 0;
    const t0 = performance.now();
    for (let s = 0; s < STEPS; s++) model.decodeStep([{ cache, id: ids[CTX + s], pos: cache.length }], out);
    return (performance.now() - t0 - inside) / STEPS;
  };
  const generate = async () => {
    starts.length = 0;
    await model.generate({ input_ids: [ids.slice(0, CTX)], max_new_tokens: STEPS + 2, do_sample: false, eos_token_id: null, cache_capacity: CTX + STEPS + 2 });
    // starts[0] is the prompt's; steps 1 … STEPS+1 follow
    const [a, b] = [starts[1], starts[starts.length - 1]];
    return (b[0] - a[0] - (b[1] - a[1])) / (starts.length - 2);
  };
  // warm-up, then the context
  model.prefill(cache, ids.slice(0, 64));
  for (let i = 0; i < 4; i++) model.decodeStep([{ cache, id: ids[i], pos: cache.length }]);
  cache.reset();
  model.prefill(cache, ids.slice(0, CTX));
  await generate();
  calls = 0; decode(logits);
  const perToken = calls / STEPS;
  // the timers' own cost per call: the same wrapper around a no-op
  let sink = 0;
  const noop = (...a: number[]) => { sink += a.length; };
  const wrapped = (...a: number[]) => { const t = performance.now(); noop(...a); inside += performance.now() - t; calls++; };
  const N = 200_000;
  let t0 = performance.now();
  for (let i = 0; i < N; i++) noop(1, 2, 3, 4, 5, 6, 7, 8);
  const plain = performance.now() - t0;
  t0 = performance.now();
  for (let i = 0; i < N; i++) wrapped(1, 2, 3, 4, 5, 6, 7, 8);
  const timerUs = ((performance.now() - t0 - plain) / N) * 1000;

  const got = { reused: [] as number[], fresh: [] as number[], generate: [] as number[] };
  for (let p = 0; p < passes; p++) {
    got.reused.push(decode(logits));
    got.fresh.push(decode());
    got.generate.push(await generate());
  }
  cache.dispose();
  const fig = (a: number[]): Figure => { const b = a.slice().sort((x, y) => x - y); return { median: round(b[b.length >> 1], 3), best: round(b[0], 3) }; };
  const row: HostRow = {
    dtype, threads: model.backend.threads, reused: fig(got.reused), fresh: fig(got.fresh), generate: fig(got.generate),
    kernel_calls_per_token: round(perToken, 1), timer_us_per_call: round(timerUs, 3),
  };
  await model.dispose();
  if (sink < 0) console.log(sink);
  return row;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const passes = argValue(argv, 'passes') ?? '9';
  if (argv.includes('--child')) {
    console.log(JSON.stringify(await child(argValue(argv, 'dir')!, argValue(argv, 'dtype') as DType, Number(argValue(argv, 'threads')), Number(passes))));
    process.exit(0);
  }
  let dir = argValue(argv, 'dir');
  const temp = !dir;
  if (!dir) { dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-host-')); writeRandomGPT2(dir, GPT2_SHAPES.gpt2); }
  const rows: HostRow[] = [];
  try {
    for (const dtype of (argValue(argv, 'dtypes') ?? 'fp32,fp16,q8').split(',') as DType[]) {
      for (const threads of (argValue(argv, 'threads') ?? '1,2').split(',').map(Number)) {
        const r = await runChild<HostRow>(SELF, ['--child', '--dir', dir, '--dtype', dtype, '--threads', String(threads), '--passes', passes], { timeoutMs: 300_000 });
        if (!r.ok) { console.error(`${dtype} ${threads}t: ${r.error}`); continue; }
        rows.push(r.value);
        if (!argv.includes('--json')) {
          const v = r.value, f = (x: Figure) => `${x.median} (best ${x.best})`;
          console.log(`${dtype} ${v.threads}t host ms/token: decodeStep into a reused array ${f(v.reused)}, into a new array ${f(v.fresh)}, generate() ${f(v.generate)}; ` +
            `${v.kernel_calls_per_token} kernel calls/token, timers ${v.timer_us_per_call} us/call`);
        }
      }
    }
  } finally { if (temp) rmSync(dir, { recursive: true, force: true }); }
  if (argv.includes('--json')) console.log(JSON.stringify(rows));
}
