// The adaptive dispatch (src/runtime/dispatch-policy.ts) on simulated calls: a repeating mix of call kinds (like
// decode's per-layer matmuls and attention), each with a time in the lazy mode; in the hot mode a call takes its
// time over the speed-up, plus a stall of `stall` ms with probability p (a spinning thread holding the core the
// one with the work needs); on the caller alone (solo) its time times `solo`. The policy must keep the fastest
// mode for the bulk of the time, count rare long stalls at their cost, reach the fastest mode within the first
// few tokens, and follow a change of load.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DispatchPolicy, FIRST_SKIP, HOT, LAZY, MAX_STINT, PROBE_STINT, SOLO, STINT_MS } from '../src/runtime/dispatch-policy.js';

const MIX = [0.12, 0.05, 0.1, 0.16, 0.14]; // ms lazy: qkv, attention, proj, fc, mlp proj
const MIX_MEAN = MIX.reduce((a, b) => a + b) / MIX.length;

/** A seeded uniform generator in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

// solo: the caller's time alone over lazy's (idle: lazy's worker helps, 1.25; one core taken: solo wins, 0.9)
interface Load { speedup: number; p: number; stall?: number; solo?: number }

/** Runs `calls` calls; returns the simulated time and the shares of calls run hot and solo. */
function simulate(pol: DispatchPolicy, calls: number, load: Load, r = rng(1)): { total: number; parShare: number; soloShare: number } {
  let total = 0, par = 0, solo = 0;
  for (let i = 0; i < calls; i++) {
    const kind = i % MIX.length;
    let t = MIX[kind];
    const m = pol.mode();
    if (m === HOT) {
      par++;
      t = t / load.speedup + (r() < load.p ? load.stall ?? 3 : 0);
    } else if (m === SOLO) {
      solo++;
      t *= load.solo ?? 1.25;
    }
    total += t;
    pol.record(kind, t);
  }
  return { total, parShare: par / calls, soloShare: solo / calls };
}

/** Expected time of `calls` calls all in one mode. */
const allLazy = (calls: number) => calls * MIX_MEAN;
const allHot = (calls: number, load: Load) => calls * (MIX_MEAN / load.speedup + load.p * (load.stall ?? 3));

test('an idle machine: hot for (nearly) all the time; a loaded one: lazy', () => {
  const idle: Load = { speedup: 1.8, p: 0 };
  const a = simulate(new DispatchPolicy(), 100000, idle);
  assert.ok(a.total < 1.03 * allHot(100000, idle), `idle: ${a.total.toFixed(0)} ms against ${allHot(100000, idle).toFixed(0)} all hot (${a.parShare} hot)`);
  // the threads share the cores with another process: every hot call 1.25x slower than lazy, no stalls
  const loaded: Load = { speedup: 0.8, p: 0 };
  const b = simulate(new DispatchPolicy(), 100000, loaded);
  assert.ok(b.total < 1.03 * allLazy(100000), `loaded: ${b.total.toFixed(0)} ms against ${allLazy(100000).toFixed(0)} lazy (${b.parShare} hot)`);
});

test('an idle machine: the probes of a short generation cost little', () => {
  // lazy 1.8x slower than hot: the first round of probes, and the first probe of the next, within the first 32
  // tokens (a 4-token warm-up before, as the bench's decode runs); a lazy probe that loses clearly ends after its
  // PROBE_STINT calls instead of running PROBE_MS (1.09x all hot without that)
  const idle: Load = { speedup: 1.8, p: 0, solo: 1.25 };
  const pol = new DispatchPolicy(), r = rng(3);
  simulate(pol, 4 * 60, idle, r);
  for (const run of [1, 2]) {
    const s = simulate(pol, 32 * 60, idle, r);
    assert.ok(s.total < 1.06 * allHot(32 * 60, idle), `32-token run ${run}: ${(s.total / allHot(32 * 60, idle)).toFixed(3)}x all hot (${s.parShare} hot)`);
  }
});

test('frequent stalls make the threads wait lazy; rare ones do not', () => {
  // a 3 ms stall in every 20th hot call: 0.21 ms per call on average hot against 0.114 lazy
  const frequent: Load = { speedup: 1.8, p: 1 / 20 };
  const f = simulate(new DispatchPolicy(), 100000, frequent);
  assert.ok(f.total < 1.1 * allLazy(100000), `frequent stalls: ${f.total.toFixed(0)} ms, lazy ${allLazy(100000).toFixed(0)} (${f.parShare} hot)`);
  // every 400th: 0.071 ms per call on average, hot still wins
  const rare: Load = { speedup: 1.8, p: 1 / 400 };
  const g = simulate(new DispatchPolicy(), 100000, rare);
  assert.ok(g.total < 1.1 * allHot(100000, rare), `rare stalls: ${g.total.toFixed(0)} ms against ${allHot(100000, rare).toFixed(0)} all hot (${g.parShare} hot)`);
});

test('follows a change of load both ways within a bounded number of calls', () => {
  const pol = new DispatchPolicy(), r = rng(7);
  const idle: Load = { speedup: 1.8, p: 0 }, loaded: Load = { speedup: 0.8, p: 1 / 50 };
  simulate(pol, 50000, idle, r); // settled on hot with long stints
  // the longest stint of the chosen mode, then a probe and a stint to confirm the switch
  const bound = (max: number, ms: number) => Math.min(MAX_STINT, Math.ceil(STINT_MS / ms)) + 2 * PROBE_STINT + 4096 + FIRST_SKIP;
  const toLoaded = simulate(pol, bound(MAX_STINT, MIX_MEAN / 1.8), loaded, r);
  const stayLoaded = simulate(pol, 20000, loaded, r);
  assert.ok(stayLoaded.parShare < 0.05, `after the load came: ${stayLoaded.parShare} of calls hot (${toLoaded.parShare} while it came)`);
  const toIdle = simulate(pol, bound(MAX_STINT, MIX_MEAN), idle, r);
  const stayIdle = simulate(pol, 20000, idle, r);
  assert.ok(stayIdle.parShare > 0.95, `after the load went: ${stayIdle.parShare} of calls hot (${toIdle.parShare} while it went)`);
});

test('one core taken: the caller alone wins, and is reached within the first tokens of a generation', () => {
  // hot 1.25x slower than lazy with stalls, lazy 1.1x slower than solo (the measured order, bench/contention.ts)
  const spun: Load = { speedup: 0.8, p: 1 / 50, solo: 0.9 };
  const pol = new DispatchPolicy();
  // the first round probes every mode: a 32-token generation (~60 split calls a token) ends mostly solo
  const first = simulate(pol, 32 * 60, spun);
  assert.ok(first.soloShare > 0.6, `first 32 tokens: ${first.soloShare} of calls solo, ${first.parShare} hot`);
  const settled = simulate(pol, 100000, spun);
  assert.ok(settled.total < 1.03 * 100000 * MIX_MEAN * 0.9, `settled: ${settled.total.toFixed(0)} ms against ${(100000 * MIX_MEAN * 0.9).toFixed(0)} all solo (${settled.soloShare} solo)`);
  // idle: solo is the slowest mode, and costs only its probes
  const idle = simulate(new DispatchPolicy(), 100000, { speedup: 1.8, p: 0, solo: 1.25 });
  assert.ok(idle.soloShare < 0.02, `idle: ${idle.soloShare} of calls solo`);
});

test.run();
