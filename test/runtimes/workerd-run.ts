// Running a Worker on workerd for the checks: bundle an entry the way wrangler would (esbuild, the kernel build
// as a separate wasm module: Workers refuse to compile WebAssembly from bytes at run time), write a workerd config
// (one Worker, outbound fetch allowed to 127.0.0.1 for the weights host), start `workerd serve` on a free port and
// wait until it answers; stop() ends it. Used by workerd.ts (the runtime check) and workerd-budget.ts (memory).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmBytes, type WasmVariant } from '../../src/runtime/wasm.ts';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const workerdBin = join(root, 'node_modules', '.bin', 'workerd');

export const freePort = () => new Promise<number>((done, fail) => {
  const s = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => done(port));
  });
});

export interface RunningWorker {
  /** http://127.0.0.1:port */
  api: string;
  child: ChildProcess;
  /** stdout + stderr so far */
  log(): string;
  stop(): Promise<void>;
}

/** Bundles `entry` (source text importing './kernels.wasm') in `dir` with the `variant` kernels and serves it. */
export async function startWorker(dir: string, entry: string, variant: WasmVariant, extraArgs: string[] = []): Promise<RunningWorker> {
  writeFileSync(join(dir, 'kernels.wasm'), wasmBytes(variant));
  writeFileSync(join(dir, 'entry.ts'), entry);
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [join(dir, 'entry.ts')], outfile: join(dir, 'worker.js'), bundle: true, format: 'esm', platform: 'neutral',
    target: 'es2022', external: ['node:*', '*.wasm'], logLevel: 'warning',
  });
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
  const child = spawn(workerdBin, ['serve', join(dir, 'config.capnp'), ...extraArgs], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => { log += d; });
  child.stderr!.on('data', (d) => { log += d; });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  const api = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
    up = await fetch(`${api}/`).then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  if (!up) { await stop(); throw new Error(`workerd did not answer on ${api}: ${log.slice(-2000)}`); }
  return { api, child, log: () => log, stop };
}
