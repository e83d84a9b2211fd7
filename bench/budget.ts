// npm run bench:budget: accuracy at an equal time budget, selfsup against PyTorch (issue 15), one after the other on
// this machine. For MoCo, SimSiam or MAE on CIFAR-10 (the `cifar` preset's recipe at the given width and batch):
//  1. calibrate: each implementation times a few training steps (its img/s, loading included);
//  2. fit: epochs = the whole epochs of the training set that fit the budget at that speed (at least 1);
//  3. run: selfsup's pretrain, then reference/budget_torch.py, each for its own epoch count;
//  4. score. MoCo, SimSiam: each side's kNN monitor (weighted kNN, k 200, T 0.1) before and after, on the full 50k
//     bank and 10k test set. MAE: PyTorch's weights (official names) become a selfsup run folder, and both runs are
//     scored by the same code: `selfsup knn` (kNN on the mean patch token, and the held-out reconstruction loss with fixed
//     masks) and `selfsup linear --precomputed --recipe mae` (BatchNorm + Linear on the cls token, LARS, warmup +
//     cosine, --probe-epochs 90, batch 256).
// MAE's warmup scales with the fitted epochs as the preset's 10 of 200 (at least 1), the same for both sides.
// Training time excludes the evaluation passes. Prints one JSON line per implementation and a markdown table row; each
// line also says how quiet the machine was during that run: others_cpu_sec, the CPU seconds every other process used
// (from /proc/stat, less the run's own), and steal_sec, the hypervisor's steal.
// Run on a quiet machine. Options: --method moco|simsiam|mae --data PATH --minutes 60 --width 0.25 --batch-size 256
//   [--lr X] [--limit N] [--bank-size N --test-size N] [--calibrate-steps 10] [--only ours|torch] [--out runs/budget]
//   [--allow-reference-blas] (otherwise PyTorch on the netlib reference BLAS refuses: a handicapped peer is not a result)
//   [--probe-epochs 90] (MAE's linear probe)
//   [--epochs N] (train each side for N epochs instead of the count fitted from its calibration: a rerun of one side
//   at a known count, e.g. when a calibration was off; the calibration still runs, and is printed, as the BLAS check)
//   [--init-scores] (MAE: no training; scores each side's random initialisation, the "before" of the table, by the same
//   code: selfsup's model as pretrain builds it from the preset's seed, PyTorch's as budget_torch.py builds it)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budgetRecipe, refuseReferenceBlas, torchEnv } from './configs.js';
import { presetConfig } from '../src/train/config.js';
import { writeRunFolder, writeRunFromWeights } from '../src/eval/pretrained.js';
import { buildMethod } from '../src/methods/registry.js';
import * as T from '../src/tensor/index.js';
import { runKnn } from '../src/cli/knn.js';
import { runLinear } from '../src/cli/linear.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'selfsup.js');
const PYTHON = '/usr/bin/python3'; // Debian's python3-torch; the python3 on PATH may be another interpreter

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
function num(name: string, dflt: number): number {
  const v = Number(arg(name, String(dflt)));
  if (!Number.isFinite(v) || v < 0) throw new Error(`[bench:budget] --${name} must be a non-negative number, got '${arg(name)}'`);
  return v;
}

