// MoCo, SimSiam and MAE on tiny models against PyTorch mirrors of the official builders
// (fixtures from reference/make_method_fixtures.py, float64 on both sides).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { Module } from '../../src/nn/module.js';
import { SGD } from '../../src/optim/index.js';
import { MoCo } from '../../src/methods/moco.js';
import { SimSiam } from '../../src/methods/simsiam.js';
import { MaskedAutoencoderViT, type MaeConfig } from '../../src/methods/mae.js';
import { MoCoV3 } from '../../src/methods/mocov3.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { mocoMomentum } from '../../src/optim/index.js';
import { remapStateDict, mocoV3PretrainKeys } from '../../src/io/safetensors.js';
import { heldOutLossMeter } from '../../src/train/pretrain.js';
import { perSampleUniform } from '../../src/tensor/rng.js';
import { TinyEncoder } from './tiny.js';
import { assertClose } from '../helpers.js';

const DIR = fileURLToPath(new URL('../fixtures/methods/', import.meta.url));
const REGEN = 'regenerate with: /usr/bin/python3 reference/make_method_fixtures.py';

function fixture(name: string): Map<string, Tensor> {
  const { tensors, metadata } = readSafetensors(`${DIR}${name}.safetensors`, { device: 'reference' });
  assert.equal(metadata.magic, 'selfsup-methods', `${name}: bad fixture magic; ${REGEN}`);
  assert.equal(metadata.version, '1', `${name}: fixture version ${metadata.version}; ${REGEN}`);
  return tensors;
}

function get(fx: Map<string, Tensor>, key: string): Tensor {
  const t = fx.get(key);
  if (t === undefined) throw new Error(`fixture has no '${key}'; ${REGEN}`);
  return t;
}

function asInt(t: Tensor): Int32Array {
  return Int32Array.from(t.data, (v) => Number(v));
}

/** The entries under prefix, with the prefix removed: a state dict. */
function section(fx: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of fx) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  assert.ok(out.size > 0, `fixture has no '${prefix}*' entries; ${REGEN}`);
  return out;
}

function expectState(model: Module, expected: Map<string, Tensor>, label: string, rtol = 1e-8, atol = 1e-10): void {
  const sd = model.stateDict();
  for (const [k, v] of expected) {
    const t = sd.get(k);
    assert.ok(t !== undefined, `${label}: model has no '${k}'`);
    assertClose(Float64Array.from(t.data, Number), Float64Array.from(v.data, Number), `${label} ${k}`, rtol, atol);
  }
}

function expectGrads(model: Module, expected: Map<string, Tensor>, label: string, rtol = 1e-8, atol = 1e-10): void {
  const named = new Map(model.namedParameters());
  for (const [k, g] of expected) {
    const p = named.get(k);
    assert.ok(p?.grad != null, `${label}: no gradient for '${k}'`);
    assertClose(p.grad.data, g.data, `${label} grad ${k}`, rtol, atol);
  }
  for (const [k, p] of named) {
    if (!expected.has(k)) assert.equal(p.grad, null, `${label}: '${k}' got a gradient PyTorch does not have`);
  }
}

describe('MoCo', () => {
  it('matches PyTorch over two steps: loss, gradients, EMA key encoder, queue and pointer', () => {
    const fx = fixture('moco');
    const model = new MoCo((nc) => new TinyEncoder(nc, 2), { dim: 16, K: 24, m: 0.99, T: 0.1, mlp: true, symmetric: true, bnSplits: 2 });
    model.to('reference', 'float64');
    model.loadStateDict(section(fx, 'init.'));
    const opt = new SGD(model.parameters().filter((p) => p.requiresGrad), { lr: 0.5, momentum: 0.9 });
    for (const step of [0, 1]) {
      const s = `step${step}.`;
      const ptrBefore = model.queuePtr;
      T.tidy(() => {
        const out = model.computeLoss(get(fx, `${s}im1`), get(fx, `${s}im2`), [asInt(get(fx, `${s}shuffle1`)), asInt(get(fx, `${s}shuffle2`))]);
        assertClose([out.loss.item()], get(fx, `${s}loss`).data, `step ${step} loss`, 1e-9);
        opt.zeroGrad();
        out.loss.backward();
      });
      expectGrads(model, section(fx, `${s}grad.`), `step ${step}`);
      for (const p of model.encoderK.parameters()) assert.equal(p.grad, null, 'the key encoder gets no gradient');
      opt.step();
      expectState(model, section(fx, `${s}after.`), `step ${step}`);
      assert.equal(model.queuePtr, (ptrBefore + 8) % 24, 'pointer advances by 2N keys (symmetric) modulo K');
    }
  });

  it('queue wraps around and rejects a K not divisible by the batch', () => {
    const model = new MoCo((nc) => new TinyEncoder(nc), { dim: 4, K: 6, m: 0.9, T: 0.2, mlp: false, symmetric: false, bnSplits: 1 });
    const keys = (v: number): Tensor => T.full([3, 4], v);
    model.dequeueAndEnqueue(keys(1));
    model.dequeueAndEnqueue(keys(2));
    assert.equal(model.queuePtr, 0);
    model.dequeueAndEnqueue(keys(3)); // overwrites the oldest columns 0..2
    const q = model.queue.data;
    assert.deepEqual(Array.from(q.subarray(0, 6)), [3, 3, 3, 2, 2, 2]);
    assert.equal(model.queuePtr, 3);
    assert.throws(() => model.dequeueAndEnqueue(T.zeros([4, 4])), /\[MoCo\] queue size K=6 must be divisible by the keys per step \(4\)/);
  });
});

