// MoCo v1/v2 (facebookresearch/moco, moco/builder.py) on one process, with the CIFAR demo's split BN and
// symmetric loss: a query encoder, a momentum (EMA) key encoder and a queue of keys as the dictionary.
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { Module, type Layer } from '../nn/module.js';
import { BatchNorm2d, Linear, ReLU, Sequential, fusedBatchNormReluEnabled } from '../nn/layers.js';
import { batchShuffleDdp, batchUnshuffleDdp, concatAllGather } from '../dist/collectives.js';
import type { Comm } from '../dist/comm.js';
import type { BasicGroupInit } from '../optim/optimizer.js';
import type { LinearRecipe } from '../eval/linear.js';
import type { Method, MethodSpec, TrainingStepOutput, FrozenBackbone, StepContext } from './method.js';
import { backboneFeatures, buildBackbone, encoderBackbone } from './backbones.js';
import { stripPrefix, type KeyMap } from '../io/safetensors.js';

export interface MocoConfig {
  /** feature dimension of the keys and queries */
  dim: number;
  /** queue size: the number of negative keys (a multiple of the keys enqueued per step) */
  K: number;
  /** key encoder momentum */
  m: number;
  /** softmax temperature */
  T: number;
  /** MoCo v2's 2-layer MLP head instead of v1's linear one */
  mlp: boolean;
  /** the CIFAR demo's symmetric loss: both views serve as query and key */
  symmetric: boolean;
  /**
   * split BN sub-batches emulating multi-GPU shuffling BN (the CIFAR demo's --bn-splits; 1: plain BN). Without
   * splits the key shuffle does nothing; with distributed ranks each rank's BN is its own and this splits within it
   */
  bnSplits: number;
}

/**
 * v1: linear head, T=0.07; v2: MLP head, T=0.2 (ImageNet recipes, queue 65536, m 0.999). The official runs shuffle
 * BN over 8 GPUs (32 of 256 images per BN), emulated in one process by 8 BN splits.
 */
export function mocoV1Config(): MocoConfig { return { dim: 128, K: 65536, m: 0.999, T: 0.07, mlp: false, symmetric: false, bnSplits: 8 }; }
export function mocoV2Config(): MocoConfig { return { dim: 128, K: 65536, m: 0.999, T: 0.2, mlp: true, symmetric: false, bnSplits: 8 }; }
/** The official CIFAR-10 demo's defaults: K=4096, m=0.99, T=0.1, 8 BN splits (symmetric loss optional). */
export function mocoCifarConfig(): MocoConfig { return { dim: 128, K: 4096, m: 0.99, T: 0.1, mlp: false, symmetric: false, bnSplits: 8 }; }

/** A backbone whose classifier `fc` ([featureDim -> numClasses] Linear) the method replaces or extends. */
export type EncoderFactory = (numClasses: number) => Layer;

/**
 * The CIFAR demo's SplitBatchNorm: in training, normalises numSplits sub-batches separately (emulating the
 * per-GPU BN of multi-GPU training, which shuffling BN relies on); the running statistics are the mean over splits.
 */
export class SplitBatchNorm2d extends BatchNorm2d {
  constructor(numFeatures: number, readonly numSplits: number) {
    super(numFeatures);
  }
  override forward(x: Tensor): Tensor {
    if (!this.training || this.numSplits === 1) return super.forward(x);
    return this.splitForward(x, null, false);
  }

  /** relu(this(x) + residual) with each split's statistics, fused into one kernel as BatchNorm2d's. */
  override forwardRelu(x: Tensor, residual: Tensor | null = null): Tensor {
    if (!this.training || this.numSplits === 1 || !fusedBatchNormReluEnabled()) return super.forwardRelu(x, residual);
    return this.splitForward(x, residual, true);
  }

