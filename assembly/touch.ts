// First touch of fresh memory, spread over the threads. A page of a new WebAssembly.Memory costs a page fault the
// first time it is written (in a VM also the host's fault): writing GPT-2 124M's 88 MiB of Q4_0 blocks into a fresh
// memory costs more than reading them from the page cache. Faults on different pages run in parallel on different
// cores, so the loader has the pool touch the weights' region first (one write per 4 KiB page, an atomic add of 0:
// a single write fault, the contents unchanged) and then copies into mapped pages.
import { splitChunk, splitHi, splitLo } from './common';

const PAGE_SHIFT = 12; // 4 KiB, the smallest page size of the hosts we run on
const SPAN_PAGES = 16; // chunk boundaries on 64 KiB (wasm page) multiples

/** Writes the byte at a back unchanged: an atomic add of 0 where memory is shared (another thread may own the
 *  byte's neighbours; one write fault), else a load and a store (no other thread). */
@inline function touch(a: usize): void {
  if (ASC_FEATURE_THREADS) atomic.add<u8>(a, 0);
  else store<u8>(a, load<u8>(a));
}

/** One write per 4 KiB page of [p, p + bytes), contents unchanged. Split over the 64 KiB spans. */
export function touch_pages(p: usize, bytes: usize, ith: i32, nth: i32): void {
  const pages = <i32>((bytes + ((1 << PAGE_SHIFT) - 1)) >> PAGE_SHIFT);
  const chunk = splitChunk(pages, nth, SPAN_PAGES);
  const lo = splitLo(pages, ith, chunk), hi = splitHi(pages, lo, chunk);
  const first = (p + ((1 << PAGE_SHIFT) - 1)) & ~(<usize>((1 << PAGE_SHIFT) - 1)); // first page boundary at or after p
  for (let i = lo; i < hi; i++) {
    const a = first + (<usize>i << PAGE_SHIFT);
    if (a < p + bytes) touch(a);
  }
  if (ith == 0 && p < first && bytes > 0) touch(p); // the page p starts in, if p is not on a boundary
}