describe('SimSiam', () => {
  // 3 layers: builder.py (ImageNet); 2 layers: the paper's CIFAR-10 projector (appendix D)
  for (const [projLayers, name] of [[3, 'simsiam'], [2, 'simsiam_proj2']] as const) {
    it(`matches PyTorch with a ${projLayers}-layer projector: loss, every gradient, BN statistics; z gets no gradient`, () => {
      const fx = fixture(name);
      const model = new SimSiam((nc) => new TinyEncoder(nc), { dim: 16, predDim: 4, fixPredLr: true, projLayers });
      model.to('reference', 'float64');
      model.loadStateDict(section(fx, 'init.'));
      assert.equal([...model.stateDict().keys()].filter((k) => /^encoder\.fc\.\d+\.weight$/.test(k)).length, projLayers + projLayers - 1,
        `${projLayers} Linear layers and ${projLayers - 1} affine BNs in the projector`);
      T.tidy(() => {
        const x1 = get(fx, 'x1');
        const x2 = get(fx, 'x2');
        const { loss, out } = model.computeLoss(x1, x2);
        assertClose([loss.item()], get(fx, 'loss').data, 'loss', 1e-9);
        assertClose(out.p1.data, get(fx, 'p1').data, 'p1', 1e-8, 1e-10);
        assert.equal(out.z1.requiresGrad, false, 'z is detached: the stop-gradient');
        assert.equal(out.z2.node, null);
        loss.backward();
      });
      expectGrads(model, section(fx, 'grad.'), name);
      expectState(model, section(fx, 'after.'), name);
    });
  }
});

