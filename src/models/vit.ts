// Vision Transformer as timm builds it and MAE's models_vit.py uses it (cls token or global pooling with fc_norm),
// with MAE's initialisation: fixed 2-D sine-cosine position embeddings, xavier-uniform Linear and patch embedding.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { globalRng } from '../tensor/index.js';
import { Module, factoryTensor, factoryValues, type Factory, type Layer } from '../nn/module.js';
import { Conv2d, Identity, LayerNorm, Linear, Sequential } from '../nn/layers.js';
import { Block } from '../nn/transformer.js';
import { get2dSincosPosEmbed, ones_, truncNormal_, xavierUniform_, zeros_ } from '../nn/init.js';

/** Non-overlapping patches to tokens: a conv with kernel = stride = patch size, then [B, L, D]. */
export class PatchEmbed extends Module {
  readonly gridSize: number;
  readonly numPatches: number;
  constructor(readonly imgSize: number, readonly patchSize: number, inChans: number, readonly embedDim: number, f: Factory = {}) {
    super();
    if (imgSize % patchSize !== 0) throw new Error(`[PatchEmbed] image size ${imgSize} is not a multiple of patch size ${patchSize}`);
    this.gridSize = imgSize / patchSize;
    this.numPatches = this.gridSize ** 2;
    this.registerModule('proj', new Conv2d(inChans, embedDim, patchSize, { stride: patchSize }, f));
  }
  get proj(): Conv2d { return this.child('proj'); }
  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[2] !== this.imgSize || x.shape[3] !== this.imgSize) {
      throw new Error(`[PatchEmbed] expected images [B, C, ${this.imgSize}, ${this.imgSize}], got [${x.shape.join(', ')}]`);
    }
    const B = x.shape[0]!;
    const y = this.proj.forward(x); // [B, D, h, w]
    return T.permute(T.reshape(y, [B, this.embedDim, this.numPatches]), [0, 2, 1]); // [B, L, D]
  }
}

export interface VitConfig {
  imgSize?: number;
  patchSize?: number;
  inChans?: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio?: number;
  qkvBias?: boolean;
  /** classifier outputs; 0 makes head an Identity */
  numClasses?: number;
  /** MAE's global_pool: mean of the patch tokens through fc_norm (no final norm) instead of the normed cls token */
  globalPool?: boolean;
  /** stochastic depth, linearly increasing from 0 to this over the blocks (timm) */
  dropPathRate?: number;
  dropRate?: number;
  /** 'sincos': fixed 2-D sine-cosine, frozen (MAE pre-training); 'learned': trunc-normal(0.02), trainable (timm) */
  posEmbed?: 'sincos' | 'learned';
}

export class VisionTransformer extends Module {
  readonly config: Required<VitConfig>;
  readonly numFeatures: number;
  constructor(cfg: VitConfig, f: Factory = {}) {
    super();
    this.config = {
      imgSize: 224, patchSize: 16, inChans: 3, mlpRatio: 4, qkvBias: true, numClasses: 0, globalPool: false,
      dropPathRate: 0, dropRate: 0, posEmbed: 'sincos', ...cfg,
    };
    const c = this.config;
    const D = c.embedDim;
    this.numFeatures = D;
    const pe = this.registerModule('patch_embed', new PatchEmbed(c.imgSize, c.patchSize, c.inChans, D, f));
    this.registerParameter('cls_token', factoryTensor([1, 1, D], f));
    const L = pe.numPatches;
    this.registerParameter('pos_embed', c.posEmbed === 'sincos'
      ? factoryValues([1, L + 1, D], f, get2dSincosPosEmbed(D, pe.gridSize, true)) : factoryTensor([1, L + 1, D], f));
    if (c.posEmbed === 'sincos') this.posEmbed.requiresGrad = false;
    const blocks = new Sequential();
    for (let i = 0; i < c.depth; i++) {
      const dpr = c.depth > 1 ? (c.dropPathRate * i) / (c.depth - 1) : 0; // torch.linspace(0, rate, depth)
      blocks.append(new Block(D, c.numHeads, { mlpRatio: c.mlpRatio, qkvBias: c.qkvBias, dropPath: dpr, drop: c.dropRate, eps: 1e-6 }, f));
    }
    this.registerModule('blocks', blocks);
    // timm's VisionTransformer; MAE's global_pool variant deletes `norm` and adds `fc_norm`
    this.registerModule(c.globalPool ? 'fc_norm' : 'norm', new LayerNorm(D, 1e-6, true, f));
    this.registerModule('head', c.numClasses > 0 ? new Linear(D, c.numClasses, true, f) : new Identity());
    if (f.skipInit !== true) this.initWeights(f);
  }

  /** MAE's initialize_weights: xavier-uniform patch embedding (as [D, C*p*p]) and Linear, trunc-normal(.02) cls token. */
  private initWeights(f: Factory): void {
    const rng = f.rng ?? globalRng;
    const w = this.patchEmbed.proj.weight;
    xavierUniform_(w, 1, rng, [w.shape[0]!, w.size / w.shape[0]!]);
    truncNormal_(this.clsToken, 0.02, rng);
    if (this.config.posEmbed === 'learned') truncNormal_(this.posEmbed, 0.02, rng);
    for (const m of this.modules()) {
      if (m instanceof Linear) {
        xavierUniform_(m.weight, 1, rng);
        if (m.bias !== null) zeros_(m.bias);
      } else if (m instanceof LayerNorm) {
        if (m.weight !== null) ones_(m.weight);
        if (m.bias !== null) zeros_(m.bias);
      }
    }
  }

