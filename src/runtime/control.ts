// Layout of the control block the pool and its workers share (Int32 slots, then f64 arguments), and the chunk
// claim both sides use. An op is split into nchunks fixed chunks (the kernel's (ith, nth) = (chunk, nchunks));
// every thread, the caller included, claims chunk indices until none is left, so a descheduled thread delays
// only the chunk it holds. Publishing an op: close the claim word under the new tag, write arguments, op and
// nchunks, zero DONE, open the claim word at chunk 0, then bump GEN (and notify sleepers).
export const CTL_GEN = 0; // bumped once per published op; idle workers wait on it
export const CTL_OP = 1; // kernel index into the names list, or OP_EXIT
export const CTL_NARGS = 2;
export const CTL_NEXT = 3; // claim word: (tag << CHUNK_BITS) | next chunk index
export const CTL_ERROR = 4; // set to 1 by a worker whose kernel threw
export const CTL_NCHUNKS = 5;
export const CTL_DONE = 6; // chunks finished; the caller waits for DONE == NCHUNKS
export const CTL_SLEEPERS = 7; // workers blocked (or about to block) in Atomics.wait on GEN
export const CTL_SPIN = 8; // polls of GEN a worker makes before it sleeps (set by the caller: pool.ts)
export const CTL_ARGS_F64 = 8; // f64 index where arguments start (byte 64)
export const CTL_MAX_ARGS = 32;
export const CTL_BYTES = 64 + 8 * CTL_MAX_ARGS;
export const OP_EXIT = -1;

// The tag is the op's generation modulo 2^21. It stops a worker that saw op g from claiming a chunk of a later
// op with g's arguments: a stale claim fails unless the tag wrapped all the way round (2M ops) between the
// worker reading GEN and its compare-exchange.
export const CHUNK_BITS = 11;
export const CHUNK_MASK = (1 << CHUNK_BITS) - 1;
export const MAX_CHUNKS = CHUNK_MASK; // the index field must also hold "closed" (CHUNK_MASK >= any nchunks)
export const TAG_MASK = (1 << (32 - CHUNK_BITS)) - 1;

/** Bounded spin (Atomics.load polls, ~170 µs on the reference machine) before a thread blocks in Atomics.wait, in
 *  the pool's hot mode: decode publishes an op every few microseconds, so a worker that just finished stays hot
 *  for the next one; a pool idle for longer sleeps. */
export const SPIN_ITERATIONS = 20000;
/** The lazy mode's spins (dispatch-policy.ts), for a machine where another process holds a core: a worker sleeps
 *  almost at once when no chunk is left (~2 µs), so it takes CPU time only for the chunks it runs, and the caller
 *  waits ~17 µs for chunks others hold before it sleeps too and frees its core for them. (A worker spin of 2000
 *  polls costs less on an idle machine, 0.85x hot for q8 against 0.7x, but measured worse than the caller alone
 *  when other processes loaded the machine.) */
export const LAZY_WORKER_SPIN = 200;
export const LAZY_CALLER_SPIN = 2000;

/** Claims the next chunk of the op tagged `tag` with `nchunks` chunks: its index, or -1 when none is left
 *  (or the published op is no longer that one). */
export function claimChunk(ctl: Int32Array, tag: number, nchunks: number): number {
  for (;;) {
    const w = Atomics.load(ctl, CTL_NEXT);
    const c = w & CHUNK_MASK;
    if (w >>> CHUNK_BITS !== tag || c >= nchunks) return -1;
    if (Atomics.compareExchange(ctl, CTL_NEXT, w, w + 1) === w) return c;
  }
}

/** Records one finished chunk; wakes the caller when it was the last. */
export function finishChunk(ctl: Int32Array, nchunks: number): void {
  if (Atomics.add(ctl, CTL_DONE, 1) + 1 === nchunks) Atomics.notify(ctl, CTL_DONE);
}
