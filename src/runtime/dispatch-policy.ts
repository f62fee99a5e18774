// Whether the pool runs a call on all threads or on the caller alone, decided per kind of call from measured time.
// Dynamic chunk claiming (control.ts) bounds what a descheduled worker costs to the chunk it holds, but on a
// machine where another process keeps a core busy that chunk can still be held for a whole scheduler time slice
// (milliseconds) while the op around it takes 0.1 ms: decode then runs slower on 2 threads than on 1. Both modes
// run the same fixed chunks, so the choice never changes a result bit; it is only a question of speed, and the
// answer changes as other processes come and go. So each kind of call (kernel and a power-of-two size bucket)
// alternates stints: a long stint in the mode that is currently faster, then a short probe stint in the other.
// Each mode's estimate is a running blend of its stints' mean time per call (one lucky or unlucky probe moves it
// only half way: stalls are rare, large events); a probe that comes out faster than the chosen mode's estimate
// switches to it. While probes keep losing, the stints of the chosen mode double, up to MAX_STINT calls or
// STINT_MS of this kind's time, so a settled choice costs little and a change of load is still seen within a
// fraction of a second. On an idle machine this keeps every large call parallel; with a busy core it settles on
// the caller alone and leaves the worker asleep (its core to the other process), probing now and then.

export const SOLO = 1;
export const PARALLEL = 0;
export type Mode = typeof SOLO | typeof PARALLEL;

/** Calls in a probe stint of the mode that is not the current choice. */
export const PROBE_STINT = 4;
/** Calls in the first stint of a newly chosen mode; doubled after every probe that loses, up to MAX_STINT. */
export const FIRST_STINT = 16;
export const MAX_STINT = 1024;
/** A stint also ends once its calls took this long in all (ms): kinds called once per token are probed too. */
export const STINT_MS = 250;

interface CallStats {
  best: Mode; // the mode chosen by the last comparison
  mode: Mode; // the mode of the stint under way
  left: number; // calls left in it
  stint: [number, number]; // length of the next stint of each mode when it is the chosen one
  sum: number; // time of the stint so far
  n: number;
  mean: [number, number]; // each mode's estimate of time per call: its stints' means, blended (NaN: none yet)
}

export class DispatchPolicy {
  private stats = new Map<number, CallStats>();

  /** The mode to run the next call of kind `key` in. */
  mode(key: number): Mode {
    let s = this.stats.get(key);
    // a new kind starts parallel, then probes solo once before anything is compared
    if (!s) this.stats.set(key, s = { best: PARALLEL, mode: PARALLEL, left: PROBE_STINT, stint: [FIRST_STINT, FIRST_STINT], sum: 0, n: 0, mean: [NaN, NaN] });
    return s.mode;
  }

  /** Records that the call of kind `key` just run in mode(key) took `ms`. */
  record(key: number, ms: number): void {
    const s = this.stats.get(key);
    if (!s) return;
    s.sum += ms; s.n++;
    if (--s.left > 0 && s.sum < STINT_MS) return;
    const m = s.mode, other = (1 - m) as Mode;
    const mean = s.sum / s.n;
    s.mean[m] = s.mean[m] === s.mean[m] ? (s.mean[m] + mean) / 2 : mean;
    s.sum = 0; s.n = 0;
    if (m !== s.best) {
      // a probe stint ended: switch if it now looks faster than the chosen mode (for a first, short stint), else
      // keep the choice for a longer stint
      if (s.mean[m] < s.mean[s.best]) { s.best = m; s.stint[m] = FIRST_STINT; }
      else s.stint[s.best] = Math.min(MAX_STINT, s.stint[s.best] * 2);
      s.mode = s.best; s.left = s.stint[s.best];
      return;
    }
    // a stint of the chosen mode ended: if it now looks slower than the other mode, go back to that one, for a
    // longer stint than it had (a probe that won by luck must not make probing frequent again); otherwise probe
    // the other mode (the first time: measure it at all)
    if (s.mean[m] > s.mean[other]) {
      s.best = other; s.mode = other;
      s.left = s.stint[other] = Math.min(MAX_STINT, s.stint[other] * 2);
      return;
    }
    s.mode = other; s.left = PROBE_STINT;
  }
}
