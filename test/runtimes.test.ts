// Runs the built package (dist/index.js) on every runtime it supports, each as a child process bounded by
// a timeout: Node (the bundle; the unit tests run src/), Deno, Bun, headless Chromium (cross-origin isolated →
// threads, and not isolated → one thread; on the page and in a Web Worker), and the edge handler under
// Deno.serve and under workerd (the Cloudflare Workers runtime). Each child prints RUNTIME_RESULT lines (see
// test/runtimes/check.ts).
// Runtimes come from `node scripts/setup-runtimes.mjs`. One that is not installed is skipped with a message,
// unless GPT2WASM_REQUIRE_RUNTIMES=1 (CI), where that is a failure, as is a check a runtime reports as "skip".
// GPT2WASM_TEST_KERNELS=reference runs the TypeScript reference kernels instead of wasm (debugging only).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RESULT_PREFIX, type RuntimeReport } from './runtimes/check.ts';
import { requireRuntimes as requireAll, testKernels as kernels } from './helpers/fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const timeoutMs = Number(process.env.GPT2WASM_RUNTIME_TIMEOUT ?? 180_000);
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** node_modules/.bin first (the devDependency), then PATH. */
function findBin(name: string): string | null {
  for (const dir of [join(root, 'node_modules', '.bin'), ...(process.env.PATH ?? '').split(delimiter)]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

interface Target { name: string; cmd: string | null; args: string[]; missing: string | null }
const deno = findBin('deno');
const bun = findBin('bun');
const setupHint = 'run: node scripts/setup-runtimes.mjs';
const targets: Target[] = [
  { name: 'node (dist bundle)', cmd: process.execPath, args: ['--import', 'tsx', 'test/runtimes/node.ts', `--kernels=${kernels}`], missing: null },
  { name: 'deno', cmd: deno, args: ['run', '-A', 'test/runtimes/deno.ts', `--kernels=${kernels}`], missing: deno ? null : `deno not installed (${setupHint})` },
  { name: 'bun', cmd: bun, args: ['test/runtimes/bun.ts', `--kernels=${kernels}`], missing: bun ? null : `bun not installed (${setupHint})` },
  {
    name: 'chromium', cmd: process.execPath, args: ['--import', 'tsx', 'test/runtimes/browser.ts', `--kernels=${kernels}`],
    missing: !existsSync(chromiumPath) ? `chromium not found at ${chromiumPath} (${setupHint}, as root)`
      : !existsSync(join(root, 'node_modules', 'playwright-core', 'package.json')) ? `playwright-core not installed (${setupHint})` : null,
  },
  {
    name: 'cloudflare workerd', cmd: process.execPath, args: ['--import', 'tsx', 'test/runtimes/workerd.ts', `--kernels=${kernels}`],
    missing: existsSync(join(root, 'node_modules', '.bin', 'workerd')) ? null : `workerd not installed (${setupHint})`,
  },
  {
    name: 'deno edge handler', cmd: deno,
    args: ['run', '-A', '--sloppy-imports', '--import-map=test/runtimes/edge-import-map.json', 'test/runtimes/edge-deno.ts', `--kernels=${kernels}`],
    missing: deno ? null : `deno not installed (${setupHint})`,
  },
];

interface Outcome { code: number | null; signal: string | null; timedOut: boolean; stdout: string; stderr: string }

/** Runs a child in its own process group so a timeout kills it and everything it started (browsers). */
function run(cmd: string, args: string[]): Promise<Outcome> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); done({ code: null, signal: null, timedOut, stdout, stderr: stderr + String(e) }); });
    child.on('close', (code, signal) => { clearTimeout(timer); done({ code, signal, timedOut, stdout, stderr }); });
  });
}

const tail = (s: string, n = 3000) => (s.length > n ? '…' + s.slice(-n) : s);

if (!existsSync(join(root, 'dist', 'index.js'))) {
  test('runtimes: dist/index.js is built', () => { assert.unreachable('dist/index.js is missing: run npm run build'); });
}

for (const t of targets) {
  if (t.missing && !requireAll) {
    console.log(`# SKIP runtimes/${t.name}: ${t.missing}`);
    test.skip(`runtimes: ${t.name} (${t.missing})`, () => {});
    continue;
  }
  test(`runtimes: ${t.name} [${kernels} kernels]`, async () => {
    if (t.missing) assert.unreachable(`${t.missing} (GPT2WASM_REQUIRE_RUNTIMES=1)`);
    const out = await run(t.cmd!, t.args);
    const reports: RuntimeReport[] = out.stdout.split('\n').filter((l) => l.startsWith(RESULT_PREFIX)).map((l) => JSON.parse(l.slice(RESULT_PREFIX.length)));
    const lines: string[] = [];
    for (const r of reports) {
      for (const c of r.results) {
        lines.push(`${r.platform.padEnd(36)} ${c.name.padEnd(36)} threads ${c.threadsRequested}→${c.threads ?? '?'} ${String(c.variant ?? '').padEnd(16)} ${c.status.toUpperCase()}${c.message ? `  ${c.message.slice(0, 300)}` : ''}`);
      }
    }
    console.log(lines.map((l) => `# ${l}`).join('\n'));
    const cmdline = `${t.cmd} ${t.args.join(' ')}`;
    if (out.timedOut) assert.unreachable(`${cmdline}: no exit within ${timeoutMs} ms (killed)\n${tail(out.stdout)}\n${tail(out.stderr)}`);
    if (!reports.length) assert.unreachable(`${cmdline}: exit ${out.code ?? out.signal}, no ${RESULT_PREFIX.trim()} line\n${tail(out.stdout)}\n${tail(out.stderr)}`);
    const failed = reports.flatMap((r) => r.results.filter((c) => c.status === 'fail').map((c) => `${r.platform} ${c.name} threads ${c.threadsRequested}: ${c.message}`));
    if (failed.length) assert.unreachable(`${cmdline}:\n${failed.join('\n')}\n--- stderr\n${tail(out.stderr)}`);
    // a check that could not run is no pass: in CI (GPT2WASM_REQUIRE_RUNTIMES) it fails the run
    const skipped = reports.flatMap((r) => r.results.filter((c) => c.status === 'skip').map((c) => `${r.platform} ${c.name}: ${c.message ?? 'skipped'}`));
    if (skipped.length && requireAll) assert.unreachable(`${cmdline}: checks reported "skip" (GPT2WASM_REQUIRE_RUNTIMES is set):\n${skipped.join('\n')}`);
    assert.is(out.code, 0, `${cmdline}: exit ${out.code ?? out.signal}\n${tail(out.stderr)}`);
  });
}

test.run();
