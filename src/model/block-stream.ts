// Quantizing while streaming: a matrix stored in blocks of 32 inputs (q8, q4) goes from the checkpoint's chunks
// into a staging area (in wasm memory, where the quantize_weights kernel reads it) and from there into its
// blocks. A block needs 32 consecutive inputs of one output, so the stream hands over whole groups of values:
//   linear [N, K] (rows are outputs):  a group is one block, 32 consecutive values of a row
//   conv1d [K, N] (rows are inputs):   a group is 32 source rows, inputs 32·kb … 32·kb+31 of every output → block kb
//                                      of each (the kernel reads them down the columns: no gather here)
// As many whole groups as the staging area holds go at a time; the values after the last whole group are moved
// to its start and wait for the next chunk. For GPT-2 124M a conv1d group is at most 32 × 3072 f32 = 384 KiB (c_fc).
// Matrices placed as f32 or f16 (the place_weights kernel) stream the same way with a span of 1 instead of 32: a
// group is one value (linear) or one source row (conv1d), which the kernel transposes; so do an F16 checkpoint's
// halves run as f16 (place_halves), staged as halves.
export const BLOCK = 32;

/** Receives `groups` whole groups, the tensor's groups first … first + groups - 1, staged at the start of the
 *  staging area; the area is reused afterwards. */
export type GroupWriter = (first: number, groups: number) => void;

/** The staging area's elements: f32 values, or halves moved as they are. */
type Staging = Float32Array | Uint16Array;

export class BlockStream<S extends Staging = Float32Array> {
  /** Values per group, and the whole groups the staging area holds. */
  readonly group: number;
  private readonly capacity: number;
  private filled = 0;
  private groups = 0;

  /** `conv1d`: the tensor is [K, N] (inputs × outputs, GPT-2's Conv1D), else [N, K]. A group spans `span` inputs (32,
   *  a block, or 1 for placing), of which K must be a multiple, and `staging` must hold one group (BlockStream.groupValues). */
  constructor(private readonly conv1d: boolean, private readonly N: number, private readonly K: number, private readonly staging: S,
    private readonly write: GroupWriter, private readonly span = BLOCK) {
    if (K % span !== 0) throw new RangeError(`BlockStream: K = ${K} is not a multiple of ${span}`);
    this.group = BlockStream.groupValues(conv1d, N, span);
    this.capacity = Math.floor(staging.length / this.group) * this.group;
    if (this.capacity === 0) throw new RangeError(`BlockStream: ${staging.length} staged values are less than one group of ${this.group}`);
  }

  /** Values of one group: `span` values of a row (linear), or `span` source rows of N (conv1d). */
  static groupValues(conv1d: boolean, N: number, span = BLOCK): number { return conv1d ? span * N : span; }

  /** Appends the tensor's next `count` values (file order): `fill(dst, from)` writes values from … from + dst.length - 1
   *  of them into dst (a part of the staging area). */
  push(count: number, fill: (dst: S, from: number) => void): void {
    for (let i = 0; i < count;) {
      const take = Math.min(count - i, this.capacity - this.filled);
      fill(this.staging.subarray(this.filled, this.filled + take) as S, i);
      this.filled += take;
      i += take;
      const groups = Math.floor(this.filled / this.group);
      // flush when the area is full or the chunk is used up: the kernel gets as many groups per call as fit
      if (groups > 0 && (this.filled === this.capacity || i === count)) {
        this.write(this.groups, groups);
        this.groups += groups;
        const done = groups * this.group;
        this.staging.copyWithin(0, done, this.filled);
        this.filled -= done;
      }
    }
  }

  /** Whether every block was written (the tensor ended on a whole group). */
  get complete(): boolean { return this.filled === 0 && this.groups === (this.conv1d ? this.K / this.span : (this.N * this.K) / this.span); }
}
