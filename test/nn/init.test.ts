// Initialisers: PyTorch's formulas (bounds and standard deviations), torchvision/MAE model init, MAE's sin-cos table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { init, Linear, Conv2d } from '../../src/nn/index.js';
import { resnet18, resnet18Cifar, VisionTransformer } from '../../src/models/index.js';
import { assertClose } from '../helpers.js';
import { loadFixture } from './parity.js';

function stats(a: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0; let s2 = 0; let min = Infinity; let max = -Infinity;
  for (let i = 0; i < a.length; i++) { const v = a[i]!; s += v; s2 += v * v; min = Math.min(min, v); max = Math.max(max, v); }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean), min, max };
}

const dev = { device: 'reference' as const };

test('fan in/out and gains', () => {
  assert.deepEqual(init.fanInAndFanOut([64, 3, 7, 7]), { fanIn: 147, fanOut: 3136 });
  assert.equal(init.calculateGain('relu'), Math.SQRT2);
  assert.equal(init.calculateGain('leaky_relu', Math.sqrt(5)), Math.sqrt(1 / 3));
});

test("default Linear/Conv init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias", () => {
  const l = new Linear(100, 300, true, { ...dev, rng: new T.Rng(1) });
  const ws = stats(l.weight.data);
  const bound = 1 / Math.sqrt(100);
  assert.ok(ws.max <= bound && ws.min >= -bound && ws.max > 0.97 * bound, `weight within ±${bound}`);
  assert.ok(Math.abs(ws.std - bound / Math.sqrt(3)) < 0.01 * bound);
  const bs = stats(l.bias!.data);
  assert.ok(bs.max <= bound && bs.min >= -bound);
  const c = new Conv2d(16, 32, 3, {}, { ...dev, rng: new T.Rng(2) });
  assert.ok(stats(c.weight.data).max <= 1 / Math.sqrt(144));
});

test('kaiming normal fan_out relu for ResNet convs; xavier uniform for ViT linears; trunc-normal cls token', () => {
  const r = resnet18Cifar({ width: 0.5 }, { ...dev, rng: new T.Rng(3) });
  const w = r.stateDict().get('layer3.0.conv2.weight')!; // [128, 128, 3, 3]
  assert.ok(Math.abs(stats(w.data).std - Math.sqrt(2 / (128 * 9))) < 0.02 * Math.sqrt(2 / (128 * 9)));
  // the CIFAR stem's conv1 keeps nn.Conv2d's default init, as the demo's fresh conv: U(+-1/sqrt(fan_in)), fan_in 27
  const stem = stats(r.stateDict().get('conv1.weight')!.data); // [32, 3, 3, 3]
  const sb = 1 / Math.sqrt(27);
  assert.ok(stem.max <= sb && stem.min >= -sb && stem.max > 0.9 * sb, `conv1 in U(+-${sb}): [${stem.min}, ${stem.max}]`);
  assert.ok(Math.abs(stem.std - sb / Math.sqrt(3)) < 0.1 * sb, `conv1 std ${stem.std} vs ${sb / Math.sqrt(3)}`);
  const imagenetStem = resnet18({ width: 0.5 }, { ...dev, rng: new T.Rng(3) }).stateDict().get('conv1.weight')!; // [32, 3, 7, 7]
  assert.ok(Math.abs(stats(imagenetStem.data).std - Math.sqrt(2 / (32 * 49))) < 0.05 * Math.sqrt(2 / (32 * 49)), 'ImageNet stem stays kaiming fan_out');
  const v = new VisionTransformer({ imgSize: 32, patchSize: 4, embedDim: 96, depth: 1, numHeads: 3 }, { ...dev, rng: new T.Rng(4) });
  const qkv = v.stateDict().get('blocks.0.attn.qkv.weight')!; // [288, 96] treated as one Linear, as MAE
  const xb = Math.sqrt(6 / (96 + 288));
  const qs = stats(qkv.data);
  assert.ok(qs.max <= xb && qs.max > 0.95 * xb, 'qkv xavier bound from the fused shape');
  assert.ok(v.stateDict().get('blocks.0.attn.qkv.bias')!.toArray().every((x) => x === 0));
  const pe = v.stateDict().get('patch_embed.proj.weight')!; // [96, 3, 4, 4] as [96, 48]
  const pb = Math.sqrt(6 / (96 + 48));
  assert.ok(stats(pe.data).max <= pb && stats(pe.data).max > 0.9 * pb);
  const cls = stats(v.clsToken.data);
  assert.ok(cls.max < 0.1 && cls.std > 0.01 && cls.std < 0.03);
  assert.ok(v.stateDict().get('norm.weight')!.toArray().every((x) => x === 1));
});

test("2-D sin-cos position embeddings equal MAE's get_2d_sincos_pos_embed", () => {
  const fx = loadFixture('pos_embed');
  for (const [name, dim, grid, cls] of [['pos_embed.d48.g8', 48, 8, true], ['pos_embed.d192.g8', 192, 8, true],
    ['pos_embed.d64.g4.nocls', 64, 4, false]] as const) {
    const ours = init.get2dSincosPosEmbed(dim, grid, cls);
    assertClose(ours, fx.get(name).data, name, 1e-12, 1e-12);
  }
  const v = new VisionTransformer({ imgSize: 32, patchSize: 4, embedDim: 48, depth: 1, numHeads: 3 }, { ...dev, dtype: 'float64' });
  assertClose(v.posEmbed.data, fx.get('pos_embed.d48.g8').data, 'ViT pos_embed buffer', 1e-12, 1e-12);
});
