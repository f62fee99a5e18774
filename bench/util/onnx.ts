// A minimal ONNX ModelProto writer (protobuf wire format by hand), enough to build single-op graphs such as
// MatMul with a constant weight, so the onnxruntime-web comparison needs no model file and no download.
// Field numbers follow onnx/onnx.proto (IR version 8, default-domain opset 17).

/** Growable byte buffer with the protobuf primitives we need. */
class Pb {
  private buf = new Uint8Array(256);
  private n = 0;
  private room(extra: number) {
    if (this.n + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.n + extra) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  /** Unsigned varint of a non-negative integer up to 2^53. */
  varint(v: number): this {
    if (!(v >= 0) || !Number.isSafeInteger(v)) throw new Error(`protobuf varint out of range: ${v}`);
    this.room(10);
    while (v >= 0x80) { this.buf[this.n++] = (v % 0x80) | 0x80; v = Math.floor(v / 0x80); }
    this.buf[this.n++] = v;
    return this;
  }
  /** A negative int64 as protobuf writes it: ten bytes of two's complement. */
  private negVarint(v: number): this {
    let x = BigInt.asUintN(64, BigInt(v));
    this.room(10);
    while (x >= 0x80n) { this.buf[this.n++] = Number(x & 0x7fn) | 0x80; x >>= 7n; }
    this.buf[this.n++] = Number(x);
    return this;
  }
  private tag(field: number, wire: number) { return this.varint(field * 8 + wire); }
  int(field: number, v: number): this { this.tag(field, 0); return v < 0 ? this.negVarint(v) : this.varint(v); }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    return this;
  }
  str(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field: number, m: Pb): this { return this.bytes(field, m.finish()); }
  f32(field: number, v: number): this {
    this.tag(field, 5);
    this.room(4);
    new DataView(this.buf.buffer).setFloat32(this.n, v, true);
    this.n += 4;
    return this;
  }
  finish(): Uint8Array { return this.buf.slice(0, this.n); }
}

/** onnx.TensorProto.DataType values. */
export const ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_INT64 = 7, ONNX_FLOAT16 = 10;

export interface OnnxTensor { name: string; type: number; dims: number[]; raw: Uint8Array }
export interface OnnxValue { name: string; type: number; dims: (number | string)[] }
export interface OnnxNode {
  op: string; inputs: string[]; outputs: string[]; name?: string; domain?: string;
  attrs?: Record<string, { i: number } | { f: number } | { ints: number[] }>;
}
export interface OnnxGraph {
  nodes: OnnxNode[]; initializers: OnnxTensor[]; inputs: OnnxValue[]; outputs: OnnxValue[];
  /** Extra opset domains, e.g. { 'com.microsoft': 1 }. */
  opsets?: Record<string, number>;
}

function valueInfo(v: OnnxValue): Pb {
  const shape = new Pb();
  for (const d of v.dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  const tensorType = new Pb().int(1, v.type).msg(2, shape);
  return new Pb().str(1, v.name).msg(2, new Pb().msg(1, tensorType));
}

function tensor(t: OnnxTensor): Pb {
  const p = new Pb();
  for (const d of t.dims) p.int(1, d);
  return p.int(2, t.type).str(8, t.name).bytes(9, t.raw);
}

function node(n: OnnxNode, i: number): Pb {
  const p = new Pb();
  for (const s of n.inputs) p.str(1, s);
  for (const s of n.outputs) p.str(2, s);
  p.str(3, n.name ?? `${n.op}_${i}`).str(4, n.op);
  for (const [name, a] of Object.entries(n.attrs ?? {})) {
    const at = new Pb().str(1, name);
    if ('i' in a) at.int(3, a.i).int(20, 2); // AttributeType INT
    else if ('f' in a) at.f32(2, a.f).int(20, 1); // FLOAT
    else { for (const v of a.ints) at.int(8, v); at.int(20, 7); } // INTS
    p.msg(5, at);
  }
  if (n.domain) p.str(7, n.domain);
  return p;
}

/** Serialises a graph as an ONNX model (bytes for InferenceSession.create). */
export function encodeOnnxModel(g: OnnxGraph): Uint8Array {
  const graph = new Pb();
  g.nodes.forEach((n, i) => graph.msg(1, node(n, i)));
  graph.str(2, 'bench');
  for (const t of g.initializers) graph.msg(5, tensor(t));
  for (const v of g.inputs) graph.msg(11, valueInfo(v));
  for (const v of g.outputs) graph.msg(12, valueInfo(v));
  const model = new Pb().int(1, 8).str(2, 'gpt2-wasm-bench');
  model.msg(8, new Pb().str(1, '').int(2, 17));
  for (const [domain, version] of Object.entries(g.opsets ?? {})) model.msg(8, new Pb().str(1, domain).int(2, version));
  model.msg(7, graph);
  return model.finish();
}

/** Several independent MatMul nodes y_c = x·W_c in one graph (outputs y0, y1, ...), so one session.run amortises
 *  the call overhead over several kernel runs. Pass one weight to share it (cache-resident), or distinct ones
 *  (streamed from memory). Each W is [K, N] f32 (ONNX MatMul layout). */
export function matmulModel(M: number, K: number, N: number, weights: Float32Array[], copies = weights.length): Uint8Array {
  const nodes: OnnxNode[] = [];
  const outputs: OnnxValue[] = [];
  for (let c = 0; c < copies; c++) {
    nodes.push({ op: 'MatMul', inputs: ['x', `w${c % weights.length}`], outputs: [`y${c}`] });
    outputs.push({ name: `y${c}`, type: ONNX_FLOAT, dims: [M, N] });
  }
  return encodeOnnxModel({
    nodes, outputs,
    initializers: weights.map((w, i) => ({ name: `w${i}`, type: ONNX_FLOAT, dims: [K, N], raw: new Uint8Array(w.buffer, w.byteOffset, w.byteLength) })),
    inputs: [{ name: 'x', type: ONNX_FLOAT, dims: [M, K] }],
  });
}

/** The int8 path transformers.js q8 exports use: DynamicQuantizeMatMul (com.microsoft) — activations
 *  quantised to uint8 per call, weights int8 [K, N] with one scale per output column. */
export function dynamicQuantMatmulModel(M: number, K: number, N: number, weights: { q: Int8Array; scales: Float32Array }[], copies = weights.length): Uint8Array {
  const nodes: OnnxNode[] = [];
  const outputs: OnnxValue[] = [];
  for (let c = 0; c < copies; c++) {
    const w = c % weights.length;
    nodes.push({ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: ['x', `wq${w}`, `ws${w}`], outputs: [`y${c}`] });
    outputs.push({ name: `y${c}`, type: ONNX_FLOAT, dims: [M, N] });
  }
  return encodeOnnxModel({
    nodes, outputs, opsets: { 'com.microsoft': 1 },
    initializers: weights.flatMap((w, i) => [
      { name: `wq${i}`, type: ONNX_INT8, dims: [K, N], raw: new Uint8Array(w.q.buffer, w.q.byteOffset, w.q.byteLength) },
      { name: `ws${i}`, type: ONNX_FLOAT, dims: [N], raw: new Uint8Array(w.scales.buffer, w.scales.byteOffset, w.scales.byteLength) },
    ]),
    inputs: [{ name: 'x', type: ONNX_FLOAT, dims: [M, K] }],
  });
}
