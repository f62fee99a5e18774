// The worker pool: N-1 workers plus the calling thread run every op on the same shared memory. An op is
// published through a control block (no postMessage per op); the caller runs slice 0 itself and then
// waits on the pending counter with a brief spin, then Atomics.wait where the platform allows it.
import { RuntimeError } from '../errors.js';
import { CTL_ARGS_F64, CTL_BYTES, CTL_ERROR, CTL_GEN, CTL_MAX_ARGS, CTL_NARGS, CTL_NTH, CTL_OP, CTL_PENDING, OP_EXIT, SPIN_ITERATIONS } from './control.js';
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

export class ThreadPool {
  readonly nthreads: number;
  private workers: AnyWorker[] = [];
  private ctl!: Int32Array;
  private args!: Float64Array;
  private region: Region;
  private blocking = true;
  private disposed = false;
  private failure: unknown = null;

  private constructor(private arena: Arena, nthreads: number) {
    this.nthreads = nthreads;
    this.region = arena.alloc('thread-pool control', CTL_BYTES);
  }

  static async create(arena: Arena, wasm: Uint8Array, names: string[], nthreads: number): Promise<ThreadPool> {
    const pool = new ThreadPool(arena, nthreads);
    pool.refreshViews();
    pool.ctl.fill(0);
    pool.blocking = canBlock(pool.ctl);
    const ready: Promise<void>[] = [];
    for (let ith = 1; ith < nthreads; ith++) {
      ready.push(new Promise<void>((resolve, reject) => {
        spawnWorker((m) => {
          if (m?.type === 'ready') resolve();
          else if (m?.type === 'error') reject(new RuntimeError(`worker ${ith} failed to start: ${m.message}`));
        }, (e) => { pool.failure = e; reject(new RuntimeError(`worker ${ith} crashed: ${String((e as any)?.message ?? e)}`)); })
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

  /** Runs `fn` (this thread's instance of kernel `op`) on all threads; args exclude (ith, nth). */
  run(op: number, fn: (...a: number[]) => void, args: number[], nth = this.nthreads): void {
    if (this.disposed) throw new RuntimeError('thread pool used after dispose()');
    if (nth <= 1 || this.nthreads <= 1) { fn(...args, 0, 1); return; }
    if (args.length > CTL_MAX_ARGS) throw new RuntimeError(`kernel call with ${args.length} arguments exceeds ${CTL_MAX_ARGS}`);
    this.refreshViews();
    const ctl = this.ctl;
    for (let i = 0; i < args.length; i++) this.args[CTL_ARGS_F64 + i] = args[i];
    ctl[CTL_NARGS] = args.length;
    ctl[CTL_OP] = op;
    ctl[CTL_NTH] = nth;
    Atomics.store(ctl, CTL_PENDING, nth - 1);
    Atomics.add(ctl, CTL_GEN, 1);
    Atomics.notify(ctl, CTL_GEN);
    fn(...args, 0, nth);
    let p = Atomics.load(ctl, CTL_PENDING);
    for (let i = 0; p !== 0 && i < SPIN_ITERATIONS; i++) p = Atomics.load(ctl, CTL_PENDING);
    while (p !== 0) {
      if (this.failure) throw new RuntimeError(`a worker died: ${String((this.failure as any)?.message ?? this.failure)}`);
      if (this.blocking) Atomics.wait(ctl, CTL_PENDING, p, 50);
      p = Atomics.load(ctl, CTL_PENDING);
    }
    if (ctl[CTL_ERROR]) { ctl[CTL_ERROR] = 0; throw new RuntimeError(`kernel #${op} failed in a worker`); }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ctl) {
      this.refreshViews();
      Atomics.store(this.ctl, CTL_OP, OP_EXIT);
      Atomics.add(this.ctl, CTL_GEN, 1);
      Atomics.notify(this.ctl, CTL_GEN);
    }
    for (const w of this.workers) { try { w.terminate(); } catch { /* already gone */ } }
    this.workers = [];
    this.arena.release(this.region);
  }
}
