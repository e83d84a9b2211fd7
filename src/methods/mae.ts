// MAE (facebookresearch/mae, models_mae.py): a ViT encoder sees only the visible 25% of patches; a light decoder
// with mask tokens reconstructs the pixels; the loss is taken on the masked patches only.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { Module } from '../nn/module.js';
import { Conv2d, LayerNorm, Linear, Sequential } from '../nn/layers.js';
import { Block } from '../nn/transformer.js';
import { get2dSincosPosEmbed, normal_, xavierUniform_ } from '../nn/init.js';
import { PatchEmbed, VisionTransformer, vitArch } from '../models/vit.js';
import { weightDecayGroups } from '../optim/groups.js';
import type { BasicGroupInit } from '../optim/optimizer.js';
import type { LinearRecipe } from '../eval/linear.js';
import type { Method, MethodSpec, TrainingStepOutput, FrozenBackbone, SampleContext, StepContext } from './method.js';
import type { KeyMap } from '../io/safetensors.js';
import { reconstruct as reconstructImages, type Reconstruction } from '../eval/reconstruct.js';
import { perSampleUniform } from '../tensor/rng.js';

export interface MaeConfig {
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  decoderEmbedDim: number;
  decoderDepth: number;
  decoderNumHeads: number;
  mlpRatio: number;
  /** normalise each target patch by its own mean and std (the paper's default for its best results) */
  normPixLoss: boolean;
  maskRatio: number;
}

/** MAE's own settings (the config section cfg.mae); the encoder's width, depth, heads and patch come from cfg.arch. */
export interface MaeMethodConfig {
  decoderEmbedDim: number;
  decoderDepth: number;
  decoderNumHeads: number;
  /** fraction of the patches removed */
  maskRatio: number;
  /** normalise each target patch by its own mean and std (the paper's default for its best results) */
  normPixLoss: boolean;
}

/** models_mae.py's decoder (512-d, 8 blocks, 16 heads), mask ratio 0.75, norm_pix_loss (PRETRAIN.md). */
export function maeConfig(): MaeMethodConfig {
  return { decoderEmbedDim: 512, decoderDepth: 8, decoderNumHeads: 16, maskRatio: 0.75, normPixLoss: true };
}
/** The CIFAR-sized decoder: 128-d, 4 blocks, 4 heads. */
export function maeCifarConfig(): MaeMethodConfig {
  return { ...maeConfig(), decoderEmbedDim: 128, decoderDepth: 4, decoderNumHeads: 4 };
}

/** The model config for an encoder arch ('vit-base', 'vit-tiny-patch4', ...) at imgSize, with MAE's settings. */
export function maeModelConfig(arch: string, imgSize: number, m: MaeMethodConfig = maeConfig()): MaeConfig {
  const a = vitArch(arch);
  if (a === null) throw new Error(`[mae] arch '${arch}' is not a ViT; MAE needs vit-tiny, vit-small, vit-base, vit-large, vit-huge (optionally -patchP) or vit-d{dim}-depth{n}-heads{h}`);
  return { ...a, ...m, imgSize, inChans: 3, mlpRatio: 4 };
}
export function maeVitBasePatch16(): MaeConfig { return maeModelConfig('vit-base', 224); }
export function maeVitSmallPatch16(): MaeConfig { return maeModelConfig('vit-small', 224); }
export function maeVitTinyPatch16(): MaeConfig { return maeModelConfig('vit-tiny', 224); }
/** CIFAR-sized: ViT-Tiny on 32x32 with 4x4 patches (64 patches), decoder 128-d, 4 blocks, 4 heads. */
export function maeVitTinyPatch4(): MaeConfig { return maeModelConfig('vit-tiny-patch4', 32, maeCifarConfig()); }

export interface Masking {
  /** [N, lenKeep, D] the visible tokens */
  xMasked: Tensor;
  /** [N, L] 0 keep, 1 remove, in the original patch order */
  mask: Tensor;
  /** [N, L] int32: position of each original patch in the shuffled order (inverts the shuffle) */
  idsRestore: Tensor;
}

