// Helpers of the server tests: bounded waits, a slowed-down model (requests stay in flight long enough to be
// observed), a JSON POST that returns status, headers, text and the parsed body, and `gpt2-wasm serve` in a
// child process.
import { spawn, type ChildProcess } from 'node:child_process';
import type { GPT2LMHeadModel } from '../../src/model/gpt2.js';
import { repoRoot } from './fixtures.js';

/** Fails the test instead of hanging when `p` takes longer than `ms`. */
export async function within<T>(ms: number, p: Promise<T>, what = 'step'): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what} took over ${ms} ms`)), ms); })]);
  } finally { clearTimeout(t); }
}

export async function until(cond: () => boolean, ms = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `model`, slowed down by `ms` per decode step, so a request stays in flight long enough to test. */
export function slowModel(model: GPT2LMHeadModel, ms: number): GPT2LMHeadModel {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  return Object.create(model, {
    decodeStep: { value: (...args: Parameters<GPT2LMHeadModel['decodeStep']>) => { Atomics.wait(gate, 0, 0, ms); return model.decodeStep(...args); } },
  });
}

/** POST `body` (JSON unless a string) to `url` + `path`; the answer's status, headers, text and JSON (or null). */
export async function post(url: string, body: unknown, init: RequestInit = {}, path = '/v1/completions') {
  const r = await fetch(`${url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* SSE or empty */ }
  return { status: r.status, headers: r.headers, text, json };
}

export interface ServeProcess {
  child: ChildProcess;
  /** Its stderr so far (the log; "listening on URL" once it listens). */
  readonly err: string;
  exited: Promise<number | null>;
  url: string;
}

/** `gpt2-wasm serve ARGS` (the sources, through tsx) in a child process; resolves once it listens, or throws with its stderr. */
export async function spawnServe(args: string[], waitMs = 30_000): Promise<ServeProcess> {
  const script = `import { serve } from './src/server/index.ts'; await serve(process.argv.slice(1));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await until(() => /listening on http/.test(err) || child.exitCode !== null, waitMs, 'the server to listen');
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const url = /listening on (http:\/\/\S+)/.exec(err)?.[1];
  if (!url) throw new Error(`gpt2-wasm serve did not start:\n${err}`);
  return { child, get err() { return err; }, exited, url };
}
