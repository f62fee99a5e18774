// Helpers of the server tests: bounded waits, a slowed-down model (requests stay in flight long enough to be
// observed), and a JSON POST that returns status, headers, text and the parsed body.
import type { GPT2LMHeadModel } from '../../src/model/gpt2.js';

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
