// Runs a bench module in a child Node process (fresh heap, its own thread settings, its own peak RSS) and
// reads the one JSON line it prints last on stdout.
import { spawn } from 'node:child_process';
import { waitForQuiet } from './quiet.js';

/** How long a child measurement may wait for the machine to go quiet first (set by bench/run.ts). */
export const quietPolicy = { maxWaitMs: 0, rowWaitMs: 0 };

export interface ChildResult<T> { ok: true; value: T; stderr: string }
export interface ChildFailure { ok: false; error: string; stderr: string }

export async function runChild<T>(script: string, args: string[], opts: { timeoutMs?: number; nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<ChildResult<T> | ChildFailure> {
  if (quietPolicy.maxWaitMs > 0) await waitForQuiet(quietPolicy.maxWaitMs);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GPT2WASM_BENCH_QUIET_MS: String(quietPolicy.rowWaitMs), ...(opts.env ?? {}) },
    });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').filter((l) => l.startsWith('{') || l.startsWith('[')).pop();
      if (code === 0 && line) {
        try { resolve({ ok: true, value: JSON.parse(line) as T, stderr: err }); return; } catch { /* fall through */ }
      }
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve({ ok: false, error: `${why}: ${(err.trim().split('\n').slice(-6).join(' | ') || out.slice(-400)).slice(0, 800)}`, stderr: err });
    });
  });
}

/** Parses `--name value` and `--flag` arguments. */
export function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
