// A persistent cache in front of a ModelSource (in browsers: the Cache API by default, or the Origin Private
// File System with browser_cache: 'opfs', better for large weights: files, not HTTP responses, and a quota of its
// own in some browsers), so that the second page load of a model reads nothing from the network. Small files (config, tokenizer) are kept whole; files read with random
// access (safetensors weights) are kept as fixed-size range chunks, so a load still streams the weights into
// wasm memory a chunk at a time and never holds a whole file in JS.
//
// Entries are keyed by the file's URL (a Hub URL names the revision: .../resolve/<revision>/file), with a
// `gpt2wasm-cache` search parameter saying which entry it is:
//   ?gpt2wasm-cache=file       the whole file                       (readBytes/readText/readJson)
//   ?gpt2wasm-cache=meta       {"size","etag","chunkBytes"}         (a file read with open())
//   ?gpt2wasm-cache=chunk-<i>  bytes [i*chunkBytes, (i+1)*chunkBytes) of that file
//   ?gpt2wasm-cache=absent     the source said the file does not exist (exists() === false)
// Nothing is revalidated: a cached URL is served from the cache until it is cleared (clearCachedFiles). When a
// chunk has to be fetched and the server's ETag or size no longer matches the cached meta, the file's entries
// are dropped and the read fails with a DownloadError asking to load again (never a mix of two versions).
import { DownloadError } from '../errors.js';
import { decodeUtf8, parseJsonText } from './files.js';
import { copyBytes } from './byte-range.js';
import { readAhead } from './read-ahead.js';
import type { ByteSource, ModelSource, ProgressInfo } from './source.js';

/** Where cached entries live: the Cache API in browsers, a Map in tests. Keys are http(s) URLs. */
export interface CacheStore {
  get(key: string): Promise<Uint8Array | null>;
  has(key: string): Promise<boolean>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Every key with the byte length of its entry. */
  entries(): Promise<{ key: string; bytes: number }[]>;
}

/** The Cache API cache name used by default. */
export const DEFAULT_CACHE_NAME = 'gpt2-wasm';
/** Bytes per cached range chunk of a weights file. */
export const DEFAULT_CHUNK_BYTES = 4 << 20;
const PARAM = 'gpt2wasm-cache';

/** Whether this runtime is a browser page or browser worker with the Cache API (not Node, Deno or an edge runtime). */
export function browserCacheAvailable(): boolean {
  const g = globalThis as any;
  if (typeof g.caches?.open !== 'function' || g.Deno || 'default' in g.caches) return false; // workerd: caches.default
  return typeof g.document !== 'undefined' || typeof g.WorkerGlobalScope !== 'undefined';
}

/** A CacheStore over the browser's Cache API (`caches.open(name)`). */
export function cacheApiStore(name = DEFAULT_CACHE_NAME): CacheStore {
  const g = globalThis as any;
  if (typeof g.caches?.open !== 'function') throw new DownloadError('this runtime has no Cache API (globalThis.caches)');
  // opened once per store (each caches.open is a round trip to the browser's storage process)
  let cache: Promise<Cache> | null = null;
  const open = (): Promise<Cache> => (cache ??= (g.caches.open(name) as Promise<Cache>).catch((e) => { cache = null; throw e; }));
  return {
    async get(key) {
      const res = await (await open()).match(key);
      return res ? new Uint8Array(await res.arrayBuffer()) : null;
    },
    async has(key) {
      const res = await (await open()).match(key);
      await res?.body?.cancel().catch(() => {});
      return res !== undefined;
    },
    async put(key, bytes) {
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.byteLength) };
      await (await open()).put(key, new Response(bytes as BlobPart, { headers }));
    },
    async delete(key) { return (await open()).delete(key); },
    async entries() {
      const c = await open();
      const out: { key: string; bytes: number }[] = [];
      for (const req of await c.keys()) {
        const res = await c.match(req);
        out.push({ key: req.url, bytes: Number(res?.headers.get('content-length') ?? 0) });
      }
      return out;
    },
  };
}

/** Whether this runtime has an Origin Private File System (navigator.storage.getDirectory). */
export function opfsAvailable(): boolean {
  return typeof (globalThis as any).navigator?.storage?.getDirectory === 'function';
}

const isNotFound = (e: unknown) => (e as { name?: string })?.name === 'NotFoundError' || (e as { name?: string })?.name === 'TypeMismatchError';

/**
 * A CacheStore in the Origin Private File System: one file per entry in the directory `name`, named by its key
 * (URI-encoded, so the name holds no '/'). A write goes through createWritable(), which the browser commits on
 * close() only, so an interrupted write never leaves a partial entry.
 */
