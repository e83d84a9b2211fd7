// Full-size backbones carry exactly the state-dict names and shapes of torchvision / MAE's timm ViT
// (test/fixtures/parity/names.json, written by reference/make_fixtures.py), so official checkpoints load by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Module } from '../../src/nn/module.js';
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

test('parameter counts of the torchvision models', () => {
  const count = (k: string): number => Object.entries(names.models[k]!).filter(([n]) => !/running_|num_batches/.test(n))
    .reduce((a, [, s]) => a + s.reduce((p, d) => p * d, 1), 0);
  assert.equal(count('resnet18'), 11689512);
  assert.equal(count('resnet50'), 25557032);
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
