// Sequential read-ahead over a ByteSource whose reads each cost a round trip (HTTP Range requests, browser cache
// entries). The loaders read a weights file front to back (safetensors and GGUF data in file order, with a few
// small gaps), but in pieces: a 124M safetensors file is ~250 reads, 100 of them under 64 KiB (biases, layer
// norms). One request per piece, each awaited, spends the load on round trips: in a Chromium worker over loopback
// 124M fp32 took 5.2-5.8 s to stream where a plain 4 MiB-chunk fetch loop reads the file in 2.6-3.4 s (probes,
// 2026-12-03). So reads are served from whole chunks of the file (chunkBytes, aligned to multiples of it: the same
// chunks a browser cache stores), and the next chunks are requested while the current ones are consumed.
//
// Memory: at most `window` chunks are held or in flight at once — the chunks of the current read and those
// after it up to window chunks from its first — and chunks before the current read are dropped (handed to the
// source's release()). With the defaults, 4 chunks of 4 MiB, what the loader kept in flight before.
import type { ByteSource } from './source.js';
import { SafetensorsError } from '../errors.js';
import { checkRange, readByCopy } from './byte-range.js';

/** Bytes per chunk when the source names none (ByteSource.chunkBytes). */
export const READ_AHEAD_CHUNK_BYTES = 4 << 20;
/** Chunks held or in flight at once. */
export const READ_AHEAD_WINDOW = 4;

interface Chunk { bytes: Promise<Uint8Array>; users: number; dropped: boolean }

/**
 * `src` read in aligned chunks of `chunkBytes` (default: src.chunkBytes, else 4 MiB) with up to `window` chunks
 * held or in flight. Reads may be issued concurrently; a backward read fetches its chunks again.
 */
export function readAhead(src: ByteSource, opts: { chunkBytes?: number; window?: number } = {}): ByteSource {
  const cb = opts.chunkBytes ?? src.chunkBytes ?? READ_AHEAD_CHUNK_BYTES;
  const window = Math.max(1, opts.window ?? READ_AHEAD_WINDOW);
  if (!Number.isSafeInteger(cb) || cb < 1) throw new SafetensorsError(`${src.name}: read-ahead chunk size must be a positive integer, got ${cb}`);
  const chunks = new Map<number, Chunk>();
  let sizeP: Promise<number> | null = null;
  const size = () => (sizeP ??= src.size());
  let closed = false;

  const free = (c: Chunk) => { c.bytes.then((b) => src.release?.(b), () => {}); };
  const drop = (i: number, c: Chunk) => {
    chunks.delete(i);
    c.dropped = true;
    if (c.users === 0) free(c);
  };
  const fetchChunk = (i: number, total: number): Chunk => {
    const start = i * cb;
    const c: Chunk = { bytes: src.read(start, Math.min(cb, total - start)), users: 0, dropped: false };
    // a failed chunk is fetched again by the next read that needs it; the rejection is seen by that read
    c.bytes.catch(() => { if (chunks.get(i) === c) chunks.delete(i); });
    chunks.set(i, c);
    return c;
  };

  const readInto = async (offset: number, target: Uint8Array): Promise<void> => {
    if (closed) throw new SafetensorsError(`${src.name}: read after close`);
    const total = await size();
    checkRange(src.name, total, offset, target.byteLength);
    if (target.byteLength === 0) return;
    const end = offset + target.byteLength;
    const first = Math.floor(offset / cb), last = Math.floor((end - 1) / cb);
    const upTo = Math.min(Math.max(last, first + window - 1), Math.ceil(total / cb) - 1);
    for (const [i, c] of chunks) if (i < first || i > upTo) drop(i, c);
    const mine: Chunk[] = [];
    for (let i = first; i <= upTo; i++) {
      const c = chunks.get(i) ?? fetchChunk(i, total);
      if (i <= last) { c.users++; mine.push(c); }
    }
    try {
      for (let k = 0; k < mine.length; k++) {
        const bytes = await mine[k].bytes;
        const c0 = (first + k) * cb;
        const from = Math.max(offset, c0), to = Math.min(end, c0 + bytes.byteLength);
        target.set(bytes.subarray(from - c0, to - c0), from - offset);
      }
    } finally {
      for (const c of mine) if (--c.users === 0 && c.dropped) free(c);
    }
  };

  return {
    name: src.name,
    etag: src.etag,
    size,
    readInto,
    read: readByCopy(src.name, size, readInto),
    close: async () => {
      if (closed) return;
      closed = true;
      // chunks still in flight finish first (a cache stores them as they arrive), so nothing reads the source
      // after its close
      const pending = [...chunks.values()].map((c) => c.bytes);
      for (const [i, c] of chunks) drop(i, c);
      await Promise.allSettled(pending);
      await src.close?.();
    },
  };
}
