// Data-loader throughput: the MoCo v2 preset from JPEG folders at 32 px (CIFAR-10 from the shared tarball) and 224 px
// (larger JPEGs made from it), beside torchvision + PIL's DataLoader on the same folders when python can import them.
// Prints one JSON line per measurement. Run: npm run bench:data  [-- --batches 30 --workers 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { cacheDecoded, imageFolder, type Dataset } from '../src/data/datasets.js';
import { DataLoader } from '../src/data/loader.js';
import { preset } from '../src/data/presets.js';

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const WORKERS = flag('workers', availableParallelism());
const BATCHES = flag('batches', 30);
const WARMUP = 3;
const TARBALL = fileURLToPath(new URL('../../shared/datasets/cifar10-jpg.tar.gz', import.meta.url));
const CACHE = join(tmpdir(), 'selfsup-bench-data');

function log(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** CIFAR-10 train/ as a JPEG folder, extracted once. */
function cifarFolder(): string {
  const dir = join(CACHE, 'cifar10');
  if (!existsSync(join(dir, 'train'))) {
    if (!existsSync(TARBALL)) throw new Error(`[bench:data] CIFAR-10 tarball not found at ${TARBALL}`);
    const tmp = join(CACHE, `extract-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    execFileSync('tar', ['xzf', TARBALL, '-C', tmp]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, 'cifar10'), dir);
    rmSync(tmp, { recursive: true, force: true });
  }
  return join(dir, 'train');
}

/** ImageNet-like JPEGs (about 400x340, quality 90) made by upscaling CIFAR images, 64 per class. */
async function largeFolder(cifarTrain: string): Promise<string> {
  const dir = join(CACHE, 'large');
  if (existsSync(join(dir, '.done'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  for (const cls of readdirSync(cifarTrain).sort()) {
    mkdirSync(join(dir, cls), { recursive: true });
    const files = readdirSync(join(cifarTrain, cls)).sort().slice(0, 64);
    await Promise.all(files.map(async (f, k) => {
      const w = 360 + ((k * 37) % 120), h = 300 + ((k * 53) % 100);
      await sharp(join(cifarTrain, cls, f)).resize(w, h, { kernel: 'cubic' }).jpeg({ quality: 90 }).toFile(join(dir, cls, f));
    }));
  }
  writeFileSync(join(dir, '.done'), '');
  return dir;
}

interface Timing {
  imgPerS: number;
  /** CPU time of all threads per image: robust to other processes competing for the cores */
  cpuMsPerImg: number;
}

async function timeLoader(ds: Dataset, presetName: string, batchSize: number, workers: number, recycle: boolean): Promise<Timing> {
  const loader = new DataLoader(ds, { batchSize, transform: preset(presetName), numWorkers: workers, seed: 0, dropLast: true });
  let seen = 0;
  let images = 0;
  let t0 = 0;
  let cpu0 = process.cpuUsage();
  for await (const b of loader.epoch(0)) {
    seen++;
    if (seen === WARMUP) {
      t0 = performance.now();
      cpu0 = process.cpuUsage();
    } else if (seen > WARMUP) images += b.shape[0];
    if (recycle) loader.recycle(b); // a trainer that copies the batch into its tensors hands the buffers back
    if (seen === WARMUP + BATCHES) break;
  }
  const dt = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await loader.close();
  return { imgPerS: images / dt, cpuMsPerImg: (cpu.user + cpu.system) / 1000 / images };
}

const TORCH_SCRIPT = String.raw`
import json, random, sys, time
import torch, torchvision.transforms as T
from PIL import ImageFilter
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
root, size, batch, workers, batches, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
class GaussianBlur:  # moco/loader.py
    def __init__(self, sigma=[.1, 2.]): self.sigma = sigma
    def __call__(self, x): return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.sigma[0], self.sigma[1])))
class TwoCropsTransform:
    def __init__(self, t): self.t = t
    def __call__(self, x): return [self.t(x), self.t(x)]
cifar = size == 32
normalize = T.Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]) if cifar else T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
aug = [T.RandomResizedCrop(size, scale=(0.2, 1.)), T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
if not cifar: aug.append(T.RandomApply([GaussianBlur([.1, 2.])], p=0.5))
aug += [T.RandomHorizontalFlip(), T.ToTensor(), normalize]
torch.set_num_threads(1)
ds = ImageFolder(root, TwoCropsTransform(T.Compose(aug)))
dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
import os
def cpu_seconds(pids):  # this process plus the DataLoader worker processes (utime + stime from /proc)
    t = os.times(); total = t.user + t.system
    for pid in pids:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total
it = iter(dl)
pids = [w.pid for w in getattr(it, "_workers", [])]
n, seen = 0, 0
for images, labels in it:
    seen += 1
    if seen == warmup: t0, c0 = time.perf_counter(), cpu_seconds(pids)
    elif seen > warmup: n += images[0].shape[0]
    if seen == warmup + batches: break
dt, dc = time.perf_counter() - t0, cpu_seconds(pids) - c0
print(json.dumps({"img_s": n / dt, "cpu_ms_per_img": 1000 * dc / n}))
`;

function findTorchPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch, torchvision, PIL'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

function timeTorch(py: string, root: string, size: number, batch: number, workers: number): Timing | null {
  const r = spawnSync(py, ['-c', TORCH_SCRIPT, root, String(size), String(batch), String(workers), String(BATCHES), String(WARMUP)], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    process.stderr.write(`[bench:data] torch run failed: ${r.stderr.slice(-500)}\n`);
    return null;
  }
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { img_s: number; cpu_ms_per_img: number };
  return { imgPerS: j.img_s, cpuMsPerImg: j.cpu_ms_per_img };
}

async function main(): Promise<void> {
  const py = findTorchPython();
  const cifarTrain = cifarFolder();
  const large = await largeFolder(cifarTrain);
  const cifarDs = imageFolder(cifarTrain);
  type Run = { name: string; ds: () => Promise<Dataset>; root: string; preset: string; size: number; batch: number; source: string; recycle: boolean };
  const runs: Run[] = [
    { name: 'moco-v2 cifar10 32px', ds: async () => cifarDs, root: cifarTrain, preset: 'moco-v2-cifar', size: 32, batch: 128, source: 'jpeg-folder', recycle: false },
    { name: 'moco-v2 cifar10 32px cached', ds: async () => cacheDecoded(imageFolder(join(cifarTrain, '..', 'test'))), root: cifarTrain, preset: 'moco-v2-cifar', size: 32, batch: 128, source: 'jpeg-folder, decoded once into the in-memory cache', recycle: false },
    { name: 'moco-v2 224px', ds: async () => imageFolder(large), root: large, preset: 'moco-v2', size: 224, batch: 32, source: 'jpeg-folder ~400x340', recycle: false },
    { name: 'moco-v2 224px recycled buffers', ds: async () => imageFolder(large), root: large, preset: 'moco-v2', size: 224, batch: 32, source: 'jpeg-folder ~400x340', recycle: true },
  ];
  for (const r of runs) {
    const ds = await r.ds();
    const load = loadavg()[0]!;
    const ours = await timeLoader(ds, r.preset, r.batch, WORKERS, r.recycle);
    const torch = py ? timeTorch(py, r.root, r.size, r.batch, WORKERS) : null;
    const line: Record<string, unknown> = {
      bench: 'data_loader', name: r.name, preset: r.preset, size: r.size, source: r.source, images: ds.length,
      batch: r.batch, batches: BATCHES, workers: WORKERS, recycled_buffers: r.recycle, cores: availableParallelism(), load_avg_1m: Number(load.toFixed(1)),
      unit: 'img/s', value: Math.round(ours.imgPerS), cpu_ms_per_img: Number(ours.cpuMsPerImg.toFixed(2)),
    };
    if (torch !== null) {
      line.torch_value = Math.round(torch.imgPerS);
      line.ratio = Number((ours.imgPerS / torch.imgPerS).toFixed(2));
      line.torch_cpu_ms_per_img = Number(torch.cpuMsPerImg.toFixed(2));
      // ratio of CPU cost per image: what the wall-clock ratio would be on idle cores
      line.cpu_ratio = Number((torch.cpuMsPerImg / ours.cpuMsPerImg).toFixed(2));
      line.torch = 'torchvision + PIL, torch DataLoader (uncached JPEG folder)';
    }
    log(line);
  }
}

await main();
