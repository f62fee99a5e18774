// A second process that keeps one core busy, to emulate a shared machine (bench/contention.ts and
// test/contention.test.ts). Bounded in time by itself, so it cannot outlive a crashed parent for long.
import { spawn, type ChildProcess } from 'node:child_process';

/** Starts a process that busy-loops on one core for at most `ms`. */
export function startSpinner(ms: number): ChildProcess {
  const src = `const end = Date.now() + ${Math.round(ms)}; let x = 0; while (Date.now() < end) x++;`;
  return spawn(process.execPath, ['-e', src], { stdio: 'ignore' });
}

/** Kills the spinner (by its own handle) if it is still running. */
export function stopSpinner(p: ChildProcess): void {
  if (p.exitCode == null && p.signalCode == null) p.kill('SIGKILL');
}
