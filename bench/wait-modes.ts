// Probe: the dispatch policy's two modes (src/runtime/dispatch-policy.ts) forced, against 1 thread and the adaptive
// choice, on one checkpoint in one process: decode runs of each configuration alternate round by round (order
// reversed every other round) so a change of the background load hits them all, with `--spinners N` processes
// busy-looping for the whole measurement. Prints each configuration's median and best rate and the median of its
// per-round ratio to 1 thread (the steadiest figure on a noisy machine).
//   node --import tsx bench/wait-modes.ts --dir /tmp/host/gpt2 [--dtype fp16] [--spinners 1] [--steps 16] [--rounds 10]
import { GPT2LMHeadModel } from '../src/index.js';
import { HOT, LAZY, type DispatchPolicy } from '../src/runtime/dispatch-policy.js';
import { argValue } from './util/child.js';
import { startSpinner, stopSpinner } from './util/spinner.js';

const dir = argValue(process.argv, 'dir') ?? '/tmp/host/gpt2';
const dtype = (argValue(process.argv, 'dtype') ?? 'fp16') as 'fp32' | 'fp16' | 'q8' | 'q4';
const steps = Number(argValue(process.argv, 'steps') ?? 16);
const rounds = Number(argValue(process.argv, 'rounds') ?? 10);
const spinners = Number(argValue(process.argv, 'spinners') ?? 1);

// one model per configuration: a forced mode must not feed the adaptive model's measurements
const load = (threads: number) => GPT2LMHeadModel.from_pretrained(dir, { dtype, threads });
const force = (m: GPT2LMHeadModel, mode: typeof HOT | typeof LAZY) => { ((m.backend as any).pool.policy as DispatchPolicy).mode = () => mode; return m; };
const configs: Record<string, GPT2LMHeadModel> = {
  '1 thread': await load(1),
  'hot': force(await load(2), HOT),
  'lazy': force(await load(2), LAZY),
  'adaptive': await load(2),
};
const ids = Array.from({ length: 128 + steps }, (_, i) => (i * 7919) % 50000);
function rate(m: GPT2LMHeadModel): number {
  const cache = m.createCache(1, 128 + steps);
  try {
    m.prefill(cache, ids.slice(0, 128));
    const logits = new Float32Array(m.config.vocab_size);
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) m.decodeStep([{ cache, id: ids[128 + s], pos: cache.length }], logits);
    return steps / ((performance.now() - t0) / 1000);
  } finally { cache.dispose(); }
}
const names = Object.keys(configs);
for (const n of names) rate(configs[n]); // warm-up
const rates = new Map<string, number[]>(names.map((n) => [n, []]));
const procs = Array.from({ length: spinners }, () => startSpinner(rounds * names.length * 10_000));
try {
  for (let r = 0; r < rounds; r++) for (const n of r % 2 ? [...names].reverse() : names) rates.get(n)!.push(rate(configs[n]));
} finally { for (const p of procs) stopSpinner(p); }
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const one = rates.get('1 thread')!;
console.log(`${dtype}, ${spinners} spinner(s), ${rounds} rounds of ${steps} decode steps at ctx 128`);
for (const [n, a] of rates) {
  console.log(`  ${n.padEnd(9)} median ${median(a).toFixed(1)} best ${Math.max(...a).toFixed(1)} tok/s, per-round ratio to 1 thread: median ${median(a.map((x, i) => x / one[i])).toFixed(2)}`);
}
console.log('  adaptive split calls hot / lazy:', configs.adaptive.backend.dispatchCounts());
for (const m of Object.values(configs)) await m.dispose();
process.exit(0);
