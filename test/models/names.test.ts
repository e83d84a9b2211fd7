// Full-size backbones carry exactly the state-dict names and shapes of torchvision / MAE's timm ViT
// (test/fixtures/parity/names.json, written by reference/make_fixtures.py), so official checkpoints load by name:
// the methods' state dicts, prefixed as the official DDP checkpoints are, map onto those names through the key maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../src/tensor/index.js';
import type { Module } from '../../src/nn/module.js';
import { remapStateDict, type KeyMap } from '../../src/io/safetensors.js';
import { buildMethod } from '../../src/methods/registry.js';
import { presetConfig } from '../../src/train/config.js';
import { mocoKeys, mocoV2Config } from '../../src/methods/moco.js';
import { simsiamKeys } from '../../src/methods/simsiam.js';
import { maeKeys } from '../../src/methods/mae.js';
import {
  resnet18, resnet18Cifar, resnet34, resnet50, resnet50Cifar, vitSmall, vitTinyPatch4,
} from '../../src/models/index.js';

const names = JSON.parse(readFileSync('test/fixtures/parity/names.json', 'utf8')) as {
  magic: string; version: string; models: Record<string, Record<string, number[]>>;
};

function check(label: string, m: Module, expected: Record<string, number[]>): void {
  const ours: Record<string, number[]> = {};
  for (const [k, t] of m.stateDict()) ours[k] = [...t.shape];
  const missing = Object.keys(expected).filter((k) => !(k in ours));
  const extra = Object.keys(ours).filter((k) => !(k in expected));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${label}: state-dict names differ from PyTorch's`);
  for (const [k, s] of Object.entries(expected)) assert.deepEqual(ours[k], s, `${label}: shape of ${k}`);
  const nParams = Object.entries(expected).filter(([k]) => !/running_|num_batches/.test(k))
    .reduce((a, [, s]) => a + s.reduce((p, d) => p * d, 1), 0);
  assert.equal(m.numParameters(), nParams, `${label}: parameter count`);
  m.dispose();
}

const f = { device: 'reference' as const, skipInit: true };

test('names.json header', () => {
  assert.equal(names.magic, 'selfsup-parity', 'regenerate with: /usr/bin/python3 reference/make_fixtures.py');
  assert.equal(names.version, '1');
});

test('our torchvision models have torchvision\'s parameter counts', () => {
  // sum(p.numel() for p in torchvision.models.resnet18().parameters()), and resnet50's
  for (const [label, m, n] of [['resnet18', resnet18({}, f), 11689512], ['resnet50', resnet50({}, f), 25557032]] as const) {
    assert.equal(m.numParameters(), n, `${label}: parameter count`);
    m.dispose();
  }
});

/** Our method's state dict as the official DDP checkpoint names it, through the method's key map to the backbone. */
function officialBackbone(method: Module, prefix: string, keyMap: KeyMap): Record<string, number[]> {
  const sd = new Map([...method.stateDict()].map(([k, t]) => [`${prefix}${k}`, t]));
  const { mapped } = remapStateDict(sd, keyMap);
  method.dispose();
  return Object.fromEntries([...mapped].map(([k, t]) => [k, [...t.shape]]));
}
const withoutHead = (m: Record<string, number[]>, head: RegExp): Record<string, number[]> =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !head.test(k)));

test('method checkpoints map by name onto torchvision / timm backbones (official key maps)', () => {
  const cfg = (method: 'moco' | 'simsiam', arch: string) => ({ ...presetConfig(method, 'quick'), arch, width: 1, batchSize: 256 });
  const moco = buildMethod({ ...cfg('moco', 'resnet18'), moco: { ...mocoV2Config(), K: 256 } }, new T.Rng(0));
  assert.deepEqual(officialBackbone(moco, 'module.', mocoKeys()), withoutHead(names.models.resnet18!, /^fc\./));
  const simsiam = buildMethod(cfg('simsiam', 'resnet18-cifar'), new T.Rng(0));
  assert.deepEqual(officialBackbone(simsiam, 'module.', simsiamKeys()), withoutHead(names.models.resnet18_cifar!, /^fc\./));
  const mae = buildMethod({ ...presetConfig('mae', 'cifar'), arch: 'vit-tiny-patch4', imgSize: 32 }, new T.Rng(0));
  assert.deepEqual(officialBackbone(mae, 'model.', maeKeys()), withoutHead(names.models.vit_tiny_patch4_32_cls!, /^head\./));
});

test('ResNet-18/34/50 state dicts match torchvision (ImageNet and CIFAR stems)', () => {
  check('resnet18', resnet18({}, f), names.models.resnet18!);
  check('resnet34', resnet34({}, f), names.models.resnet34!);
  check('resnet50', resnet50({}, f), names.models.resnet50!);
  check('resnet18_cifar', resnet18Cifar({ numClasses: 1000 }, f), names.models.resnet18_cifar!);
  check('resnet50_cifar', resnet50Cifar({ numClasses: 1000 }, f), names.models.resnet50_cifar!);
});

test('ViT state dicts match MAE models_vit / timm (cls token with norm; global pool with fc_norm)', () => {
  check('vit_tiny_patch4_32_cls', vitTinyPatch4({ numClasses: 10 }, f), names.models.vit_tiny_patch4_32_cls!);
  check('vit_small_patch16_224_gap', vitSmall({ numClasses: 1000, globalPool: true }, f), names.models.vit_small_patch16_224_gap!);
});
