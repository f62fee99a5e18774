// Locates ../shared/fixtures (beside the checkout, as in CI) and reads cases and their reference tensors.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const fixturesDir = process.env.GPT2WASM_FIXTURES ?? join(repoRoot, '..', 'shared', 'fixtures');
if (!existsSync(fixturesDir)) throw new Error(`fixtures not found at ${fixturesDir} (set GPT2WASM_FIXTURES)`);
export const modelDir = (name: string) => join(fixturesDir, 'models', name);
export const caseNames = (): string[] => JSON.parse(readFileSync(join(fixturesDir, 'cases', 'index.json'), 'utf8'));
export const readCase = (name: string): any => JSON.parse(readFileSync(join(fixturesDir, 'cases', `${name}.json`), 'utf8'));

/** Minimal independent safetensors reader for the reference files (all F32), so tests do not trust src/io. */
export function readReference(file: string): Record<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(join(fixturesDir, 'cases', file));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, v] of Object.entries<any>(header)) {
    if (k === '__metadata__') continue;
    if (v.dtype !== 'F32') throw new Error(`reference ${k} is ${v.dtype}`);
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const data = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(data.buffer).set(bytes);
    out[k] = { shape: v.shape, data };
  }
  return out;
}

/** Elementwise |got - want| <= atol + rtol*|want|; returns a message naming the worst element, or null. */
export function compareClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: { atol: number; rtol: number }, what = 'tensor'): string | null {
  if (got.length !== want.length) return `${what}: length ${got.length} != expected ${want.length}`;
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const excess = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) { worst = i; worstExcess = excess; }
  }
  if (worst < 0) return null;
  return `${what}: element ${worst} got ${got[worst]} want ${want[worst]} (tolerance atol ${tol.atol} rtol ${tol.rtol})`;
}

/** The kernels tests run on: GPT2WASM_TEST_KERNELS=reference runs the TypeScript reference kernels instead of wasm. */
export const testKernels: 'wasm' | 'reference' = (() => {
  const v = process.env.GPT2WASM_TEST_KERNELS ?? 'wasm';
  if (v !== 'wasm' && v !== 'reference') throw new Error(`GPT2WASM_TEST_KERNELS must be "wasm" or "reference", got ${JSON.stringify(v)}`);
  return v;
})();
/** CI sets GPT2WASM_REQUIRE_RUNTIMES=1: then a missing optional tool or runtime, or a check that reports "skip", fails. */
export const requireRuntimes = !!process.env.GPT2WASM_REQUIRE_RUNTIMES && process.env.GPT2WASM_REQUIRE_RUNTIMES !== '0';
/** Backend options for tests, per GPT2WASM_TEST_KERNELS. */
export const kernelOpts = (): { kernels: 'reference' | 'wasm' } => ({ kernels: testKernels });
