// The edge handler on workerd, the open-source Cloudflare Workers runtime (npm package `workerd`):
//   node --import tsx test/runtimes/workerd.ts [--kernels=reference]
// Bundles a Worker the way wrangler would (esbuild: src/edge/handler.ts + an entry, the kernel build as a
// separate wasm module), writes a workerd config, serves the fixture model from a local HTTP server, starts
// `workerd serve` on 127.0.0.1 and checks /v1/forward and /v1/completions over HTTP.
// Workers refuse to compile WebAssembly from bytes at run time ("Wasm code generation disallowed by
// embedder"), so the kernels reach the Worker as an imported module passed as `wasmModule`; when
// from_pretrained does not know that option yet the checks are reported as skipped, naming why.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendBytes, startServer } from '../helpers/http-server.ts';
import { wasmBytes } from '../../src/runtime/wasm.ts';
import { parseF32Safetensors, printReport, type CheckResult } from './check.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = process.env.GPT2WASM_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
const kernels = process.argv.includes('--kernels=reference') ? 'reference' : 'wasm';
const workerd = join(root, 'node_modules', '.bin', 'workerd');
const VARIANT = 'simd'; // the most portable build; workerd's V8 also takes 'relaxed'

const freePort = () => new Promise<number>((done, fail) => {
  const s = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => done(port));
  });
});

const results: CheckResult[] = [];
const dir = mkdtempSync(join(tmpdir(), 'gpt2wasm-workerd-'));
const model = join(fixtures, 'models', 'gpt2-tiny');
const weights = await startServer((req, res, path) => {
  const name = path.replace(/^\/gpt2-tiny\//, '');
  if (!['config.json', 'model.safetensors', 'vocab.json', 'merges.txt'].includes(name)) { res.writeHead(404); res.end(); return; }
  sendBytes(req, res, readFileSync(join(model, name)));
});
let child: ChildProcess | null = null;
let log = '';
try {
  // 1. the Worker bundle: entry + handler, kernels as a wasm module
  writeFileSync(join(dir, 'kernels.wasm'), wasmBytes(VARIANT));
  writeFileSync(join(dir, 'entry.ts'), [
    `import { createFetchHandler } from ${JSON.stringify(join(root, 'src/edge/handler.ts'))};`,
    `import { urlSource } from ${JSON.stringify(join(root, 'src/io/source.ts'))};`,
    `import kernels from './kernels.wasm';`,
    // urlSource with no fetch option: the library's default (unwrapped) fetch path, as a Worker meets it
    `export default createFetchHandler({ source: urlSource(${JSON.stringify(`${weights.url}/gpt2-tiny/`)}), modelName: 'gpt2-tiny',`,
    `  threads: 1, kernels: ${JSON.stringify(kernels)}, variant: ${JSON.stringify(VARIANT)}, wasmModule: kernels });`,
  ].join('\n'));
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [join(dir, 'entry.ts')], outfile: join(dir, 'worker.js'), bundle: true, format: 'esm', platform: 'neutral',
    target: 'es2022', external: ['node:*', '*.wasm'], logLevel: 'warning',
  });

  // 2. workerd config: one Worker, outbound fetch allowed to 127.0.0.1 (the weights host)
  const port = await freePort();
  writeFileSync(join(dir, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [
    (name = "worker", esModule = embed "worker.js"),
    (name = "./kernels.wasm", wasm = embed "kernels.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  globalOutbound = "net",
);
`);
  child = spawn(workerd, ['serve', join(dir, 'config.capnp')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => { log += d; });
  child.stderr!.on('data', (d) => { log += d; });
  const api = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
    up = await fetch(`${api}/`).then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  if (!up) throw new Error(`workerd did not answer on ${api}: ${log.slice(-2000)}`);

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() as any };
  };
  const fwd = JSON.parse(readFileSync(join(fixtures, 'cases', 'lm_forward.json'), 'utf8'));
  const greedy = JSON.parse(readFileSync(join(fixtures, 'cases', 'lm_greedy.json'), 'utf8'));
  const ref = parseF32Safetensors(readFileSync(join(fixtures, 'cases', fwd.expected)));
  const base = { threadsRequested: 1, threads: 1, variant: VARIANT };

  const first = await post('/v1/forward', { input_ids: fwd.input_ids, top_k: 5 });
  if (first.status !== 200 && /unknown from_pretrained option 'wasmModule'/.test(first.json?.error?.message ?? '')) {
    const why = "from_pretrained has no 'wasmModule' option yet, and Workers cannot compile wasm from bytes (see docs/platforms.md)";
    results.push({ name: 'workerd /v1/forward', status: 'skip', ...base, message: why }, { name: 'workerd /v1/completions', status: 'skip', ...base, message: why });
  } else {
    const V = ref.logits.shape[1];
    const last = ref.logits.data.subarray((fwd.input_ids.length - 1) * V);
    const want = Array.from(last.keys()).sort((a, b) => last[b] - last[a] || a - b).slice(0, 5);
    const got = first.json.top_k?.[0]?.map((t: any) => t.token_id);
    const fmsg = first.status !== 200 ? `HTTP ${first.status}: ${JSON.stringify(first.json)}`
      : JSON.stringify(got) !== JSON.stringify(want) ? `top-5 ids ${JSON.stringify(got)}, reference ${JSON.stringify(want)}` : null;
    results.push({ name: 'workerd /v1/forward', status: fmsg ? 'fail' : 'pass', ...base, ...(fmsg ? { message: fmsg } : {}) });

    const c = await post('/v1/completions', { prompt: greedy.text, max_tokens: greedy.max_new_tokens });
    const wantIds = greedy.expected_ids.slice(greedy.input_ids.length);
    const cmsg = c.status !== 200 ? `HTTP ${c.status}: ${JSON.stringify(c.json)}`
      : JSON.stringify(c.json.choices?.[0]?.token_ids) !== JSON.stringify(wantIds) ? `ids ${JSON.stringify(c.json.choices?.[0]?.token_ids)}, expected ${JSON.stringify(wantIds)}` : null;
    results.push({ name: 'workerd /v1/completions', status: cmsg ? 'fail' : 'pass', ...base, ...(cmsg ? { message: cmsg } : {}) });
  }
} catch (e) {
  results.push({ name: 'workerd', status: 'fail', threadsRequested: 1, message: `${(e as Error).message}\n${log.slice(-2000)}` });
} finally {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await weights.close();
  rmSync(dir, { recursive: true, force: true });
}
const version = (() => { try { return JSON.parse(readFileSync(join(root, 'node_modules', 'workerd', 'package.json'), 'utf8')).version; } catch { return '?'; } })();
process.exit(printReport({ platform: `workerd ${version} (Cloudflare Workers runtime)`, kernels, results }));
