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

/** OpenBLAS cores of the same ISA as a oneDNN cap (ONEDNN_MAX_CPU_ISA), newest first: a cap without AVX-512 must cap
 *  PyTorch too, or the comparison sets our AVX2 kernels against its AVX-512 OpenBLAS. */
const OPENBLAS_CORE_FOR_ISA: readonly (readonly [RegExp, string])[] = [
  [/^AVX2/, 'Haswell'],
  [/^AVX$/, 'Sandybridge'],
  [/^SSE4/, 'Nehalem'],
];

/**
 * The environment of a PyTorch command in a benchmark. This environment's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE make
 * Debian's OpenBLAS pick slow kernels, so both are unset for that command alone. When ONEDNN_MAX_CPU_ISA (or
 * DNNL_MAX_CPU_ISA) caps oneDNN below AVX-512 (to emulate an AVX2 machine), PyTorch inherits the cap for its own
 * oneDNN, and OPENBLAS_CORETYPE is set to the matching OpenBLAS core so its matmuls are capped alike.
 * `coreType` says which core was forced (null: OpenBLAS picks by CPUID).
 */
export function torchEnv(extra: Record<string, string> = {}, base: NodeJS.ProcessEnv = process.env):
  { env: NodeJS.ProcessEnv; coreType: string | null; prefix: string } {
  const env: NodeJS.ProcessEnv = { ...base, ...extra };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const cap = (base.ONEDNN_MAX_CPU_ISA ?? base.DNNL_MAX_CPU_ISA ?? '').toUpperCase();
  const coreType = OPENBLAS_CORE_FOR_ISA.find(([re]) => re.test(cap))?.[1] ?? null;
  if (coreType !== null) env.OPENBLAS_CORETYPE = coreType;
  const prefix = coreType === null ? 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE' : `env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=${coreType}`;
  return { env, coreType, prefix };
}
