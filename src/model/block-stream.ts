// Quantizing while streaming: a matrix stored in blocks of 32 inputs (q8, q4) goes from the checkpoint's chunks
// straight into its blocks. A block needs 32 consecutive inputs of one output, so only a group of source rows
// is held at a time, never the matrix:
//   linear [N, K] (rows are outputs):  one source row, the K inputs of output n → its K/32 blocks
//   conv1d [K, N] (rows are inputs):   32 source rows, inputs 32·kb … 32·kb+31 of every output → block kb of each
// For GPT-2 124M that is at most 32 × 3072 f32 = 384 KiB (c_fc), against 147 MiB for an f32 copy of wte.
export const BLOCK = 32;

/** Receives `values` (32 · blocks of them) for output n, starting at block kb; `values` is reused afterwards. */
export type BlockWriter = (n: number, kb: number, values: Float32Array) => void;

export class BlockStream {
  private readonly group: Float32Array;
  private readonly gathered = new Float32Array(BLOCK);
  private filled = 0;
  private groups = 0;

  /** `conv1d`: the tensor is [K, N] (inputs × outputs, GPT-2's Conv1D), else [N, K]. K must be a multiple of 32. */
  constructor(private readonly conv1d: boolean, private readonly N: number, private readonly K: number, private readonly write: BlockWriter) {
    if (K % BLOCK !== 0) throw new RangeError(`BlockStream: K = ${K} is not a multiple of ${BLOCK}`);
    this.group = new Float32Array(conv1d ? BLOCK * N : K);
  }

  /** Appends the tensor's next `count` values (file order) from `values`. */
  push(values: Float32Array, count: number): void {
    for (let i = 0; i < count;) {
      const take = Math.min(count - i, this.group.length - this.filled);
      this.group.set(values.subarray(i, i + take), this.filled);
      this.filled += take;
      i += take;
      if (this.filled === this.group.length) this.flush();
    }
  }

  /** Whether every block was written (the tensor ended on a whole group). */
  get complete(): boolean { return this.filled === 0 && this.groups === (this.conv1d ? this.K / BLOCK : this.N); }

  private flush(): void {
    const g = this.groups++;
    this.filled = 0;
    if (!this.conv1d) { this.write(g, 0, this.group); return; } // row g: output g, all its blocks
    const { N, group, gathered } = this;
    for (let n = 0; n < N; n++) { // block g of output n: column n of the 32 staged input rows
      for (let j = 0; j < BLOCK; j++) gathered[j] = group[j * N + n];
      this.write(n, g, gathered);
    }
  }
}
