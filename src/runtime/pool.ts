// The worker pool: N-1 workers plus the calling thread run every op on the same shared memory. An op is
// published through a control block (no postMessage per op) as nchunks fixed chunks, which all threads claim
// one at a time (control.ts); the caller claims too, then waits for the chunks others hold with a brief spin,
// then Atomics.wait where the platform allows it (which also frees its core for a descheduled worker). How decode
// calls run is decided from measured time (dispatch-policy.ts): with the threads spinning long between ops on an
// idle machine, where that saves a wake-up per op; spinning briefly, or on the caller alone, where another process
// holds a core and a worker preempted in the middle of a chunk would stall the caller.
import { RuntimeError } from '../errors.js';
import { CHUNK_BITS, CHUNK_MASK, CTL_ARGS_F64, CTL_BYTES, CTL_DONE, CTL_ERROR, CTL_GEN, CTL_MAX_ARGS, CTL_NARGS, CTL_NCHUNKS, CTL_NEXT, CTL_OP, CTL_SLEEPERS, CTL_SPIN, LAZY_CALLER_SPIN, LAZY_WORKER_SPIN, MAX_CHUNKS, OP_EXIT, SPIN_ITERATIONS, TAG_MASK, claimChunk, finishChunk } from './control.js';
import { DispatchPolicy, GAP_MS, HOT, LAZY, SOLO } from './dispatch-policy.js';
import { WORKER_SOURCE } from './embedded.gen.js';
import type { Arena, Region } from './memory.js';

interface AnyWorker { terminate(): unknown; postMessage(m: unknown): void }

const isNode = typeof process !== 'undefined' && !!(process as any).versions?.node && typeof (globalThis as any).Deno === 'undefined' && typeof (globalThis as any).Bun === 'undefined';

async function spawnWorker(onMessage: (m: any) => void, onError: (e: unknown) => void): Promise<AnyWorker> {
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.on('message', onMessage);
    w.on('error', onError);
    // a worker stopped from outside (terminate(), an out-of-memory kill) emits no 'error'
    w.on('exit', (code) => onError(new Error(`exited with code ${code}`)));
    // stay referenced until 'ready' arrives, or the process may exit while we wait for it
    w.once('message', () => w.unref());
    return w;
  }
  if (typeof Worker === 'undefined') throw new RuntimeError('this platform has no Worker; use threads: 1');
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const w = new Worker(url, { type: 'module' });
  w.onmessage = (e) => onMessage(e.data);
  w.onerror = (e) => onError(e);
  return w;
}

/** Whether this thread may block in Atomics.wait (browser main threads may not). */
function canBlock(i32: Int32Array): boolean {
  try { Atomics.wait(i32, CTL_ERROR + 10, 12345, 0); return true; } catch { return false; }
}

/** How long the caller waits for chunks other threads hold without any finishing before it gives up on the pool.
 *  A worker that dies holding a chunk never finishes it, and the caller, blocked in this synchronous wait, cannot
 *  receive the worker's 'error' or 'exit' event: without a limit it would wait forever. A chunk is a small fixed
 *  share of one op (~0.1 s for the largest, a GPT-2 XL prefill's LM head), so this is far above any live one.
 *  Only time the caller spent waiting counts: a whole process stopped for longer (SIGSTOP, a debugger) is not a stall. */
export const STALL_MS = 30_000;
/** The caller's blocking wait for others' chunks polls at this interval (ms). */
const WAIT_SLICE_MS = 50;

export class ThreadPool {
  readonly nthreads: number;
  private workers: AnyWorker[] = [];
  private ctl!: Int32Array;
  private args!: Float64Array;
  private region: Region;
  private blocking = true;
  private disposed = false;
  private failure: RuntimeError | null = null;
  /** STALL_MS; tests shorten it. */
  stallMs = STALL_MS;
  /** Chooses how decode calls run (hot, lazy or solo); null: always hot. */
  readonly policy: DispatchPolicy | null;
  /** Calls split into chunks so far, by the mode they ran in (the policy's choice; solo: on the caller alone). */
  readonly counts = { hot: 0, lazy: 0, solo: 0 };
  private mode: typeof HOT | typeof LAZY = HOT; // how the threads wait (the last split call's mode but solo)
  private callerSpin = SPIN_ITERATIONS; // polls of DONE before the caller sleeps (the mode's)
  private lastEnd = -Infinity; // when the previous split call ended (performance.now())

