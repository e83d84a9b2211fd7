// npm run bench:budget: accuracy at an equal time budget, selfsup against PyTorch (issue 15), one after the other on
// this machine. For MoCo or SimSiam on CIFAR-10 (the `cifar` preset's recipe at the given width and batch):
//  1. calibrate: each implementation times a few training steps (its img/s, loading included);
//  2. fit: epochs = the whole epochs of the training set that fit the budget at that speed (at least 1);
//  3. run: selfsup's pretrain, then reference/budget_torch.py, each for its own epoch count, with the kNN monitor's
//     protocol (weighted kNN, k 200, T 0.1) before and after on the full 50k bank and 10k test set.
// Training time excludes the kNN passes. Prints one JSON line per implementation and a markdown table row.
// Run on a quiet machine. Options: --method moco|simsiam --data PATH --minutes 60 --width 0.25 --batch-size 256
//   [--lr X] [--limit N] [--bank-size N --test-size N] [--calibrate-steps 10] [--only ours|torch] [--out runs/budget]
//   [--allow-reference-blas] (otherwise PyTorch on the netlib reference BLAS refuses: a handicapped peer is not a result)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { refuseReferenceBlas } from './configs.js';

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
if (method !== 'moco' && method !== 'simsiam') throw new Error(`[bench:budget] --method must be moco or simsiam, got '${method}'`);
const data = arg('data');
if (data === undefined) throw new Error('[bench:budget] --data is required: the CIFAR-10 JPEG .tar.gz (cifar10/train/<class>/*.jpg) or its folder');
const minutes = num('minutes', 60);
const width = num('width', 0.25);
const batch = num('batch-size', 256);
const lr = arg('lr');
const limit = num('limit', 0);
const bankSize = num('bank-size', 0);
const testSize = num('test-size', 0);
const calSteps = num('calibrate-steps', 10);
const only = arg('only');
const out = resolve(arg('out', join('runs', `budget-${method}`))!);
const TRAIN_IMAGES = limit > 0 ? limit : 50000;
const perEpoch = Math.floor(TRAIN_IMAGES / batch) * batch;
const common = { cpu: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, method, minutes, width, batch };
const torchEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // this environment's OpenBLAS variables slow PyTorch down: unset for its command only
  delete env.OPENBLAS_L2_SIZE;
  return env;
};