const method = arg('method', 'moco')!;
if (method !== 'moco' && method !== 'simsiam' && method !== 'mae') throw new Error(`[bench:budget] --method must be moco, simsiam or mae, got '${method}'`);
const mae = method === 'mae';
const data = arg('data');
if (data === undefined) throw new Error('[bench:budget] --data is required: the CIFAR-10 JPEG .tar.gz (cifar10/train/<class>/*.jpg) or its folder');
const minutes = num('minutes', 60);
const width = num('width', 0.25);
const batch = num('batch-size', 256);
// one lr and weight decay for both sides (the preset's unless --lr): budget_torch.py's own defaults are not used
const recipe = budgetRecipe(method, arg('lr') === undefined ? undefined : num('lr', 0));
const limit = num('limit', 0);
const bankSize = num('bank-size', 0);
const testSize = num('test-size', 0);
const calSteps = num('calibrate-steps', 10);
const probeEpochs = num('probe-epochs', 90);
const fixedEpochs = arg('epochs') === undefined ? undefined : num('epochs', 0);
if (fixedEpochs !== undefined && (!Number.isInteger(fixedEpochs) || fixedEpochs < 1)) throw new Error(`[bench:budget] --epochs must be a whole number from 1, got '${arg('epochs')}'`);
const only = arg('only');
const out = resolve(arg('out', join('runs', `budget-${method}`))!);
const TRAIN_IMAGES = limit > 0 ? limit : 50000;
const perEpoch = Math.floor(TRAIN_IMAGES / batch) * batch;
const common = { cpu: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, method, minutes, ...(mae ? { arch: 'vit-tiny-patch4' } : { width }), batch };
/** MAE: the preset's warmup (10 of 200 epochs) scaled to the fitted epochs, at least 1 (none for a 1-epoch run) */
const PRESET = presetConfig('mae', 'cifar');
const warmupFor = (epochs: number): number => (epochs <= 1 ? 0 : Math.max(1, Math.round((PRESET.optim.warmupEpochs * epochs) / PRESET.epochs)));

interface LogLine { event: string; [k: string]: unknown }
const jsonLines = (text: string): LogLine[] => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/** The command line of each side; `images` (the calibration's few steps) replaces --limit. */
function oursArgs(epochs: number, runOut: string, extra: string[], images = limit): string[] {
  return [BIN, 'pretrain', '--method', method, '--preset', 'cifar', '--data', data!, '--epochs', String(epochs), '--batch-size', String(batch),
    ...(mae ? ['--set', `optim.warmupEpochs=${warmupFor(epochs)}`] : ['--set', `width=${width}`]), '--out', runOut, '--no-progress',
    '--lr', String(recipe.lr), ...(images > 0 ? ['--limit', String(images)] : []), ...extra];
}
function torchArgs(epochs: number, extra: string[], images = limit): string[] {
  return [join(ROOT, 'reference', 'budget_torch.py'), '--method', method, '--data', data!, '--epochs', String(epochs), '--batch-size', String(batch),
    ...(mae ? ['--warmup-epochs', String(warmupFor(epochs))] : ['--width', String(width)]), '--lr', String(recipe.lr), '--wd', String(recipe.weightDecay),
    ...(images > 0 ? ['--limit', String(images)] : []), ...extra];
}

function calibrateOurs(): number {
  const runOut = join(out, 'calibrate-ours');
  rmSync(runOut, { recursive: true, force: true });
  execFileSync(process.execPath, oursArgs(1, runOut, ['--set', 'knn.disabled=true', '--set', 'logEvery=1'], batch * (3 + calSteps)), { stdio: ['ignore', 'ignore', 'inherit'] });
  const steps = jsonLines(readFileSync(join(runOut, 'log.jsonl'), 'utf8')).filter((l) => l.event === 'step').map((l) => Number(l.imgPerSec));
  rmSync(runOut, { recursive: true, force: true });
  return median(steps.slice(3));
}

/** PyTorch's img/s and the BLAS it mapped. Debian's torch falls back to the netlib reference BLAS (libblas3) when no
 *  OpenBLAS is installed: refuseReferenceBlas stops there. */
function calibrateTorch(): { ips: number; blas: string } {
  const text = execFileSync(PYTHON, torchArgs(1, ['--calibrate', String(calSteps)], batch * (4 + calSteps)), { encoding: 'utf8', env: torchEnv().env, stdio: ['ignore', 'pipe', 'inherit'] });
  const cal = jsonLines(text).find((l) => l.event === 'calibrate')!;
  const blas = String(cal.blas);
  refuseReferenceBlas('bench:budget', blas);
  return { ips: Number(cal.img_per_sec), blas };
}

