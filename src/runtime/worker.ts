// A pool worker: instantiates the kernel module on the shared memory, then loops forever running its slice
// of each published op. Dependency-free so it can start from a Blob URL (browsers, Deno, Bun) or from
// eval'd source (Node worker_threads) with no file to locate.
import { CTL_ARGS_F64, CTL_ERROR, CTL_GEN, CTL_NARGS, CTL_NTH, CTL_OP, CTL_PENDING, OP_EXIT, SPIN_ITERATIONS } from './control.js';

interface Init { memory: WebAssembly.Memory; wasm: Uint8Array<ArrayBuffer>; ctl: number; ith: number; names: string[] }

declare const require: any;
const nodePort: any = typeof require === 'function' ? (() => { try { return require('node:worker_threads').parentPort; } catch { return null; } })() : null;
const post = (m: unknown) => (nodePort ? nodePort.postMessage(m) : (self as any).postMessage(m));

function start(init: Init) {
  let fns: ((...a: number[]) => void)[];
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(init.wasm), { env: { memory: init.memory } });
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
    for (let i = 0; g === seen && i < SPIN_ITERATIONS; i++) g = Atomics.load(ctl, CTL_GEN);
    while (g === seen) { Atomics.wait(ctl, CTL_GEN, seen); g = Atomics.load(ctl, CTL_GEN); }
    seen = g;
    const op = Atomics.load(ctl, CTL_OP);
    if (op === OP_EXIT) return;
    const nth = ctl[CTL_NTH];
    if (init.ith < nth) {
      const n = ctl[CTL_NARGS];
      a.length = 0;
      for (let i = 0; i < n; i++) a.push(args[CTL_ARGS_F64 + i]);
      a.push(init.ith, nth);
      try { fns[op](...a); } catch { Atomics.store(ctl, CTL_ERROR, 1); }
      if (Atomics.sub(ctl, CTL_PENDING, 1) === 1) Atomics.notify(ctl, CTL_PENDING);
    }
  }
}

if (nodePort) nodePort.once('message', start);
else (self as any).onmessage = (e: MessageEvent) => { (self as any).onmessage = null; start(e.data); };
