// A browser app bundled as a user's bundler would: a consumer project whose node_modules/gpt2-wasm is this
// package, an app importing 'gpt2-wasm', and the esbuild command line with `--bundle --platform=browser` and no
// other flag (the package's conditional exports pick the browser build). The bundle must hold no import of a
// node: module, and it must run: served with the fixture model from a local HTTP server, in headless Chromium,
// it generates the greedy continuation of the lm_greedy case (ids and text) on 2 threads. The run is skipped
// without Chromium, and fails then when GPT2WASM_REQUIRE_RUNTIMES is set (CI).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromiumTest } from './helpers/browser.ts';
import { modelDir, readCase, repoRoot } from './helpers/fixtures.js';
import { sendBytes, sendFile, startServer } from './helpers/http-server.ts';
import { fileUnder } from './runtimes/browser-server.ts';
import { GPT2Tokenizer } from '../src/tokenizer/index.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));

// The app: test/helpers/consumer-app.mjs, run on the page with the case and the model from the server; it
// reports to the test driver.
const ENTRY = `import { run } from './consumer-app.mjs';

const report = (r) => globalThis.__gpt2wasmDone(JSON.stringify(r));
try {
  const c = await (await fetch('/case.json')).json();
  report({ ...await run(new URL('/model/', location.href).href, c), isolated: globalThis.crossOriginIsolated === true });
} catch (e) {
  report({ error: e instanceof Error ? e.name + ': ' + e.message + '\\n' + e.stack : String(e) });
}
`;

let bundled: string | null = null;
/** The app bundled by the esbuild CLI in a temporary consumer project (once per run). */
function bundle(): string {
  if (bundled !== null) return bundled;
  const browserBuild = join(repoRoot, pkg.exports['.'].browser);
  assert.ok(existsSync(browserBuild), `${browserBuild} is missing: run npm run build`);
  const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-bundle-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(repoRoot, join(dir, 'node_modules', 'gpt2-wasm'), 'dir');
    writeFileSync(join(dir, 'app.js'), ENTRY);
    copyFileSync(join(repoRoot, 'test', 'helpers', 'consumer-app.mjs'), join(dir, 'consumer-app.mjs'));
    // the esbuild command as a user runs it (node_modules/.bin/esbuild is the platform's binary)
    const esbuild = join(repoRoot, 'node_modules', '.bin', process.platform === 'win32' ? 'esbuild.cmd' : 'esbuild');
    const r = spawnSync(esbuild, ['app.js', '--bundle', '--platform=browser', '--format=esm', '--outfile=out/app.js', '--log-level=warning'], { cwd: dir, encoding: 'utf8' });
    assert.is(r.status, 0, `esbuild failed:\n${r.stderr}`);
    assert.is(r.stderr.trim(), '', 'esbuild warned');
    bundled = readFileSync(join(dir, 'out', 'app.js'), 'utf8');
    return bundled;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('esbuild --platform=browser bundles an app importing gpt2-wasm with no flags, and no node: module reaches it', () => {
  const code = bundle();
  // no import of a node: module (the embedded worker script, a string, may mention one for Node's threads)
  assert.not.match(code, /(?:\bimport\s*\(|\bfrom)\s*["'`]node:/, 'an import of a node: module reached the browser bundle');
  assert.match(code, /is not available in this runtime \(the package's browser build\)/, 'node: modules were replaced by the stubs');
  assert.ok(code.includes('generated_text'));
});

test('the browser build answers a file path with a typed OptionError (the stub of node:fs throws one)', async () => {
  const lib = await import(join(repoRoot, pkg.exports['.'].browser));
  for (const load of [() => lib.GPT2LMHeadModel.from_pretrained('/abs/dir'), () => lib.AutoTokenizer.from_pretrained('./rel')]) {
    const e = await load().then(() => null, (x: unknown) => x);
    assert.ok(e instanceof lib.GPT2WasmError, `not a GPT2WasmError: ${e}`);
    assert.is(e.code, 'OPTION');
    assert.match(e.message, /is not available in this runtime \(the package's browser build\): pass a ModelSource or a URL/);
  }
});

chromiumTest('the bundled app runs in chromium: the lm_greedy continuation, ids and text', async ({ page, report }) => {
  const c = readCase('lm_greedy');
  const tok = await GPT2Tokenizer.from_pretrained(modelDir(c.model));
  const expectedText = tok.decode(c.expected_ids);
  const code = new TextEncoder().encode(bundle());
  const isolation = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
  const page_ = new TextEncoder().encode('<!doctype html><meta charset="utf-8"><title>bundled gpt2-wasm app</title><script type="module" src="/app.js"></script>');
  const server = await startServer((req, res, path) => {
    const send = (bytes: Uint8Array, type: string) => sendBytes(req, res, bytes, { headers: { ...isolation, 'content-type': type } });
    if (path === '/') return send(page_, 'text/html; charset=utf-8');
    if (path === '/app.js') return send(code, 'text/javascript; charset=utf-8');
    if (path === '/case.json') return send(new TextEncoder().encode(JSON.stringify(c)), 'application/json');
    const file = path.startsWith('/model/') ? fileUnder(modelDir(c.model), path.slice('/model'.length)) : null;
    if (!file) { res.writeHead(404, isolation); res.end(); return; }
    // the fixtures never change: their size is ETag enough
    sendFile(req, res, file, { etag: `"${statSync(file).size.toString(16)}"`, headers: isolation });
  });
  try {
    const out = await report(() => page.goto(`${server.url}/`));
    assert.is(out.isolated, true, 'the page is cross-origin isolated (threads possible)');
    assert.is(out.threads, 2);
    assert.equal(out.ids, c.expected_ids, 'greedy ids match the fixture');
    assert.is(out.prompt, tok.decode(c.input_ids));
    assert.is(out.generated_text, expectedText, 'the pipeline text is the fixture continuation');
    assert.ok(server.requests.some((r) => r.path === '/model/model.safetensors'), 'the weights came from the server');
  } finally {
    await server.close();
  }
});

test.run();