export class MaskedAutoencoderViT extends Module implements Method {
  readonly methodName = 'mae';
  readonly viewsPerSample = 1;
  readonly checkpointExtras = [] as const;
  readonly cfg: MaeConfig;
  private readonly rng: Rng;

  constructor(cfg: MaeConfig, rng: Rng = T.globalRng) {
    super();
    this.cfg = cfg;
    this.rng = rng;
    const f = { rng };
    const pe = this.registerModule('patch_embed', new PatchEmbed(cfg.imgSize, cfg.patchSize, cfg.inChans, cfg.embedDim, f));
    const L = pe.numPatches;
    const grid = Math.round(Math.sqrt(L));
    // --- encoder
    const cls = this.registerParameter('cls_token', T.zeros([1, 1, cfg.embedDim]))!;
    const pos = this.registerParameter('pos_embed', T.tensor(get2dSincosPosEmbed(cfg.embedDim, grid, true), [1, L + 1, cfg.embedDim], { dtype: 'float32' }))!;
    pos.requiresGrad = false; // fixed sin-cos embedding
    const blocks = new Sequential();
    for (let i = 0; i < cfg.depth; i++) blocks.append(new Block(cfg.embedDim, cfg.numHeads, { mlpRatio: cfg.mlpRatio, qkvBias: true }, f));
    this.registerModule('blocks', blocks);
    this.registerModule('norm', new LayerNorm(cfg.embedDim, 1e-6));
    // --- decoder
    this.registerModule('decoder_embed', new Linear(cfg.embedDim, cfg.decoderEmbedDim, true, f));
    const maskToken = this.registerParameter('mask_token', T.zeros([1, 1, cfg.decoderEmbedDim]))!;
    const dpos = this.registerParameter('decoder_pos_embed', T.tensor(get2dSincosPosEmbed(cfg.decoderEmbedDim, grid, true), [1, L + 1, cfg.decoderEmbedDim], { dtype: 'float32' }))!;
    dpos.requiresGrad = false;
    const dblocks = new Sequential();
    for (let i = 0; i < cfg.decoderDepth; i++) {
      dblocks.append(new Block(cfg.decoderEmbedDim, cfg.decoderNumHeads, { mlpRatio: cfg.mlpRatio, qkvBias: true }, f));
    }
    this.registerModule('decoder_blocks', dblocks);
    this.registerModule('decoder_norm', new LayerNorm(cfg.decoderEmbedDim, 1e-6));
    this.registerModule('decoder_pred', new Linear(cfg.decoderEmbedDim, cfg.patchSize ** 2 * cfg.inChans, true, f));
    this.initializeWeights(cls, maskToken);
  }

  /** MAE's initialize_weights: xavier_uniform patch_embed (as [D, C*p*p]) and Linears, normal(0.02) tokens. */
  private initializeWeights(cls: Tensor, maskToken: Tensor): void {
    T.noGrad(() => {
      const w = this.child<PatchEmbed>('patch_embed').child<Conv2d>('proj').weight;
      xavierUniform_(w, 1, this.rng, [w.shape[0]!, w.size / w.shape[0]!]);
      normal_(cls, 0, 0.02, this.rng);
      normal_(maskToken, 0, 0.02, this.rng);
      for (const m of this.modules()) {
        if (m instanceof Linear) {
          xavierUniform_(m.weight, 1, this.rng);
          if (m.bias !== null) T.copy_(m.bias, T.zerosLike(m.bias));
        }
      }
    });
  }

  get numPatches(): number { return this.child<PatchEmbed>('patch_embed').numPatches; }

  /** imgs [N, C, H, W] -> [N, L, p*p*C], each patch flattened as (p, q, c) like MAE's einsum nchpwq->nhwpqc. */
  patchify(imgs: Tensor): Tensor {
    const p = this.cfg.patchSize;
    const [N, C, H, W] = imgs.shape as [number, number, number, number];
    const h = H / p;
    const w = W / p;
    const x = T.reshape(imgs, [N, C, h, p, w, p]);
    return T.reshape(T.permute(x, [0, 2, 4, 3, 5, 1]), [N, h * w, p * p * C]); // [N, L, p*p*C]
  }