  get patchEmbed(): PatchEmbed { return this.child('patch_embed'); }
  get clsToken(): Tensor { return this.param('cls_token'); }
  get posEmbed(): Tensor { return this.param('pos_embed'); }
  get blocks(): Sequential { return this.child('blocks'); }
  /** the final norm (cls-token pooling) or fc_norm (global pooling) */
  get norm(): LayerNorm { return this.child(this.config.globalPool ? 'fc_norm' : 'norm'); }
  get head(): Layer { return this.child<Layer>('head'); }
  set head(m: Layer) { this.registerModule('head', m); }

  /** Patch tokens with the cls token prepended and position embeddings added: [B, 1+L, D]. */
  embed(x: Tensor): Tensor {
    const B = x.shape[0]!;
    const tokens = this.patchEmbed.forward(x); // [B, L, D]
    const cls = T.expand(this.clsToken, [B, 1, this.config.embedDim]); // [B, 1, D]
    return T.add(T.concat([cls, tokens], 1), this.posEmbed); // [B, 1+L, D]
  }

  /** Pooled features before the head: [B, D]. */
  forwardFeatures(x: Tensor): Tensor {
    const h = this.blocks.forward(this.embed(x)); // [B, 1+L, D]
    const [B, N, D] = h.shape as [number, number, number];
    if (this.config.globalPool) {
      const patches = T.slice(h, 1, 1, N); // [B, L, D]
      return this.norm.forward(T.mean(patches, 1)); // [B, D]
    }
    return T.reshape(T.slice(this.norm.forward(h), 1, 0, 1), [B, D]); // [B, D]
  }

  forward(x: Tensor): Tensor {
    return this.head.forward(this.forwardFeatures(x)); // [B, numClasses]
  }
}

export type VitOptions = Partial<Omit<VitConfig, 'embedDim' | 'numHeads'>>;

/** ViT-Tiny: dim 192, 3 heads, depth 12 (patch 16 on 224 unless told; vitTiny({ patchSize: 4, imgSize: 32 }) for CIFAR). */
export function vitTiny(o: VitOptions = {}, f: Factory = {}): VisionTransformer {
  return new VisionTransformer({ depth: 12, ...o, embedDim: 192, numHeads: 3 }, f);
}
/** ViT-Small: dim 384, 6 heads, depth 12. */
export function vitSmall(o: VitOptions = {}, f: Factory = {}): VisionTransformer {
  return new VisionTransformer({ depth: 12, ...o, embedDim: 384, numHeads: 6 }, f);
}
/** ViT-Base: dim 768, 12 heads, depth 12. */
export function vitBase(o: VitOptions = {}, f: Factory = {}): VisionTransformer {
  return new VisionTransformer({ depth: 12, ...o, embedDim: 768, numHeads: 12 }, f);
}
/** ViT-Tiny with 4x4 patches on 32x32 images (64 tokens + cls), the CIFAR setting. */
export function vitTinyPatch4(o: VitOptions = {}, f: Factory = {}): VisionTransformer {
  return vitTiny({ imgSize: 32, patchSize: 4, ...o }, f);
}

/** The encoder dimensions an arch name gives a ViT. */
export interface VitArch { embedDim: number; depth: number; numHeads: number; patchSize: number }

const VIT_SIZES: Record<string, Omit<VitArch, 'patchSize'> & { patchSize?: number }> = {
  tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  small: { embedDim: 384, depth: 12, numHeads: 6 },
  base: { embedDim: 768, depth: 12, numHeads: 12 },
  large: { embedDim: 1024, depth: 24, numHeads: 16 },
  huge: { embedDim: 1280, depth: 32, numHeads: 16, patchSize: 14 },
};

/**
 * Parses a ViT arch name: vit-tiny | vit-small | vit-base | vit-large | vit-huge (timm's widths; patch 16, huge 14),
 * optionally with '-patchP' (vit-tiny-patch4), or a custom 'vit-d{dim}-depth{n}-heads{h}[-patchP]'. Null when arch
 * does not name a ViT.
 */
export function vitArch(arch: string): VitArch | null {
  const named = /^vit-(tiny|small|base|large|huge)(?:-patch(\d+))?$/.exec(arch);
  if (named !== null) {
    const s = VIT_SIZES[named[1]!]!;
    return { embedDim: s.embedDim, depth: s.depth, numHeads: s.numHeads, patchSize: named[2] !== undefined ? Number(named[2]) : (s.patchSize ?? 16) };
  }
  const custom = /^vit-d(\d+)-depth(\d+)-heads(\d+)(?:-patch(\d+))?$/.exec(arch);
  if (custom !== null) {
    const [embedDim, depth, numHeads] = [Number(custom[1]), Number(custom[2]), Number(custom[3])];
    if (embedDim % numHeads !== 0) throw new Error(`[vit] arch '${arch}': dim ${embedDim} is not divisible by ${numHeads} heads`);
    return { embedDim, depth, numHeads, patchSize: custom[4] !== undefined ? Number(custom[4]) : 16 };
  }
  return null;
}
