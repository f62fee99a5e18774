// What the Chromium tests share: a tiny node:http server for the repository (the built package under /dist/,
// the fixtures under /fixtures/, test/runtimes/*.ts transpiled on the fly), optionally cross-origin isolated
// (COOP/COEP → SharedArrayBuffer → worker threads), and a headless Chromium driven by playwright-core.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendBytes, startServer, type TestServer } from '../helpers/http-server.ts';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const fixtures = process.env.GPT2WASM_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.ts': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.wasm': 'application/wasm',
};

/** A file under `base`, or null when the path escapes it or does not exist. */
export function fileUnder(base: string, rel: string): string | null {
  const p = resolve(base, '.' + rel);
  if (p !== base && !p.startsWith(base + sep)) return null;
  return existsSync(p) ? p : null;
}

/** The page at "/": loads `script` (a path under /test/runtimes/) as a module. */
const pageFor = (script: string) => `<!doctype html><meta charset="utf-8"><title>gpt2-wasm runtime check</title>
<script type="module" src="${script}"></script>`;

/** Serves the repository; "/" is a page running `script`. Static files carry an ETag (their length in hex: the fixtures never change). */
export async function serveRepo(isolated: boolean, script = '/test/runtimes/browser-page.ts'): Promise<TestServer> {
  const esbuild = await import('esbuild');
  return startServer(async (req, res, path) => {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (isolated) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
      headers['cross-origin-resource-policy'] = 'same-origin';
    }
    const send = (bytes: Uint8Array, type: string, etag?: string) => sendBytes(req, res, bytes, { etag, headers: { ...headers, 'content-type': type } });
    if (path === '/' || path === '/index.html') return send(new TextEncoder().encode(pageFor(script)), TYPES['.html']);
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
    const bytes = readFileSync(file);
    return send(bytes, TYPES[extname(file)] ?? 'application/octet-stream', `"${bytes.byteLength.toString(16)}"`);
  });
}

export type Browser = Awaited<ReturnType<typeof import('playwright-core')['chromium']['launchPersistentContext']>>;

/** A headless Chromium with a fresh profile; `close()` ends it and deletes the profile. */
export async function launchChromium(): Promise<{ context: Browser; close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'gpt2wasm-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000,
    });
    return {
      context,
      close: async () => {
        await context.close().catch(() => {});
        rmSync(userDataDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
}

/** Whether Chromium and playwright-core are there; a message saying what is missing otherwise. */
export function chromiumMissing(): string | null {
  if (!existsSync(chromiumPath)) return `chromium not found at ${chromiumPath} (node scripts/setup-runtimes.mjs, as root, or set CHROMIUM_PATH)`;
  if (!existsSync(join(root, 'node_modules', 'playwright-core', 'package.json'))) return 'playwright-core not installed (node scripts/setup-runtimes.mjs)';
  return null;
}