describe('MAE', () => {
  const cfg: MaeConfig = {
    imgSize: 8, patchSize: 2, inChans: 3, embedDim: 16, depth: 2, numHeads: 2, decoderEmbedDim: 8, decoderDepth: 1,
    decoderNumHeads: 2, mlpRatio: 2, normPixLoss: true, maskRatio: 0.75,
  };
  for (const tag of ['normpix', 'pix']) {
    it(`matches PyTorch (${tag}): loss, prediction, mask and every gradient`, () => {
      const fx = fixture('mae');
      const model = new MaskedAutoencoderViT({ ...cfg, normPixLoss: tag === 'normpix' });
      model.to('reference', 'float64');
      model.loadStateDict(section(fx, `${tag}.init.`));
      T.tidy(() => {
        const { loss, pred, mask } = model.computeLoss(get(fx, `${tag}.imgs`), 0.75, get(fx, `${tag}.noise`));
        assertClose([loss.item()], get(fx, `${tag}.loss`).data, 'loss', 1e-9);
        assertClose(pred.data, get(fx, `${tag}.pred`).data, 'pred', 1e-8, 1e-10);
        assert.deepEqual(Array.from(mask.data), Array.from(get(fx, `${tag}.mask`).data));
        loss.backward();
      });
      expectGrads(model, section(fx, `${tag}.grad.`), `mae ${tag}`);
    });
  }

  it('masking keeps exactly int(L(1-ratio)) patches per sample; idsRestore inverts the shuffle', () => {
    const model = new MaskedAutoencoderViT({ ...cfg, imgSize: 10 }); // L = 25: int(25 * 0.25) = 6
    T.tidy(() => {
      const x = T.randn([5, 25, 3], { rng: new T.Rng(1) });
      for (const ratio of [0.75, 0.5, 0.9]) {
        const { xMasked, mask, idsRestore } = model.randomMasking(x, ratio);
        const keep = Math.trunc(25 * (1 - ratio));
        assert.deepEqual([...xMasked.shape], [5, keep, 3]);
        const m = mask.data;
        const r = idsRestore.data;
        for (let n = 0; n < 5; n++) {
          let removed = 0;
          for (let l = 0; l < 25; l++) removed += m[n * 25 + l]!;
          assert.equal(removed, 25 - keep, `sample ${n}: ${removed} removed`);
          // the visible tokens are exactly the rows of x whose mask is 0, in shuffled order; restore puts them back
          for (let j = 0; j < keep; j++) {
            let src = -1;
            for (let l = 0; l < 25; l++) if (r[n * 25 + l] === j) src = l;
            assert.equal(m[n * 25 + src], 0);
            for (let d = 0; d < 3; d++) assert.equal(xMasked.data[(n * keep + j) * 3 + d], x.data[(n * 25 + src) * 3 + d]);
          }
        }
      }
    });
  });

  it('the loss sees only masked patches: changing a visible patch target leaves it unchanged', () => {
    const model = new MaskedAutoencoderViT({ ...cfg, normPixLoss: false });
    T.tidy(() => {
      const imgs = T.randn([1, 3, 8, 8], { rng: new T.Rng(4) });
      const pred = T.randn([1, 16, 12], { rng: new T.Rng(5) });
      const mask = T.tensor(Array.from({ length: 16 }, (_, i) => (i % 4 === 0 ? 0 : 1)), [1, 16]);
      const base = model.forwardLoss(imgs, pred, mask).item();
      const p2 = pred.clone();
      for (let d = 0; d < 12; d++) p2.data[d] = p2.data[d]! + 5; // patch 0 is visible (mask 0)
      assert.equal(model.forwardLoss(imgs, p2, mask).item(), base);
      const p3 = pred.clone();
      p3.data[12] = p3.data[12]! + 5; // patch 1 is masked
      assert.notEqual(model.forwardLoss(imgs, p3, mask).item(), base);
    });
  });

  it('the held-out loss meter: image-weighted mean, masks from (seed, image index) whatever the batching', () => {
    const model = new MaskedAutoencoderViT(cfg);
    model.eval();
    T.tidy(() => {
      const a = T.randn([3, 3, 8, 8], { rng: new T.Rng(7) });
      const b = T.randn([1, 3, 8, 8], { rng: new T.Rng(8) });
      const first = heldOutLossMeter(model, 4);
      first.add(a, Int32Array.of(0, 1, 2));
      first.add(b, Int32Array.of(3));
      const again = heldOutLossMeter(model, 4);
      again.add(a, Int32Array.of(0, 1, 2));
      again.add(b, Int32Array.of(3));
      assert.equal(again.mean(), first.mean(), 'a second evaluation draws the same masks');
      // by hand: each image's noise row from (1234, epoch 0, its index)
      const la = T.noGrad(() => model.computeLoss(a, model.cfg.maskRatio, T.tensor(perSampleUniform(1234, 0, [0, 1, 2], model.numPatches), [3, model.numPatches])).loss.item());
      const lb = T.noGrad(() => model.computeLoss(b, model.cfg.maskRatio, T.tensor(perSampleUniform(1234, 0, [3], model.numPatches), [1, model.numPatches])).loss.item());
      assertClose([first.mean()], [(3 * la + lb) / 4], 'weighted mean', 1e-12, 0);
      // other batches of the same images: the same loss (up to float32 rounding of the batch means)
      const all = T.concat([a, b], 0);
      const split = heldOutLossMeter(model, 4);
      split.add(T.indexSelect(all, 0, T.tensor([0], [1], { dtype: 'int32' })), Int32Array.of(0));
      split.add(T.indexSelect(all, 0, T.tensor([1, 2, 3], [3], { dtype: 'int32' })), Int32Array.of(1, 2, 3));
      assertClose([split.mean()], [first.mean()], 'rebatched', 1e-6, 1e-6);
      // images past `real` (a shard's wrap-around padding) are not counted
      const padded = heldOutLossMeter(model, 3);
      padded.add(all, Int32Array.of(0, 1, 2, 0));
      assertClose([padded.mean()], [la], 'padding dropped', 1e-6, 1e-6);
    });
  });

  it('patchify and unpatchify are inverse', () => {
    const model = new MaskedAutoencoderViT(cfg);
    T.tidy(() => {
      const imgs = T.randn([2, 3, 8, 8], { rng: new T.Rng(6) });
      assert.deepEqual(Array.from(model.unpatchify(model.patchify(imgs)).data), Array.from(imgs.data));
    });
  });
});

