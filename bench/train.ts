// Training throughput of the three methods (forward, backward, optimizer step on random 32x32 views) against PyTorch
// doing the same work in the same run, as JSON lines. One command prints everything issue 12 asks for:
//   - the machine: CPU, oneDNN's ISA, and oneDNN's f32 (and bf16) matmul peak measured now, on the same threads;
//   - per config: median seconds per step over >= 5 steps after warm-up, img/s, FLOP per step (conv + matmul
//     multiply-adds x 2, forward + backward, counted by the profiler) and pct_of_peak, CPU time, peak RSS;
//     PyTorch's median, peak RSS and BLAS core beside it (run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset);
//   - the same in bf16 against PyTorch's bf16 autocast, where the CPU has native bf16;
//   - --sequence: the configs one after another in ONE process, each compared with its run alone.
// Each config otherwise runs in its own process so its peak RSS is its own.
// Run: npm run bench:train [-- --methods simsiam,moco,mae --batch 128 --steps 5 --warmup 1 --precision fp32|bf16|both
//   --threads N --no-torch --no-sequence --profile]
// Configs (issue 5): batch 128, 32x32; SimSiam and MoCo v2 on ResNet-18 (CIFAR stem), SimSiam projector 512-512-2048
// and predictor 512, MoCo MLP head 512-512-128 with K 4096 and SplitBatchNorm(8); MAE ViT-Tiny/4 (192-d x 12, 3 heads;
// decoder 128-d x 4, 4 heads; mask 0.75).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import type { Tensor } from '../src/tensor/index.js';
import { trainStep } from '../src/train/pretrain.js';
import { buildMethod } from '../src/methods/registry.js';
import { nativeAddon, setPrecision, type Precision } from '../src/backend/native.js';
import { benchConfig, benchOptimizer, refuseReferenceBlas, torchEnv, type BenchMethod as Method } from './configs.js';

const METHODS: readonly Method[] = ['simsiam', 'moco', 'mae'];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const methods = arg('methods', METHODS.join(',')).split(',') as Method[];
for (const m of methods) if (!METHODS.includes(m)) throw new Error(`[bench:train] unknown method '${m}'; expected ${METHODS.join(', ')}`);
const batch = Number(arg('batch', '128'));
const steps = Number(arg('steps', '5'));
const warmup = Number(arg('warmup', '1'));
const threads = Number(arg('threads', String(availableParallelism())));
const withTorch = !flag('no-torch');
const wantProfile = flag('profile');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface OursResult {
  method: Method; precision: Precision; stepSec: number[]; medianSec: number; cpuSecPerStep: number; flop: number;
  /** minor page faults per timed step: memory the allocator handed back to the OS and took again */
  faultsPerStep: number;
  peakRssMb: number; profile?: T.ProfileReport;
}

/** Builds a method and times its training steps; FLOPs are counted in the first warm-up step by the profiler. */
function timeMethod(method: Method, precision: Precision): OursResult {
  setPrecision(precision);
  const cfg = benchConfig(method, batch);
  const model = buildMethod(cfg, new T.Rng(0));
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = benchOptimizer(method, params);
  const rng = new T.Rng(1);
  const views: Tensor[] = Array.from({ length: model.viewsPerSample }, () => T.keep(T.randn([batch, 3, cfg.imgSize, cfg.imgSize], { rng })));
  T.enableProfiler();
  let flop = 0;
  for (let i = 0; i < Math.max(warmup, 1); i++) {
    const { report } = T.profile(() => trainStep(model, opt, views, 0));
    if (i === 0) flop = report.flop;
  }
  const stepSec: number[] = [];
  const r0 = process.resourceUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    trainStep(model, opt, views, 0);
    stepSec.push((performance.now() - t0) / 1000);
  }
  const r1 = process.resourceUsage();
  const cpuSecPerStep = (r1.userCPUTime - r0.userCPUTime + r1.systemCPUTime - r0.systemCPUTime) / 1e6 / steps;
  const faultsPerStep = (r1.minorPageFault - r0.minorPageFault) / steps;
  let profile: T.ProfileReport | undefined;
  if (wantProfile) profile = T.profile(() => trainStep(model, opt, views, 0)).report;
  for (const v of views) v.dispose();
  opt.disposeState();
  model.dispose();
  setPrecision('fp32');
  return {
    method, precision, stepSec, medianSec: median(stepSec), cpuSecPerStep, faultsPerStep, flop,
    peakRssMb: process.resourceUsage().maxRSS / 1024, ...(profile !== undefined ? { profile } : {}),
  };
}

