// What the forward driver needs of a model, owned by the model: config, kernels and memory, weights, the MLP
// activation, the matmul dispatch by weight format, and the one workspace (grown to the calls' needs, kept
// within WORKSPACE_RETAIN_BYTES or a reserved need, released on dispose).
import { activationId, type GPT2Config } from '../io/config.js';
import { DT_F16, DT_F32, DT_Q4, DT_Q8, wexpBits } from '../runtime/abi.js';
import { RuntimeError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import { disposedError } from './kv-cache.js';
import type { Matrix, ModelWeights } from './weights.js';
import { WORKSPACE_PARTS, WORKSPACE_RETAIN_BYTES, covers, planWorkspace, unionNeed, type Workspace, type WorkspaceNeed, type WorkspaceShape } from './workspace.js';

export class ModelState {
  readonly E: number; readonly H: number; readonly D: number; readonly I: number; readonly L: number; readonly V: number;
  /** The MLP activation's kernel id. */
  readonly act: number;
  readonly shape: WorkspaceShape;
  private held: Workspace | null = null;
  private reserved: WorkspaceNeed | null = null;
  private _disposed = false;

  constructor(readonly cfg: GPT2Config, readonly backend: Backend, readonly weights: ModelWeights) {
    this.E = cfg.n_embd; this.H = cfg.n_head; this.D = cfg.n_embd / cfg.n_head; this.I = cfg.n_inner; this.L = cfg.n_layer; this.V = cfg.vocab_size;
    this.act = activationId(cfg);
    const W = weights;
    // quantised weights (any format but f32/f16) take quantised activations: the workspace gets (xq, xs)
    const q8 = [W.wte, W.lm_head, W.classifier?.w, ...W.layers.flatMap((l) => [l.qkv, l.attn_proj, l.fc, l.mlp_proj, l.cross?.q, l.cross?.kv, l.cross?.proj])]
      .some((w) => w && w.dt !== DT_F32 && w.dt !== DT_F16);
    this.shape = { E: this.E, H: this.H, I: this.I, L: this.L, threads: backend.threads, q8 };
  }

  get disposed(): boolean { return this._disposed; }
  check(): void { if (this._disposed) throw disposedError('this model'); }

  /** The one allocation site of workspaces: the held workspace when it covers `need`, else one planned for both. */
  workspace(need: WorkspaceNeed): Workspace {
    this.check();
    if (this.held && covers(this.held.plan.need, need)) return this.held;
    let want = need;
    if (this.held) want = unionNeed(this.held.plan.need, want);
    if (this.reserved) want = unionNeed(this.reserved, want);
    this.releaseWorkspace();
    const plan = planWorkspace(this.shape, want);
    const region = this.backend.arena.alloc('workspace', plan.bytes);
    const ws = { plan, region } as Workspace;
    for (const p of WORKSPACE_PARTS) ws[p] = plan.at[p] < 0 ? 0 : region.ptr + plan.at[p];
    this.held = ws;
    return ws;
  }

  /** After a call: gives back a workspace grown past the reserved need and WORKSPACE_RETAIN_BYTES. */
  endCall(): void {
    const ws = this.held;
    if (ws && ws.plan.bytes > WORKSPACE_RETAIN_BYTES && !(this.reserved && covers(this.reserved, ws.plan.need))) this.releaseWorkspace();
  }

  /** Plans and places the workspace for calls up to `need` now, and keeps it: such calls then allocate nothing. Returns its bytes. */
  reserve(need: WorkspaceNeed): number {
    this.reserved = this.reserved ? unionNeed(this.reserved, need) : need;
    return this.workspace(this.reserved).plan.bytes;
  }

  /** Gives the held workspace back to the arena now (the next call plans and places one again). */
  releaseWorkspace(): void {
    if (this.held) this.backend.arena.release(this.held.region);
    this.held = null;
  }

  dispose(): void {
    if (this._disposed) return;
    this.releaseWorkspace();
    this._disposed = true;
  }
}

/** y[M,N] = act(x[M,K] · wᵀ + bias) (or y += with FLAG_ACCUMULATE), by the kernel for w's storage; q8 first quantises x. */
export function matmul(st: ModelState, ws: Workspace, x: number, w: Matrix, bias: number, y: number, M: number, flags: number): void {
  const k = st.backend.k;
  flags |= wexpBits(w.wexp); // how its halves are stored (weights.ts applyWexp)
  if (w.dt === DT_F32) k.matmul_f32(x, w.ptr, bias, y, M, w.K, w.N, flags);
  else if (w.dt === DT_F16) k.matmul_f16(x, w.ptr, bias, y, M, w.K, w.N, flags);
  else if (w.dt === DT_Q8) { k.quantize_q8(x, ws.xq, ws.xs, M, w.K); k.matmul_q8(ws.xq, ws.xs, w.ptr, bias, y, M, w.K, w.N, flags); }
  else if (w.dt === DT_Q4) { k.quantize_q8(x, ws.xq, ws.xs, M, w.K); k.matmul_q4(ws.xq, ws.xs, w.ptr, bias, y, M, w.K, w.N, flags); }
  else throw new RuntimeError(`matmul: unknown weight format ${w.dt}`);
}
