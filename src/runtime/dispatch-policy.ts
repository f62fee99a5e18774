// How the pool's threads wait between the ops of a decode call sequence (calls of at most chunks.ts DECODE_ROWS
// token rows), decided from measured wall time; prefill calls run in whatever mode is current (they are long, so
// waiting costs them little). Both modes run every split call on all threads, the caller included, claiming the
// same fixed chunks (control.ts), so the bits never depend on the mode.
// - HOT: workers spin SPIN_ITERATIONS polls (~170 µs) for the next op before they sleep, and so does the caller
//   for chunks others hold. Decode publishes an op every few microseconds, so on an idle machine nobody pays a
//   wake-up: the fastest mode there.
// - LAZY: a worker sleeps ~2 µs after its last chunk, the caller ~17 µs after its own (control.ts). When
//   another process keeps a core busy, the pool's threads and that process share too few cores; spinning
//   threads then burn the share of the thread that has the work (measured: q8 decode calls 1.26x slower on 2 hot
//   threads than on 1). A lazy worker takes CPU time only for the chunks it runs, and when the scheduler
//   does not wake it in time the caller claims every chunk itself (as one thread would). Measured with a
//   spinner, in rounds alternated in one process, lazy ran at or above hot threads and the caller alone (the
//   policy's other mode before); on an idle machine it is ~0.7x hot for q8's short calls (a wake-up per op),
//   closer for fp16's longer ones.
// Only wall time compared between the two modes shows which is faster, so the decode calls alternate stints: a
// long stint in the mode that is currently faster, then a short probe stint in the other. A call's time runs from
// the end of the previous split call (if that was less than GAP_MS before), so the host code and single-chunk ops
// in between count too: spinning workers slow the caller there as well. Calls are compared kind by kind (kernel
// and a power-of-two size: chunks.ts dispatchKind), and the modes by what the recent mix of kinds costs in each,
// so stints holding different calls compare fairly. Each kind's time per call in each mode is a running blend of
// its stints (one stint moves it half way). Hot stays the choice until lazy is measured LAZY_MARGIN faster, and
// lazy until hot is measured HOT_MARGIN faster (on an idle machine, wrongly running lazy costs up to ~30 %, but
// only noise larger than that difference makes the choice; under contention, wrongly running hot costs more than
// its probes show).
// While probes keep losing, the chosen mode's stints double, up to MAX_STINT calls or STINT_MS of their time,
// so a settled choice costs a percent or less and a change of load is seen within seconds. All kinds switch
// together: the mode is a property of the threads, not of a kernel. The first calls of every stint are not
// measured (the switch itself costs: waking workers whose cores the OS has idled).

export const LAZY = 1;
export const HOT = 0;
export type Mode = typeof LAZY | typeof HOT;

/** Calls in a probe stint of the mode that is not the current choice (GPT-2 decode splits ~60 calls per token,
 *  five kinds of them per layer). */
export const PROBE_STINT = 48;
/** Calls at the start of every stint that are not measured, and their least time (ms): after a switch the
 *  scheduler still treats the threads by how they ran before (a worker that spun is owed less CPU time). */
export const SETTLE_CALLS = 6;
export const SETTLE_MS = 5;
/** A probe stint lasts at least this long (ms) besides PROBE_STINT calls: several scheduler slices, so a probe of
 *  short calls does not see only the slices where another process happened to be off its core. */
export const PROBE_MS = 20;
/** Calls at the very start that are not measured at all (first touch of caches and memory, JIT). */
export const FIRST_SKIP = 64;
/** Calls in the first stint of a newly chosen mode; doubled after every probe that loses, up to MAX_STINT. */
export const FIRST_STINT = 1024;
export const MAX_STINT = 16384;
/** A stint also ends once its calls took this long in all (ms). */
export const STINT_MS = 1000;
/** Lazy must be measured this much faster than hot to be chosen: a small margin, as a probe or a wrong choice of
 *  lazy costs far less than one of the caller alone did (the policy's other mode before, ~0.55x hot when idle). */
export const LAZY_MARGIN = 1.05;
/** Hot must be measured this much faster than lazy to be chosen back. A short hot probe under contention looks
 *  better than hot runs: the scheduler charges the CPU time its spinning took later, to the stints after it
 *  (measured, one spinner on two cores: q8 with the policy following the probes ran 0.88x of 1 thread, 0.8x
 *  for hot and 1.08x for lazy). On an idle machine hot is 1.25-1.4x lazy, well above the margin. */
export const HOT_MARGIN = 1.15;
/** A call's measured time includes the time since the previous split call ended when that is below this (ms): the
 *  host code between the calls of one token, not a pause of the application between tokens. */
export const GAP_MS = 10;

interface KindStats {
  mean: [number, number]; // blended time per call in each mode (NaN: not measured yet)
  sum: [number, number]; // this stint's time and calls
  n: [number, number];
  share: number; // decayed count of its calls: the recent mix
}

export class DispatchPolicy {
  private best: Mode = HOT; // the mode chosen by the last comparison
  private current: Mode = HOT; // the mode of the stint under way
  // the first stint is hot (after FIRST_SKIP unmeasured calls: first touch of caches and memory), then lazy is
  // probed once before anything is compared
  private left = PROBE_STINT; // calls left in the stint
  private skip = FIRST_SKIP; // calls still to run before it is measured
  private skipped = 0; // time of the unmeasured calls of this stint (ms)
  private stint: [number, number] = [FIRST_STINT, FIRST_STINT]; // length of each mode's next stint as the choice
  private time = 0; // time of the stint so far (ms)
  private kinds = new Map<number, KindStats>();

  /** The mode to run the next call in. */
  mode(): Mode { return this.current; }

  /** Records that a call of kind `kind`, run in mode(), took `ms` (with the gap before it: GAP_MS). */
  record(kind: number, ms: number): void {
    if (this.skip > 0 || this.skipped < SETTLE_MS) { this.skip--; this.skipped += ms; return; }
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, k = { mean: [NaN, NaN], sum: [0, 0], n: [0, 0], share: 0 });
    const m = this.current;
    k.sum[m] += ms; k.n[m]++; k.share++;
    this.time += ms;
    if ((--this.left > 0 || (m !== this.best && this.time < PROBE_MS)) && this.time < STINT_MS) return;
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
    this.time = 0; this.skip = SETTLE_CALLS; this.skipped = 0;
    // what the recent mix costs in each mode, over the kinds measured in both
    let cost0 = 0, cost1 = 0;
    for (const k of this.kinds.values()) {
      if (k.mean[0] === k.mean[0] && k.mean[1] === k.mean[1]) { cost0 += k.share * k.mean[0]; cost1 += k.share * k.mean[1]; }
    }
    const compared = cost0 > 0 && cost1 > 0;
    // the chosen mode keeps ties: the other must be measured its margin faster
    const winner: Mode = !compared ? this.best : this.best === HOT ? (LAZY_MARGIN * cost1 < cost0 ? LAZY : HOT) : (HOT_MARGIN * cost0 < cost1 ? HOT : LAZY);
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