  private constructor(private arena: Arena, nthreads: number, adaptive: boolean) {
    this.nthreads = nthreads;
    this.policy = adaptive ? new DispatchPolicy() : null;
    this.region = arena.alloc('thread-pool control', CTL_BYTES);
  }

  static async create(arena: Arena, wasm: Uint8Array | WebAssembly.Module, names: string[], nthreads: number, adaptive = true): Promise<ThreadPool> {
    const pool = new ThreadPool(arena, nthreads, adaptive);
    pool.refreshViews();
    pool.ctl.fill(0);
    pool.ctl[CTL_SPIN] = SPIN_ITERATIONS; // hot, as this.mode
    pool.blocking = canBlock(pool.ctl);
    const ready: Promise<void>[] = [];
    for (let ith = 1; ith < nthreads; ith++) {
      ready.push(new Promise<void>((resolve, reject) => {
        spawnWorker((m) => {
          if (m?.type === 'ready') resolve();
          else if (m?.type === 'error') reject(new RuntimeError(`worker ${ith} failed to start: ${m.message}`));
        }, (e) => {
          if (!pool.disposed) pool.failure ??= new RuntimeError(`worker ${ith} died: ${String((e as any)?.message ?? e)}`);
          reject(pool.failure);
        })
          .then((w) => {
            pool.workers.push(w);
            w.postMessage({ memory: arena.memory, wasm, ctl: pool.region.ptr, ith, names });
          }, reject);
      }));
    }
    try { await Promise.all(ready); } catch (e) { pool.dispose(); throw e; }
    return pool;
  }

  private refreshViews() {
    const buf = this.arena.memory.buffer;
    if (this.ctl?.buffer === buf) return;
    this.ctl = new Int32Array(buf, this.region.ptr, 16);
    this.args = new Float64Array(buf, this.region.ptr, CTL_BYTES / 8);
  }

  /** Runs `fn` (this thread's instance of kernel `op`) as `nchunks` chunks (kernel (ith, nth) = (chunk, nchunks))
   *  on all threads, or as one chunk on this thread, as the policy finds faster for calls of this `kind`
   *  (chunks.ts dispatchKind; -1: not measured, run on all threads in the current waiting mode); args exclude
   *  (ith, nth). */
  run(op: number, fn: (...a: number[]) => void, args: number[], nchunks: number, kind: number): void {
    if (this.disposed) throw new RuntimeError('thread pool used after dispose()');
    // a pool that lost a worker may have left an op half done: no further op runs on it
    if (this.failure) throw this.failure;
    if (nchunks <= 1 || this.nthreads <= 1) { fn(...args, 0, 1); return; }
    if (args.length > CTL_MAX_ARGS) throw new RuntimeError(`kernel call with ${args.length} arguments exceeds ${CTL_MAX_ARGS}`);
    if (nchunks > MAX_CHUNKS) throw new RuntimeError(`kernel call split into ${nchunks} chunks exceeds ${MAX_CHUNKS}`);
    const policy = this.policy;
    const m = policy && kind >= 0 ? policy.mode() : this.mode;
    if (m === SOLO) this.counts.solo++;
    else {
      if (m !== this.mode) this.setMode(m);
      if (m === LAZY) this.counts.lazy++; else this.counts.hot++;
    }
    const t0 = performance.now();
    // solo: one chunk, as a 1-thread pool runs it (fewer chunks cost less: each GEMV chunk starts new streams)
    try { if (m === SOLO) fn(...args, 0, 1); else this.runParallel(op, fn, args, nchunks); } finally {
      const end = performance.now();
      if (policy && kind >= 0) policy.record(kind, end - (t0 - this.lastEnd < GAP_MS ? this.lastEnd : t0));
      this.lastEnd = end;
    }
  }

