// A Backend is the memory plan plus a way to run kernels on it: the wasm kernels (one or many threads) or
// the TypeScript reference kernels. The model only talks to `backend.k`, a KernelABI without (ith, nth).
import { OptionError, RuntimeError } from '../errors.js';
import { KERNEL_NAMES, type KernelABI, type KernelName } from './abi.js';
import { chunkCount, dispatchKind } from './chunks.js';
import { Arena } from './memory.js';
import { ThreadPool } from './pool.js';
import { createReferenceKernels } from './reference.js';
import { compileVariant, createMemory, detectFeatures, instantiateKernels, wasmBytes, WASM_VARIANTS, type RuntimeFeatures, type WasmVariant } from './wasm.js';

type Strip<F> = F extends (...a: [...infer A, number, number]) => void ? (...a: A) => void : never;
export type Kernels = { [K in KernelName]: Strip<KernelABI[K]> };

export interface BackendOptions {
  /** Threads for kernels, the caller included. Default: hardware concurrency, at most 16 (1 where threads are
   *  unavailable). Safe on a busy machine: threads claim chunks of each op dynamically, so a descheduled one
   *  delays only its chunk (bench/contention.ts measures 2 threads against 1 with a second process spinning). */
  threads?: number;
  /** 'wasm' (default) or 'reference' (plain TypeScript, slow; for tests and debugging). */
  kernels?: 'wasm' | 'reference';
  /** Force a wasm build instead of the best one the engine validates. */
  variant?: WasmVariant;
  /** A precompiled kernel module, for platforms that forbid compiling wasm from bytes (Cloudflare Workers, Vercel
   *  Edge): import the matching `gpt2-wasm/wasm/<variant>.wasm` as a module and pass it with `variant`. */
  wasmModule?: WebAssembly.Module;
  /** Bytes to reserve up front (the model's weights); memory grows on demand beyond it. */
  initialBytes?: number;
  /** With threads > 1: 'adaptive' (default) runs decode calls (at most 16 token rows) with the threads waiting
   *  hot (spinning) or lazy (sleeping almost at once) between them, or on the calling thread alone, whichever is
   *  measured faster right now (src/runtime/dispatch-policy.ts: on a machine where another process keeps a core
   *  busy, spinning threads burn the share of the one with the work, and a worker preempted mid-chunk stalls the
   *  caller); 'parallel' always runs them on all threads, waiting hot. The bits are the same either way. */
  dispatch?: 'adaptive' | 'parallel';
}

export async function defaultThreads(): Promise<number> {
  const hc = (globalThis as any).navigator?.hardwareConcurrency;
  if (typeof hc === 'number' && hc > 0) return Math.min(hc, 16);
  try {
    const os: any = await import('node:os');
    return Math.max(1, Math.min(16, os.availableParallelism?.() ?? os.cpus().length));
  } catch { return 1; }
}

let warnedNoThreads = false;