interface LogLine { event: string; [k: string]: unknown }
const jsonLines = (text: string): LogLine[] => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/** The command line of each side; `images` (the calibration's few steps) replaces --limit. */
function oursArgs(epochs: number, runOut: string, extra: string[], images = limit): string[] {
  return [BIN, 'pretrain', '--method', method, '--preset', 'cifar', '--data', data!, '--epochs', String(epochs), '--batch-size', String(batch),
    '--set', `width=${width}`, '--out', runOut, '--no-progress', ...(lr !== undefined ? ['--lr', lr] : []),
    ...(images > 0 ? ['--limit', String(images)] : []), ...extra];
}
function torchArgs(epochs: number, extra: string[], images = limit): string[] {
  return [join(ROOT, 'reference', 'budget_torch.py'), '--method', method, '--data', data!, '--epochs', String(epochs), '--batch-size', String(batch),
    '--width', String(width), ...(lr !== undefined ? ['--lr', lr] : []), ...(images > 0 ? ['--limit', String(images)] : []), ...extra];
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
  const text = execFileSync(PYTHON, torchArgs(1, ['--calibrate', String(calSteps)], batch * (4 + calSteps)), { encoding: 'utf8', env: torchEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  const cal = jsonLines(text).find((l) => l.event === 'calibrate')!;
  const blas = String(cal.blas);
  refuseReferenceBlas('bench:budget', blas);
  return { ips: Number(cal.img_per_sec), blas };
}

const fitEpochs = (ips: number): number => Math.max(1, Math.floor((minutes * 60 * ips) / perEpoch));

interface Result { impl: string; epochs: number; imagesSeen: number; trainSec: number; knnBefore: number; knnAfter: number; calibratedIps: number; command: string; blas?: string }

function runOurs(ips: number): Result {
  const epochs = fitEpochs(ips);
  const runOut = join(out, 'selfsup');
  rmSync(runOut, { recursive: true, force: true });
  const extra = ['--set', 'knn.every=0', ...(bankSize > 0 ? ['--set', `knn.bankSize=${bankSize}`] : []), ...(testSize > 0 ? ['--set', `knn.testSize=${testSize}`] : [])];
  const args = oursArgs(epochs, runOut, extra);
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`[bench:budget] selfsup pretrain exited with ${r.status}`);
  const log = jsonLines(readFileSync(join(runOut, 'log.jsonl'), 'utf8'));
  const before = log.find((l) => l.event === 'knn')!;
  const ep = log.filter((l) => l.event === 'epoch');
  return {
    impl: 'selfsup', epochs, imagesSeen: epochs * perEpoch, trainSec: ep.reduce((s, l) => s + Number(l.trainSeconds), 0),
    knnBefore: 100 * Number(before.top1), knnAfter: 100 * Number(ep[ep.length - 1]!.knnTop1), calibratedIps: ips,
    command: `node bin/selfsup.js ${args.slice(1).map((a) => (a === runOut ? `runs/budget-${method}/selfsup` : a)).join(' ')}`,
  };
}

function runTorch({ ips, blas }: { ips: number; blas: string }): Result {
  const epochs = fitEpochs(ips);
  const extra = [...(bankSize > 0 ? ['--bank-size', String(bankSize)] : []), ...(testSize > 0 ? ['--test-size', String(testSize)] : [])];
  const args = torchArgs(epochs, extra);
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', env: torchEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`[bench:budget] reference/budget_torch.py exited with ${r.status}`);
  const log = jsonLines(r.stdout);
  const knn = log.filter((l) => l.event === 'knn');
  const done = log.find((l) => l.event === 'done')!;
  return {
    impl: 'pytorch', epochs, imagesSeen: Number(done.images_seen), trainSec: Number(done.train_sec),
    knnBefore: Number(knn[0]!.top1), knnAfter: Number(knn[knn.length - 1]!.top1), calibratedIps: ips, blas,
    command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 ${args.map((a) => a.replace(`${ROOT}/`, '')).join(' ')}`,
  };
}

mkdirSync(out, { recursive: true });
const results: Result[] = [];
const load1 = +loadavg()[0]!.toFixed(2);
// both calibrations first, so that a refused PyTorch (reference BLAS) stops before an hour of training
const oursIps = only !== 'torch' ? calibrateOurs() : undefined;
const torchCal = only !== 'ours' ? calibrateTorch() : undefined;
if (oursIps !== undefined) results.push(runOurs(oursIps));
if (torchCal !== undefined) results.push(runTorch(torchCal));
for (const r of results) {
  console.log(JSON.stringify({
    name: 'budget', impl: r.impl, epochs: r.epochs, images_seen: r.imagesSeen, train_sec: +r.trainSec.toFixed(1), calibrated_img_per_sec: +r.calibratedIps.toFixed(1),
    knn_before: +r.knnBefore.toFixed(2), knn_after: +r.knnAfter.toFixed(2), load1_at_start: load1, command: r.command, ...(r.blas !== undefined ? { torch_blas: r.blas } : {}), ...common,
  }));
}
console.log(`| ${method} | impl | images seen | epochs | kNN before -> after | training time |`);
for (const r of results) console.log(`| ${method}, width ${width}, batch ${batch} | ${r.impl} | ${r.imagesSeen} | ${r.epochs} | ${r.knnBefore.toFixed(2)}% -> ${r.knnAfter.toFixed(2)}% | ${Math.round(r.trainSec)} s |`);