  /** [N, L, p*p*C] -> imgs [N, C, H, W] */
  unpatchify(x: Tensor): Tensor {
    const p = this.cfg.patchSize;
    const C = this.cfg.inChans;
    const N = x.shape[0]!;
    const h = Math.round(Math.sqrt(x.shape[1]!));
    const y = T.reshape(x, [N, h, h, p, p, C]);
    return T.reshape(T.permute(y, [0, 5, 1, 3, 2, 4]), [N, C, h * p, h * p]); // [N, C, H, W]
  }

  /**
   * Per-sample random masking by argsort of uniform noise: keeps int(L * (1 - ratio)) patches.
   * noise [N, L] may be given (tests); otherwise drawn from the method's generator.
   */
  randomMasking(x: Tensor, maskRatio: number, noise?: Tensor): Masking {
    const [N, L, D] = x.shape as [number, number, number];
    const lenKeep = Math.trunc(L * (1 - maskRatio));
    const nz = noise ?? T.rand([N, L], { rng: this.rng, device: x.device }); // [N, L]
    const idsShuffle = T.argsort(nz, 1); // [N, L] ascend: small is keep
    const idsRestore = T.argsort(T.cast(idsShuffle, 'float32'), 1); // [N, L]
    const idsKeep = T.slice(idsShuffle, 1, 0, lenKeep); // [N, lenKeep]
    const xMasked = T.gather(x, 1, T.expand(T.reshape(idsKeep, [N, lenKeep, 1]), [N, lenKeep, D])); // [N, lenKeep, D]
    // mask in the original order: 1 for the patches past lenKeep in the shuffled order
    const mask = T.zeros([N, L], { device: x.device, dtype: x.dtype });
    const m = mask.data;
    const ids = idsShuffle.data;
    for (let n = 0; n < N; n++) for (let j = lenKeep; j < L; j++) m[n * L + ids[n * L + j]!] = 1;
    return { xMasked, mask, idsRestore };
  }

  forwardEncoder(imgs: Tensor, maskRatio: number, noise?: Tensor): { latent: Tensor } & Masking {
    const pos = this.param('pos_embed');
    const D = this.cfg.embedDim;
    let x = this.child<PatchEmbed>('patch_embed').forward(imgs); // [N, L, D]
    x = T.add(x, T.slice(pos, 1, 1)); // [N, L, D]
    const masking = this.randomMasking(x, maskRatio, noise);
    const N = x.shape[0]!;
    const cls = T.add(this.param('cls_token'), T.slice(pos, 1, 0, 1)); // [1, 1, D]
    x = T.concat([T.expand(cls, [N, 1, D]), masking.xMasked], 1); // [N, 1+lenKeep, D]
    x = this.child<Sequential>('blocks').forward(x);
    const latent = this.child<LayerNorm>('norm').forward(x); // [N, 1+lenKeep, D]
    return { latent, ...masking };
  }

  forwardDecoder(latent: Tensor, idsRestore: Tensor): Tensor {
    let x = this.child<Linear>('decoder_embed').forward(latent); // [N, 1+lenKeep, Dd]
    const [N, V, Dd] = x.shape as [number, number, number];
    const L = idsRestore.shape[1]!;
    const maskTokens = T.expand(this.param('mask_token'), [N, L + 1 - V, Dd]); // [N, L-lenKeep, Dd]
    let x_ = T.concat([T.slice(x, 1, 1), maskTokens], 1); // [N, L, Dd] no cls
    x_ = T.gather(x_, 1, T.expand(T.reshape(idsRestore, [N, L, 1]), [N, L, Dd])); // unshuffle
    x = T.concat([T.slice(x, 1, 0, 1), x_], 1); // [N, 1+L, Dd] append cls
    x = T.add(x, this.param('decoder_pos_embed'));
    x = this.child<Sequential>('decoder_blocks').forward(x);
    x = this.child<LayerNorm>('decoder_norm').forward(x);
    x = this.child<Linear>('decoder_pred').forward(x); // [N, 1+L, p*p*C]
    return T.slice(x, 1, 1); // [N, L, p*p*C] remove cls
  }

