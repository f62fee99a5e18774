// The machine is shared with other jobs. Before a measurement we look at how busy the CPUs are (from
// /proc/stat, over a short window, while this process sleeps) and wait a little for a quieter moment.
import { readFileSync } from 'node:fs';

function cpuTimes(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]; // "cpu  user nice system idle iowait irq softirq steal ..."
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] ?? 0);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch { return null; }
}

/** Share of all CPUs busy (0..1) over `ms`, or null where /proc/stat is unavailable. */
export async function busyShare(ms = 300): Promise<number | null> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return null;
  return (b.busy - a.busy) / (b.total - a.total);
}

export interface QuietStats { waited_ms: number; busy_at_start: number | null }
export const quietLog: QuietStats[] = [];

/** Waits (up to maxWaitMs) until other processes use less than `threshold` of the CPUs. */
export async function waitForQuiet(maxWaitMs: number, threshold = 0.2): Promise<QuietStats> {
  const t0 = performance.now();
  let busy = await busyShare();
  while (busy != null && busy > threshold && performance.now() - t0 < maxWaitMs) {
    await new Promise((r) => setTimeout(r, 700));
    busy = await busyShare();
  }
  const s = { waited_ms: Math.round(performance.now() - t0), busy_at_start: busy == null ? null : Math.round(busy * 100) / 100 };
  quietLog.push(s);
  return s;
}

/** Per-measurement wait (ms) inside bench children, passed down through the environment by bench/run.ts. */
export const rowQuietMs = () => Number(process.env.GPT2WASM_BENCH_QUIET_MS ?? 0);
export async function quietRow(): Promise<void> { const ms = rowQuietMs(); if (ms > 0) await waitForQuiet(ms); }
