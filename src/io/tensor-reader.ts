// What the weight loader (src/model/weights.ts) needs from a tensor container. safetensors
// (src/io/safetensors.ts) and GGUF (src/io/gguf-model.ts) provide it; it lives in io so that the containers
// depend on nothing of the model.
import type { TensorChunk } from './safetensors.js';

/** The run dtype of weight matrices: f32, f16, or the Q8_0 / Q4_0 blocks of src/runtime/quant.ts (q8 / q4). */
export type DType = 'fp32' | 'fp16' | 'q8' | 'q4';

/** Stored block formats that are byte for byte a run dtype's blocks: placed as they are, never converted. */
export const NATIVE_BLOCKS: Readonly<Record<string, DType>> = { Q8_0: 'q8', Q4_0: 'q4' };

export interface TensorInfoLike {
  name: string; dtype: string; shape: number[]; byteOffset: number; byteLength: number; file?: string;
  /** Stored as ggml does (GGUF): a Conv1D weight is already [out, in], so it is not transposed. */
  rowMajorNK?: boolean;
  /**
   * A quantized tensor (GGUF): its ggml type name and stored size. `dtype` and `byteLength` then describe the
   * f32 values `chunks()` decodes it to; `blockChunks()` gives the stored blocks of a NATIVE_BLOCKS type.
   */
  quantized?: { type: string; byteLength: number };
}

export interface TensorReader {
  tensors: Map<string, TensorInfoLike>;
  /** The run dtype for dtype 'auto' when the container knows better than its storage dtypes (quantized GGUF). */
  preferredDtype?: DType;
  /** The tensor's values in its `dtype`, in chunks of at most chunkBytes (a quantized tensor dequantized). */
  chunks(name: string, chunkBytes?: number): AsyncIterable<TensorChunk>;
  /** The stored bytes of a tensor whose `quantized.type` is in NATIVE_BLOCKS: whole blocks, at most chunkBytes a chunk. */
  blockChunks?(name: string, chunkBytes?: number): AsyncIterable<TensorChunk>;
}
