// "A model directory" wherever it lives: a local folder (Node), an in-memory map of files (tests, browsers that
// got the bytes some other way), or a URL base read with HTTP Range requests (browsers, edge runtimes).
// A missing file is reported by the error class for what the file is for (config → ConfigError, vocab →
// TokenizerError, weights → WeightsError), naming the full path or URL.
import { DownloadError, GPT2WasmError, SafetensorsError } from '../errors.js';
import { browserCacheAvailable, cachedSource, cacheApiStore, opfsStore, progressSource, type CacheStore } from './browser-cache.js';
import { checkRange, readByCopy } from './byte-range.js';
import { readAhead } from './read-ahead.js';
import { badRelativePath, decodeUtf8, errMsg, errorForFile, httpFailure, isNodeNotFound, missingFileError, parseJsonText } from './files.js';

// ---------------------------------------------------------------------------------------------------------------
// Byte sources

/** Random access to the bytes of one file. `read` returns exactly `length` bytes or throws. */
export interface ByteSource {
  readonly name: string;
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Optional: fill `target` with the bytes at `offset` (lets readers reuse one buffer). */
  readInto?(offset: number, target: Uint8Array): Promise<void>;
  /** Optional: reads of the aligned chunks of this many bytes are the cheap ones (a browser cache's entries); a
   *  read-ahead over this source (read-ahead.ts) fetches those. */
  readonly chunkBytes?: number;
  /**
   * Optional: the caller is done with bytes that `read` returned, so the source may free them now rather than
   * at the next garbage collection (fetched chunks: 4 MiB each, outside the V8 heap, which a collection would
   * otherwise let pile up to ~100 MB while a checkpoint streams). They must not be used afterwards.
   */
  release?(bytes: Uint8Array): void;
  close?(): Promise<void>;
  /** The server's ETag for the file, when it is read over HTTP and the server sent one. */
  readonly etag?: string;
}

/** Progress while loading (the statuses and fields of transformers.js's progress_callback, plus 'load'). */
export interface ProgressInfo {
  /**
   * 'initiate' a file is about to be read; 'download' it is read from the network (not the cache); 'progress'
   * bytes of it were read (`loaded` of `total`, `progress` in percent); 'done' the file is read;
   * 'load' weights copied into wasm memory; 'ready' the model is loaded.
   */
  status: 'initiate' | 'download' | 'progress' | 'done' | 'load' | 'ready';
  file?: string;
  loaded?: number;
  total?: number;
  progress?: number;
}

/** A ByteSource over bytes already in memory; reads return views, not copies. */
export function bytesSource(name: string, bytes: Uint8Array | ArrayBuffer): ByteSource {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    name,
    size: async () => data.byteLength,
    read: async (offset, length) => {
      checkRange(name, data.byteLength, offset, length);
      return data.subarray(offset, offset + length);
    },
  };
}

/** What a path that is not a regular file is, for messages. */
function fileKind(st: import('node:fs').Stats): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket'
    : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a file';
}

/**
 * Open a local file for reading, checked to be a regular file: `file` picks the error class, `where` names it.
 * Opened non-blocking, then checked on the open handle: a plain open of a FIFO waits for a writer forever, and
 * reading a device such as /dev/zero never ends; a stat before the open could be raced by a swap of the file.
 */
