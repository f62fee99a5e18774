// Whether the pool runs a split decode call (at most chunks.ts DECODE_ROWS token rows) on all threads or on the
// caller alone, decided from measured wall time; prefill calls always run parallel (pool.ts).
// Dynamic chunk claiming (control.ts) bounds what a descheduled worker costs to the chunk it holds, but when
// another process keeps a core busy, the pool's threads and that process share too few cores: the caller itself
// is descheduled part of the time, workers spin or sleep when the caller is the one with the work, and decode runs
// slower on 2 threads than on 1 (measured: q8 decode calls 1.26x slower in parallel with a spinner on one of two
// cores, although the caller rarely waits for a chunk). Only wall time compared between the two modes shows
// that, so the decode calls alternate stints: a long stint in the mode that is currently faster, then a short probe
// stint in the other. Calls are compared kind by kind (kernel and a power-of-two size: chunks.ts dispatchKind), and
// the modes by what the recent mix of kinds costs in each, so stints holding different calls compare
// fairly. Each kind's time per call in each mode is a running blend of its stints (one stint moves it half way).
// Parallel stays the choice until the caller alone is measured PARALLEL_MARGIN faster (on an idle machine,
// wrongly running alone costs up to the thread count; wrongly running parallel, at most the margin). While
// probes keep losing, the chosen mode's stints double, up to MAX_STINT calls or STINT_MS of their time, so
// a settled choice costs a percent or two and a change of load is seen within seconds. All kinds switch
// together: decided per kernel, a parallel probe would find the workers asleep from the other kernels'
// solo stints and pay their wake-up every call. The first calls of every stint are not measured (the switch
// itself costs: waking workers whose cores the OS has idled).

export const SOLO = 1;
export const PARALLEL = 0;
export type Mode = typeof SOLO | typeof PARALLEL;

/** Calls in a probe stint of the mode that is not the current choice (GPT-2 decode splits ~60 calls per token,
 *  five kinds of them per layer). */
export const PROBE_STINT = 48;
/** Calls at the start of every stint that are not measured. */
export const SETTLE_CALLS = 6;
/** Calls at the very start that are not measured at all (first touch of caches and memory, JIT). */
export const FIRST_SKIP = 64;
/** Calls in the first stint of a newly chosen mode; doubled after every probe that loses, up to MAX_STINT. */
export const FIRST_STINT = 1024;
export const MAX_STINT = 16384;
/** A stint also ends once its calls took this long in all (ms). */
export const STINT_MS = 1000;
/** The caller alone must be measured this much faster than parallel to be chosen. */
export const PARALLEL_MARGIN = 1.1;

interface KindStats {
  mean: [number, number]; // blended time per call in each mode (NaN: not measured yet)
  sum: [number, number]; // this stint's time and calls
  n: [number, number];
  share: number; // decayed count of its calls: the recent mix
}

export class DispatchPolicy {
  private best: Mode = PARALLEL; // the mode chosen by the last comparison
  private current: Mode = PARALLEL; // the mode of the stint under way
  // the first stint is parallel (after FIRST_SKIP unmeasured calls: first touch of caches and memory), then solo
  // is probed once before anything is compared
  private left = PROBE_STINT; // calls left in the stint
  private skip = FIRST_SKIP; // calls still to run before it is measured
  private stint: [number, number] = [FIRST_STINT, FIRST_STINT]; // length of each mode's next stint as the choice
  private time = 0; // time of the stint so far (ms)
  private kinds = new Map<number, KindStats>();

  /** The mode to run the next call in. */
  mode(): Mode { return this.current; }

  /** Records that a call of kind `kind`, run in mode(), took `ms`. */
  record(kind: number, ms: number): void {
    if (this.skip > 0) { this.skip--; return; }
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, k = { mean: [NaN, NaN], sum: [0, 0], n: [0, 0], share: 0 });
    const m = this.current;
    k.sum[m] += ms; k.n[m]++; k.share++;
    this.time += ms;
    if (--this.left > 0 && this.time < STINT_MS) return;
    this.endStint();
  }

  private endStint(): void {
    const m = this.current, other = (1 - m) as Mode;
    for (const k of this.kinds.values()) {
      if (k.n[m] > 0) {
        const mean = k.sum[m] / k.n[m];
        k.mean[m] = k.mean[m] === k.mean[m] ? (k.mean[m] + mean) / 2 : mean;
      }
      k.sum[m] = 0; k.n[m] = 0;
      if (m === this.best) k.share /= 2; // the mix follows the recent long stints
    }
    this.time = 0; this.skip = SETTLE_CALLS;
    // what the recent mix costs in each mode, over the kinds measured in both
    let cost0 = 0, cost1 = 0;
    for (const k of this.kinds.values()) {
      if (k.mean[0] === k.mean[0] && k.mean[1] === k.mean[1]) { cost0 += k.share * k.mean[0]; cost1 += k.share * k.mean[1]; }
    }
    const compared = cost0 > 0 && cost1 > 0;
    const winner: Mode = compared && PARALLEL_MARGIN * cost1 < cost0 ? SOLO : PARALLEL;
    if (m !== this.best) {
      // a probe stint ended: switch if the probed mode now wins (for a first stint), else keep the choice longer
      if (compared && winner === m) { this.best = m; this.stint[m] = FIRST_STINT; }
      else this.stint[this.best] = Math.min(MAX_STINT, this.stint[this.best] * 2);
      this.current = this.best; this.left = this.stint[this.best];
      return;
    }
    // a stint of the chosen mode ended: if the other mode now wins, go back to it, for a longer stint than it had
    // (a probe that won by luck must not make probing frequent again); otherwise probe the other mode
    if (compared && winner === other) {
      this.best = other; this.current = other;
      this.left = this.stint[other] = Math.min(MAX_STINT, this.stint[other] * 2);
      return;
    }
    this.current = other; this.left = PROBE_STINT;
  }
}
