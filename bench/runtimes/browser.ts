// Chromium driver for bench/runtimes.ts (Debian's /usr/bin/chromium through playwright-core, headless):
//   node --import tsx bench/runtimes/browser.ts --dir=CHECKPOINT [--where=worker|page] [--configs=...] [--rounds=N] [--steps=N]
// Serves on 127.0.0.1, with COOP/COEP so the page is cross-origin isolated (SharedArrayBuffer → threads):
//   /            a page that loads /bench/runtimes/browser-entry.ts
//   /bench/runtimes/*.ts  transpiled on the fly (esbuild)
//   /dist/**     the built package
//   /model/      config.json and model.safetensors from --dir, with HEAD and byte ranges streamed from disk
// Prints one RUNTIMES_BENCH {json} line; page console output goes to stderr.
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_PREFIX, paramsFromArgs, paramsToArgs, type RuntimeBenchReport } from './measure.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const modelDir = arg('dir');
const where = arg('where') === 'page' ? 'page' : 'worker';
const timeoutMs = Number(arg('timeout') ?? 300_000);
const params = paramsFromArgs(arg);

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.ts': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.wasm': 'application/wasm',
};
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin', 'cache-control': 'no-store',
};
const PAGE = '<!doctype html><meta charset="utf-8"><title>gpt2-wasm runtimes bench</title>\n<script type="module" src="/bench/runtimes/browser-entry.ts"></script>';

/** A file under `base`, or null when the path escapes it or is not a file. */
function fileUnder(base: string, rel: string): string | null {
  const p = resolve(base, '.' + rel);
  if (p !== base && !p.startsWith(base + sep)) return null;
  return existsSync(p) && statSync(p).isFile() ? p : null;
}

/** A static file with HEAD and single byte-range support, streamed from disk (the weights are ~0.5 GB). */
function sendFile(req: IncomingMessage, res: ServerResponse, file: string, type: string): void {
  const size = statSync(file).size;
  const headers: Record<string, string> = { ...ISOLATION, 'content-type': type, 'accept-ranges': 'bytes' };
  let start = 0;
  let end = size - 1;
  let status = 200;
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (m && (m[1] || m[2])) {
    if (m[1]) { start = Number(m[1]); end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1; }
    else { start = Math.max(0, size - Number(m[2])); }
    if (start >= size || end < start) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` });
      res.end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = String(end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD') { res.end(); return; }
  const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

async function serve(dir: string) {
  const esbuild = await import('esbuild');
  const stats = { requests: 0, modelRequests: 0, notFound: [] as string[] };
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      stats.requests++;
      if (path.startsWith('/model/')) stats.modelRequests++;
      if (process.env.RUNTIMES_BENCH_VERBOSE) console.error(`[http] ${req.method} ${path} ${req.headers.range ?? ''}`);
      if (path === '/favicon.ico') { res.writeHead(204, ISOLATION); res.end(); return; }
      if (path === '/' || path === '/index.html') {
        res.writeHead(200, { ...ISOLATION, 'content-type': TYPES['.html'] });
        res.end(PAGE);
        return;
      }
      let file: string | null = null;
      if (path === '/model/config.json' || path === '/model/model.safetensors') file = fileUnder(dir, path.slice('/model'.length));
      else if (path.startsWith('/dist/')) file = fileUnder(join(root, 'dist'), path.slice('/dist'.length));
      else if (path.startsWith('/bench/runtimes/') && path.endsWith('.ts')) file = fileUnder(join(root, 'bench', 'runtimes'), path.slice('/bench/runtimes'.length));
      if (!file) {
        stats.notFound.push(path);
        res.writeHead(404, { ...ISOLATION, 'content-type': 'text/plain' });
        res.end(`not found: ${path}`);
        return;
      }
      if (file.endsWith('.ts')) {
        const out = await esbuild.transform(readFileSync(file, 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' });
        res.writeHead(200, { ...ISOLATION, 'content-type': TYPES['.ts'] });
        res.end(out.code);
        return;
      }
      sendFile(req, res, file, TYPES[extname(file)] ?? 'application/octet-stream');
    } catch (e) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

async function run(): Promise<RuntimeBenchReport> {
  const failed = (error: string): RuntimeBenchReport => ({ runtime: 'chromium', version: '', where, source: '', rows: [], error });
  if (!modelDir) return failed('--dir=CHECKPOINT is required');
  if (!existsSync(chromiumPath)) return failed(`chromium not found at ${chromiumPath} (set CHROMIUM_PATH)`);
  const { chromium } = await import('playwright-core');
  const server = await serve(modelDir);
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath, headless: true, timeout: 60_000,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await (await browser.newContext()).newPage();
    // (the expected 404 for the optional generation_config.json shows up as a console error: not echoed)
    page.on('console', (m) => { if (!m.text().startsWith('Failed to load resource')) console.error(`[chromium ${where}] ${m.text()}`); });
    page.on('pageerror', (e) => console.error(`[chromium pageerror] ${e.message}`));
    let finish!: (s: string) => void;
    const result = new Promise<string>((r) => { finish = r; });
    await page.exposeFunction('__runtimesBenchDone', (s: string) => finish(s));
    const query = new URLSearchParams([['where', where], ...paramsToArgs(params).map((a) => {
      const [k, v] = a.slice(2).split('=');
      return [k, v] as [string, string];
    })]);
    await page.goto(`${server.url}/?${query}`);
    const timeout = new Promise<string>((r) => { timer = setTimeout(() => r(JSON.stringify(failed(`no result within ${timeoutMs} ms`))), timeoutMs); });
    const report: RuntimeBenchReport = JSON.parse(await Promise.race([result, timeout]));
    report.version = browser.version() || report.version;
    if (server.stats.notFound.some((p) => p.startsWith('/dist/') || p.startsWith('/bench/'))) report.error ??= `not found: ${server.stats.notFound.join(', ')}`;
    console.error(`[chromium] ${server.stats.requests} HTTP requests (${server.stats.modelRequests} for /model/); not found: ${server.stats.notFound.join(', ') || 'none'}`);
    return report;
  } catch (e) {
    return failed((e as Error).message);
  } finally {
    clearTimeout(timer);
    await browser?.close().catch(() => {});
    await server.close();
  }
}

const report = await run();
console.log(BENCH_PREFIX + JSON.stringify(report));
process.exit(report.error ? 1 : 0);
