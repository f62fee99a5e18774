// A pool worker: instantiates the kernel module on the shared memory (telling it its thread index, for the
// per-thread scratch), then loops forever claiming chunks of each published op (control.ts). Dependency-free
// so it can start from a Blob URL (browsers, Deno, Bun) or from eval'd source (Node worker_threads) with no
// file to locate.
import { CTL_ARGS_F64, CTL_ERROR, CTL_GEN, CTL_NARGS, CTL_NCHUNKS, CTL_OP, CTL_SLEEPERS, CTL_SPIN, OP_EXIT, TAG_MASK, claimChunk, finishChunk } from './control.js';

interface Init { memory: WebAssembly.Memory; wasm: Uint8Array<ArrayBuffer> | WebAssembly.Module; ctl: number; ith: number; names: string[] }

declare const require: any;
const nodePort: any = typeof require === 'function' ? (() => { try { return require('node:worker_threads').parentPort; } catch { return null; } })() : null;
const post = (m: unknown) => (nodePort ? nodePort.postMessage(m) : (self as any).postMessage(m));

function start(init: Init) {
  let fns: ((...a: number[]) => void)[];
  try {
    const inst = new WebAssembly.Instance(init.wasm instanceof WebAssembly.Module ? init.wasm : new WebAssembly.Module(init.wasm), { env: { memory: init.memory } });
    (inst.exports.set_thread_index as (i: number) => void)(init.ith);
    fns = init.names.map((n) => inst.exports[n] as any);
  } catch (e) {
    post({ type: 'error', message: String((e as Error)?.message ?? e) });
    return;
  }
  const buf = init.memory.buffer;
  const ctl = new Int32Array(buf, init.ctl, 16);
  const args = new Float64Array(buf, init.ctl, 64);
  // read the generation before announcing readiness: the first op may be published the moment 'ready' lands
  let seen = Atomics.load(ctl, CTL_GEN);
  post({ type: 'ready' });
  const a: number[] = [];
  for (;;) {
    let g = Atomics.load(ctl, CTL_GEN);
    const spin = Atomics.load(ctl, CTL_SPIN);
    for (let i = 0; g === seen && i < spin; i++) g = Atomics.load(ctl, CTL_GEN);
    if (g === seen) {
      // announce the sleep first: the caller notifies only when someone may be asleep
      Atomics.add(ctl, CTL_SLEEPERS, 1);
      while (g === seen) { Atomics.wait(ctl, CTL_GEN, seen); g = Atomics.load(ctl, CTL_GEN); }
      Atomics.sub(ctl, CTL_SLEEPERS, 1);
    }
    seen = g;
    const tag = g & TAG_MASK;
    const nchunks = Atomics.load(ctl, CTL_NCHUNKS);
    let c = claimChunk(ctl, tag, nchunks);
    if (c < 0) continue; // finished (or superseded) before this thread got a chunk
    // the arguments are stable while this thread holds a chunk of the op: read them only now
    const op = Atomics.load(ctl, CTL_OP);
    if (op === OP_EXIT) return;
    const n = Atomics.load(ctl, CTL_NARGS);
    a.length = 0;
    for (let i = 0; i < n; i++) a.push(args[CTL_ARGS_F64 + i]);
    a.push(0, nchunks);
    const f = fns[op];
    do {
      a[n] = c;
      try { f(...a); } catch { Atomics.store(ctl, CTL_ERROR, 1); }
      finishChunk(ctl, nchunks);
      c = claimChunk(ctl, tag, nchunks);
    } while (c >= 0);
  }
}

if (nodePort) nodePort.once('message', start);
else (self as any).onmessage = (e: MessageEvent) => { (self as any).onmessage = null; start(e.data); };