async function openRegularFile(path: string, file: string, where: string): Promise<{ fh: import('node:fs/promises').FileHandle; size: number }> {
  const fs = await import('node:fs/promises');
  const { constants } = await import('node:fs');
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fs.open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)); // O_NONBLOCK: none on Windows (no FIFOs there)
  } catch (e) {
    if (isNodeNotFound(e)) throw missingFileError(file, where, e);
    throw errorForFile(file, `${where}: cannot open: ${errMsg(e)}`, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw errorForFile(file, `${where} is not a regular file (${fileKind(st)})`);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
}

/** A ByteSource over a local file (Node), reading with explicit positions so concurrent reads are safe. */
export async function fileSource(path: string): Promise<ByteSource> {
  const { fh, size } = await openRegularFile(path, path, path);
  let closed = false;
  const readInto = async (offset: number, target: Uint8Array): Promise<void> => {
    if (closed) throw new SafetensorsError(`${path}: read after close`);
    checkRange(path, size, offset, target.byteLength);
    let done = 0;
    while (done < target.byteLength) {
      const { bytesRead } = await fh.read(target, done, target.byteLength - done, offset + done);
      if (bytesRead === 0) {
        throw new SafetensorsError(
          `${path}: unexpected end of file: wanted ${target.byteLength} bytes at offset ${offset}, got ${done} (was the file truncated while open?)`,
        );
      }
      done += bytesRead;
    }
  };
  const sizeOf = async () => size;
  return {
    name: path,
    size: sizeOf,
    readInto,
    read: readByCopy(path, sizeOf, readInto),
    close: async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Model sources: a directory of named files

export interface ModelSource {
  /** The directory path, URL base or memory label, for messages. */
  readonly name: string;
  /** The full path or URL of `file`, for messages. */
  describe(file: string): string;
  exists(file: string): Promise<boolean>;
  readBytes(file: string): Promise<Uint8Array>;
  readText(file: string): Promise<string>;
  readJson(file: string): Promise<unknown>;
  /** Random access to one file (for safetensors); close it when done. */
  open(file: string): Promise<ByteSource>;
}

function checkFile(src: { describe(f: string): string }, file: string): void {
  const bad = badRelativePath(file);
  if (bad) throw errorForFile(String(file), `${src.describe(String(file))}: invalid file name: ${bad}`);
}

/** Shared readText/readJson on top of readBytes. */
abstract class BaseSource implements ModelSource {
  abstract readonly name: string;
  abstract describe(file: string): string;
  abstract exists(file: string): Promise<boolean>;
  abstract readBytes(file: string): Promise<Uint8Array>;
  abstract open(file: string): Promise<ByteSource>;
  async readText(file: string): Promise<string> {
    return decodeUtf8(await this.readBytes(file), file, this.describe(file));
  }
  async readJson(file: string): Promise<unknown> {
    return parseJsonText(await this.readText(file), file, this.describe(file));
  }
}

// ---------------------------------------------------------------------------------------------------------------

class DirSource extends BaseSource {
  constructor(readonly name: string) { super(); }
  describe(file: string): string { return `${this.name.replace(/[\\/]+$/, '')}/${file}`; }
  async exists(file: string): Promise<boolean> {
    checkFile(this, file);
    const fs = await import('node:fs/promises');
    let st;
    try {
      st = await fs.stat(this.describe(file));
    } catch (e) {
      if (isNodeNotFound(e)) return false;
      throw errorForFile(file, `${this.describe(file)}: cannot stat: ${errMsg(e)}`, e);
    }
    // a directory (or device) where the file belongs is a broken checkpoint, not a missing file
    if (!st.isFile()) throw errorForFile(file, `${this.describe(file)} is not a regular file (${fileKind(st)})`);
    return true;
  }
  async readBytes(file: string): Promise<Uint8Array> {
    checkFile(this, file);
    const path = this.describe(file);
    // not fs.readFile(path): it blocks on a FIFO and never ends on a device (config.json is read without exists())
    const { fh } = await openRegularFile(path, file, path);
    try {
      const b = await fh.readFile();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      throw errorForFile(file, `${path}: cannot read: ${errMsg(e)}`, e);
    } finally {
      await fh.close().catch(() => {});
    }
  }
  async open(file: string): Promise<ByteSource> {
    checkFile(this, file);
    return fileSource(this.describe(file));
  }
}

/** A model directory on the local file system (Node, Deno, Bun). */
export function dirSource(dir: string): ModelSource {
  return new DirSource(dir);
}

// ---------------------------------------------------------------------------------------------------------------

class MemorySource extends BaseSource {
  private files = new Map<string, Uint8Array>();
  constructor(readonly name: string, files: Record<string, string | Uint8Array | ArrayBuffer> | Map<string, string | Uint8Array | ArrayBuffer>) {
    super();
    const entries = files instanceof Map ? [...files] : Object.entries(files);
    const enc = new TextEncoder();
    for (const [k, v] of entries) {
      this.files.set(k, typeof v === 'string' ? enc.encode(v) : v instanceof Uint8Array ? v : new Uint8Array(v));
    }
  }
  describe(file: string): string { return `${this.name}/${file}`; }
  async exists(file: string): Promise<boolean> {
    checkFile(this, file);
    return this.files.has(file);
  }
  async readBytes(file: string): Promise<Uint8Array> {
    checkFile(this, file);
    const b = this.files.get(file);
    if (!b) throw missingFileError(file, this.describe(file));
    return b;
  }
  async open(file: string): Promise<ByteSource> {
    return bytesSource(this.describe(file), await this.readBytes(file));
  }
}

/** A model directory held in memory: file name → contents (strings are UTF-8 encoded). */
export function memorySource(
  files: Record<string, string | Uint8Array | ArrayBuffer> | Map<string, string | Uint8Array | ArrayBuffer>,
  name = 'memory',
): ModelSource {
  return new MemorySource(name, files);
}

// ---------------------------------------------------------------------------------------------------------------

export interface UrlSourceOptions {
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * Keep the files in a persistent cache so the next load reads nothing from the network
   * (src/io/browser-cache.ts). Default: the Cache API cache "gpt2-wasm" in browsers, no cache elsewhere.
   * false turns it off; 'opfs' uses the Origin Private File System directory "gpt2-wasm"; a CacheStore uses that store.
   */
  cache?: boolean | 'opfs' | CacheStore;
  /** Bytes per cached chunk of a weights file (default 4 MiB). */
  cacheChunkBytes?: number;
  /** Progress per file: initiate, download, progress (loaded/total bytes), done. */
  progress_callback?: (p: ProgressInfo) => void;
}

class UrlSource extends BaseSource {
  readonly name: string;
  private fetchFn: typeof fetch;
  private headers: Record<string, string>;
  /** chunkedReads: open() serves reads from 4 MiB chunks fetched ahead (read-ahead.ts); false when a cache in front
   *  of this source does the chunking (it fetches exactly the chunks it stores). */
  constructor(base: string, opts: UrlSourceOptions, private chunkedReads = true) {
    super();
    this.name = base.endsWith('/') ? base : base + '/';
    const f = opts.fetch ?? (globalThis as any).fetch;
    if (typeof f !== 'function') throw new DownloadError(`${this.name}: no fetch() in this runtime; pass options.fetch`);
    this.fetchFn = f;
    this.headers = { ...(opts.headers ?? {}) };
    if (opts.token) this.headers.Authorization = `Bearer ${opts.token}`;
  }
  describe(file: string): string {
    return new URL(file.split('/').map(encodeURIComponent).join('/'), this.name).href;
  }
  private async request(file: string, init: RequestInit): Promise<Response> {
    const url = this.describe(file);
    try {
      const f = this.fetchFn; // unbound call: browsers and Workers reject fetch invoked with a foreign `this`
      return await f(url, { ...init, headers: { ...this.headers, ...(init.headers as Record<string, string>) } });
    } catch (e) {
      if (e instanceof GPT2WasmError) throw e;
      throw new DownloadError(`${url}: request failed: ${errMsg(e)}`, { cause: e });
    }
  }
  /** Whether fetch() takes `cache: 'no-store'` (some Workers runtimes reject the field); learnt on first use. */
  private noStore = true;
  /** GET of a byte range, bypassing the HTTP cache: Chromium's cache, holding parts of a file, answers some ranges by
   *  fetching them again (a 124M load sent 38-56 MB of Range GETs for 30 MB of weights, repeated 4 MiB ranges
   *  included; 8 GETs of it with no-store). The weights are kept in the browser cache (browser-cache.ts) instead. */
  private async rangeRequest(file: string, offset: number, length: number): Promise<Response> {
    const init: RequestInit = { method: 'GET', headers: { Range: `bytes=${offset}-${offset + length - 1}` } };
    if (this.noStore) {
      try {
        return await this.request(file, { ...init, cache: 'no-store' });
      } catch (e) {
        if (!/\bcache\b/i.test(String((e as any)?.cause?.message ?? ''))) throw e;
        this.noStore = false; // "The 'cache' field ... is not implemented": as before, without it
      }
    }
    return this.request(file, init);
  }
  private statusError(file: string, res: Response): Error {
    const url = this.describe(file);
    const f = httpFailure(res, { tokenSent: 'Authorization' in this.headers });
    if (f.missing) return missingFileError(file, `${url} (${f.reason})`);
    return new DownloadError(`${url}: ${f.reason}`);
  }
  async exists(file: string): Promise<boolean> {
    checkFile(this, file);
    const res = await this.request(file, { method: 'HEAD' });
    if (res.ok) return true;
    if (httpFailure(res, { tokenSent: 'Authorization' in this.headers }).missing) return false;
    throw this.statusError(file, res);
  }
  async readBytes(file: string): Promise<Uint8Array> {
    checkFile(this, file);
    const res = await this.request(file, { method: 'GET' });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw this.statusError(file, res);
    }
    try {
      return new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new DownloadError(`${this.describe(file)}: transfer failed: ${errMsg(e)}`, { cause: e });
    }
  }
  private async size(file: string): Promise<{ size: number; etag?: string }> {
    const url = this.describe(file);
    const head = await this.request(file, { method: 'HEAD' });
    if (!head.ok) throw this.statusError(file, head);
    const etag = head.headers.get('etag') ?? undefined;
    const len = head.headers.get('content-length');
    if (len !== null && /^\d+$/.test(len) && head.headers.get('content-encoding') === null) return { size: Number(len), etag };
    // No usable length from HEAD: ask for one byte and read the total from Content-Range.
    const res = await this.request(file, { method: 'GET', headers: { Range: 'bytes=0-0' } });
    await res.body?.cancel().catch(() => {});
    const total = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
    if (res.status === 206 && total) return { size: Number(total[1]), etag: etag ?? res.headers.get('etag') ?? undefined };
    throw new DownloadError(`${url}: cannot determine the file size (no Content-Length, no Range support)`);
  }
  async open(file: string): Promise<ByteSource> {
    checkFile(this, file);
    const url = this.describe(file);
    const { size, etag } = await this.size(file);
    const read = async (offset: number, length: number): Promise<Uint8Array> => {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        throw errorForFile(file, `${url}: read of ${length} bytes at offset ${offset} is outside the file (${size} bytes)`);
      }
      if (length === 0) return new Uint8Array(0);
      const res = await this.rangeRequest(file, offset, length);
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\//.exec(res.headers.get('content-range') ?? '');
        if (m && Number(m[1]) !== offset) {
          await res.body?.cancel().catch(() => {});
          throw new DownloadError(`${url}: asked for bytes from ${offset}, server sent Content-Range ${res.headers.get('content-range')}`);
        }
        if (m && Number(m[2]) === offset + length - 1) return readBody(res, length, url); // exactly the range asked for
        return readExactly(res, length, url);
      }
      if (res.status === 200 && offset === 0) return readExactly(res, length, url); // Range ignored: take the prefix
      await res.body?.cancel().catch(() => {});
      if (res.status === 200) {
        throw new DownloadError(`${url}: the server ignored the Range request (HTTP 200); reading weights from a URL needs byte-range support`);
      }
      throw this.statusError(file, res);
    };
    const ranges: ByteSource = { name: url, etag, size: async () => size, read, release: freeBuffer };
    return this.chunkedReads ? readAhead(ranges) : ranges;
  }
}

