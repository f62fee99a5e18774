// Relaxed SIMD for the command line on Node 20. V8 ships relaxed SIMD from 11.4 (Node 22, Chrome 114); Node 20's
// V8 11.3 has it behind --experimental-wasm-relaxed-simd, so there the kernels would run the plain SIMD build. The
// CLI is its own process, so it turns the flag on before any wasm is compiled (a library must not change the
// flags of its host's process: library users pass the flag to node themselves). The relaxed builds use only the
// fused multiply-add and the i16 relaxed dot, which each instance checks on fixed patterns before its Q4_0 tiles
// use it (Node 20's accumulating dot is wrong: the kernels do not use it); npm test passes on Node 20 with the flag.
// Measured on Node 20.20, GPT-2-124M shape, 1 thread, ctx 128 decode: fp16 77-78 → 86-88 tok/s, q4 150-154 →
// 170-182; fp32 and q8 unchanged. GPT2WASM_RELAXED_SIMD=0 keeps the plain build.

/** Turns on V8's relaxed SIMD flag on a Node whose V8 has it off by default; true if it did. */
export async function enableRelaxedSimd(env: Record<string, string | undefined> = process.env): Promise<boolean> {
  if (env.GPT2WASM_RELAXED_SIMD === '0' || (process.versions as any).bun || typeof (globalThis as any).Deno !== 'undefined') return false;
  const [major, minor] = (process.versions.v8 ?? '').split('.').map(Number);
  if (!(major === 11 && minor < 4)) return false; // on by default from 11.4; Node 20 is the only supported Node before it
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return true;
}