  /** Mean squared error per patch, averaged over the removed patches only. */
  forwardLoss(imgs: Tensor, pred: Tensor, mask: Tensor): Tensor {
    let target = this.patchify(imgs); // [N, L, p*p*C]
    if (this.cfg.normPixLoss) {
      const mean = T.mean(target, -1, true);
      const variance = T.variance(target, -1, true); // unbiased, as torch's var default
      target = T.div(T.sub(target, mean), T.sqrt(T.addScalar(variance, 1e-6)));
    }
    const loss = T.mean(T.square(T.sub(pred, target)), -1); // [N, L] mean loss per patch
    return T.div(T.sum(T.mul(loss, mask)), T.sum(mask)); // mean loss on removed patches
  }

  computeLoss(imgs: Tensor, maskRatio = this.cfg.maskRatio, noise?: Tensor): { loss: Tensor; pred: Tensor; mask: Tensor } {
    const { latent, mask, idsRestore } = this.forwardEncoder(imgs, maskRatio, noise);
    const pred = this.forwardDecoder(latent, idsRestore); // [N, L, p*p*C]
    return { loss: this.forwardLoss(imgs, pred, mask), pred, mask };
  }

  /** With the samples' context, each mask comes from (seed, epoch, index); without it, from the method's generator. */
  trainingStep(views: readonly Tensor[], ctx?: StepContext): TrainingStepOutput {
    const x = views[0]!;
    const noise = ctx?.samples === undefined ? undefined : this.maskNoise(ctx.samples, x);
    return { loss: this.computeLoss(x, this.cfg.maskRatio, noise).loss, metrics: {} };
  }

  /** The random_masking noise [N, L] of these samples, one row per sample from (seed, epoch, index). */
  maskNoise(samples: SampleContext, x: Tensor): Tensor {
    const N = x.shape[0]!;
    if (samples.indices.length !== N) throw new Error(`[MAE] ${samples.indices.length} sample indices for a batch of ${N}`);
    return T.tensor(perSampleUniform(samples.seed, samples.epoch, samples.indices, this.numPatches), [N, this.numPatches], { device: x.device }); // [N, L]
  }

  /**
   * Encoder features without masking: the mean of the patch tokens after the final norm. No masking step at all,
   * so evaluation draws nothing from the method's generator (a ratio-0 randomMasking would still draw noise and
   * shift every later training mask).
   */
  features(x: Tensor): Tensor {
    const pos = this.param('pos_embed');
    const D = this.cfg.embedDim;
    const tokens = T.add(this.child<PatchEmbed>('patch_embed').forward(x), T.slice(pos, 1, 1)); // [N, L, D]
    const N = tokens.shape[0]!;
    const cls = T.add(this.param('cls_token'), T.slice(pos, 1, 0, 1)); // [1, 1, D]
    const h = this.child<Sequential>('blocks').forward(T.concat([T.expand(cls, [N, 1, D]), tokens], 1)); // [N, 1+L, D]
    const latent = this.child<LayerNorm>('norm').forward(h); // [N, 1+L, D]
    return T.mean(T.slice(latent, 1, 1), 1); // [N, D]
  }

  /** A ViT holding the encoder and reading the normed cls token, as main_linprobe.py probes it. */
  frozenBackbone(): FrozenBackbone {
    const vit = vitFromMae(this, { globalPool: false, numClasses: 0 });
    return { module: vit, features: (x) => vit.forwardFeatures(x), dim: vit.numFeatures, owned: true };
  }

  /** No weight decay on biases and norm parameters (timm's add_weight_decay, main_pretrain.py). */
  paramGroups(weightDecay: number): BasicGroupInit[] {
    return weightDecayGroups([...this.namedParameters()], weightDecay);
  }

  backboneKey(key: string): string | null {
    return maeBackboneKey(key);
  }

  /** The loss on held-out images, each mask from (seed, epoch, index): the monitor passes a fixed seed, so the same masks each time. */
  heldOutLoss(x: Tensor, samples: SampleContext): number {
    return T.noGrad(() => T.tidy(() => this.computeLoss(x, this.cfg.maskRatio, this.maskNoise(samples, x)).loss.item()));
  }