export function opfsStore(name = DEFAULT_CACHE_NAME): CacheStore {
  if (!opfsAvailable()) throw new DownloadError('this runtime has no Origin Private File System (navigator.storage.getDirectory)');
  let dir: Promise<FileSystemDirectoryHandle> | null = null;
  const open = () => (dir ??= (globalThis as any).navigator.storage.getDirectory().then((root: FileSystemDirectoryHandle) => root.getDirectoryHandle(name, { create: true })));
  const file = async (key: string): Promise<FileSystemFileHandle | null> => {
    try { return await (await open()).getFileHandle(encodeURIComponent(key)); } catch (e) { if (isNotFound(e)) return null; throw e; }
  };
  return {
    async get(key) {
      const h = await file(key);
      return h ? new Uint8Array(await (await h.getFile()).arrayBuffer()) : null;
    },
    async has(key) { return (await file(key)) !== null; },
    async put(key, bytes) {
      const h = await (await open()).getFileHandle(encodeURIComponent(key), { create: true });
      const w = await (h as any).createWritable();
      try { await w.write(bytes); } catch (e) { await w.abort?.().catch(() => {}); throw e; }
      await w.close();
    },
    async delete(key) {
      try { await (await open()).removeEntry(encodeURIComponent(key)); return true; } catch (e) { if (isNotFound(e)) return false; throw e; }
    },
    async entries() {
      const out: { key: string; bytes: number }[] = [];
      for await (const [entry, h] of (await open() as any).entries() as AsyncIterable<[string, FileSystemHandle]>) {
        if (h.kind !== 'file') continue;
        let key: string;
        try { key = decodeURIComponent(entry); } catch { continue; } // not a name this store wrote
        out.push({ key, bytes: (await (h as FileSystemFileHandle).getFile()).size });
      }
      return out;
    },
  };
}

/** A CacheStore in memory (tests; runtimes without a Cache API). */
export function memoryCacheStore(): CacheStore {
  const m = new Map<string, Uint8Array>();
  return {
    get: async (key) => m.get(key) ?? null,
    has: async (key) => m.has(key),
    put: async (key, bytes) => { m.set(key, copyBytes(bytes)); },
    delete: async (key) => m.delete(key),
    entries: async () => [...m].map(([key, b]) => ({ key, bytes: b.byteLength })),
  };
}

function entryKey(url: string, kind: string): string {
  const u = new URL(url);
  u.searchParams.set(PARAM, kind);
  return u.href;
}

/** The file URL and entry kind of a cache key, or null for a key that is not ours. */
function parseKey(key: string): { url: string; kind: string } | null {
  const u = new URL(key);
  const kind = u.searchParams.get(PARAM);
  if (kind === null) return null;
  u.searchParams.delete(PARAM);
  return { url: u.href, kind };
}

interface FileMeta { size: number; etag: string | null; chunkBytes: number }

const encodeJson = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

export interface CachedSourceOptions {
  /** Bytes per cached chunk of a file read with open() (default 4 MiB). */
  chunkBytes?: number;
  /** Progress for each file: initiate → download (only when the network is used) → progress… → done. */
  onProgress?: (p: ProgressInfo) => void;
}

/** Chunk writes to the store in flight at once per open file. */
const PENDING_PUTS = 4;

/** Writes that fail (quota exceeded, private mode) leave the file uncached; the read itself still succeeds. */
async function tryPut(store: CacheStore, key: string, bytes: Uint8Array): Promise<void> {
  try { await store.put(key, bytes); } catch { /* not cached: the next load reads from the network again */ }
}

