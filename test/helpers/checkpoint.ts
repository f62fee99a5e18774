// Random GPT-2 checkpoints for property tests over shapes the fixtures do not cover: the writer the benchmarks
// use too (bench/util/checkpoint.ts), with the test value scales.
export { randomCheckpoint, writeSafetensors, writeRandomGPT2, GPT2_SHAPES, type TinyShape } from '../../bench/util/checkpoint.js';

/** The whole of one tensor's bytes, read through chunks() (the reader keeps no whole-tensor read of its own). */
export async function tensorBytes(
  reader: { get(name: string): { byteLength: number }; chunks(name: string): AsyncIterable<{ offset: number; bytes: Uint8Array }> },
  name: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(reader.get(name).byteLength);
  for await (const { offset, bytes } of reader.chunks(name)) out.set(bytes, offset);
  return out;
}
