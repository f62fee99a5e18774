// The memory plan: one WebAssembly.Memory holds weights, KV caches, activations and scratch as named
// regions. Regions come from a first-fit free list so caches and per-call workspaces can be released;
// the memory only ever grows (wasm cannot shrink), and never past wasm32's 4 GiB.
// Addresses are unsigned and reach past 2^31: host code converts them with `>>>` and plain arithmetic (never
// `>>`, `|0` or an Int32Array slot), kernels compute byte offsets in usize.
import { MemoryLimitError } from '../errors.js';
import { MAX_PAGES, PAGE, RESERVED_LOW_BYTES } from './wasm.js';

export interface Region { readonly name: string; readonly ptr: number; readonly bytes: number }

const ALIGN = 64;
const alignUp = (n: number, a = ALIGN) => Math.ceil(n / a) * a;
export const MAX_MEMORY_BYTES = MAX_PAGES * PAGE;
/** Regions end at or below this: the last page is never handed out, so a region's end address (a loop bound in
 *  the kernels' u32 arithmetic) is below 2^32 and never wraps to 0. */
export const ARENA_END = MAX_MEMORY_BYTES - PAGE;
/** Memory a model needs beyond its weights for a minimal working set (activations, logits, a short cache). */
export const WORKING_HEADROOM_BYTES = 96 << 20;

export class Arena {
  readonly memory: WebAssembly.Memory;
  private free: { ptr: number; bytes: number }[] = [];
  private top: number; // first byte never handed out
  private live = new Map<number, Region>();
  private _f32: Float32Array | null = null;
  /** Regions end at or below this (ARENA_END; tests lower it to reach the memory's end with a small model). */
  limit = ARENA_END;

  constructor(memory: WebAssembly.Memory, base = RESERVED_LOW_BYTES) {
    this.memory = memory;
    this.top = alignUp(base);
  }

  /** Bytes handed out and not freed, by region name prefix (for `info` and the bench). */
  usage(): { total: number; regions: Region[]; committed: number } {
    const regions = [...this.live.values()].sort((a, b) => a.ptr - b.ptr);
    return { total: regions.reduce((s, r) => s + r.bytes, 0), regions, committed: this.memory.buffer.byteLength };
  }

  alloc(name: string, bytes: number): Region {
    if (!Number.isFinite(bytes) || bytes < 0) throw new MemoryLimitError(`bad allocation size ${bytes} for ${name}`);
    const size = alignUp(Math.max(bytes, 1));
    const fit = this.firstFit(this.free, this.top, size);
    if (!fit) throw this.outOfMemory(`${name} (${mib(size)})`);
    this.ensure(fit.top);
    this.top = fit.top;
    const r: Region = { name, ptr: fit.ptr, bytes: size };
    this.live.set(r.ptr, r);
    return r;
  }

  /** Where `size` (aligned) bytes go: the first free block that holds them (taken from `free` in place), else `top`
   *  (which moves); null past the memory's limit. alloc runs it on the arena, fits on a copy. */
  private firstFit(free: { ptr: number; bytes: number }[], top: number, size: number): { ptr: number; top: number } | null {
    const i = free.findIndex((f) => f.bytes >= size);
    if (i >= 0) {
      const f = free[i], ptr = f.ptr;
      if (f.bytes === size) free.splice(i, 1); else { f.ptr += size; f.bytes -= size; }
      return { ptr, top };
    }
    return top + size > this.limit ? null : { ptr: top, top: top + size };
  }

  /** The error for `what` not fitting: what is in use, where memory ends, and what to change (`advice`). */
  outOfMemory(what: string, advice = "a smaller dtype ('fp16' or 'q8')"): MemoryLimitError {
    return new MemoryLimitError(`out of WebAssembly memory allocating ${what}: ${mib(this.usage().total)} already in use and wasm32 memory ends ` +
      `at 4096 MiB. Use ${advice}, a shorter context, or a smaller batch.`);
  }

  /** Whether regions of these sizes would all be handed out (alloc's first fit, on a copy of the free list), so a caller
   *  allocating several can fail before growing the memory for the first ones (wasm memory never shrinks). */
  fits(sizes: number[]): boolean {
    const free = this.free.map((f) => ({ ...f }));
    let top = this.top;
    for (const bytes of sizes) {
      const fit = this.firstFit(free, top, alignUp(Math.max(bytes, 1)));
      if (!fit) return false;
      top = fit.top;
    }
    return true;
  }

  release(r: Region | null | undefined): void {
    if (!r || !this.live.delete(r.ptr)) return;
    if (r.ptr + r.bytes === this.top) { this.top = r.ptr; } else { this.free.push({ ptr: r.ptr, bytes: r.bytes }); }
    // keep the free list sorted and coalesced, and give the tail back to `top`
    this.free.sort((a, b) => a.ptr - b.ptr);
    const merged: { ptr: number; bytes: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.ptr + last.bytes === f.ptr) last.bytes += f.bytes; else merged.push({ ...f });
    }
    while (merged.length && merged[merged.length - 1].ptr + merged[merged.length - 1].bytes === this.top) this.top = merged.pop()!.ptr;
    this.free = merged;
  }

  /** Grows the memory so [0, end) is addressable. */
  ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    try { this.memory.grow(pages); } catch (e) {
      throw new MemoryLimitError(`the engine refused to grow WebAssembly memory to ${mib(end)}: ${(e as Error).message}`, { cause: e });
    }
  }

  // Views are cheap to make; the buffer object changes when the memory grows, so always ask for a fresh one.
  get buffer(): ArrayBufferLike { return this.memory.buffer; }
  f32(ptr: number, length: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, length); }
  i32(ptr: number, length: number): Int32Array { return new Int32Array(this.memory.buffer, ptr, length); }
  u8(ptr: number, length: number): Uint8Array { return new Uint8Array(this.memory.buffer, ptr, length); }
  u16(ptr: number, length: number): Uint16Array { return new Uint16Array(this.memory.buffer, ptr, length); }
  /** A whole-memory f32 view, cached until the memory grows. */
  get F32(): Float32Array {
    if (!this._f32 || this._f32.buffer !== this.memory.buffer || this._f32.byteLength !== this.memory.buffer.byteLength) this._f32 = new Float32Array(this.memory.buffer);
    return this._f32;
  }
}

export const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
