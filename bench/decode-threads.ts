// Probe: where multi-thread decode loses time. Decodes with a real checkpoint and wraps the pool's dispatch so
// that every kernel call is timed from the caller's side: wall time, the share of the chunks the caller ran
// itself, the time it then waited for the chunks other threads held, and how often a worker was asleep (in
// Atomics.wait) when the op was published; plus the gaps between two split ops (the caller's single-chunk ops and
// host code, during which the workers spin). A worker that wakes late shows as the caller running most chunks.
//   node --import tsx bench/decode-threads.ts --dir /tmp/host/gpt2 [--dtype q8] [--threads 2] [--steps 64]
import { KERNEL_NAMES } from '../src/runtime/abi.js';
import { CTL_SLEEPERS, claimChunk, finishChunk } from '../src/runtime/control.js';
import { argValue } from './util/child.js';

const dir = argValue(process.argv, 'dir') ?? '/tmp/host/gpt2';
const dtype = argValue(process.argv, 'dtype') ?? 'q8';
const threads = Number(argValue(process.argv, 'threads') ?? 2);
const steps = Number(argValue(process.argv, 'steps') ?? 64);

const { GPT2LMHeadModel } = await import('../src/index.js');
const model: any = await GPT2LMHeadModel.from_pretrained(dir, { dtype: dtype as any, threads });
const pool: any = model.backend.pool;
interface Stat { calls: number; chunks: number; mine: number; us: number; waitUs: number; asleep: number }
const stats = new Map<string, Stat>();
const gaps: number[] = [];
let on = false, lastEnd = 0;
if (pool) {
  // ThreadPool.run (src/runtime/pool.ts) with the caller's side timed
  pool.run = function (op: number, fn: (...a: number[]) => void, args: number[], nchunks: number) {
    const t0 = performance.now();
    let mine = 0, wait = 0, asleep = 0;
    if (nchunks <= 1) { fn(...args, 0, 1); mine = 1; } else {
      if (on && lastEnd > 0) gaps.push((t0 - lastEnd) * 1000);
      if (Atomics.load(this.ctl, CTL_SLEEPERS) > 0) asleep = 1;
      const tag = this.publish(op, args, nchunks);
      const a = [...args, 0, nchunks];
      for (let c = claimChunk(this.ctl, tag, nchunks); c >= 0; c = claimChunk(this.ctl, tag, nchunks)) {
        a[args.length] = c; fn(...a); finishChunk(this.ctl, nchunks); mine++;
      }
      const t1 = performance.now();
      this.waitDone(op, nchunks);
      lastEnd = performance.now();
      wait = lastEnd - t1;
    }
    if (!on) return;
    const name = KERNEL_NAMES[op];
    const key = name.startsWith('matmul_q') ? `${name} ${args[6]}x${args[7]}` : name.startsWith('matmul') ? `${name} ${args[5]}x${args[6]}` : name;
    const s = stats.get(key) ?? { calls: 0, chunks: 0, mine: 0, us: 0, waitUs: 0, asleep: 0 };
    s.calls++; s.chunks += nchunks; s.mine += mine; s.us += (performance.now() - t0) * 1000; s.waitUs += wait * 1000; s.asleep += asleep;
    stats.set(key, s);
  };
}
const ids = Array.from({ length: 256 }, (_, i) => (i * 7919) % 50000);
const cache = model.createCache(1, 256);
model.prefill(cache, ids.slice(0, 128));
for (let s = 0; s < 8; s++) model.decodeStep([{ cache, id: ids[128 + s], pos: cache.length }]);
cache.length = 128;
on = true;
const t0 = performance.now();
for (let s = 0; s < steps; s++) model.decodeStep([{ cache, id: ids[(128 + s) % 256], pos: cache.length }]);
const ms = performance.now() - t0;
on = false;
const pct = (a: number[], q: number) => { const b = [...a].sort((x, y) => x - y); return b.length ? b[Math.min(b.length - 1, Math.floor(q * b.length))].toFixed(1) : '-'; };
console.log(`${dtype} threads ${threads}: ${(steps / (ms / 1000)).toFixed(1)} tok/s, ${(ms / steps * 1000).toFixed(0)} us/token`);
let inKernels = 0;
for (const [k, s] of [...stats].sort((a, b) => b[1].us - a[1].us)) {
  inKernels += s.us;
  const split = s.chunks > s.calls ? `, caller ran ${(s.mine / s.chunks * 100).toFixed(0)} %, waited ${(s.waitUs / s.calls).toFixed(1)} us/call, a worker asleep at ${(s.asleep / s.calls * 100).toFixed(0)} % of calls` : '';
  console.log(`${k.padEnd(26)} ${(s.calls / steps).toFixed(0).padStart(3)} calls ${(s.us / steps).toFixed(0).padStart(6)} us/token  ${(s.chunks / s.calls).toFixed(1)} chunks/call${split}`);
}
if (pool) {
  console.log(`gaps between split ops (us): median ${pct(gaps, 0.5)}, p90 ${pct(gaps, 0.9)}, p99 ${pct(gaps, 0.99)}, max ${pct(gaps, 1)}`);
  console.log(`outside kernels: ${((ms * 1000 - inKernels) / steps).toFixed(0)} us/token`);
}
cache.dispose?.();
await model.dispose?.();
process.exit(0);
