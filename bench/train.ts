// Training throughput of the three methods (forward, backward, optimizer step on random 32x32 views) as JSON lines
// {name, value, unit, ...}; when /usr/bin/python3 has PyTorch, runs bench/torch_train.py at the same configs in the
// same run and adds torch_value and ratio (ours / torch).
// Run: npm run bench:train [-- --methods simsiam,moco,mae --batch 128 --steps 2 --warmup 1 --no-torch]
// Configs (issue 5): batch 128, 32x32, 2 threads; SimSiam and MoCo v2 on ResNet-18 (CIFAR stem, width 1), SimSiam
// projector 512-512-2048 and predictor 512, MoCo MLP head 512-512-128 with K 4096; MAE ViT-Tiny/4 (192-d x 12,
// 3 heads; decoder 128-d x 4, 4 heads; mask 0.75).
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import type { Tensor } from '../src/tensor/index.js';
import { trainStep } from '../src/train/pretrain.js';
import { buildMethod } from '../src/methods/registry.js';
import { benchConfig, benchOptimizer, type BenchMethod as Method } from './configs.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const methods = arg('methods', 'simsiam,moco,mae').split(',') as Method[];
const batch = Number(arg('batch', '128'));
const steps = Number(arg('steps', '2'));
const warmup = Number(arg('warmup', '1'));
const withTorch = !process.argv.includes('--no-torch');

/** Seconds per training step after warm-up (the first steps build oneDNN primitives and fill the allocator cache). */
function timeMethod(method: Method): { sec: number; cpuSec: number } {
  const cfg = benchConfig(method, batch);
  const model = buildMethod(cfg, new T.Rng(0));
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = benchOptimizer(method, params);
  const rng = new T.Rng(1);
  const views: Tensor[] = Array.from({ length: model.viewsPerSample }, () => T.keep(T.randn([batch, 3, cfg.imgSize, cfg.imgSize], { rng })));
  for (let i = 0; i < warmup; i++) trainStep(model, opt, views, 0);
  const r0 = process.resourceUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) trainStep(model, opt, views, 0);
  const sec = (performance.now() - t0) / 1000 / steps;
  const r1 = process.resourceUsage();
  const cpuSec = (r1.userCPUTime - r0.userCPUTime + r1.systemCPUTime - r0.systemCPUTime) / 1e6 / steps;
  for (const v of views) v.dispose();
  return { sec, cpuSec };
}

/** img/s per method from bench/torch_train.py, or an empty map when PyTorch is not there. */
function torchValues(): Map<string, number> {
  const out = new Map<string, number>();
  if (!withTorch) return out;
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return out;
  }
  const script = join(dirname(fileURLToPath(import.meta.url)), 'torch_train.py');
  for (const m of methods) {
    try {
      const text = execFileSync('/usr/bin/python3', [script, m], {
        encoding: 'utf8', env: { ...process.env, BATCH: String(batch), STEPS: String(steps), THREADS: '2' },
      });
      for (const line of text.split('\n')) {
        if (!line.startsWith('{')) continue;
        const r = JSON.parse(line) as { name: string; value: number };
        out.set(r.name, r.value);
      }
    } catch (err) {
      console.error(`[bench:train] torch ${m} failed: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
    }
  }
  return out;
}

const ours = new Map<Method, { sec: number; cpuSec: number }>();
for (const m of methods) ours.set(m, timeMethod(m));
const torch = torchValues();
for (const m of methods) {
  const r = ours.get(m)!;
  const name = `train_${m}`;
  const value = batch / r.sec;
  const tv = torch.get(name);
  console.log(JSON.stringify({
    name, value: +value.toFixed(2), unit: 'img/s', batch, steps, device: T.getDefaultDevice(),
    cpu_s_per_step: +r.cpuSec.toFixed(2), threads: 2, cores: cpus().length, load1: +loadavg()[0]!.toFixed(2),
    ...(tv !== undefined ? { torch_value: +tv.toFixed(2), ratio: +(value / tv).toFixed(3) } : {}),
  }));
}