  /** The official demo's four rows (original, masked, reconstruction, pasted) at the run's mask ratio. */
  reconstruct(imgs: Tensor, rng: Rng): Reconstruction {
    const noise = T.rand([imgs.shape[0]!, this.numPatches], { rng, device: imgs.device }); // [N, L]
    try {
      return reconstructImages(this, imgs, this.cfg.maskRatio, noise);
    } finally {
      noise.dispose();
    }
  }

  forward(x: Tensor): Tensor {
    return this.features(x);
  }
}

export interface ViTFromMaeOptions {
  /** MAE's global_pool: mean of patch tokens + fc_norm (fine-tuning); false reads the normed cls token (linear probe) */
  globalPool: boolean;
  numClasses: number;
  dropPathRate?: number;
  /** trainable position embeddings (fine-tuning trains them; MAE's models_vit makes them nn.Parameter) */
  learnedPosEmbed?: boolean;
  rng?: Rng;
}

/**
 * A timm VisionTransformer holding an MAE checkpoint's encoder, as MAE's main_finetune / main_linprobe load it:
 * the key map drops the decoder, `norm` is dropped under global pooling (fc_norm and head stay freshly initialised).
 */
export function vitFromMae(mae: MaskedAutoencoderViT, o: ViTFromMaeOptions): VisionTransformer {
  const c = mae.cfg;
  const like = mae.stateDict().get('cls_token')!;
  const vit = new VisionTransformer({
    imgSize: c.imgSize, patchSize: c.patchSize, inChans: c.inChans, embedDim: c.embedDim, depth: c.depth, numHeads: c.numHeads,
    mlpRatio: c.mlpRatio, qkvBias: true, numClasses: o.numClasses, globalPool: o.globalPool, dropPathRate: o.dropPathRate ?? 0,
    posEmbed: o.learnedPosEmbed === true ? 'learned' : 'sincos',
  }, { rng: o.rng ?? new T.Rng(0), device: like.device, dtype: like.dtype === 'float64' ? 'float64' : 'float32' }); // on the MAE's device
  const sd = new Map<string, Tensor>();
  for (const [k, v] of mae.stateDict()) {
    const key = mae.backboneKey(k);
    if (key === null || (o.globalPool && key.startsWith('norm.'))) continue;
    sd.set(key, v);
  }
  const report = vit.loadStateDict(sd, { strict: false });
  const missing = report.missing.filter((k) => !k.startsWith('head.') && !k.startsWith('fc_norm.'));
  if (missing.length > 0 || report.unexpected.length > 0) {
    throw new Error(`[eval] MAE encoder does not fit the ViT: missing ${missing.join(', ') || '-'}, unexpected ${report.unexpected.join(', ') || '-'}`);
  }
  return vit;
}

/** The key map: the encoder's keys are timm's ViT names already; the decoder and the mask token are not part of it. */
export function maeBackboneKey(key: string): string | null {
  return key.startsWith('decoder_') || key === 'mask_token' ? null : key;
}

/**
 * facebookresearch/mae pre-training checkpoints (`checkpoint['model']`, flattened as `model.*` by
 * reference/pth_to_safetensors.py, or bare): the encoder only. Fine-tuned checkpoints keep `head.*` and `fc_norm.*`.
 */
export function maeKeys(): KeyMap {
  return (k) => maeBackboneKey(k.startsWith('model.') ? k.slice('model.'.length) : k);
}

/** mae/main_linprobe.py: blr 0.1, batch 16384, wd 0, 90 epochs, 10 warmup, LARS, BatchNorm head */
export function maeLinearRecipe(): LinearRecipe {
  return { name: 'mae', optimizer: 'lars', lr: 0.1, scaleLr: true, momentum: 0.9, weightDecay: 0, epochs: 90, batchSize: 16384, bnHead: true, schedule: 'warmupCosine', milestones: [], warmupEpochs: 10 };
}

export const maeMethod: MethodSpec<MaeMethodConfig> = {
  name: 'mae',
  description: 'MAE (masked autoencoder: ViT encoder on visible patches, light decoder, pixel loss)',
  defaultConfig: maeConfig,
  build(cfg, section, rng) {
    return new MaskedAutoencoderViT(maeModelConfig(cfg.arch, cfg.imgSize, section), rng);
  },
  linearRecipe: maeLinearRecipe,
};
