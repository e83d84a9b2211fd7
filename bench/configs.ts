// The training benchmark configs (issue 5) shared by bench:train and bench:dist: batch 128, 32x32; SimSiam and MoCo v2
// on ResNet-18 (CIFAR stem, width 1), SimSiam projector 512-512-2048 and predictor 512, MoCo MLP head 512-512-128 with
// K 4096; MAE ViT-Tiny/4; and the optimizers of bench/torch_train.py.
import { presetConfig, type PretrainConfig } from '../src/train/config.js';
import { SGD, AdamW } from '../src/optim/index.js';
import type { Tensor } from '../src/tensor/index.js';

export type BenchMethod = 'simsiam' | 'moco' | 'mae';

export function benchConfig(method: BenchMethod, batch: number): PretrainConfig {
  const cfg = presetConfig(method, 'cifar');
  cfg.batchSize = batch;
  if (method === 'moco') cfg.moco = { ...cfg.moco, K: 4096, mlp: true };
  if (method !== 'mae') cfg.width = 1;
  return cfg;
}

export function benchOptimizer(method: BenchMethod, params: Tensor[]): SGD | AdamW {
  return method === 'mae'
    ? new AdamW(params, { lr: 1.5e-4, betas: [0.9, 0.95], weightDecay: 0.05 })
    : new SGD(params, { lr: method === 'moco' ? 0.06 : 0.05, momentum: 0.9, weightDecay: method === 'moco' ? 5e-4 : 1e-4 });
}

/** Throws when PyTorch's BLAS (reference/ssl_torch.py's blas_in_use) is a reference BLAS: Debian's torch falls back to
 *  the netlib libblas3 when no OpenBLAS is installed, several times slower at matmuls, and a comparison against a
 *  handicapped peer is not a result. `--allow-reference-blas` on the command line lets it through. */
export function refuseReferenceBlas(tool: string, blas: string): void {
  if (process.argv.includes('--allow-reference-blas')) return;
  if (blas.includes('reference BLAS') || !/OpenBLAS core|mkl/i.test(blas)) {
    throw new Error(`[${tool}] PyTorch runs on a reference BLAS (${blas || 'none found'}), which would handicap it; install an optimised one (Debian: apt-get install libopenblas0-pthread) or pass --allow-reference-blas`);
  }
}

/**
 * The optimiser values bench:budget hands to both sides: the selfsup `cifar` preset's lr and weight decay (or `lr`,
 * from --lr), passed explicitly to reference/budget_torch.py so the two sides cannot drift apart through their own
 * defaults. budget_torch.py reads SimSiam's and MAE's lr per 256 images and MoCo's as is; the preset must agree.
 */
export function budgetRecipe(method: BenchMethod, lr?: number): { lr: number; weightDecay: number } {
  const o = presetConfig(method, 'cifar').optim;
  const scaled = method !== 'moco';
  if (o.scaleLr !== scaled) {
    throw new Error(`[bench:budget] the ${method} cifar preset ${o.scaleLr ? 'scales' : 'does not scale'} its lr by batch / 256, budget_torch.py ${scaled ? 'does' : 'does not'}`);
  }
  return { lr: lr ?? o.lr, weightDecay: o.weightDecay };
}