/** Machine-wide busy and steal CPU seconds (/proc/stat) and the CPU seconds of this process's reaped children. */
function cpuClock(): { busy: number; steal: number; children: number } {
  const hz = 100; // USER_HZ: the kernel's unit for /proc/stat and /proc/self/stat on Linux
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]!;
  const self = readFileSync('/proc/self/stat', 'utf8');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number); // fields from 3 (state) on
  return { busy: busy / hz, steal: cpu[7]! / hz, children: (f[13]! + f[14]!) / hz }; // cutime, cstime: fields 16, 17
}

/**
 * Runs `fn` (a child process run to completion) and says how quiet the machine was meanwhile: the CPU seconds that
 * processes other than the child used, and the hypervisor's steal, both machine-wide. A quiet run has others near 0.
 */
function watched<R>(fn: () => R): { r: R; othersCpuSec: number; stealSec: number } {
  const a = cpuClock();
  const me0 = process.cpuUsage();
  const r = fn();
  const b = cpuClock();
  const me = process.cpuUsage(me0);
  const mine = (me.user + me.system) / 1e6;
  return { r, othersCpuSec: Math.max(0, b.busy - a.busy - (b.children - a.children) - mine), stealSec: b.steal - a.steal };
}

const fitEpochs = (ips: number): number => fixedEpochs ?? Math.max(1, Math.floor((minutes * 60 * ips) / perEpoch));

interface Result {
  impl: string; epochs: number; imagesSeen: number; trainSec: number; calibratedIps: number; command: string; blas?: string;
  /** MoCo, SimSiam: the run's own kNN monitor before and after (%) */
  knnBefore?: number; knnAfter?: number;
  /** MAE: the run folder both sides are scored from, and PyTorch's own held-out loss (a cross-check of the scorer) */
  runDir?: string; ownTestLoss?: number;
  /** CPU seconds other processes used during the run, and the hypervisor's steal (see watched) */
  othersCpuSec?: number; stealSec?: number;
}

function runOurs(ips: number): Result {
  const epochs = fitEpochs(ips);
  const runOut = join(out, 'selfsup');
  rmSync(runOut, { recursive: true, force: true });
  // MAE is scored afterwards by the same evaluators as PyTorch's run; MoCo and SimSiam by the monitor, before and after
  const extra = mae ? ['--set', 'knn.disabled=true']
    : ['--set', 'knn.every=0', ...(bankSize > 0 ? ['--set', `knn.bankSize=${bankSize}`] : []), ...(testSize > 0 ? ['--set', `knn.testSize=${testSize}`] : [])];
  const args = oursArgs(epochs, runOut, extra);
  const w = watched(() => spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] }));
  const r = w.r;
  if (r.status !== 0) throw new Error(`[bench:budget] selfsup pretrain exited with ${r.status}`);
  const log = jsonLines(readFileSync(join(runOut, 'log.jsonl'), 'utf8'));
  const ep = log.filter((l) => l.event === 'epoch');
  const before = log.find((l) => l.event === 'knn');
  return {
    impl: 'selfsup', epochs, imagesSeen: epochs * perEpoch, trainSec: ep.reduce((s, l) => s + Number(l.trainSeconds), 0), calibratedIps: ips,
    othersCpuSec: w.othersCpuSec, stealSec: w.stealSec,
    ...(mae ? { runDir: runOut } : { knnBefore: 100 * Number(before!.top1), knnAfter: 100 * Number(ep[ep.length - 1]!.knnTop1) }),
    command: `node bin/selfsup.js ${args.slice(1).map((a) => (a === runOut ? `runs/budget-${method}/selfsup` : a)).join(' ')}`,
  };
}