/** The threads option: undefined (the default) or an integer from 1 to 256; a string or bigint is named as such. */
export function checkThreads(v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 256)) {
    throw new OptionError(`threads must be an integer from 1 to 256, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  }
}

/** Stops the worker threads of a backend that was dropped without dispose() (a model that went out of scope):
 *  the workers are referenced by the runtime, not by the backend, so they would otherwise run (idle, ~37 MiB each)
 *  until the process exits. The pool, the held value, does not reference its backend. */
const poolReaper = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<ThreadPool>((pool) => pool.dispose()) : null;

export class Backend {
  readonly arena: Arena;
  readonly k: Kernels;
  readonly threads: number;
  readonly variant: WasmVariant | 'reference';
  readonly features: RuntimeFeatures;
  /** The relaxed Q4_0 GEMV and GEMM tiles run: a relaxed build whose engine passed the relaxed dot check (each pool
   *  thread's instance checks its own; this is the calling thread's). */
  readonly relaxedDot: boolean;
  private pool: ThreadPool | null;

  private constructor(arena: Arena, k: Kernels, threads: number, variant: WasmVariant | 'reference', features: RuntimeFeatures, pool: ThreadPool | null, relaxedDot = false) {
    this.arena = arena; this.k = k; this.threads = threads; this.variant = variant; this.features = features; this.pool = pool;
    this.relaxedDot = relaxedDot;
    if (pool) poolReaper?.register(this, pool, this);
  }

  static async create(opts: BackendOptions = {}): Promise<Backend> {
    const features = detectFeatures();
    checkThreads(opts.threads);
    let threads = opts.threads ?? await defaultThreads();
    if (opts.variant !== undefined && !WASM_VARIANTS.includes(opts.variant)) throw new OptionError(`variant must be one of ${WASM_VARIANTS.join(', ')}, got ${JSON.stringify(opts.variant)}`);
    if (opts.wasmModule !== undefined && !(opts.wasmModule instanceof WebAssembly.Module)) throw new OptionError('wasmModule must be a WebAssembly.Module (the imported kernels .wasm)');
    if (threads > 1 && !features.threads) {
      // no shared memory here (e.g. a page without cross-origin isolation): one thread, said once when asked for more
      if (opts.threads !== undefined && !warnedNoThreads) {
        warnedNoThreads = true;
        console.warn(`gpt2-wasm: threads: ${opts.threads} asked for, but this platform has no shared memory (a page needs cross-origin isolation: the Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers); running on 1 thread`);
      }
      threads = 1;
    }
    const dispatch = opts.dispatch ?? 'adaptive';
    if (dispatch !== 'adaptive' && dispatch !== 'parallel') throw new OptionError(`dispatch must be 'adaptive' or 'parallel', got ${String(dispatch)}`);
    const kernels = opts.kernels ?? 'wasm';
    if (kernels !== 'wasm' && kernels !== 'reference') throw new OptionError(`kernels must be 'wasm' or 'reference', got ${String(kernels)}`);
    let variant: WasmVariant = opts.variant ?? features.variant;
    if (threads > 1 && !variant.endsWith('threads')) variant = (variant + '-threads') as WasmVariant;
    const shared = variant.endsWith('threads');
    if (shared && !features.threads) throw new RuntimeError(`wasm build ${variant} needs shared memory, which this platform lacks`);
    const memory = createMemory(opts.initialBytes ?? 0, shared);
    const arena = new Arena(memory);
    if (kernels === 'reference') {
      const ref = createReferenceKernels(memory);
      const k: any = {};
      for (const name of KERNEL_NAMES) {
        const f = ref[name] as (...a: number[]) => void;
        // the same chunks the wasm pool would run, in order on this thread
        k[name] = (...a: number[]) => { const n = chunkCount(name, a, threads); for (let c = 0; c < n; c++) f(...a, c, n); };
      }
      return new Backend(arena, k, threads, 'reference', features, null);
    }
    let inst;
    try { inst = instantiateKernels(opts.wasmModule ?? compileVariant(variant), memory); } catch (e) {
      // a given module of another build: its memory import is shared or not against the variant's
      if (opts.wasmModule && e instanceof WebAssembly.LinkError) throw new OptionError(`wasmModule is not the ${variant} build (threads ${threads}): ${(e as Error).message}; pass the module of gpt2-wasm/wasm/${variant}.wasm`, { cause: e });
      throw e;
    }
    // the pool threads run the caller's very module: chunks of one op computed by two builds would mix their bits
    const pool = threads > 1 ? await ThreadPool.create(arena, opts.wasmModule ?? wasmBytes(variant), KERNEL_NAMES, threads, dispatch === 'adaptive') : null;
    const k: any = {};
    KERNEL_NAMES.forEach((name, op) => {
      const f = inst[name] as (...a: number[]) => void;
      // the dispatch kind only matters to a split call
      k[name] = pool ? (...a: number[]) => { const n = chunkCount(name, a, threads); pool.run(op, f, a, n, n > 1 ? dispatchKind(op, name, a) : -1); } : (...a: number[]) => f(...a, 0, 1);
    });
    const relaxedDot = inst.relaxed_dot_exact?.() === 1;
    return new Backend(arena, k, threads, variant, features, pool, relaxedDot);
  }

  /** Kernel calls split across threads so far, by how they ran (the adaptive dispatch's choice: the threads
   *  waiting hot or lazy, or solo on the caller alone); null without a pool. */
  dispatchCounts(): { hot: number; lazy: number; solo: number } | null {
    return this.pool ? { ...this.pool.counts } : null;
  }

  dispose(): void {
    poolReaper?.unregister(this);
    this.pool?.dispose();
    this.pool = null;
  }
}
