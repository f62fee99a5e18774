// Tensor as in transformers.js: `new Tensor(type, data, dims)`, row-major, batch first.
import { InputError } from '../errors.js';
import { shown } from '../options.js';

export type TensorType = 'float32' | 'int64' | 'int32';
export type TensorData = Float32Array | BigInt64Array | Int32Array;

const CTORS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array } as const;

/** Tensors with at most this many rows get t[i] (a batch, a sequence of ids): one accessor per row and index sign. */
const MAX_INDEXED_ROWS = 4096;

export class Tensor {
  readonly type: TensorType;
  readonly data: TensorData;
  readonly dims: number[];
  /** Row i along the first dimension (a view of the data; negative from the end): output[0] of generate() is the
   *  first sequence. Tensors of more than 4096 rows have no index accessors. */
  readonly [index: number]: Tensor;

  constructor(type: TensorType, data: TensorData | ArrayLike<number> | ArrayLike<bigint>, dims: number[]) {
    if (!(type in CTORS)) throw new InputError(`unsupported tensor type '${type}' (expected float32, int64 or int32)`);
    for (const d of dims) if (!Number.isInteger(d) || d < 0) throw new InputError(`tensor dims must be non-negative integers, got [${dims}]`);
    const size = dims.reduce((a, b) => a * b, 1);
    let arr: TensorData;
    if (data instanceof CTORS[type]) arr = data as TensorData;
    else if (type === 'int64') arr = BigInt64Array.from(data as ArrayLike<number | bigint>, (v) => BigInt(v));
    else arr = (CTORS[type] as any).from(data as ArrayLike<number>, Number);
    if (arr.length !== size) throw new InputError(`tensor data has ${arr.length} elements but dims [${dims}] need ${size}`);
    this.type = type; this.data = arr; this.dims = dims.slice();
    // t[i] and t[-i] as transformers.js's Tensor (a Proxy there): here non-enumerable accessors, so a tensor stays a
    // plain object to structuredClone / postMessage (a Proxy cannot be cloned)
    const n = dims.length > 0 ? dims[0] : 0;
    if (n <= MAX_INDEXED_ROWS) {
      for (let i = 0; i < n; i++) {
        Object.defineProperty(this, i, { get: () => this.row(i), configurable: true });
        Object.defineProperty(this, -1 - i, { get: () => this.row(n - 1 - i), configurable: true });
      }
    }
  }

  /** Row i along the first dimension: a Tensor of dims.slice(1) viewing the same data. */
  private row(at: number): Tensor {
    const stride = this.dims.slice(1).reduce((a, b) => a * b, 1);
    return new Tensor(this.type, this.data.subarray(at * stride, (at + 1) * stride) as TensorData, this.dims.slice(1));
  }

  /** The one element of a tensor of size 1 (a bigint for int64, as transformers.js). */
  item(): number | bigint {
    if (this.data.length !== 1) throw new InputError(`item() needs a tensor of one element, got dims [${this.dims}]`);
    return this.data[0];
  }

  get size(): number { return this.data.length; }

  /** Nested arrays (numbers; int64 converted to number). */
  tolist(): any[] {
    const flat: number[] = Array.from(this.data as ArrayLike<number | bigint>, Number);
    const build = (offset: number, d: number): any => {
      if (d === this.dims.length) return flat[offset];
      const stride = this.dims.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.dims[d] }, (_, i) => build(offset + i * stride, d + 1));
    };
    return this.dims.length === 0 ? [flat[0]] : build(0, 0);
  }

  toString(): string { return `Tensor(${this.type}, [${this.dims}])`; }
}

/** Nested number arrays or a Tensor → dims + flat numbers, validating that the array is rectangular. */
export function flatten(input: unknown, what: string): { dims: number[]; data: Float64Array } {
  if (input instanceof Tensor) return { dims: input.dims.slice(), data: Float64Array.from(input.data as ArrayLike<number | bigint>, Number) };
  if (ArrayBuffer.isView(input) && !(input instanceof DataView)) {
    const a = input as unknown as ArrayLike<number | bigint>;
    return { dims: [a.length], data: Float64Array.from(a, Number) };
  }
  const dims: number[] = [];
  let probe: unknown = input;
  while (Array.isArray(probe)) { dims.push(probe.length); probe = probe[0]; }
  if (dims.length === 0) throw new InputError(`${what} must be a Tensor or a (nested) array of numbers, got ${typeof input}`);
  const size = dims.reduce((a, b) => a * b, 1);
  const data = new Float64Array(size);
  let n = 0;
  const walk = (x: unknown, d: number) => {
    if (d === dims.length) {
      const v = typeof x === 'bigint' ? Number(x) : x;
      if (typeof v !== 'number' || Number.isNaN(v)) throw new InputError(`${what} contains a non-number (${shown(x)})`);
      data[n++] = v; return;
    }
    if (!Array.isArray(x) || x.length !== dims[d]) throw new InputError(`${what} is ragged: expected length ${dims[d]} at depth ${d}, got ${Array.isArray(x) ? x.length : typeof x}`);
    for (const y of x) walk(y, d + 1);
  };
  walk(input, 0);
  return { dims, data };
}
