// src/io/hub.ts against a local HTTP server on 127.0.0.1 that imitates the Hub's /{repo}/resolve/{rev}/{file}
// endpoint over the gpt2-tiny fixture: downloads, cache reuse, offline mode, dropped connections, resume, errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { readFileSync, existsSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { modelDir } from './helpers/fixtures.js';
import { startServer, sendBytes, type TestServer } from './helpers/http-server.js';
import { parseModelId, repoFolderName, resolveModel, type DownloadProgress, type ResolveOptions } from '../src/io/hub.js';
import { loadConfig } from '../src/io/config.js';
import { resolveSource } from '../src/io/resolve.js';
import { openSafetensorsModel } from '../src/io/safetensors.js';
import { tensorBytes } from './helpers/checkpoint.js';
import { DownloadError, OptionError } from '../src/errors.js';

const COMMIT = 'c0ffee' + '0'.repeat(34);
const REPO = 'test-org/tiny';
const FIX = modelDir('gpt2-tiny');
const MODEL_BYTES = readFileSync(join(FIX, 'model.safetensors'));

interface Reply {
  status?: number; errorCode?: string; dropAfter?: number; etag?: string; bytes?: Uint8Array;
  /** Extra response headers (e.g. Retry-After). */
  headers?: Record<string, string>;
  /** Answer the request itself. */
  handle?: (req: IncomingMessage, res: ServerResponse) => void;
}
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** git's blob id of `b`: the Hub's ETag for a small (non-LFS) file. */
const gitSha1 = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
type Hook = (file: string, req: IncomingMessage, nth: number) => Reply | undefined;

/** A Hub imitation serving `root` as REPO (any revision), with a per-request hook. */
async function hub(hook: Hook = () => undefined, root = FIX): Promise<TestServer & { gets: (file: string) => IncomingMessage['headers'][] }> {
  const seen = new Map<string, IncomingMessage['headers'][]>();
  const server = await startServer((req: IncomingMessage, res: ServerResponse, path: string) => {
    const m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const base = { 'x-repo-commit': COMMIT };
    if (!m || m[1] !== REPO) { res.writeHead(404, { ...base, 'x-error-code': 'RepoNotFound' }); res.end(); return; }
    const file = m[3];
    if (req.method === 'GET') seen.set(file, [...(seen.get(file) ?? []), req.headers]);
    const nth = req.method === 'GET' ? seen.get(file)!.length : 0;
    const r = hook(file, req, nth) ?? {};
    if (r.handle) { r.handle(req, res); return; }
    if (r.status) {
      res.writeHead(r.status, { ...base, ...(r.errorCode ? { 'x-error-code': r.errorCode } : {}), ...(r.headers ?? {}) });
      res.end();
      return;
    }
    let bytes: Uint8Array | undefined = r.bytes;
    if (!bytes) {
      try { bytes = readFileSync(join(root, file)); } catch {}
    }
    if (!bytes) { res.writeHead(404, { ...base, 'x-error-code': 'EntryNotFound' }); res.end(); return; }
    // As the Hub: an LFS file's size and sha256 in X-Linked-Size / X-Linked-ETag.
    const linked: Record<string, string> = file.endsWith('.safetensors') ? { 'x-linked-size': String(bytes.length), 'x-linked-etag': `"${sha256(bytes)}"` } : {};
    // and a small file's git blob id as its ETag
    sendBytes(req, res, bytes, { etag: r.etag ?? (file.endsWith('.safetensors') ? '"v1"' : `"${gitSha1(bytes)}"`), headers: { ...base, ...linked, ...(r.headers ?? {}) }, dropAfter: r.dropAfter });
  });
  return Object.assign(server, { gets: (file: string) => seen.get(file) ?? [] });
}

