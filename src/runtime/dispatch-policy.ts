// How the pool runs the ops of a decode call sequence (calls of at most chunks.ts DECODE_ROWS token rows), decided
// from measured wall time; prefill calls run in whatever mode is current (they are long, so waiting costs them
// little). HOT and LAZY run every split call on all threads, the caller included, claiming the same fixed chunks
// (control.ts); SOLO runs it on the caller alone as one chunk, as a 1-thread pool does. Every kernel computes each
// output the same way in any chunk, so the bits never depend on the mode.
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
// - SOLO: the caller runs the call by itself, as one chunk, and the workers stay asleep. With one other process
//   spinning on one of two cores, a worker shares its core with that process: when the scheduler preempts it in
//   the middle of a chunk, the caller waits a scheduler slice (milliseconds) for that chunk. Measured there
//   (bench/contention.ts children with the mode forced, four rounds, GPT-2-124M q8 decode at ctx
//   128): 1 thread 159-164 tok/s, 2 threads SOLO 150-156 (four chunks on the caller; one chunk is what this mode
//   runs now), LAZY 136-151, HOT 117-140, and the policy choosing between HOT and LAZY only 110-135.
// Only wall time compared between the modes shows which is faster, so the decode calls alternate stints: a long
// stint in the mode that is currently faster, then a round of short probe stints, one in each other mode. The first
// round comes right after the first short hot stint, so a short generation on a loaded machine leaves HOT within a
// few tokens. A call's time runs from the end of the previous split call (if that was less than GAP_MS before), so
// the host code and single-chunk ops in between count too: spinning workers slow the caller there as well. Calls are
// compared kind by kind (kernel and a power-of-two size: chunks.ts dispatchKind), and the modes by what the recent
// mix of kinds costs in each, so stints holding different calls compare fairly. Each kind's time per call in each
// mode is a running blend of its stints (one stint moves it three quarters of the way, so a change of load shows in
// the next probe). A mode stays the choice until another is measured SWITCH_MARGIN faster, or HOT_MARGIN faster when
// the other is HOT (on an idle machine, wrongly running lazy costs up to ~30 %, but only noise larger than that
// difference makes the choice; under contention, wrongly running hot costs more than its probes show). While probes
// keep losing, the chosen mode's stints double, up to MAX_STINT calls or STINT_MS of their time, so a settled choice
// costs a percent or less and a change of load is seen within seconds. All kinds switch together: the mode is a
// property of the threads, not of a kernel. The first calls of every stint are not measured (the switch itself
// costs: waking workers whose cores the OS has idled).

export const HOT = 0;
export const LAZY = 1;
export const SOLO = 2;
export type Mode = typeof HOT | typeof LAZY | typeof SOLO;
export const MODES = 3;

/** Calls in a probe stint of a mode that is not the current choice (GPT-2 decode splits ~60 calls per token,
 *  five kinds of them per layer). */
export const PROBE_STINT = 48;
/** Calls at the start of every stint that are not measured, and their least time (ms): after a switch the
 *  scheduler still treats the threads by how they ran before (a worker that spun is owed less CPU time). */
export const SETTLE_CALLS = 6;
export const SETTLE_MS = 5;
/** Every stint lasts at least this long (ms) besides its calls: several scheduler slices, so a probe of short
 *  calls (or the first, short hot stint) does not see only the slices where another process happened to be off
 *  its core. */
export const PROBE_MS = 20;
/** Calls at the very start that are not measured at all (first touch of caches and memory, JIT). */
export const FIRST_SKIP = 64;
/** Calls in the first stint of a newly chosen mode; doubled after every probe that loses, up to MAX_STINT. */
export const FIRST_STINT = 1024;
export const MAX_STINT = 16384;
/** A stint also ends once its calls took this long in all (ms). */
export const STINT_MS = 1000;
/** Another mode must be measured this much faster than the chosen one to be chosen: a small margin, as a probe or
 *  a wrong choice of LAZY or SOLO costs little (on an idle machine SOLO is ~0.6-0.75x HOT, LAZY ~0.7-0.9x). */
export const SWITCH_MARGIN = 1.05;
/** HOT must be measured this much faster to be chosen back. A short hot probe under contention looks better than
 *  hot runs: the scheduler charges the CPU time its spinning took later, to the stints after it (measured, one
 *  spinner on two cores: q8 with the policy following the probes ran 0.88x of 1 thread, 0.8x for hot and 1.08x
 *  for lazy). On an idle machine hot is 1.25-1.4x lazy and more over SOLO, well above the margin. */
export const HOT_MARGIN = 1.15;
/** In a round of probes while HOT is the choice, SOLO is probed only if LAZY (whose worker helps at least
 *  sometimes) measured less than this much slower than HOT: on an idle machine LAZY is 1.25-1.4x slower and
 *  SOLO slower still, so its probe would only cost time. */
export const SOLO_GATE = 1.3;
/** A probe stint ends after its PROBE_STINT calls, before PROBE_MS, when it measured this much slower than the chosen
 *  mode: the minimum time guards against a probe that looks faster than its mode is (a lucky slice), not one that
 *  loses clearly (on an idle machine a lazy probe of q8 decode costs ~30 % over the 20 ms; SOLO_GATE also applies). */
export const CUT_MARGIN = 1.3;
/** A call's measured time includes the time since the previous split call ended when that is below this (ms): the
 *  host code between the calls of one token, not a pause of the application between tokens. */
export const GAP_MS = 10;

interface KindStats {
  mean: number[]; // blended time per call in each mode (NaN: not measured yet)
  sum: number[]; // this stint's time and calls, per mode
  n: number[];
  share: number; // decayed count of its calls: the recent mix
}