interface TorchResult { name: string; medianSec: number; stepSec: number[]; peakRssMb: number; blas: string; version: string }

/** PyTorch at the same config, in its own process, in `torchEnv` (this environment's OpenBLAS variables unset). */
function torchRun(method: Method, precision: Precision): TorchResult | null {
  const { env } = torchEnv({ BATCH: String(batch), STEPS: String(steps), WARMUP: String(warmup), THREADS: String(threads), PRECISION: precision });
  let r: { median_s: number; step_s: number[]; peak_rss_mb: number; blas: string; torch_version: string };
  try {
    const text = execFileSync('/usr/bin/python3', [join(ROOT, 'bench', 'torch_train.py'), method],
      { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    const line = text.split('\n').find((l) => l.startsWith('{'));
    if (line === undefined) return null;
    r = JSON.parse(line) as typeof r;
  } catch (err) {
    console.error(`[bench:train] torch ${method} (${precision}) failed: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
    return null;
  }
  refuseReferenceBlas('bench:train', r.blas);
  return { name: method, medianSec: r.median_s, stepSec: r.step_s, peakRssMb: r.peak_rss_mb, blas: r.blas, version: r.torch_version };
}

function hasTorch(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** oneDNN matmul GFLOP/s on square problems, best of a few sizes: the machine's peak as this engine can reach it. */
function matmulPeak(dtype: 'f32' | 'bf16'): { gflops: number; size: number } {
  const a = nativeAddon();
  let best = { gflops: 0, size: 0 };
  for (const n of [1024, 2048]) {
    a.benchPrimitive('matmul', { M: n, N: n, K: n }, 2, dtype);
    const iters = n === 1024 ? 20 : 5;
    const runs: number[] = [];
    for (let r = 0; r < 3; r++) runs.push(2 * n ** 3 / a.benchPrimitive('matmul', { M: n, N: n, K: n }, iters, dtype) / 1e9);
    const g = Math.max(...runs);
    if (g > best.gflops) best = { gflops: g, size: n };
  }
  return best;
}

function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m !== null) return m[1]!.trim();
  } catch { /* not Linux */ }
  return cpus()[0]?.model ?? 'unknown';
}

function cpuFlags(): string[] {
  try {
    const m = /flags\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    const want = ['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'];
    return m === null ? [] : m[1]!.split(' ').filter((f) => want.includes(f));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- child mode: one or more configs in this process
const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) {
  const list = process.argv[childIdx + 1]!.split(',') as Method[];
  const precision = arg('precision', 'fp32') as Precision;
  for (const m of list) {
    const r = timeMethod(m, precision);
    if (r.profile !== undefined) console.error(T.formatProfile(r.profile, `${m} ${precision} (batch ${batch}, one step)`));
    const { profile, ...rest } = r;
    console.log(JSON.stringify({ ...rest, ...(profile !== undefined ? { profileJson: T.profileJson(profile) } : {}) }));
  }
  process.exit(0);
}

// ---------------------------------------------------------------- parent mode
function runChild(list: readonly Method[], precision: Precision): OursResult[] {
  const text = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', list.join(','),
    '--precision', precision, '--batch', String(batch), '--steps', String(steps), '--warmup', String(warmup),
    ...(wantProfile ? ['--profile'] : [])], {
    encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) }, stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as OursResult);
}

const info = nativeAddon().info();
const precisionArg = arg('precision', info.nativeBf16 ? 'both' : 'fp32');
if (!['fp32', 'bf16', 'both'].includes(precisionArg)) throw new Error(`[bench:train] --precision must be fp32, bf16 or both, got '${precisionArg}'`);
if (precisionArg !== 'fp32' && !info.nativeBf16) {
  throw new Error(`[bench:train] --precision ${precisionArg}: this CPU has no native bf16 (oneDNN ISA ${info.isa}); emulated bf16 is slower than fp32`);
}
const precisions: Precision[] = precisionArg === 'both' ? ['fp32', 'bf16'] : [precisionArg as Precision];
const torchOk = withTorch && hasTorch();

const peaks = new Map<Precision, { gflops: number; size: number }>();
for (const p of precisions) peaks.set(p, matmulPeak(p === 'bf16' ? 'bf16' : 'f32'));
console.log(JSON.stringify({
  name: 'machine', cpu: cpuModel(), cores: cpus().length, threads, flags: cpuFlags(), onednn: info.onednn, onednn_isa: info.isa,
  native_bf16: info.nativeBf16, load1_at_start: +loadavg()[0]!.toFixed(2),
  ...Object.fromEntries([...peaks].map(([p, v]) => [`${p}_matmul_peak_gflops`, +v.gflops.toFixed(1)])),
  peak_note: 'oneDNN matmul, square f32 (or bf16 in, f32 out) problems of 1024 and 2048, best of 3, same threads as the configs',
}));

const alone = new Map<string, OursResult>();
for (const p of precisions) {
  for (const m of methods) {
    const [r] = runChild([m], p);
    if (r === undefined) throw new Error(`[bench:train] ${m} (${p}) printed no result`);
    alone.set(`${m}/${p}`, r);
    const t = torchOk ? torchRun(m, p) : null;
    const peak = peaks.get(p)!.gflops;
    const gflops = r.flop / 1e9 / r.medianSec;
    const line: Record<string, unknown> = {
      name: `train_${m}`, precision: p, value: +(batch / r.medianSec).toFixed(2), unit: 'img/s', batch, threads,
      steps, warmup, median_step_s: +r.medianSec.toFixed(4), step_s: r.stepSec.map((s) => +s.toFixed(4)),
      cpu_s_per_step: +r.cpuSecPerStep.toFixed(3), page_faults_per_step: Math.round(r.faultsPerStep),
      gflop_per_step: +(r.flop / 1e9).toFixed(2), achieved_gflops: +gflops.toFixed(1),
      peak_gflops: +peak.toFixed(1), pct_of_peak: +(100 * gflops / peak).toFixed(1),
      peak_rss_mb: Math.round(r.peakRssMb),
      flop_count: 'conv + matmul (with the Linear backward and fused attention products), 2 per multiply-add, forward + backward data + backward weights, as executed (MoCo key encoder forward included)',
    };
    if (t !== null) {
      const tv = batch / t.medianSec;
      Object.assign(line, {
        torch_value: +tv.toFixed(2), ratio: +((batch / r.medianSec) / tv).toFixed(3),
        torch_median_step_s: +t.medianSec.toFixed(4), torch_pct_of_peak: +(100 * r.flop / 1e9 / t.medianSec / peak).toFixed(1),
        torch_peak_rss_mb: Math.round(t.peakRssMb), rss_ratio: +(r.peakRssMb / t.peakRssMb).toFixed(3),
        torch_blas: t.blas, torch_version: t.version, torch_mode: p === 'bf16' ? 'torch.autocast(cpu, bfloat16)' : 'fp32',
      });
    }
    line.load1 = +loadavg()[0]!.toFixed(2);
    console.log(JSON.stringify(line));
  }
}

// --sequence (on by default): the configs in one process in turn; none may slow down because another ran first
if (!flag('no-sequence') && methods.length > 1) {
  const p = precisions[0]!;
  const seq = runChild(methods, p);
  for (const r of seq) {
    const a = alone.get(`${r.method}/${p}`)!;
    console.log(JSON.stringify({
      name: `sequence_${r.method}`, precision: p, order: methods.join('>'), value: +(batch / r.medianSec).toFixed(2),
      unit: 'img/s', alone_value: +(batch / a.medianSec).toFixed(2),
      slowdown_pct: +(100 * (r.medianSec / a.medianSec - 1)).toFixed(1), cpu_s_per_step: +r.cpuSecPerStep.toFixed(3),
      alone_cpu_s_per_step: +a.cpuSecPerStep.toFixed(3), page_faults_per_step: Math.round(r.faultsPerStep),
      alone_page_faults_per_step: Math.round(a.faultsPerStep), process_peak_rss_mb: Math.round(r.peakRssMb),
      load1: +loadavg()[0]!.toFixed(2),
    }));
  }
}