function bounded<T>(p: Promise<T>, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<T>((_, rej) => { timer = setTimeout(() => rej(new Error(`test timed out after ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

async function withEnv(fn: (ctx: { cache: string; opts: (s: TestServer, extra?: ResolveOptions) => ResolveOptions }) => Promise<void>) {
  const cache = await mkdtemp(join(tmpdir(), 'gpt2wasm-hub-'));
  try {
    await bounded(fn({
      cache,
      opts: (s, extra = {}) => ({ endpoint: s.url, cacheDir: cache, token: null, retries: 2, retryDelayMs: 10, timeoutMs: 3000, progress: false, env: {}, ...extra }),
    }));
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}

const snapDir = (cache: string) => join(cache, repoFolderName(REPO), 'snapshots', COMMIT);

async function rejects(p: Promise<unknown>, cls: Function, re: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re, `unexpected message: ${(e as Error).message}`);
    return e as Error;
  }
  throw new assert.Assertion({ message: `expected ${cls.name}`, operator: 'rejects', expects: cls.name, actual: 'resolved' } as any);
}

async function assertLoads(src: Awaited<ReturnType<typeof resolveModel>>) {
  assert.is((await loadConfig(src)).n_layer, 2);
  const model = await openSafetensorsModel(src);
  assert.is(model.tensors.size, 30);
  await model.close();
  assert.ok(Buffer.from(await src.readBytes('model.safetensors')).equals(MODEL_BYTES));
}

// ------------------------------------------------------------------------------------------------

test('model ids: syntax and errors', () => {
  assert.equal(parseModelId('gpt2'), { repo: 'gpt2', org: null, name: 'gpt2', revision: 'main' });
  assert.equal(parseModelId('openai-community/gpt2@v1.0'), { repo: 'openai-community/gpt2', org: 'openai-community', name: 'gpt2', revision: 'v1.0' });
  assert.is(parseModelId('distilgpt2', 'refs/pr/1').revision, 'refs/pr/1');
  assert.is(repoFolderName('openai-community/gpt2'), 'models--openai-community--gpt2');
  for (const bad of ['', 'a/b/c', '-x', 'x-', 'a--b', 'a..b', 'has space', 'org/', '/name', 'x@', 'x@../y', 'x@a b']) {
    assert.throws(() => parseModelId(bad), (e: any) => e instanceof OptionError && /not a local directory nor a valid Hub model id/.test(e.message), bad);
  }
});

test('local directories are used as they are', async () => {
  const src = await resolveModel(FIX, { offline: true });
  assert.is(src.name, FIX);
  await rejects(resolveModel(join(FIX, 'config.json')), OptionError, /is a file/);
});

test('download, then load via the cache (no more GETs), with progress and token', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      const events: DownloadProgress[] = [];
      const src = await resolveModel(REPO, opts(s, { token: undefined, env: { HUGGING_FACE_HUB_TOKEN: 'sekrit' }, onProgress: (p) => events.push(p) }));
      assert.is(src.name, snapDir(cache));
      await assertLoads(src);
      assert.equal((await readdir(snapDir(cache))).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
      assert.is(await readFile(join(cache, repoFolderName(REPO), 'refs', 'main'), 'utf8'), COMMIT);
      assert.ok(s.requests.every((r) => r.headers.authorization === 'Bearer sekrit'), 'token sent');
      assert.ok(s.requests.some((r) => r.path.endsWith('/tokenizer.json')), 'optional files asked for');
      const last = events.filter((e) => e.file === 'model.safetensors').pop()!;
      assert.equal([last.done, last.loaded, last.total], [true, MODEL_BYTES.length, MODEL_BYTES.length]);
      assert.ok(last.bytesPerSecond > 0);
      // Files are fetched at the pinned commit.
      assert.ok(s.requests.filter((r) => r.method === 'GET').every((r) => r.path.includes(`/resolve/${COMMIT}/`)));

      const before = s.requests.filter((r) => r.method === 'GET').length;
      const again = await resolveModel(`${REPO}@main`, opts(s));
      assert.is(again.name, snapDir(cache));
      assert.is(s.requests.filter((r) => r.method === 'GET').length - before, 0, 'cached files are only checked (HEAD), absent optional files too');
      assert.ok(s.requests.slice(-4).every((r) => r.method === 'HEAD'));
    } finally {
      await s.close();
    }
  });
});

test('offline mode uses only the cache; a missing file is a clear error', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      await rejects(resolveModel(REPO, opts(s, { env: { HF_HUB_OFFLINE: '1' } })), DownloadError,
        /offline mode \(HF_HUB_OFFLINE=1\), and config\.json of test-org\/tiny@main is not in the cache.*run once online \(unset HF_HUB_OFFLINE\)/);
      // offline by the caller's option (from_pretrained's local_files_only), not the environment: the message says so
      await rejects(resolveModel(REPO, opts(s, { offline: true })), DownloadError,
        /^local_files_only is set, and config\.json of test-org\/tiny@main is not in the cache .*run once online \(without local_files_only\)/);
      assert.is(s.requests.length, 0);
      await resolveModel(REPO, opts(s));
      const n = s.requests.length;
      const src = await resolveModel(REPO, opts(s, { offline: true }));
      await assertLoads(src);
      assert.is(s.requests.length, n, 'no network in offline mode');
      const byCommit = await resolveModel(`${REPO}@${COMMIT}`, opts(s, { offline: true }));
      assert.is(byCommit.name, snapDir(cache));
      await rm(join(snapDir(cache), 'merges.txt'));
      await rejects(resolveModel(REPO, opts(s, { offline: true })), DownloadError, /merges\.txt of test-org\/tiny@main is not in the cache/);
      assert.ok((await resolveModel(REPO, opts(s, { offline: true, tokenizer: false }))).name);
    } finally {
      await s.close();
    }
    // The Hub unreachable (connection refused): a complete cached snapshot is used.
    await writeFile(join(snapDir(cache), 'merges.txt'), '#version: 0.2\n');
    const src = await resolveModel(REPO, { cacheDir: cache, endpoint: 'http://127.0.0.1:9', retries: 1, retryDelayMs: 10, token: null, env: {}, progress: false });
    assert.is(src.name, snapDir(cache));
  });
});

test('the Hub failing: a complete cache is used at once (no retries); with nothing cached the error says how to go offline', async () => {
  await withEnv(async ({ cache, opts }) => {
    let down = false;
    const s = await hub(() => (down ? { status: 503 } : undefined));
    try {
      down = true;
      const err = await rejects(resolveModel(REPO, opts(s, { retries: 2 })), DownloadError, /HTTP 503/);
      assert.match(err.message, /--model DIR/);
      assert.match(err.message, /HF_HUB_OFFLINE=1/);
      assert.is(s.requests.length, 3, 'nothing cached: the request is retried');
      down = false;
      await resolveModel(REPO, opts(s));
      down = true;
      const n = s.requests.length;
      const src = await resolveModel(REPO, opts(s, { retries: 4 }));
      assert.is(src.name, snapDir(cache));
      assert.is(s.requests.length - n, 1, 'one failed request, then the cache: no retries');
    } finally {
      await s.close();
    }
  });
});

test('a connection dropped halfway through model.safetensors is resumed with Range + If-Range', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub((file, _req, nth) => (file === 'model.safetensors' && nth === 1 ? { dropAfter: MODEL_BYTES.length >> 1 } : undefined));
    try {
      const src = await resolveModel(REPO, opts(s));
      await assertLoads(src);
      const gets = s.gets('model.safetensors');
      assert.is(gets.length, 2);
      assert.is(gets[0].range, undefined);
      const from = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1]);
      assert.ok(from > 0 && from <= MODEL_BYTES.length >> 1, `resumed from ${gets[1].range}`);
      assert.is(gets[1]['if-range'], '"v1"');
      assert.not.ok(existsSync(join(snapDir(cache), 'model.safetensors.incomplete')));
    } finally {
      await s.close();
    }
  });
});

test('a server that keeps dropping: clear error, nothing loadable in the cache, later resumed', async () => {
  await withEnv(async ({ cache, opts }) => {
    let broken = true;
    const s = await hub((file) => (file === 'model.safetensors' && broken ? { dropAfter: 100_000 } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s)), DownloadError, /model\.safetensors: .*(connection lost|transfer ended).*gave up after 3 attempts/);
      assert.is(s.gets('model.safetensors').length, 3, 'bounded retries');
      assert.not.ok(existsSync(join(snapDir(cache), 'model.safetensors')));
      const partial = (await stat(join(snapDir(cache), 'model.safetensors.incomplete'))).size;
      assert.ok(partial > 0 && partial < MODEL_BYTES.length);
      await rejects(resolveModel(REPO, opts(s, { offline: true })), DownloadError, /model\.safetensors of test-org\/tiny@main is not in the cache/);
      broken = false;
      const src = await resolveModel(REPO, opts(s));
      assert.is(s.gets('model.safetensors').pop()!.range, `bytes=${partial}-`);
      await assertLoads(src);
    } finally {
      await s.close();
    }
  });
});

test('resume of a pre-existing partial .incomplete file; a changed ETag restarts from zero', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      const snap = snapDir(cache);
      await mkdir(snap, { recursive: true });
      await writeFile(join(snap, 'model.safetensors.incomplete'), MODEL_BYTES.subarray(0, 1 << 20));
      const src = await resolveModel(REPO, opts(s));
      assert.is(s.gets('model.safetensors')[0].range, `bytes=${1 << 20}-`);
      await assertLoads(src);

      // A partial from an older version of the file: If-Range does not match, the server sends it all.
      await rm(join(snap, 'model.safetensors'));
      const garbage = Buffer.alloc(5000, 7);
      await writeFile(join(snap, 'model.safetensors.incomplete'), garbage);
      const url = `${s.url}/${REPO}/resolve/${COMMIT}/model.safetensors`;
      await writeFile(join(snap, 'model.safetensors.incomplete.json'), JSON.stringify({ url, etag: '"old"', lastModified: null, total: null }));
      await assertLoads(await resolveModel(REPO, opts(s)));
      const last = s.gets('model.safetensors').pop()!;
      assert.equal([last.range, last['if-range']], ['bytes=5000-', '"old"']);
      assert.not.ok(existsSync(join(snap, 'model.safetensors.incomplete.json')));
    } finally {
      await s.close();
    }
  });
});

test('a corrupt safetensors download never lands in the cache', async () => {
  await withEnv(async ({ cache, opts }) => {
    const bad = Buffer.from(MODEL_BYTES);
    bad.writeBigUInt64LE(2n ** 40n, 0);
    const s = await hub((file) => (file === 'model.safetensors' ? { bytes: bad } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s)), DownloadError, /model\.safetensors: downloaded from .* but it is invalid: .*header length/);
      assert.not.ok(existsSync(join(snapDir(cache), 'model.safetensors')));
      assert.not.ok(existsSync(join(snapDir(cache), 'model.safetensors.incomplete')));
    } finally {
      await s.close();
    }
  });
});

test('HTTP errors name the file and status', async () => {
  await withEnv(async ({ opts }) => {
    let mode = '';
    const s = await hub((file) => {
      if (mode === '404' && file === 'vocab.json') return { status: 404 };
      if (mode === '500' && file === 'config.json') return { status: 500 };
      if (mode === '401') return { status: 401 };
      if (mode === '503' && file === 'merges.txt') return { status: 503 };
      return undefined;
    });
    try {
      mode = '404';
      await rejects(resolveModel(REPO, opts(s)), DownloadError, /^vocab\.json: http:\/\/127\.0\.0\.1:\d+\/test-org\/tiny\/resolve\/[0-9a-f]{40}\/vocab\.json: HTTP 404: no such model\/file/);
      mode = '500';
      const n = s.requests.length;
      await rejects(resolveModel(`${REPO}@dev`, opts(s)), DownloadError, /^config\.json: .*HTTP 500 Internal Server Error \(server error\) \(gave up after 3 attempts\)/);
      assert.is(s.requests.length - n, 3);
      mode = '401';
      await rejects(resolveModel(REPO, opts(s)), DownloadError, /HTTP 401: access denied to test-org\/tiny; it may be private or gated.*set HF_TOKEN/);
      mode = '503';
      await rejects(resolveModel(`${REPO}@x`, opts(s, { retries: 0 })), DownloadError, /^merges\.txt: .*HTTP 503/);
      mode = '';
      await rejects(resolveModel('other/model', opts(s)), DownloadError, /HTTP 404: no such model "other\/model"/);
      await rejects(resolveModel('not a model', opts(s)), OptionError, /not a local directory nor a valid Hub model id/);
    } finally {
      await s.close();
    }
  });
});

test('sharded checkpoints: index and every shard are downloaded', async () => {
  await withEnv(async ({ cache, opts }) => {
    const root = join(cache, 'sharded-src');
    await mkdir(root);
    // Split the fixture into two shards by copying its header entries (independent of src/io).
    const n = Number(MODEL_BYTES.readBigUInt64LE(0));
    const header = JSON.parse(MODEL_BYTES.subarray(8, 8 + n).toString('utf8'));
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, 15), names.slice(15)].entries()) {
      const shard = `model-0000${i + 1}-of-00002.safetensors`;
      const h: Record<string, unknown> = {};
      const datas: Buffer[] = [];
      let off = 0;
      for (const name of part) {
        const [a, b] = header[name].data_offsets;
        h[name] = { ...header[name], data_offsets: [off, off + b - a] };
        datas.push(MODEL_BYTES.subarray(8 + n + a, 8 + n + b));
        off += b - a;
        weightMap[name] = shard;
      }
      const hb = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      await writeFile(join(root, shard), Buffer.concat([len, hb, ...datas]));
    }
    await writeFile(join(root, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await writeFile(join(root, 'config.json'), readFileSync(join(FIX, 'config.json')));
    const s = await hub(() => undefined, root);
    try {
      const src = await resolveModel(REPO, opts(s, { tokenizer: false }));
      const model = await openSafetensorsModel(src);
      assert.is(model.files.length, 2);
      assert.is(model.tensors.size, 30);
      const [a, b] = header['ln_f.weight'].data_offsets;
      assert.ok(Buffer.from(await tensorBytes(model, 'ln_f.weight')).equals(MODEL_BYTES.subarray(8 + n + a, 8 + n + b)));
      await model.close();
      assert.ok((await resolveModel(REPO, opts(s, { offline: true, tokenizer: false }))).name);
      await rm(join(snapDir(cache), 'model-00002-of-00002.safetensors'));
      await rejects(resolveModel(REPO, opts(s, { offline: true, tokenizer: false })), DownloadError, /model-00002-of-00002\.safetensors of test-org\/tiny@main is not in the cache/);
    } finally {
      await s.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Misbehaving servers, concurrency, integrity, the cache folder

test('a server answering every GET with 206 from the wrong offset: bounded attempts, then a DownloadError', async () => {
  await withEnv(async ({ opts }) => {
    const s = await hub((file, req) => (file === 'model.safetensors' && req.method === 'GET' ? {
      handle: (_req, res) => {
        const body = MODEL_BYTES.subarray(10);
        res.writeHead(206, { 'content-range': `bytes 10-${MODEL_BYTES.length - 1}/${MODEL_BYTES.length}`, 'content-length': String(body.length), 'x-repo-commit': COMMIT });
        res.end(body);
      },
    } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s, { retries: 2 })), DownloadError, /model\.safetensors: .*asked for bytes 0- but the server sent "bytes 10-.*gave up after 3 attempts/);
      assert.is(s.gets('model.safetensors').length, 3);
    } finally {
      await s.close();
    }
  });
});

test('two concurrent resolves into one cache: one download per file, a complete cache, no leftovers', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      const [a, b] = await Promise.all([resolveModel(REPO, opts(s)), resolveModel(REPO, opts(s))]);
      assert.is(a.name, b.name);
      await assertLoads(a);
      for (const f of ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt']) assert.is(s.gets(f).length, 1, f);
      assert.equal((await readdir(snapDir(cache))).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    } finally {
      await s.close();
    }
  });
});

test('a resolve that looked at the cache just before another one finished a file does not fetch that file again', async () => {
  await withEnv(async ({ cache, opts }) => {
    // the first GET of vocab.json is answered only after the second HEAD of it arrived (whose resolve looked at the
    // cache before, and found nothing), and that HEAD only once the first resolve has put the file in place and
    // released its lock: the second resolve then finds the lock free (no wait) and a complete file it did not see
    let heads = 0;
    const until = async (ok: () => boolean) => { while (!ok()) await new Promise((r) => setTimeout(r, 5)); };
    const s = await hub((file, req, nth) => {
      if (file !== 'vocab.json') return undefined;
      const bytes = readFileSync(join(FIX, file));
      const answer = (rq: IncomingMessage, res: ServerResponse) => sendBytes(rq, res, bytes, { etag: `"${gitSha1(bytes)}"`, headers: { 'x-repo-commit': COMMIT } });
      if (req.method === 'GET' && nth === 1) return { handle: async (rq, res) => { await until(() => heads >= 2); answer(rq, res); } };
      if (req.method !== 'HEAD' || ++heads !== 2) return undefined;
      const dest = join(snapDir(cache), 'vocab.json');
      return { handle: async (rq, res) => { await until(() => existsSync(dest) && !existsSync(`${dest}.lock`)); answer(rq, res); } };
    });
    try {
      const [a, b] = await Promise.all([resolveModel(REPO, opts(s)), resolveModel(REPO, opts(s))]);
      assert.is(a.name, b.name);
      assert.is(heads, 2);
      assert.is(s.gets('vocab.json').length, 1, 'vocab.json fetched once');
    } finally {
      await s.close();
    }
  });
});

test('progress_callback through resolveSource: per downloaded file initiate, download, progress (loaded/total), done, as transformers.js', async () => {
  await withEnv(async ({ cache }) => {
    const s = await hub();
    try {
      const events: { status: string; file?: string; loaded?: number; total?: number; progress?: number }[] = [];
      const src = await resolveSource(REPO, { endpoint: s.url, cache_dir: cache, token: null, progress_callback: (p) => events.push({ ...p }) });
      await assertLoads(src);
      const of = (f: string) => events.filter((e) => e.file === f);
      const m = of('model.safetensors');
      assert.equal([m[0].status, m[1].status, m[m.length - 1].status], ['initiate', 'download', 'done']);
      const prog = m.filter((e) => e.status === 'progress');
      assert.ok(prog.length >= 1 && m.slice(2, -1).every((e) => e.status === 'progress'));
      assert.equal([prog[prog.length - 1].loaded, prog[prog.length - 1].total, prog[prog.length - 1].progress], [MODEL_BYTES.length, MODEL_BYTES.length, 100]);
      for (const f of ['config.json']) assert.equal(of(f).filter((e) => e.status !== 'progress').map((e) => e.status), ['initiate', 'download', 'done'], f);
      // from the cache: nothing is downloaded, nothing reported
      events.length = 0;
      await resolveSource(REPO, { endpoint: s.url, cache_dir: cache, token: null, progress_callback: (p) => events.push({ ...p }) });
      assert.equal(events, []);
    } finally {
      await s.close();
    }
  });
});

test('a lock left by a dead process is broken; a partial download is still resumed', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      const snap = snapDir(cache);
      await mkdir(snap, { recursive: true });
      await writeFile(join(snap, 'model.safetensors.lock'), `${hostname()} 999999999 deadbeef`);
      await writeFile(join(snap, 'model.safetensors.incomplete'), MODEL_BYTES.subarray(0, 1 << 20));
      const src = await resolveModel(REPO, opts(s));
      assert.is(s.gets('model.safetensors')[0].range, `bytes=${1 << 20}-`);
      await assertLoads(src);
      assert.not.ok(existsSync(join(snap, 'model.safetensors.lock')));
    } finally {
      await s.close();
    }
  });
});

test('a lock held by a live process: after 3 s of waiting one line names it and its holder; the wait ends when it is released', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    const said: string[] = [], warn = console.warn;
    try {
      const snap = snapDir(cache), lock = join(snap, 'model.safetensors.lock');
      await mkdir(snap, { recursive: true });
      await writeFile(lock, `${hostname()} ${process.pid} feedface0000`); // this process: alive
      console.warn = (...a: unknown[]) => { said.push(a.join(' ')); };
      const t0 = Date.now();
      const p = resolveModel(REPO, opts(s));
      while (!said.length && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(Date.now() - t0 >= 2_900, 'not before 3 s');
      assert.is(said.length, 1);
      assert.match(said[0], new RegExp(`^gpt2-wasm: waiting for .*model\\.safetensors\\.lock: another download of model\\.safetensors holds it \\(host ${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, pid ${process.pid}\\); the wait ends when it finishes`));
      await rm(lock);
      await assertLoads(await p);
      assert.is(said.length, 1, 'one line per wait');
    } finally {
      console.warn = warn;
      await s.close();
    }
  });
});

test('two processes downloading into one HF_HOME at once: both succeed, the cached file is intact', async () => {
  await withEnv(async ({ cache }) => {
    // A slow server, so that the downloads overlap.
    const s = await hub((file, req) => (file === 'model.safetensors' && req.method === 'GET' ? {
      handle: (_req, res) => {
        res.writeHead(200, { 'content-length': String(MODEL_BYTES.length), etag: '"v1"', 'x-repo-commit': COMMIT });
        let off = 0;
        const t = setInterval(() => {
          if (res.destroyed) { clearInterval(t); return; }
          res.write(MODEL_BYTES.subarray(off, off + (128 << 10)));
          off += 128 << 10;
          if (off >= MODEL_BYTES.length) { clearInterval(t); res.end(); }
        }, 10);
      },
    } : undefined));
    try {
      const hubUrl = new URL('../src/io/hub.ts', import.meta.url).href;
      const script = `import { resolveModel } from ${JSON.stringify(hubUrl)};
        resolveModel(${JSON.stringify(REPO)}, { endpoint: ${JSON.stringify(s.url)}, token: null, retries: 0, timeoutMs: 5000, progress: false, env: { HF_HOME: ${JSON.stringify(cache)} } })
          .then((src) => console.log('OK ' + src.name), (e) => { console.log('ERR ' + e.name + ': ' + e.message); process.exitCode = 1; });`;
      const run = () => new Promise<string>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd(), timeout: 25_000 }, (_err, stdout, stderr) => resolve(stdout + stderr));
      });
      const outs = await Promise.all([run(), run()]);
      for (const out of outs) assert.match(out, /^OK /, out);
      assert.is(s.gets('model.safetensors').length, 1, 'one process downloads, the other waits for it');
      const snap = join(cache, 'hub', repoFolderName(REPO), 'snapshots', COMMIT);
      assert.ok(readFileSync(join(snap, 'model.safetensors')).equals(MODEL_BYTES));
      assert.equal((await readdir(snap)).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    } finally {
      await s.close();
    }
  });
});

test('a file cut short (matching short Content-Length) is refused, named with expected and got sizes, and healed later', async () => {
  await withEnv(async ({ cache, opts }) => {
    const merges = readFileSync(join(FIX, 'merges.txt'));
    let short = true;
    const s = await hub((file, req) => (file === 'merges.txt' && req.method === 'GET' && short ? { bytes: merges.subarray(0, merges.length - 100) } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s)), DownloadError, new RegExp(`^merges\\.txt: .*the server announced ${merges.length - 100} bytes but the file has ${merges.length}`));
      assert.not.ok(existsSync(join(snapDir(cache), 'merges.txt')));
      short = false;
      await resolveModel(REPO, opts(s));
      assert.ok(readFileSync(join(snapDir(cache), 'merges.txt')).equals(merges));
      // A cached file whose size disagrees with the Hub is downloaded again (online).
      await writeFile(join(snapDir(cache), 'merges.txt'), merges.subarray(0, 1000));
      await writeFile(join(snapDir(cache), 'model.safetensors'), MODEL_BYTES.subarray(0, 5000));
      await assertLoads(await resolveModel(REPO, opts(s)));
      assert.ok(readFileSync(join(snapDir(cache), 'merges.txt')).equals(merges));
    } finally {
      await s.close();
    }
  });
});

test('a small file whose bytes do not match its git blob id (the Hub\'s ETag) is refused and never cached', async () => {
  await withEnv(async ({ cache, opts }) => {
    const merges = readFileSync(join(FIX, 'merges.txt'));
    const bad = Uint8Array.from(merges);
    bad[bad.length - 2] ^= 1; // same size: only the hash can tell
    let corrupt = true;
    const s = await hub((file, req) => (file === 'merges.txt' && req.method === 'GET' && corrupt ? { bytes: bad, etag: `"${gitSha1(merges)}"` } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s, { retries: 0 })), DownloadError, new RegExp(`^merges\\.txt: downloaded from .* but its git blob SHA-1 is wrong: expected ${gitSha1(merges)}, got ${gitSha1(bad)}`));
      assert.not.ok(existsSync(join(snapDir(cache), 'merges.txt')));
      corrupt = false;
      await assertLoads(await resolveModel(REPO, opts(s)));
      assert.ok(readFileSync(join(snapDir(cache), 'merges.txt')).equals(merges));
    } finally {
      await s.close();
    }
  });
});

test('a resume stitched onto another version (If-Range ignored) fails the sha256 check and is downloaded afresh', async () => {
  await withEnv(async ({ cache, opts }) => {
    const v2 = Buffer.from(MODEL_BYTES);
    for (let i = v2.length - 1000; i < v2.length; i++) v2[i] ^= 0x55;
    const s = await hub((file) => (file === 'model.safetensors' ? { bytes: v2 } : undefined));
    try {
      const snap = snapDir(cache);
      await mkdir(snap, { recursive: true });
      const half = MODEL_BYTES.length >> 1;
      // The old version's partial; the server honours the Range without checking it (no If-Range to check).
      await writeFile(join(snap, 'model.safetensors.incomplete'), Buffer.concat([MODEL_BYTES.subarray(0, half - 500), Buffer.alloc(500, 1)]));
      await resolveModel(REPO, opts(s));
      const gets = s.gets('model.safetensors');
      assert.equal(gets.map((g) => g.range), [`bytes=${half}-`, undefined]);
      assert.ok(readFileSync(join(snap, 'model.safetensors')).equals(v2));
      // A server whose sha256 never matches: a clear error, nothing cached.
      await rm(join(snap, 'model.safetensors'));
      const s2 = await hub((file) => (file === 'model.safetensors' ? { bytes: v2, headers: { 'x-linked-etag': `"${'ab'.repeat(32)}"` } } : undefined));
      try {
        await rejects(resolveModel(REPO, opts(s2)), DownloadError, new RegExp(`^model\\.safetensors: .*sha256 is wrong: expected ${'ab'.repeat(32)}, got ${sha256(v2)}.*gave up after 3 attempts`));
        assert.not.ok(existsSync(join(snap, 'model.safetensors')));
      } finally {
        await s2.close();
      }
    } finally {
      await s.close();
    }
  });
});

test('optional files failing (5xx, timeouts) do not stop a model from loading', async () => {
  await withEnv(async ({ cache, opts }) => {
    let mode = '';
    const s = await hub((file) => {
      if (mode === '503' && file === 'generation_config.json') return { status: 503 };
      if (mode === 'hang' && file === 'tokenizer.json') return { handle: () => {} };
      return undefined;
    });
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (m: string) => warnings.push(m);
    try {
      mode = '503';
      await assertLoads(await resolveModel(REPO, opts(s, { retries: 4, retryDelayMs: 2000 }))); // not cached yet: no retry either
      assert.match(warnings.join('\n'), /generation_config\.json \(optional\).*HTTP 503/);
      mode = 'hang';
      const t0 = Date.now();
      assert.is((await resolveModel(REPO, opts(s, { retries: 4, timeoutMs: 300 }))).name, snapDir(cache));
      assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
    } finally {
      console.warn = warn;
      await s.close();
    }
  });
});

test('an unusable HF_HOME is a DownloadError naming the path and HF_HOME', async () => {
  await withEnv(async ({ cache, opts }) => {
    const s = await hub();
    try {
      const home = join(cache, 'not-a-dir');
      await writeFile(home, 'x');
      await rejects(resolveModel(REPO, opts(s, { cacheDir: undefined, env: { HF_HOME: home } })), DownloadError,
        new RegExp(`cannot write to the Hub cache: ${home}/hub/.*HF_HOME=${home}`));
    } finally {
      await s.close();
    }
  });
});

test('a body failing on our side is cancelled: the connection is closed', async () => {
  await withEnv(async ({ opts }) => {
    let closed = 0;
    // Chunked (no Content-Length): more bytes than the HEAD announced, then nothing, connection kept open.
    const s = await hub((file, req) => (file === 'model.safetensors' && req.method === 'GET' ? {
      handle: (_req, res) => {
        res.on('close', () => closed++);
        res.writeHead(200, { etag: '"v1"', 'x-repo-commit': COMMIT });
        res.write(MODEL_BYTES);
        res.write(Buffer.alloc(1000));
      },
    } : undefined));
    try {
      await rejects(resolveModel(REPO, opts(s, { retries: 1, timeoutMs: 20_000 })), DownloadError, /server sent more than the \d+ bytes it announced/);
      for (let i = 0; i < 50 && closed < 2; i++) await new Promise((r) => setTimeout(r, 20));
      assert.is(closed, 2, 'both responses closed');
    } finally {
      await s.close();
    }
  });
});

test('Retry-After is honoured; a redirect loop is a permanent error', async () => {
  await withEnv(async ({ cache, opts }) => {
    let mode = 'retry-after';
    const s = await hub((file, req, nth) => {
      if (mode === 'retry-after' && file === 'vocab.json' && req.method === 'GET' && nth === 1) return { status: 503, headers: { 'retry-after': '1' } };
      if (mode === 'loop' && file === 'vocab.json') return { handle: (_q, res) => { res.writeHead(302, { location: `/${REPO}/resolve/${COMMIT}/vocab.json?n=${Math.random()}` }); res.end(); } };
      return undefined;
    });
    try {
      const t0 = Date.now();
      await resolveModel(REPO, opts(s, { retryDelayMs: 1 }));
      assert.ok(Date.now() - t0 >= 900, 'waited as asked');
      mode = 'loop';
      await rm(join(snapDir(cache), 'vocab.json'));
      const n = s.requests.length;
      await rejects(resolveModel(`${REPO}@x`, opts(s, { retries: 3 })), DownloadError, /vocab\.json: .*more than 20 redirects/);
      assert.ok(s.requests.length - n < 30, 'no retries of a redirect loop');
    } finally {
      await s.close();
    }
  });
});

test.run();