class CachedSource implements ModelSource {
  readonly name: string;
  private chunkBytes: number;
  constructor(private inner: ModelSource, private store: CacheStore, private opts: CachedSourceOptions) {
    this.name = inner.name;
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1) throw new DownloadError(`cache chunkBytes must be a positive integer, got ${opts.chunkBytes}`);
  }
  describe(file: string): string { return this.inner.describe(file); }
  private key(file: string, kind: string): string { return entryKey(this.inner.describe(file), kind); }
  private emit(p: ProgressInfo): void { this.opts.onProgress?.(p); }

  async exists(file: string): Promise<boolean> {
    const url = this.inner.describe(file); // validates the name
    for (const kind of ['file', 'meta']) if (await this.store.has(entryKey(url, kind))) return true;
    if (await this.store.has(entryKey(url, 'absent'))) return false;
    const there = await this.inner.exists(file);
    if (!there) await tryPut(this.store, entryKey(url, 'absent'), new Uint8Array(0));
    return there;
  }

  async readBytes(file: string): Promise<Uint8Array> {
    const key = this.key(file, 'file');
    this.emit({ status: 'initiate', file });
    let bytes = await this.store.get(key);
    if (!bytes) {
      this.emit({ status: 'download', file });
      bytes = await this.inner.readBytes(file);
      await tryPut(this.store, key, bytes);
    }
    this.emit({ status: 'progress', file, loaded: bytes.byteLength, total: bytes.byteLength, progress: 100 });
    this.emit({ status: 'done', file });
    return bytes;
  }
  async readText(file: string): Promise<string> { return decodeUtf8(await this.readBytes(file), file, this.describe(file)); }
  async readJson(file: string): Promise<unknown> { return parseJsonText(await this.readText(file), file, this.describe(file)); }

  async open(file: string): Promise<ByteSource> {
    const url = this.inner.describe(file);
    const metaKey = entryKey(url, 'meta');
    this.emit({ status: 'initiate', file });
    let inner: ByteSource | null = null;
    let announced = false;
    const network = async (): Promise<ByteSource> => {
      if (!announced) { announced = true; this.emit({ status: 'download', file }); }
      return (inner ??= await this.inner.open(file));
    };
    let meta: FileMeta | null = null;
    const cachedMeta = await this.store.get(metaKey);
    if (cachedMeta) {
      try { meta = JSON.parse(new TextDecoder().decode(cachedMeta)) as FileMeta; } catch { meta = null; }
    }
    if (!meta || !Number.isSafeInteger(meta.size) || !(meta.chunkBytes > 0)) {
      const src = await network();
      meta = { size: await src.size(), etag: src.etag ?? null, chunkBytes: this.chunkBytes };
      await tryPut(this.store, metaKey, encodeJson(meta));
    }
    const { size, chunkBytes } = meta;
    const fileMeta = meta;
    const count = progressCounter(file, size, this.opts.onProgress);
    let finished = false;
    // progress counts the file's chunks as each is first had (from the cache or the network): `loaded` is how
    // much of the file was downloaded or found cached, and reaches `total` when every chunk was needed
    const seen = new Set<number>();
    // writes of fetched chunks run behind the reads (a Cache API put of 4 MiB takes ~20 ms in Chromium here); at
    // most PENDING_PUTS at once, so a slow store holds back the download instead of piling chunks up in memory
    const puts = new Set<Promise<void>>();
    const put = async (key: string, bytes: Uint8Array) => {
      while (puts.size >= PENDING_PUTS) await Promise.race(puts);
      const p = tryPut(this.store, key, bytes).finally(() => puts.delete(p));
      puts.add(p);
    };
    // reads of whole chunks: the read-ahead below asks for exactly chunk i at i·chunkBytes
    const chunks: ByteSource = {
      name: url,
      etag: fileMeta.etag ?? undefined,
      chunkBytes,
      size: async () => size,
      read: async (offset, length) => {
        const i = offset / chunkBytes;
        if (!Number.isInteger(i) || length !== Math.min(chunkBytes, size - offset)) {
          throw new DownloadError(`${url}: cache read of ${length} bytes at offset ${offset} is not chunk ${i} of ${chunkBytes} bytes`);
        }
        const c = await this.chunk(url, i, fileMeta, network, put);
        if (!seen.has(i)) { seen.add(i); count(c.byteLength); }
        return c;
      },
      close: async () => {
        if (finished) return;
        finished = true;
        await Promise.all(puts);
        await inner?.close?.();
        this.emit({ status: 'done', file });
      },
    };
    return readAhead(chunks);
  }

  /** Chunk `i` of the file at `url`: from the store, else read through `network` and stored. */
  private async chunk(url: string, i: number, meta: FileMeta, network: () => Promise<ByteSource>, put: (key: string, bytes: Uint8Array) => Promise<void>): Promise<Uint8Array> {
    const key = entryKey(url, `chunk-${i}`);
    const hit = await this.store.get(key);
    if (hit) return hit;
    const src = await network();
    const etag = src.etag ?? null;
    if (etag !== meta.etag || (await src.size()) !== meta.size) {
      await this.forget(url);
      throw new DownloadError(`${url}: the file changed on the server since it was cached (ETag ${meta.etag} → ${etag}); its cache entries were cleared, load the model again`);
    }
    const start = i * meta.chunkBytes;
    const bytes = await src.read(start, Math.min(meta.chunkBytes, meta.size - start));
    await put(key, bytes);
    return bytes;
  }

  /** Drop every entry of one file URL. */
  private async forget(url: string): Promise<void> {
    for (const e of await this.store.entries()) if (parseKey(e.key)?.url === url) await this.store.delete(e.key);
  }
}