  private splitForward(x: Tensor, residual: Tensor | null, fuseRelu: boolean): Tensor {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    if (N % this.numSplits !== 0) {
      throw new Error(`[SplitBatchNorm2d] batch ${N} is not divisible by ${this.numSplits} splits`);
    }
    const S = this.numSplits;
    const rm = this.runningMean!;
    const rv = this.runningVar!;
    const rmSplit = T.concat(Array.from({ length: S }, () => rm), 0); // [S*C]
    const rvSplit = T.concat(Array.from({ length: S }, () => rv), 0);
    const w = this.weight === null ? null : T.concat(Array.from({ length: S }, () => this.weight!), 0);
    const b = this.bias === null ? null : T.concat(Array.from({ length: S }, () => this.bias!), 0);
    const opts = { training: true, momentum: this.momentum ?? 0.1, eps: this.eps };
    const xs = T.reshape(x, [N / S, C * S, H, W]); // [N/S, S*C, H, W]
    const y = fuseRelu
      ? T.batchNormRelu(xs, rmSplit, rvSplit, w, b, residual === null ? null : T.reshape(residual, [N / S, C * S, H, W]), opts)
      : T.batchNorm(xs, rmSplit, rvSplit, w, b, opts); // [N/S, S*C, H, W]
    T.noGrad(() => {
      T.copy_(rm, T.mean(T.reshape(rmSplit, [S, C]), 0));
      T.copy_(rv, T.mean(T.reshape(rvSplit, [S, C]), 0));
    });
    return T.reshape(y, [N, C, H, W]);
  }
}

export interface MocoOutput {
  loss: Tensor;
  /** InfoNCE logits [N, 1+K] of the (first) query, for accuracy monitoring */
  logits: Tensor;
}

export class MoCo extends Module implements Method {
  readonly methodName = 'moco';
  readonly viewsPerSample = 2;
  /** the queue is training state: checkpoints keep it, evaluation does not need it */
  readonly checkpointExtras = ['queue', 'queue_ptr'] as const;
  readonly cfg: MocoConfig;
  private readonly rng: Rng;
  /** data-parallel group: shuffling BN across ranks and every rank's keys into the queue (set by setComm) */
  private comm: Comm | null = null;

  constructor(baseEncoder: EncoderFactory, cfg: MocoConfig, rng: Rng = T.globalRng) {
    super();
    this.cfg = cfg;
    this.rng = rng;
    const encoderQ = this.registerModule('encoder_q', baseEncoder(cfg.dim));
    const encoderK = this.registerModule('encoder_k', baseEncoder(cfg.dim));
    if (cfg.mlp) {
      for (const enc of [encoderQ, encoderK]) {
        const fc = enc.child<Linear>('fc');
        const dimMlp = fc.inFeatures;
        enc.registerModule('fc', new Sequential(new Linear(dimMlp, dimMlp, true, { rng }), new ReLU(), fc));
      }
    }
    // the key encoder starts as a copy of the query encoder and is never updated by gradients
    T.noGrad(() => {
      const pk = encoderK.parameters();
      encoderQ.parameters().forEach((q, i) => { T.copy_(pk[i]!, q); });
    });
    encoderK.requiresGrad_(false);
    this.registerBuffer('queue', T.noGrad(() => T.l2Normalize(T.randn([cfg.dim, cfg.K], { rng }), 0))); // [dim, K]
    this.registerBuffer('queue_ptr', T.zeros([1], { dtype: 'int32' }));
  }

  /** Runs as the official DDP code: batch_shuffle_ddp / batch_unshuffle_ddp and concat_all_gather across comm's ranks. */
  distribute(comm: Comm): void {
    this.comm = comm.size > 1 ? comm : null;
  }

  get encoderQ(): Layer { return this.child<Layer>('encoder_q'); }
  get encoderK(): Layer { return this.child<Layer>('encoder_k'); }
  get queue(): Tensor { return this.buffer('queue'); }
  get queuePtr(): number { return this.buffer('queue_ptr').data[0]!; }

  /** param_k = m * param_k + (1 - m) * param_q, parameters only (buffers keep their own statistics). */
  momentumUpdate(): void {
    const m = this.cfg.m;
    const pk = this.encoderK.parameters();
    const pq = this.encoderQ.parameters();
    // one multi-tensor kernel where the backend has it (the same float ops, the same bits); else composed from ops
    const backend = pk[0]?.backend;
    if (backend?.emaUpdate !== undefined && [...pk, ...pq].every((t) => t.dtype === 'float32' && t.backend === backend)) {
      backend.emaUpdate(pk.map((k) => k.data as Float32Array), pq.map((q) => q.data as Float32Array), m);
      return;
    }
    T.noGrad(() => T.tidy(() => {
      pq.forEach((q, i) => {
        const k = pk[i]!;
        T.copy_(k, T.add(T.mul(k, m), T.mul(q, 1 - m)));
      });
    }));
  }

