// Portability check in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
//   node --import tsx test/runtimes/browser.ts [--kernels=reference] [--threads=1,2] [--mode=isolated|plain]
// Serves the repository on 127.0.0.1 with a tiny node:http server, twice: once with COOP/COEP headers
// (the page is crossOriginIsolated → SharedArrayBuffer → worker threads) and once without (no shared
// memory → the single-thread fallback). The page (browser-page.ts) runs the checks on the page and in a Web
// Worker: each imports /dist/index.js and reads the fixture model with urlSource. Prints one RUNTIME_RESULT
// line per mode and context; exit 1 when a check fails.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendBytes, startServer, type TestServer } from '../helpers/http-server.ts';
import { printReport, type RuntimeReport } from './check.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = process.env.GPT2WASM_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const kernels = arg('kernels') === 'reference' ? 'reference' : 'wasm';
const threads = arg('threads') ?? '1,2';
const modes = (arg('mode') ?? 'isolated,plain').split(',') as ('isolated' | 'plain')[];
const timeoutMs = Number(process.env.GPT2WASM_BROWSER_TIMEOUT ?? 120_000);

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.ts': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.wasm': 'application/wasm',
};

const PAGE = `<!doctype html><meta charset="utf-8"><title>gpt2-wasm runtime check</title>
<script type="module" src="/test/runtimes/browser-page.ts"></script>`;

/** A file under `base`, or null when the path escapes it or does not exist. */
function fileUnder(base: string, rel: string): string | null {
  const p = resolve(base, '.' + rel);
  if (p !== base && !p.startsWith(base + sep)) return null;
  return existsSync(p) ? p : null;
}

async function serve(isolated: boolean): Promise<TestServer> {
  const esbuild = await import('esbuild');
  return startServer(async (req, res, path) => {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (isolated) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
      headers['cross-origin-resource-policy'] = 'same-origin';
    }
    const send = (bytes: Uint8Array, type: string) => sendBytes(req, res, bytes, { headers: { ...headers, 'content-type': type } });
    if (path === '/' || path === '/index.html') return send(new TextEncoder().encode(PAGE), TYPES['.html']);
    let file: string | null = null;
    if (path.startsWith('/fixtures/')) file = fileUnder(fixtures, path.slice('/fixtures'.length));
    else if (path.startsWith('/dist/')) file = fileUnder(join(root, 'dist'), path.slice('/dist'.length));
    else if (path.startsWith('/test/runtimes/') && path.endsWith('.ts')) file = fileUnder(join(root, 'test/runtimes'), path.slice('/test/runtimes'.length));
    if (!file) {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
      res.end(`not found: ${path}`);
      return;
    }
    if (file.endsWith('.ts')) {
      const out = await esbuild.transform(readFileSync(file, 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' });
      return send(new TextEncoder().encode(out.code), TYPES['.ts']);
    }
    return send(readFileSync(file), TYPES[extname(file)] ?? 'application/octet-stream');
  });
}

type Outcome = RuntimeReport | { error: string };

async function runMode(mode: 'isolated' | 'plain', log: string[]): Promise<Outcome[]> {
  const { chromium } = await import('playwright-core');
  const server = await serve(mode === 'isolated');
  const userDataDir = mkdtempSync(join(tmpdir(), 'gpt2wasm-chromium-'));
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000,
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.on('console', (m) => log.push(`[${mode} console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => log.push(`[${mode} pageerror] ${e.message}`));
    let finish!: (s: string) => void;
    const result = new Promise<string>((r) => { finish = r; });
    await page.exposeFunction('__gpt2wasmDone', (s: string) => finish(s));
    await page.goto(`${server.url}/?kernels=${kernels}&threads=${threads}&rawfetch=${process.env.GPT2WASM_RAW_FETCH === '0' ? 0 : 1}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((r) => { timer = setTimeout(() => r(JSON.stringify([{ error: `no result within ${timeoutMs} ms` }])), timeoutMs); });
    const text = await Promise.race([result, timeout]);
    clearTimeout(timer);
    return JSON.parse(text);
  } catch (e) {
    return [{ error: `${(e as Error).message}` }];
  } finally {
    await context?.close().catch(() => {});
    await server.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

if (!existsSync(chromiumPath)) {
  console.error(`chromium not found at ${chromiumPath} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  process.exit(2);
}
let code = 0;
for (const mode of modes) {
  const log: string[] = [];
  const outcomes = await runMode(mode, log);
  for (const l of log) console.error(l);
  for (const r of outcomes) {
    if ('error' in r) {
      code = 1;
      printReport({ platform: `chromium ${mode === 'isolated' ? 'cross-origin isolated' : 'not isolated'}`, kernels, results: [{ name: 'page', status: 'fail', threadsRequested: 0, message: r.error }] });
      continue;
    }
    code = Math.max(code, printReport(r));
  }
}
process.exit(code);