describe('MoCo v3', () => {
  const tinyVit = (nc: number): VisionTransformer => new VisionTransformer({
    imgSize: 8, patchSize: 2, embedDim: 16, depth: 1, numHeads: 2, mlpRatio: 2, numClasses: nc, init: 'mocov3', stopGradConv1: true,
  });
  for (const kind of ['resnet', 'vit'] as const) {
    it(`matches the PyTorch mirror of moco-v3's builder (${kind}): loss, gradients, momentum schedule and update over two steps`, () => {
      const fx = fixture(`mocov3_${kind}`);
      const cfg = { dim: 6, mlpDim: 10, T: kind === 'vit' ? 0.2 : 1.0, m: 0.9, mCos: true, stopGradConv1: kind === 'vit' };
      const model = new MoCoV3(kind === 'vit' ? tinyVit : (nc) => new TinyEncoder(nc), cfg, new T.Rng(0));
      assert.equal(model.kind, kind);
      model.to('reference', 'float64');
      if (kind === 'vit') {
        // our sin-cos table against vits.py's (computed in float32 there)
        assertClose(model.stateDict().get('base_encoder.pos_embed')!.data, get(fx, 'init.base_encoder.pos_embed').data, 'pos_embed', 1e-6, 1e-6);
        assert.equal(model.stateDict().get('base_encoder.pos_embed') !== undefined, true);
      }
      // an official checkpoint's keys (module.base_encoder.*, module.momentum_encoder.*, module.predictor.*) load strictly
      const official = new Map([...section(fx, 'init.')].map(([k, v]) => [`module.${k}`, v]));
      model.loadStateDict(remapStateDict(official, mocoV3PretrainKeys()).mapped, { strict: true });
      const opt = new SGD(model.parameters().filter((p) => p.requiresGrad), { lr: 0.5, momentum: 0.9 });
      for (const step of [0, 1]) {
        const s = `step${step}.`;
        const m = mocoMomentum(step / 2, 0.9, 3);
        assertClose([m], get(fx, `${s}m`).data, `step ${step} momentum`, 1e-15, 1e-15);
        T.tidy(() => {
          const out = model.computeLoss(get(fx, `${s}x1`), get(fx, `${s}x2`), m);
          assertClose([out.loss.item()], get(fx, `${s}loss`).data, `step ${step} loss`, 1e-9);
          opt.zeroGrad();
          out.loss.backward();
        });
        // the ViT's cls token starts at N(0, 1e-6), so norm1 divides a near-zero row by sqrt(var + eps): its features
        // match to 1e-12, but that conditioning (PyTorch itself moves these gradients by 3e-8 for a 1e-12 change of
        // the input) and T = 0.2 leave a few attention gradients 2e-6 (relative) apart
        const [rtol, atol] = kind === 'vit' ? [1e-5, 1e-9] : [1e-8, 1e-10];
        expectGrads(model, section(fx, `${s}grad.`), `mocov3 ${kind} step ${step}`, rtol, atol);
        expectState(model, section(fx, `${s}forward.`), `mocov3 ${kind} step ${step}`, rtol, atol);
        opt.step();
      }
      // the patch projection stays frozen (--stop-grad-conv1); the momentum encoder never gets gradients
      for (const [k, p] of model.namedParameters()) {
        if (k.startsWith('momentum_encoder.') || k.includes('patch_embed.')) assert.equal(p.requiresGrad, false, `${k} must be frozen`);
      }
      const sched = get(fx, 'schedule');
      for (let r = 0; r < sched.shape[0]!; r++) {
        const [e, m0, epochs, want] = [0, 1, 2, 3].map((c) => Number(sched.data[r * 4 + c]));
        assertClose([mocoMomentum(e!, m0!, epochs!)], [want!], `momentum at epoch ${e} (m ${m0})`, 1e-15, 1e-15);
      }
    });
  }
});

it("MoCo v3's loss with keys gathered across 2 emulated ranks equals the single-process loss on the whole batch", () => {
  const model = new MoCoV3((nc) => new TinyEncoder(nc), { dim: 6, mlpDim: 10, T: 0.2, m: 0.99, mCos: true, stopGradConv1: false }, new T.Rng(0));
  model.to('reference', 'float64');
  const rng = new T.Rng(7);
  const q = T.randn([8, 6], { rng, device: 'reference', dtype: 'float64' }); // [2N, dim]
  const k = T.randn([8, 6], { rng, device: 'reference', dtype: 'float64' });
  T.tidy(() => {
    const whole = model.contrastiveLoss(q, k).loss.item();
    // concat_all_gather: every rank sees all 2N keys; rank r's positives are columns r * N + i
    const perRank = [0, 1].map((rank) => model.contrastiveLoss(T.slice(q, 0, rank * 4, rank * 4 + 4), T.slice(k, 0, rank * 4, rank * 4 + 4),
      { rank, allGather: () => T.l2Normalize(k, 1) }).loss.item()); // each rank's normalised keys, concatenated
    assertClose([(perRank[0]! + perRank[1]!) / 2], [whole], 'mean of the ranks\' losses', 1e-12, 1e-14);
  });
  model.dispose();
});