  /** Sets how long the threads spin before they sleep (control.ts); workers read it before every spin. */
  private setMode(mode: typeof HOT | typeof LAZY): void {
    this.mode = mode;
    this.refreshViews();
    Atomics.store(this.ctl, CTL_SPIN, mode === LAZY ? LAZY_WORKER_SPIN : SPIN_ITERATIONS);
    this.callerSpin = mode === LAZY ? LAZY_CALLER_SPIN : SPIN_ITERATIONS;
  }

  private runParallel(op: number, fn: (...a: number[]) => void, args: number[], nchunks: number): void {
    const tag = this.publish(op, args, nchunks);
    const a = [...args, 0, nchunks];
    // a chunk that throws still counts as finished, and the op is drained before the error leaves: workers
    // must not still be counting this op's chunks when the next one is published
    let failed: unknown = null;
    for (let c = claimChunk(this.ctl, tag, nchunks); c >= 0; c = claimChunk(this.ctl, tag, nchunks)) {
      a[args.length] = c;
      try { fn(...a); } catch (e) { failed ??= e; }
      finishChunk(this.ctl, nchunks);
    }
    this.waitDone(op, nchunks);
    if (failed) throw failed;
  }

  /** Publishes op `op` (see control.ts for the order of writes); returns its claim tag. */
  private publish(op: number, args: number[], nchunks: number): number {
    this.refreshViews();
    const ctl = this.ctl;
    const gen = Atomics.load(ctl, CTL_GEN) + 1; // the Int32 slot wraps it; tags are taken mod 2^21 either way
    const tag = gen & TAG_MASK;
    Atomics.store(ctl, CTL_NEXT, (tag << CHUNK_BITS) | CHUNK_MASK); // closed: stale claimers see the new tag
    for (let i = 0; i < args.length; i++) this.args[CTL_ARGS_F64 + i] = args[i];
    Atomics.store(ctl, CTL_NARGS, args.length);
    Atomics.store(ctl, CTL_OP, op);
    Atomics.store(ctl, CTL_NCHUNKS, nchunks);
    Atomics.store(ctl, CTL_DONE, 0);
    Atomics.store(ctl, CTL_NEXT, tag << CHUNK_BITS);
    Atomics.store(ctl, CTL_GEN, gen);
    if (Atomics.load(ctl, CTL_SLEEPERS) > 0) Atomics.notify(ctl, CTL_GEN);
    return tag;
  }

  /** Waits until every chunk of the current op is finished (chunks held by other threads). */
  private waitDone(op: number, nchunks: number): void {
    const ctl = this.ctl;
    let d = Atomics.load(ctl, CTL_DONE);
    for (let i = 0, spin = this.callerSpin; d !== nchunks && i < spin; i++) d = Atomics.load(ctl, CTL_DONE);
    // stalled: time waited since a chunk last finished, each poll counting at most 2·WAIT_SLICE_MS, so a process
    // stopped between two polls (SIGSTOP, a debugger pause) has not waited for the whole stop
    let seen = d, stalled = 0, last = performance.now();
    while (d !== nchunks) {
      if (this.blocking) Atomics.wait(ctl, CTL_DONE, d, WAIT_SLICE_MS);
      d = Atomics.load(ctl, CTL_DONE);
      const now = performance.now();
      stalled += Math.min(now - last, 2 * WAIT_SLICE_MS);
      last = now;
      if (d !== seen) { seen = d; stalled = 0; } else if (stalled > this.stallMs) {
        this.failure = new RuntimeError(`kernel #${op}: ${nchunks - d} of its ${nchunks} chunks held by pool workers did not finish in ${this.stallMs / 1000} s (a worker died or hangs); this model's thread pool is unusable: dispose it and load again`);
        throw this.failure;
      }
    }
    if (ctl[CTL_ERROR]) { ctl[CTL_ERROR] = 0; throw new RuntimeError(`kernel #${op} failed in a worker`); }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ctl) {
      this.refreshViews();
      // every worker claims one chunk of the exit op and returns
      this.publish(OP_EXIT, [], MAX_CHUNKS);
      Atomics.notify(this.ctl, CTL_GEN);
    }
    for (const w of this.workers) { try { w.terminate(); } catch { /* already gone */ } }
    this.workers = [];
    this.arena.release(this.region);
  }
}
