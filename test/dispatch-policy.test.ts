// The adaptive dispatch (src/runtime/dispatch-policy.ts) on simulated call times: it must keep the faster mode
// for the bulk of the calls, see rare long stalls in the parallel mode as a cost, and follow a change of load.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DispatchPolicy, FIRST_STINT, MAX_STINT, PARALLEL, SOLO, STINT_MS, type Mode } from '../src/runtime/dispatch-policy.js';

/** Runs `calls` calls of one kind whose time is time(mode, i); returns the share of parallel calls and the
 *  total simulated time. */
function simulate(p: DispatchPolicy, calls: number, time: (mode: Mode, i: number) => number, key = 7, from = 0): { parShare: number; total: number } {
  let par = 0, total = 0;
  for (let i = from; i < from + calls; i++) {
    const m = p.mode(key);
    if (m === PARALLEL) par++;
    const t = time(m, i);
    total += t;
    p.record(key, t);
  }
  return { parShare: par / calls, total };
}

test('keeps the faster mode for nearly every call, whichever it is', () => {
  const fastPar = simulate(new DispatchPolicy(), 20000, (m) => (m === PARALLEL ? 0.1 : 0.18));
  assert.ok(fastPar.parShare > 0.98, `parallel faster: ${fastPar.parShare} of calls parallel`);
  const fastSolo = simulate(new DispatchPolicy(), 20000, (m) => (m === PARALLEL ? 0.3 : 0.18));
  assert.ok(fastSolo.parShare < 0.02, `caller alone faster: ${fastSolo.parShare} of calls parallel`);
});

test('rare long stalls count at their cost: frequent ones make the caller run alone, very rare ones do not', () => {
  // parallel 0.1 ms, but every 20th parallel call waits 3 ms for a descheduled worker: mean 0.245 > solo 0.2
  let n = 0;
  const frequent = simulate(new DispatchPolicy(), 20000, (m) => (m === SOLO ? 0.2 : ++n % 20 === 0 ? 3 : 0.1));
  const best = 20000 * 0.2;
  assert.ok(frequent.total < 1.1 * best, `frequent stalls: ${frequent.total.toFixed(0)} ms, caller alone would take ${best} ms`);
  // every 400th: mean 0.107 < 0.2, stay parallel
  n = 0;
  const rare = simulate(new DispatchPolicy(), 20000, (m) => (m === SOLO ? 0.2 : ++n % 400 === 0 ? 3 : 0.1));
  assert.ok(rare.parShare > 0.9, `rare stalls: ${rare.parShare} of calls parallel`);
});

test('follows a change of load both ways within a bounded number of calls', () => {
  const p = new DispatchPolicy();
  const idle = (m: Mode) => (m === PARALLEL ? 0.1 : 0.18);
  const busy = (m: Mode) => (m === PARALLEL ? 0.5 : 0.18);
  simulate(p, 5000, idle); // settled on parallel with long stints
  // the longest a stint of the chosen mode lasts, then a probe and at most two more stints to move the estimate
  const bound = 3 * Math.min(MAX_STINT, Math.ceil(STINT_MS / 0.1)) + 4 * FIRST_STINT;
  const toBusy = simulate(p, bound + 2000, busy, 7, 5000);
  const lateBusy = simulate(p, 2000, busy, 7, 5000 + bound + 2000);
  assert.ok(lateBusy.parShare < 0.05, `after the load came: ${lateBusy.parShare} of calls still parallel (${toBusy.parShare} during the switch)`);
  const toIdle = simulate(p, 6 * MAX_STINT, idle, 7, 20000);
  const lateIdle = simulate(p, 2000, idle, 7, 20000 + 6 * MAX_STINT);
  assert.ok(lateIdle.parShare > 0.95, `after the load went: ${lateIdle.parShare} of calls parallel (${toIdle.parShare} during the switch)`);
});

test('kinds of call are decided separately', () => {
  const p = new DispatchPolicy();
  let parA = 0, parB = 0;
  for (let i = 0; i < 10000; i++) {
    const a = p.mode(1); if (a === PARALLEL) parA++; p.record(1, a === PARALLEL ? 0.1 : 0.2);
    const b = p.mode(2); if (b === PARALLEL) parB++; p.record(2, b === PARALLEL ? 0.05 : 0.02); // small call: dispatch costs more than it saves
  }
  assert.ok(parA > 9800 && parB < 200, `kind 1: ${parA} parallel, kind 2: ${parB} parallel of 10000`);
});

test.run();
