// timm's ViT building blocks (Mlp, Attention, Block) with timm's parameter names, as MAE and MoCo v3 use them.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { globalRng } from '../tensor/index.js';
import { Module, type Factory } from './module.js';
import { Dropout, DropPath, GELU, LayerNorm, Linear } from './layers.js';

// SELFSUP_FUSED_MLP=0 runs every Mlp through the composed ops (A/B benchmarks, bisecting)
let fusedMlp = process.env.SELFSUP_FUSED_MLP !== '0';

/**
 * Turns the fused MLP kernel (T.mlp: fc1 + GELU saving GELU's derivative, fc2's backward scaled by it) on or off
 * (off: linear, gelu, linear; tests compare the two paths); returns the old setting.
 */
export function setFusedMlp(on: boolean): boolean {
  const old = fusedMlp;
  fusedMlp = on;
  return old;
}

/** fc1 -> GELU -> dropout -> fc2 -> dropout (timm's Mlp). */
export class Mlp extends Module {
  constructor(inFeatures: number, hiddenFeatures: number, outFeatures = inFeatures, drop = 0, f: Factory = {}) {
    super();
    this.registerModule('fc1', new Linear(inFeatures, hiddenFeatures, true, f));
    this.registerModule('act', new GELU());
    this.registerModule('fc2', new Linear(hiddenFeatures, outFeatures, true, f));
    this.registerModule('drop', new Dropout(drop, f.rng ?? globalRng));
  }
  get fc1(): Linear { return this.child('fc1'); }
  get fc2(): Linear { return this.child('fc2'); }
  get drop(): Dropout { return this.child('drop'); }
  /** mlp(x), or residual + mlp(x) when a residual is given (fused into fc2 where the fused kernel runs). */
  forward(x: Tensor, residual: Tensor | null = null): Tensor {
    // the fused kernel has no dropout between GELU and fc2: it runs when that dropout is the identity
    if (fusedMlp && (this.drop.p === 0 || !this.drop.training)) {
      return T.mlp(x, this.fc1.weight, this.fc1.bias, this.fc2.weight, this.fc2.bias, residual); // [.., out]
    }
    const h = this.drop.forward(T.gelu(this.fc1.forward(x))); // [.., hidden]
    const y = this.drop.forward(this.fc2.forward(h)); // [.., out]
    return residual === null ? y : T.add(residual, y);
  }
}

export interface AttentionOptions {
  /** bias on the qkv projection (default true, as MAE and MoCo v3 pass it; timm's own default is false) */
  qkvBias?: boolean;
  attnDrop?: number;
  projDrop?: number;
}

/** Multi-head self-attention with one fused qkv Linear, as timm (and MAE's initialisation, which treats qkv as one Linear). */
export class Attention extends Module {
  readonly headDim: number;
  readonly scale: number;
  readonly attnDrop: number;
  private readonly rng: Rng;
  constructor(readonly dim: number, readonly numHeads: number, o: AttentionOptions = {}, f: Factory = {}) {
    super();
    if (dim % numHeads !== 0) throw new Error(`[Attention] dim ${dim} is not divisible by ${numHeads} heads`);
    this.headDim = dim / numHeads;
    this.scale = this.headDim ** -0.5;
    this.attnDrop = o.attnDrop ?? 0;
    this.rng = f.rng ?? globalRng;
    this.registerModule('qkv', new Linear(dim, dim * 3, o.qkvBias ?? true, f));
    this.registerModule('proj', new Linear(dim, dim, true, f));
    this.registerModule('proj_drop', new Dropout(o.projDrop ?? 0, this.rng));
  }
  get qkv(): Linear { return this.child('qkv'); }
  get proj(): Linear { return this.child('proj'); }

  /**
   * Whether forward runs the fused attention kernel (T.attention) where it applies (no attention dropout in
   * training); false runs the composed ops (split heads, scaledDotProductAttention, merge), the fused one's oracle.
   */
  fused = true;

