// Tiny labelled image folders and tiny run folders (config.json + checkpoint) for the evaluation command tests:
// models are built from a small config and saved untrained, so no test pays for a pretraining.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import { presetConfig, type MethodName, type PretrainConfig } from '../../src/train/config.js';
import { buildMethod } from '../../src/methods/registry.js';
import { writeRunFolder } from '../../src/eval/pretrained.js';
import { encodePng } from '../data/png.js';

/**
 * root/train/<class>/*.png and root/test/<class>/*.png: class k is a colour plus noise, so features separate them.
 * `testClasses` lets the test split have a different class list.
 */
export function makeImageFolder(root: string, o: { classes: readonly string[]; perClass: number; size: number; testClasses?: readonly string[]; seed?: number }): string {
  const rng = new T.Rng(o.seed ?? 1);
  for (const split of ['train', 'test'] as const) {
    const classes = split === 'test' ? (o.testClasses ?? o.classes) : o.classes;
    classes.forEach((cls, k) => {
      mkdirSync(join(root, split, cls), { recursive: true });
      for (let i = 0; i < o.perClass; i++) {
        const base = [(k * 97) % 256, (k * 181 + 60) % 256, (k * 53 + 120) % 256];
        const px = Array.from({ length: o.size * o.size * 3 }, (_, j) => Math.max(0, Math.min(255, Math.round(base[j % 3]! + 40 * (rng.uniform() - 0.5)))));
        writeFileSync(join(root, split, cls, `${i}.png`), encodePng(o.size, o.size, 3, 8, px));
      }
    });
  }
  return root;
}

/** A flat folder of unlabelled images. */
export function makeFlatFolder(root: string, n: number, size: number): string {
  mkdirSync(root, { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(root, `${i}.png`), encodePng(size, size, 3, 8, Array.from({ length: size * size * 3 }, (_, j) => (j * (i + 1)) % 256)));
  return root;
}

/** The config of a tiny run of `method` on `data` (16 px images, 1/8-width ResNet-18 or a 2-block ViT with 4 px patches). */
export function tinyConfig(method: MethodName, data: string, out: string): PretrainConfig {
  const cfg = presetConfig(method, 'quick');
  return {
    ...cfg, data, out, epochs: 1, arch: method === 'mae' ? 'vit-d16-depth2-heads2-patch4' : cfg.arch, batchSize: 8, workers: 0, limit: null, imgSize: 16, width: 0.125, seed: 3,
    knn: { ...cfg.knn, disabled: true },
    moco: { ...cfg.moco, dim: 16, K: 32, bnSplits: 1 },
    simsiam: { ...cfg.simsiam, dim: 16, predDim: 8 },
    mae: { ...cfg.mae, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2 },
    mocov3: { ...cfg.mocov3, dim: 16, mlpDim: 32 },
  };
}

/** Writes config.json and an (untrained) checkpoint of the tiny run; returns its folder. */
export function makeTinyRun(method: MethodName, data: string, out: string, patch: (c: PretrainConfig) => PretrainConfig = (c) => c): string {
  const cfg = patch(tinyConfig(method, data, out));
  const model = buildMethod(cfg, new T.Rng(cfg.seed));
  try {
    writeRunFolder(out, model, cfg, 1);
  } finally {
    model.dispose();
  }
  return out;
}