/** `inner` reporting per-file progress (initiate, download, progress, done) and caching nothing. */
export function progressSource(inner: ModelSource, onProgress: (p: ProgressInfo) => void): ModelSource {
  return {
    name: inner.name,
    describe: (file) => inner.describe(file),
    exists: (file) => inner.exists(file),
    async readBytes(file) {
      onProgress({ status: 'initiate', file });
      onProgress({ status: 'download', file });
      const b = await inner.readBytes(file);
      onProgress({ status: 'progress', file, loaded: b.byteLength, total: b.byteLength, progress: 100 });
      onProgress({ status: 'done', file });
      return b;
    },
    async readText(file) { return decodeUtf8(await this.readBytes(file), file, inner.describe(file)); },
    async readJson(file) { return parseJsonText(await this.readText(file), file, inner.describe(file)); },
    async open(file) {
      onProgress({ status: 'initiate', file });
      onProgress({ status: 'download', file });
      const src = await inner.open(file);
      const size = await src.size();
      const count = progressCounter(file, size, onProgress);
      let closed = false;
      return {
        name: src.name, etag: src.etag, size: src.size,
        read: async (offset, length) => { const b = await src.read(offset, length); count(length); return b; },
        // the inner source's one-buffer reads and early frees, kept (a URL source reads ahead through readInto)
        readInto: src.readInto ? async (offset, target) => { await src.readInto!(offset, target); count(target.byteLength); } : undefined,
        release: src.release ? (b) => src.release!(b) : undefined,
        close: async () => {
          if (closed) return;
          closed = true;
          await src.close?.();
          onProgress({ status: 'done', file });
        },
      };
    },
  };
}

/** Counts bytes read from one file and reports them as 'progress'. */
function progressCounter(file: string, size: number, onProgress?: (p: ProgressInfo) => void): (bytes: number) => void {
  let loaded = 0;
  return (bytes) => {
    loaded = Math.min(size, loaded + bytes);
    onProgress?.({ status: 'progress', file, loaded, total: size, progress: size ? (100 * loaded) / size : 100 });
  };
}

/** `inner` with a persistent cache in front of it (see the top of this file). */
export function cachedSource(inner: ModelSource, store: CacheStore, opts: CachedSourceOptions = {}): ModelSource {
  return new CachedSource(inner, store, opts);
}

/** One cached file: its URL, its size when known, and how many of its bytes are in the cache. */
export interface CachedFile {
  url: string;
  /** The file's size (whole files, and weights files whose meta is cached); null for a cached "absent" answer. */
  size: number | null;
  cachedBytes: number;
  /** Whether all of the file is cached. */
  complete: boolean;
  /** A cached answer that the file does not exist (an optional file such as generation_config.json): no bytes. */
  absent: boolean;
  etag: string | null;
}

/** The stores listCachedFiles and clearCachedFiles look at: `store`, or both default ones this runtime has. */
function defaultStores(store?: CacheStore): CacheStore[] {
  if (store) return [store];
  const out: CacheStore[] = [];
  if (typeof (globalThis as any).caches?.open === 'function') out.push(cacheApiStore());
  if (opfsAvailable()) out.push(opfsStore());
  return out;
}

/**
 * What the browser cache holds, one row per file URL and store: by default the Cache API cache "gpt2-wasm" and
 * the OPFS directory "gpt2-wasm" (browser_cache: 'opfs'), where the runtime has them.
 */
export async function listCachedFiles(store?: CacheStore): Promise<CachedFile[]> {
  const rows: CachedFile[] = [];
  for (const s of defaultStores(store)) rows.push(...await listStore(s));
  return rows;
}

async function listStore(s: CacheStore): Promise<CachedFile[]> {
  const files = new Map<string, CachedFile>();
  const row = (url: string) => {
    let f = files.get(url);
    if (!f) files.set(url, (f = { url, size: null, cachedBytes: 0, complete: false, absent: false, etag: null }));
    return f;
  };
  for (const e of await s.entries()) {
    const k = parseKey(e.key);
    if (!k) continue;
    const f = row(k.url);
    if (k.kind === 'file') { f.size = e.bytes; f.cachedBytes += e.bytes; }
    else if (k.kind.startsWith('chunk-')) f.cachedBytes += e.bytes;
    else if (k.kind === 'absent') f.absent = true;
    else if (k.kind === 'meta') {
      const m = await s.get(e.key);
      try {
        const meta = JSON.parse(new TextDecoder().decode(m ?? new Uint8Array(0))) as FileMeta;
        f.size = meta.size; f.etag = meta.etag;
      } catch { /* unreadable meta: size stays unknown */ }
    }
  }
  for (const f of files.values()) f.complete = f.size !== null && f.cachedBytes === f.size;
  return [...files.values()].sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
}

/**
 * Delete cached files: all of them, or those whose URL starts with `urlPrefix` (e.g. a model's base URL), from
 * `store` or both default stores. Returns how many entries were deleted.
 */
export async function clearCachedFiles(urlPrefix?: string, store?: CacheStore): Promise<number> {
  let n = 0;
  for (const s of defaultStores(store)) {
    for (const e of await s.entries()) {
      const k = parseKey(e.key);
      if (k && (urlPrefix === undefined || k.url.startsWith(urlPrefix)) && (await s.delete(e.key))) n++;
    }
  }
  return n;
}