const margin = (to: Mode) => (to === HOT ? HOT_MARGIN : SWITCH_MARGIN);

export class DispatchPolicy {
  private best: Mode = HOT; // the mode chosen by the last comparison
  private current: Mode = HOT; // the mode of the stint under way
  // the first stint is hot (after FIRST_SKIP unmeasured calls: first touch of caches and memory), then a round
  // of probes (every other mode once) and hot again before anything is compared: the first hot stint runs while
  // the forward pass's JavaScript is still being optimised (measured 173-196 µs per q8 call, later 94-130)
  private probes: Mode[] = [LAZY, SOLO, HOT]; // the round's stints still to run after the current one
  private round = true; // a round of probes is under way
  private left = PROBE_STINT; // calls left in the stint
  private skip = FIRST_SKIP; // calls still to run before it is measured
  private skipped = 0; // time of the unmeasured calls of this stint (ms)
  private stint: number[] = [FIRST_STINT, FIRST_STINT, FIRST_STINT]; // length of each mode's next stint as the choice
  private time = 0; // time of the stint so far (ms)
  private kinds = new Map<number, KindStats>();

  /** The mode to run the next call in. */
  mode(): Mode { return this.current; }

  /** Records that a call of kind `kind`, run in mode(), took `ms` (with the gap before it: GAP_MS). */
  record(kind: number, ms: number): void {
    if (this.skip > 0 || this.skipped < SETTLE_MS) { this.skip--; this.skipped += ms; return; }
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, k = { mean: [NaN, NaN, NaN], sum: [0, 0, 0], n: [0, 0, 0], share: 0 });
    const m = this.current;
    k.sum[m] += ms; k.n[m]++; k.share++;
    this.time += ms;
    if (this.time < STINT_MS) {
      if (--this.left > 0) return;
      // a probe measured CUT_MARGIN slower than the chosen mode over its PROBE_STINT calls ends there
      if (this.time < PROBE_MS && !(this.left === 0 && m !== this.best && this.clearlyLoses(m))) return;
    }
    this.endStint();
  }

  /** Whether this stint's calls, in mode m, cost CUT_MARGIN more than the chosen mode's blended times for them. */
  private clearlyLoses(m: Mode): boolean {
    const [cm, cb] = this.costs(m, this.best, true);
    return cb > 0 && cm > CUT_MARGIN * cb;
  }

  /** What the recent mix of kinds costs in modes a and b, over the kinds measured in both; with `running`, a's time
   *  per call is this stint's so far instead of its blend. */
  private costs(a: Mode, b: Mode, running = false): [number, number] {
    let ca = 0, cb = 0;
    for (const k of this.kinds.values()) {
      const ta = running ? k.sum[a] / k.n[a] : k.mean[a]; // NaN when not measured (0 / 0 in a new stint)
      if (ta === ta && k.mean[b] === k.mean[b]) { ca += k.share * ta; cb += k.share * k.mean[b]; }
    }
    return [ca, cb];
  }

  /** Whether mode m is now measured its margin faster than the chosen mode. */
  private beats(m: Mode): boolean {
    const [cm, cb] = this.costs(m, this.best);
    return cm > 0 && cb > 0 && margin(m) * cm < cb;
  }

  private endStint(): void {
    const m = this.current;
    for (const k of this.kinds.values()) {
      if (k.n[m] > 0) {
        const mean = k.sum[m] / k.n[m];
        k.mean[m] = k.mean[m] === k.mean[m] ? (k.mean[m] + 3 * mean) / 4 : mean;
      }
      k.sum[m] = 0; k.n[m] = 0;
      if (m === this.best) k.share /= 2; // the mix follows the recent long stints
    }
    this.time = 0; this.skip = SETTLE_CALLS; this.skipped = 0;
    // the probes of a round run back to back
    // (SOLO is left out of a round while HOT is the choice and LAZY measured SOLO_GATE slower: an idle machine)
    if (this.probes[0] === SOLO && this.best === HOT && m === LAZY) {
      const [cl, ch] = this.costs(LAZY, HOT);
      if (cl > SOLO_GATE * ch) this.probes.shift();
    }
    if (this.probes.length) { this.current = this.probes.shift()!; this.left = PROBE_STINT; return; }
    if (this.round) {
      // a round of probes ended: switch to the mode that now wins by its margin (the one measured fastest if
      // several do) for a first stint; else keep the choice, longer
      this.round = false;
      let win: Mode | null = null;
      for (let o = 0 as Mode; o < MODES; o++) {
        if (o !== this.best && this.beats(o) && (win === null || this.costs(o, win)[0] < this.costs(o, win)[1])) win = o;
      }
      if (win !== null) { this.best = win; this.stint[win] = FIRST_STINT; }
      else this.stint[this.best] = Math.min(MAX_STINT, this.stint[this.best] * 2);
      this.current = this.best; this.left = this.stint[this.best];
      return;
    }
    // a stint of the chosen mode ended: if another mode now wins (the chosen one measured slower this stint), go
    // to it, for a longer stint than it had (a probe that won by luck must not make probing frequent again);
    // otherwise probe the other modes
    for (let o = 0 as Mode; o < MODES; o++) {
      if (o !== this.best && this.beats(o)) {
        this.best = o; this.current = o;
        this.left = this.stint[o] = Math.min(MAX_STINT, this.stint[o] * 2);
        return;
      }
    }
    this.probes = ([HOT, LAZY, SOLO] as Mode[]).filter((o) => o !== this.best);
    this.round = true;
    this.current = this.probes.shift()!; this.left = PROBE_STINT;
  }
}
