// The forward pass's workspace: one region of named parts (residual stream, layer-norm output, qkv, MLP, q8
// activations, head rows, attention scratch …) planned from what a call needs, so its size is known before the
// first token and can be planned ahead: planWorkspace(shape, need) is the byte layout.
import { Q8_BLOCK, attentionScratchBytes } from '../runtime/abi.js';
import type { Region } from '../runtime/memory.js';


/** What a call needs of the workspace. */
export interface WorkspaceNeed {
  /** Activation rows of one pass: the new tokens of all its segments. */
  rows: number;
  /** Tokens of one segment in one pass (the attention probabilities of one segment are [H, tokens, S]). */
  tokens: number;
  /** Keys one query may attend to: the largest cache capacity (or encoder length) in the call. */
  S: number;
  /** Rows of one pass that go through the head, and the head's outputs per row (vocab_size for the LM head). */
  headRows: number;
  headN: number;
  /** Cross-attention (a query buffer), attention probabilities returned, a head mask. */
  cross: boolean;
  probs: boolean;
  headMask: boolean;
}

/** What the plan depends on besides the need: the model's dimensions, its thread count, q8 weights. */
export interface WorkspaceShape { E: number; H: number; I: number; L: number; threads: number; q8: boolean }

export const WORKSPACE_PARTS = ['x', 'h', 'qkv', 'att', 'mlp', 'crossQ', 'ids', 'pos', 'scratch', 'probs', 'xq', 'xs', 'gather', 'headOut', 'headMask'] as const;
export type WorkspacePart = typeof WORKSPACE_PARTS[number];

/** The byte layout of a workspace: each part's offset from the start (-1 when the need has no such part). */
export interface WorkspacePlan { bytes: number; need: WorkspaceNeed; at: Record<WorkspacePart, number> }

/** A placed workspace: each part's address (0 when absent, which the kernels read as "none"). */
export type Workspace = Record<WorkspacePart, number> & { readonly plan: WorkspacePlan; readonly region: Region };

const PART_ALIGN = 64;

/** The workspace layout for `need`; sizes in comments, all f32 unless noted. */
export function planWorkspace(s: WorkspaceShape, need: WorkspaceNeed): WorkspacePlan {
  const { E, H, I, L } = s, D = E / H, R = need.rows, maxK = Math.max(E, I);
  let bytes = 0;
  const take = (size: number, when = true) => {
    if (!when) return -1;
    const at = bytes;
    bytes += Math.ceil(Math.max(size, 1) / PART_ALIGN) * PART_ALIGN;
    return at;
  };
  const at: Record<WorkspacePart, number> = {
    x: take(R * E * 4), // [R, E] the residual stream
    h: take(R * E * 4), // [R, E] a layer norm's output
    qkv: take(R * 3 * E * 4), // [R, 3E] q | k | v (encoder rows: k | v)
    att: take(R * E * 4), // [R, E] attention output
    mlp: take(R * I * 4), // [R, I] fc + activation
    crossQ: take(R * E * 4, need.cross), // [R, E] cross-attention queries
    ids: take(R * 4), // [R] i32 token ids
    pos: take(R * 4), // [R] i32 position ids
    scratch: take(s.threads * attentionScratchBytes(need.S, D)), // per thread: a score row and two D-vectors
    probs: take(H * need.tokens * need.S * 4, need.probs), // [H, tokens, S] one segment's attention probabilities
    xq: take(R * maxK, s.q8), // [R, max(E, I)] i8 quantised activations
    xs: take((R * maxK / Q8_BLOCK + 1) * 4, s.q8), // [R, max(E, I) / 32] their scales
    gather: take(need.headRows * E * 4, need.headRows > 0), // [headRows, E] the rows picked for the head
    headOut: take(need.headRows * need.headN * 4, need.headRows > 0), // [headRows, headN]
    headMask: take(L * H * 4, need.headMask), // [L, H]
  };
  return { bytes, need, at };
}

/** The smallest need covering both. */
export function unionNeed(a: WorkspaceNeed, b: WorkspaceNeed): WorkspaceNeed {
  return {
    rows: Math.max(a.rows, b.rows), tokens: Math.max(a.tokens, b.tokens), S: Math.max(a.S, b.S),
    headRows: Math.max(a.headRows, b.headRows), headN: Math.max(a.headN, b.headN),
    cross: a.cross || b.cross, probs: a.probs || b.probs, headMask: a.headMask || b.headMask,
  };
}

/** Whether a workspace planned for `a` serves a call needing `b`. */
export const covers = (a: WorkspaceNeed, b: WorkspaceNeed) => a.rows >= b.rows && a.tokens >= b.tokens && a.S >= b.S && a.headRows >= b.headRows
  && a.headN >= b.headN && (a.cross || !b.cross) && (a.probs || !b.probs) && (a.headMask || !b.headMask);

/** A workspace at most this big (or within the reserved need) is kept between calls; a bigger one is given back. */
export const WORKSPACE_RETAIN_BYTES = 32 << 20;