/**
 * Frees the memory of a buffer this module allocated whole (a response body) by detaching it: transfer(0)
 * hands its backing store back at once (engines without ArrayBuffer.prototype.transfer leave it to the GC).
 */
function freeBuffer(bytes: Uint8Array): void {
  const buf = bytes.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer; detached?: boolean };
  if (bytes.byteOffset !== 0 || bytes.byteLength !== buf.byteLength || typeof buf.transfer !== 'function' || buf.detached) return;
  try { buf.transfer(0); } catch { /* a non-detachable buffer: the GC frees it */ }
}

/**
 * Read a response body of exactly `length` bytes in one call. The body arrives in packets of a few KiB, and a
 * JavaScript loop over them (readExactly) leaves a result object, a view and promises on the V8 heap for each:
 * over 100 MB of garbage while a GPT-2 checkpoint streams, which an edge isolate's heap peak counts.
 */
async function readBody(res: Response, length: number, url: string): Promise<Uint8Array> {
  let body: ArrayBuffer;
  try {
    body = await res.arrayBuffer();
  } catch (e) {
    throw new DownloadError(`${url}: transfer failed while reading ${length} bytes: ${errMsg(e)}`, { cause: e });
  }
  if (body.byteLength !== length) throw new DownloadError(`${url}: response had ${body.byteLength} bytes, not the ${length} of its Content-Range`);
  return new Uint8Array(body);
}