  /** Writes keys [N, dim] (already gathered from all ranks) into queue columns [ptr, ptr+N) and advances the pointer modulo K. */
  dequeueAndEnqueue(keys: Tensor): void {
    const [N, dim] = keys.shape as [number, number];
    const K = this.cfg.K;
    if (K % N !== 0) throw new Error(`[MoCo] queue size K=${K} must be divisible by the keys per step (${N})`);
    const ptrBuf = this.buffer('queue_ptr').data;
    const ptr = ptrBuf[0]!;
    const q = this.queue.data;
    const k = keys.data;
    for (let c = 0; c < dim; c++) {
      for (let j = 0; j < N; j++) q[c * K + ptr + j] = k[j * dim + c]!;
    }
    ptrBuf[0] = (ptr + N) % K;
  }

  /**
   * Keys of imK through the key encoder with the batch shuffled before and un-shuffled after (shuffling BN). Across
   * ranks, the shuffle permutes the global batch (shuffle then has P * N entries).
   */
  private keys(imK: Tensor, shuffle?: Int32Array): Tensor {
    // tidy: the key encoder's activations go as soon as the keys exist (nothing differentiates through them), not
    // at the end of the training step, where they would sit beside the query's through the whole backward
    return T.noGrad(() => T.tidy(() => {
      const N = imK.shape[0]!;
      const comm = this.comm;
      if (comm !== null) {
        const { x, idxUnshuffle } = batchShuffleDdp(imK, shuffle ?? this.rng.randperm(N * comm.size), comm); // [N, ...]
        const k = T.l2Normalize(this.encoderK.forward(x), 1); // [N, dim]
        return batchUnshuffleDdp(k, idxUnshuffle, comm); // [N, dim]
      }
      const idxShuffle = T.tensor(shuffle ?? this.rng.randperm(N), [N], { dtype: 'int32', device: imK.device });
      const idxUnshuffle = T.argsort(T.cast(idxShuffle, 'float32'), 0);
      const k = T.l2Normalize(this.encoderK.forward(T.indexSelect(imK, 0, idxShuffle)), 1); // [N, dim]
      return T.indexSelect(k, 0, idxUnshuffle); // [N, dim]
    }));
  }

  /** InfoNCE of queries from imQ against the positive key of imK and the K queued negatives. */
  contrastiveLoss(imQ: Tensor, imK: Tensor, shuffle?: Int32Array): { loss: Tensor; logits: Tensor; k: Tensor } {
    // keys first (the official code computes q first; the order changes no number): the key encoder's activations
    // come and go before the query's, which backward needs, exist, so the two never add up
    const k = this.keys(imK, shuffle); // [N, dim], no graph
    const q = T.l2Normalize(this.encoderQ.forward(imQ), 1); // [N, dim]
    const lPos = T.sum(T.mul(q, k), 1, true); // [N, 1]
    // a snapshot of the queue, as the official queue.clone().detach(): the matmul's backward must see the keys of
    // this step, not the queue after dequeueAndEnqueue has overwritten it in place
    const lNeg = T.matmul(q, T.noGrad(() => T.clone(this.queue))); // [N, K]
    const logits = T.mulScalar(T.concat([lPos, lNeg], 1), 1 / this.cfg.T); // [N, 1+K]
    const labels = T.zeros([q.shape[0]!], { dtype: 'int32', device: q.device }); // the positive is class 0
    return { loss: T.crossEntropy(logits, labels), logits, k };
  }