  /** attention(x), or residual + attention(x) when a residual is given (added inside proj's matmul on the native backend). */
  forward(x: Tensor, residual: Tensor | null = null): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dim) {
      throw new Error(`[Attention] expected input [B, N, ${this.dim}], got [${x.shape.join(', ')}]`);
    }
    const [B, N, C] = x.shape as [number, number, number];
    const qkvOut = this.qkv.forward(x); // [B, N, 3C]
    const dropping = this.attnDrop > 0 && this.training;
    const merged = this.fused && !dropping
      ? T.attention(qkvOut, this.numHeads, this.scale) // [B, N, C]
      : T.reshape(T.permute(this.attendComposed(qkvOut, dropping), [0, 2, 1, 3]), [B, N, C]); // [B, N, C]
    const projDrop = this.child<Dropout>('proj_drop');
    if (residual !== null && (projDrop.p === 0 || !projDrop.training)) {
      return T.linear(merged, this.proj.weight, this.proj.bias, residual); // [B, N, C]
    }
    const y = projDrop.forward(this.proj.forward(merged)); // [B, N, C]
    return residual === null ? y : T.add(residual, y);
  }

  /** The composed attention: qkv [B, N, 3C] -> per-head outputs [B, H, N, hd]. */
  private attendComposed(qkvOut: Tensor, dropping: boolean): Tensor {
    const [B, N] = qkvOut.shape as [number, number, number];
    const H = this.numHeads;
    const hd = this.headDim;
    const qkv = T.permute(T.reshape(qkvOut, [B, N, 3, H, hd]), [2, 0, 3, 1, 4]); // [3, B, H, N, hd]
    const [q, k, v] = [0, 1, 2].map((i) => T.reshape(T.slice(qkv, 0, i, i + 1), [B, H, N, hd])) as [Tensor, Tensor, Tensor];
    if (!dropping) return T.scaledDotProductAttention(q, k, v, { scale: this.scale }); // [B, H, N, hd]
    const attn = T.softmax(T.mulScalar(T.matmul(q, k, { transB: true }), this.scale), -1); // [B, H, N, N]
    return T.matmul(T.dropout(attn, this.attnDrop, true, this.rng), v); // [B, H, N, hd]
  }
}

export interface BlockOptions extends AttentionOptions {
  mlpRatio?: number;
  /** stochastic depth rate of this block */
  dropPath?: number;
  drop?: number;
  /** LayerNorm eps: 1e-6 as every ViT in timm, MAE and MoCo v3 builds it */
  eps?: number;
}

/** timm's pre-norm transformer block: x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))). */
export class Block extends Module {
  constructor(readonly dim: number, numHeads: number, o: BlockOptions = {}, f: Factory = {}) {
    super();
    const eps = o.eps ?? 1e-6;
    this.registerModule('norm1', new LayerNorm(dim, eps, true, f));
    this.registerModule('attn', new Attention(dim, numHeads, {
      qkvBias: o.qkvBias ?? true, attnDrop: o.attnDrop ?? 0, projDrop: o.drop ?? o.projDrop ?? 0,
    }, f));
    this.registerModule('drop_path', new DropPath(o.dropPath ?? 0, f.rng ?? globalRng));
    this.registerModule('norm2', new LayerNorm(dim, eps, true, f));
    this.registerModule('mlp', new Mlp(dim, Math.floor(dim * (o.mlpRatio ?? 4)), dim, o.drop ?? 0, f));
  }
  get norm1(): LayerNorm { return this.child('norm1'); }
  get attn(): Attention { return this.child('attn'); }
  get dropPath(): DropPath { return this.child('drop_path'); }
  get norm2(): LayerNorm { return this.child('norm2'); }
  get mlp(): Mlp { return this.child('mlp'); }
  forward(x: Tensor): Tensor {
    // without stochastic depth the skip connections go into proj and the MLP, which may fuse them
    if (this.dropPath.p === 0 || !this.dropPath.training) {
      const h = this.attn.forward(this.norm1.forward(x), x); // [B, N, D]
      return this.mlp.forward(this.norm2.forward(h), h); // [B, N, D]
    }
    const h = T.add(x, this.dropPath.forward(this.attn.forward(this.norm1.forward(x)))); // [B, N, D]
    return T.add(h, this.dropPath.forward(this.mlp.forward(this.norm2.forward(h)))); // [B, N, D]
  }
}