function runTorch({ ips, blas }: { ips: number; blas: string }): Result {
  const epochs = fitEpochs(ips);
  const runDir = join(out, 'pytorch');
  const weights = join(out, 'pytorch-weights.safetensors');
  const extra = [...(bankSize > 0 ? ['--bank-size', String(bankSize)] : []), ...(testSize > 0 ? ['--test-size', String(testSize)] : []),
    ...(mae ? ['--save', weights] : [])];
  const args = torchArgs(epochs, extra);
  const w = watched(() => spawnSync(PYTHON, args, { encoding: 'utf8', env: torchEnv().env, stdio: ['ignore', 'pipe', 'inherit'] }));
  const r = w.r;
  process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`[bench:budget] reference/budget_torch.py exited with ${r.status}`);
  const log = jsonLines(r.stdout);
  const knn = log.filter((l) => l.event === 'knn');
  const done = log.find((l) => l.event === 'done')!;
  if (mae) {
    // the PyTorch weights under their official names, as a selfsup run folder of the same recipe
    rmSync(runDir, { recursive: true, force: true });
    writeRunFromWeights(maeConfig(epochs), weights, runDir, epochs);
  }
  return {
    impl: 'pytorch', epochs, imagesSeen: Number(done.images_seen), trainSec: Number(done.train_sec), calibratedIps: ips, blas,
    othersCpuSec: w.othersCpuSec, stealSec: w.stealSec,
    ...(mae ? { runDir, ownTestLoss: Number(done.test_loss) } : { knnBefore: Number(knn[0]!.top1), knnAfter: Number(knn[knn.length - 1]!.top1) }),
    command: `${torchEnv().prefix} /usr/bin/python3 ${args.map((a) => a.replace(`${ROOT}/`, '').replace(out, `runs/budget-${method}`)).join(' ')}`,
  };
}

interface Scores { knn: number; testLoss: number; linear: number; linearSec: number }