/** Read the first `length` bytes of a response body, then stop the transfer (when it may be longer than that). */
async function readExactly(res: Response, length: number, url: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let got = 0;
  const body = res.body;
  if (!body) throw new DownloadError(`${url}: empty response body`);
  const reader = body.getReader();
  try {
    while (got < length) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.byteLength, length - got);
      out.set(value.subarray(0, take), got);
      got += take;
    }
  } catch (e) {
    throw new DownloadError(`${url}: transfer failed after ${got} of ${length} bytes: ${errMsg(e)}`, { cause: e });
  } finally {
    reader.cancel().catch(() => {});
  }
  if (got !== length) throw new DownloadError(`${url}: response ended after ${got} of ${length} bytes`);
  return out;
}

/**
 * A model directory at a URL base, e.g. `https://huggingface.co/gpt2/resolve/main/`, read with Range requests;
 * in browsers behind the persistent cache (options.cache).
 */
export function urlSource(base: string | URL, opts: UrlSourceOptions = {}): ModelSource {
  const store = opts.cache === false ? null
    : opts.cache === true || opts.cache === undefined ? (browserCacheAvailable() || opts.cache === true ? cacheApiStore() : null)
    : opts.cache === 'opfs' ? opfsStore()
    : opts.cache;
  const src = new UrlSource(String(base), opts, !store);
  if (store) return cachedSource(src, store, { chunkBytes: opts.cacheChunkBytes, onProgress: opts.progress_callback });
  return opts.progress_callback ? progressSource(src, opts.progress_callback) : src;
}