  /**
   * One training forward: momentum update, loss (symmetric or not), then the keys enter the queue.
   * shuffles fixes the key-batch permutations (tests); by default they are drawn from the method's generator.
   */
  computeLoss(im1: Tensor, im2: Tensor, shuffles: Int32Array[] = []): MocoOutput {
    this.momentumUpdate();
    if (this.cfg.symmetric) {
      const a = this.contrastiveLoss(im1, im2, shuffles[0]);
      const b = this.contrastiveLoss(im2, im1, shuffles[1]);
      this.dequeueAndEnqueue(T.concat([this.gatherKeys(b.k), this.gatherKeys(a.k)], 0)); // [2PN, dim]: k1 then k2, as the demo
      return { loss: T.add(a.loss, b.loss), logits: a.logits };
    }
    const r = this.contrastiveLoss(im1, im2, shuffles[0]);
    this.dequeueAndEnqueue(this.gatherKeys(r.k));
    return { loss: r.loss, logits: r.logits };
  }

  /** concat_all_gather of the keys before they enter the queue: [N, dim] -> [P*N, dim] */
  private gatherKeys(k: Tensor): Tensor {
    return this.comm === null ? k : concatAllGather(k, this.comm);
  }

  trainingStep(views: readonly Tensor[], ctx?: StepContext): TrainingStepOutput {
    const out = this.computeLoss(views[0]!, views[1]!, ctx?.shuffles);
    const labels = T.zeros([out.logits.shape[0]!], { dtype: 'int32', device: out.logits.device }); // positives are class 0
    return { loss: out.loss, metrics: { acc1: T.accuracy(out.logits, labels) } };
  }

  /** The query encoder's pooled features, before the head. */
  features(x: Tensor): Tensor {
    return backboneFeatures(this.encoderQ, x); // [N, D]
  }

  frozenBackbone(): FrozenBackbone {
    return encoderBackbone(this.encoderQ);
  }

  /** One group: the official code decays every parameter, biases and BN included. */
  paramGroups(weightDecay: number): BasicGroupInit[] {
    return [{ name: 'all', params: this.parameters().filter((p) => p.requiresGrad), weightDecay }];
  }

  backboneKey(key: string): string | null {
    return mocoBackboneKey(key);
  }

  /** The query encoder's output with its head, [N, dim] (the demo's kNN monitor normalises encoder_q(x)). */
  headFeatures(x: Tensor): Tensor {
    return this.encoderQ.forward(x);
  }

  /** The query encoder with its head (what the official model's encoder_q returns). */
  forward(x: Tensor): Tensor {
    return this.encoderQ.forward(x);
  }
}

/** The key map: encoder_q.* without its head, as main_lincls.py keeps module.encoder_q.* but not module.encoder_q.fc.* */
const mocoBackboneKey: KeyMap = stripPrefix('encoder_q.', /^fc\./);

/** facebookresearch/moco (v1/v2) checkpoints (`module.` from DDP): the query encoder as a plain ResNet, head kept with keepFc. */
export function mocoKeys(opts: { keepFc?: boolean } = {}): KeyMap {
  return stripPrefix('module.encoder_q.', opts.keepFc === true ? undefined : /^fc\./);
}

/** moco/main_lincls.py: --lr 30 --batch-size 256 --wd 0 --schedule 60 80 --epochs 100 */
export function mocoLinearRecipe(): LinearRecipe {
  return { name: 'moco', optimizer: 'sgd', lr: 30, scaleLr: false, momentum: 0.9, weightDecay: 0, epochs: 100, batchSize: 256, bnHead: false, schedule: 'step', milestones: [0.6, 0.8], warmupEpochs: 0 };
}

export const mocoMethod: MethodSpec<MocoConfig> = {
  name: 'moco',
  description: 'MoCo v1/v2 (momentum encoder, queue of negatives, InfoNCE)',
  defaultConfig: mocoV2Config,
  build(cfg, section, rng) {
    const keysPerStep = cfg.batchSize * (section.symmetric ? 2 : 1);
    if (section.K % keysPerStep !== 0) {
      throw new Error(`[pretrain] moco.K=${section.K} must be a multiple of the keys per step (${keysPerStep})`);
    }
    const splits = section.bnSplits;
    const encoder = (numClasses: number): Layer => buildBackbone(cfg.arch, {
      numClasses, width: cfg.width, rng, zeroInitResidual: false,
      ...(splits > 1 ? { normLayer: (c: number) => new SplitBatchNorm2d(c, splits) } : {}),
    });
    return new MoCo(encoder, section, rng);
  },
  linearRecipe: mocoLinearRecipe,
};
