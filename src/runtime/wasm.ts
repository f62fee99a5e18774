// Picks the best kernel build this engine validates and instantiates it on a given memory.
// Four builds of the same source: relaxed SIMD or plain SIMD, each with shared memory (threads) or without
// (for pages that are not cross-origin isolated, where shared memory does not exist).
import { MemoryLimitError, RuntimeError } from '../errors.js';
import type { KernelABI } from './abi.js';
import { KERNEL_NAMES } from './abi.js';
import * as embedded from './embedded.gen.js';

export type WasmVariant = 'relaxed-threads' | 'simd-threads' | 'relaxed' | 'simd';
export const WASM_VARIANTS: readonly WasmVariant[] = ['relaxed-threads', 'simd-threads', 'relaxed', 'simd'];

/** Bytes below this address belong to the kernels' own static data; the host's arena starts here. */
export const RESERVED_LOW_BYTES = 1 << 20;
export const PAGE = 65536;
export const MAX_PAGES = 65536; // wasm32: 4 GiB

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  if (typeof (globalThis as any).Buffer === 'function') return new Uint8Array((globalThis as any).Buffer.from(s, 'base64'));
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const sources: Record<WasmVariant, string> = {
  'relaxed-threads': embedded.WASM_RELAXED_THREADS,
  'simd-threads': embedded.WASM_SIMD_THREADS,
  relaxed: embedded.WASM_RELAXED,
  simd: embedded.WASM_SIMD,
};
const bytesCache = new Map<WasmVariant, Uint8Array<ArrayBuffer>>();
export function wasmBytes(v: WasmVariant): Uint8Array<ArrayBuffer> {
  let b = bytesCache.get(v);
  if (!b) { b = decodeBase64(sources[v]); bytesCache.set(v, b); }
  return b;
}

export function sharedMemorySupported(): boolean {
  try {
    if (typeof SharedArrayBuffer === 'undefined') return false;
    const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true } as any);
    return m.buffer instanceof SharedArrayBuffer;
  } catch { return false; }
}

export interface RuntimeFeatures { simd: boolean; relaxedSimd: boolean; threads: boolean; variant: WasmVariant }

let detected: RuntimeFeatures | null = null;
/** Feature detection by validating the real builds, so what we report is what will run. */
export function detectFeatures(): RuntimeFeatures {
  if (detected) return detected;
  const threads = sharedMemorySupported();
  const ok = (v: WasmVariant) => { try { return WebAssembly.validate(wasmBytes(v)); } catch { return false; } };
  const simd = ok(threads ? 'simd-threads' : 'simd');
  if (!simd) throw new RuntimeError('this WebAssembly engine lacks SIMD128, which gpt2-wasm requires (Node >= 20, Deno, Bun, and current browsers have it)');
  const relaxedSimd = ok(threads ? 'relaxed-threads' : 'relaxed');
  const variant: WasmVariant = threads ? (relaxedSimd ? 'relaxed-threads' : 'simd-threads') : (relaxedSimd ? 'relaxed' : 'simd');
  detected = { simd, relaxedSimd, threads, variant };
  return detected;
}

const moduleCache = new Map<WasmVariant, WebAssembly.Module>();
export function compileVariant(v: WasmVariant): WebAssembly.Module {
  let m = moduleCache.get(v);
  if (!m) {
    try { m = new WebAssembly.Module(wasmBytes(v)); } catch (e) {
      // a build the engine cannot validate (a forced relaxed build on Node 20) is not a platform that refuses
      // run-time compilation (Cloudflare Workers, Vercel Edge), where importing the module is the way out
      const d = detectFeatures(); // by validation, which such platforms allow
      if ((v.startsWith('relaxed') && !d.relaxedSimd) || (v.endsWith('threads') && !d.threads)) {
        throw new RuntimeError(`this WebAssembly engine cannot run the ${v} kernels (${(e as Error).message}); it runs '${d.variant}': leave variant unset to pick it`, { cause: e });
      }
      throw new RuntimeError(`this platform refused to compile the ${v} kernels from bytes (${(e as Error).message}); import gpt2-wasm/wasm/${v}.wasm as a module and pass it as { wasmModule, variant: '${v}' }`, { cause: e });
    }
    moduleCache.set(v, m);
  }
  return m;
}

export function createMemory(initialBytes: number, shared: boolean): WebAssembly.Memory {
  const initial = Math.max(Math.ceil(initialBytes / PAGE), RESERVED_LOW_BYTES / PAGE + 1);
  // past wasm32's 4 GiB (a huge prefill_chunk's workspace, an initialBytes of 1e12) no engine can give it
  if (!(initial <= MAX_PAGES)) throw new MemoryLimitError(`${(initialBytes / 2 ** 20).toFixed(0)} MiB of WebAssembly memory asked for, past the 4 GiB of wasm32`);
  try {
    return new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared } as any);
  } catch (e) {
    throw new MemoryLimitError(`could not allocate ${(initial * PAGE / 2 ** 20).toFixed(0)} MiB of WebAssembly memory: ${(e as Error).message}`, { cause: e });
  }
}

export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelABI {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  const k: any = {};
  for (const name of KERNEL_NAMES) {
    const f = inst.exports[name];
    if (typeof f !== 'function') throw new RuntimeError(`kernel build lacks export ${name}`);
    k[name] = f;
  }
  if (typeof inst.exports.relaxed_dot_exact === 'function') k.relaxed_dot_exact = inst.exports.relaxed_dot_exact;
  return k as KernelABI;
}