/** MAE: kNN (mean patch token) + held-out loss, then the precomputed linear probe on the cls token, the same calls for both runs. */
async function score(runDir: string): Promise<Scores> {
  const lim = { limit: bankSize > 0 ? bankSize : null, testLimit: testSize > 0 ? testSize : null };
  const k = await runKnn({ checkpoint: runDir, k: 200, t: 0.1, ...lim, batchSize: 256, workers: 2 });
  const t0 = performance.now();
  const l = await runLinear({ checkpoint: runDir, recipe: 'mae', precomputed: true, epochs: probeEpochs, batchSize: 256, ...lim, workers: 2, seed: 0,
    log: (line) => { if (/epoch (\d+)\//.exec(line)?.[1] === String(probeEpochs)) console.error(line); } });
  return { knn: 100 * k.top1, testLoss: k.testLoss!, linear: 100 * l.top1, linearSec: (performance.now() - t0) / 1000 };
}

/** MAE's preset config as both sides' run folders record it, for `epochs` of training. */
function maeConfig(epochs: number): ReturnType<typeof presetConfig> {
  const cfg = presetConfig('mae', 'cifar');
  Object.assign(cfg, { data: data!, epochs, batchSize: batch, ...(limit > 0 ? { limit } : {}) });
  cfg.optim.warmupEpochs = warmupFor(epochs);
  return cfg;
}

/** --init-scores: each side's untrained MAE as a run folder, scored as the trained ones are. */
async function initScores(): Promise<void> {
  if (!mae) throw new Error('[bench:budget] --init-scores is for --method mae (MoCo and SimSiam runs score their init with the kNN monitor)');
  const rows: { impl: string; sc: Scores; command: string }[] = [];
  if (only !== 'torch') {
    const dir = join(out, 'init-selfsup');
    const cfg = maeConfig(0);
    const model = buildMethod(cfg, new T.Rng(cfg.seed)); // what pretrain starts from: the same builder and seed
    try {
      rmSync(dir, { recursive: true, force: true });
      writeRunFolder(dir, model, cfg, 0);
    } finally {
      model.dispose();
    }
    rows.push({ impl: 'selfsup', sc: await score(dir), command: 'buildMethod(presetConfig(mae, cifar)) at the preset seed' });
  }
  if (only !== 'ours') {
    const dir = join(out, 'init-pytorch');
    const weights = join(out, 'init-pytorch-weights.safetensors');
    const args = torchArgs(0, ['--save', weights]);
    const r = spawnSync(PYTHON, args, { encoding: 'utf8', env: torchEnv().env, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`[bench:budget] reference/budget_torch.py --epochs 0 exited with ${r.status}`);
    rmSync(dir, { recursive: true, force: true });
    writeRunFromWeights(maeConfig(0), weights, dir, 0);
    rows.push({ impl: 'pytorch', sc: await score(dir),
      command: `${torchEnv().prefix} /usr/bin/python3 ${args.map((a) => a.replace(`${ROOT}/`, '').replace(out, `runs/budget-${method}`)).join(' ')}` });
  }
  for (const { impl, sc, command } of rows) {
    console.log(JSON.stringify({ name: 'budget_init', impl, epochs: 0, knn: +sc.knn.toFixed(2), test_loss: +sc.testLoss.toFixed(4),
      linear_top1: +sc.linear.toFixed(2), probe_epochs: probeEpochs, linear_sec: +sc.linearSec.toFixed(1), command, ...common }));
  }
  console.log('| mae, untrained | impl | held-out loss | linear probe top-1 | kNN top-1 |');
  for (const { impl, sc } of rows) console.log(`| ViT-Tiny/4 | ${impl} | ${sc.testLoss.toFixed(4)} | ${sc.linear.toFixed(2)}% | ${sc.knn.toFixed(2)}% |`);
}

mkdirSync(out, { recursive: true });
if (process.argv.includes('--init-scores')) {
  await initScores();
  process.exit(0);
}
const results: Result[] = [];
const load1 = +loadavg()[0]!.toFixed(2);
// both calibrations first, so that a refused PyTorch (reference BLAS) stops before an hour of training
const oursIps = only !== 'torch' ? calibrateOurs() : undefined;
const torchCal = only !== 'ours' ? calibrateTorch() : undefined;
if (oursIps !== undefined) results.push(runOurs(oursIps));
if (torchCal !== undefined) results.push(runTorch(torchCal));
const scores = new Map<Result, Scores>();
if (mae) for (const r of results) scores.set(r, await score(r.runDir!));
for (const r of results) {
  const sc = scores.get(r);
  console.log(JSON.stringify({
    name: 'budget', impl: r.impl, epochs: r.epochs, images_seen: r.imagesSeen, train_sec: +r.trainSec.toFixed(1), calibrated_img_per_sec: +r.calibratedIps.toFixed(1),
    epochs_from: fixedEpochs !== undefined ? '--epochs' : 'calibration',
    ...(r.knnBefore !== undefined ? { knn_before: +r.knnBefore.toFixed(2), knn_after: +r.knnAfter!.toFixed(2) } : {}),
    ...(sc !== undefined ? { knn_after: +sc.knn.toFixed(2), test_loss: +sc.testLoss.toFixed(4), linear_top1: +sc.linear.toFixed(2), probe_epochs: probeEpochs, linear_sec: +sc.linearSec.toFixed(1) } : {}),
    ...(r.ownTestLoss !== undefined ? { own_test_loss: +r.ownTestLoss.toFixed(4), warmup_epochs: warmupFor(r.epochs) } : {}),
    others_cpu_sec: +(r.othersCpuSec ?? 0).toFixed(1), steal_sec: +(r.stealSec ?? 0).toFixed(1), load1_at_start: load1, command: r.command, ...(r.blas !== undefined ? { torch_blas: r.blas } : {}), ...common,
  }));
}
if (mae) {
  console.log('| mae | impl | images seen | epochs | held-out loss | linear probe top-1 | kNN top-1 | training time |');
  for (const r of results) {
    const sc = scores.get(r)!;
    console.log(`| mae, ViT-Tiny/4, batch ${batch} | ${r.impl} | ${r.imagesSeen} | ${r.epochs} | ${sc.testLoss.toFixed(4)} | ${sc.linear.toFixed(2)}% | ${sc.knn.toFixed(2)}% | ${Math.round(r.trainSec)} s |`);
  }
} else {
  console.log(`| ${method} | impl | images seen | epochs | kNN before -> after | training time |`);
  for (const r of results) console.log(`| ${method}, width ${width}, batch ${batch} | ${r.impl} | ${r.imagesSeen} | ${r.epochs} | ${r.knnBefore!.toFixed(2)}% -> ${r.knnAfter!.toFixed(2)}% | ${Math.round(r.trainSec)} s |`);
}
