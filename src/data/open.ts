// Resolving the data a run names: 'fashion-mnist' (Debian's package), CIFAR binary folders, image folders with
// train/ and test/ splits, plain image folders, and .tar.gz archives of those (extracted once to a cache folder).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { cifar10, cifar100, fashionMnist, imageFolder, DEBIAN_FASHION_MNIST_DIR, type Dataset, type SampleSource } from './datasets.js';
import { preset as augmentationPreset } from './presets.js';
import type { ViewsSpec } from './transforms.js';

export type Split = 'train' | 'test';

/** Extracts a .tar.gz once into ~/.cache/selfsup (or $SELFSUP_CACHE) and returns the folder. */
export function extractArchive(archive: string): string {
  const cache = process.env.SELFSUP_CACHE ?? join(homedir(), '.cache', 'selfsup');
  const st = statSync(archive);
  const dest = join(cache, `${basename(archive).replace(/\.(tar\.gz|tgz)$/, '')}-${st.size}`);
  if (existsSync(join(dest, '.complete'))) return dest;
  mkdirSync(cache, { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    execFileSync('tar', ['-xzf', archive, '-C', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`[data] cannot extract ${archive}: ${(e as Error).message.split('\n')[0]}`);
  }
  execFileSync('touch', [join(tmp, '.complete')]);
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  return dest;
}

/** A folder holding train/ and test/ (possibly one level down, as archives often nest). */
function splitRoot(dir: string): string | null {
  if (existsSync(join(dir, 'train')) && existsSync(join(dir, 'test'))) return dir;
  const subs = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.'));
  if (subs.length === 1) return splitRoot(join(dir, subs[0]!.name));
  return null;
}

/** The first n samples (n >= length keeps all). Labels and class list are kept. */
export function subset(ds: Dataset, n: number | null): Dataset {
  if (n === null || n >= ds.length) return ds;
  if (!(n > 0)) throw new Error(`[data] subset size must be positive, got ${n}`);
  const s = ds.source;
  // take an evenly strided subset so class-sorted folders keep every class
  const stride = ds.length / n;
  const idx = Array.from({ length: n }, (_, i) => Math.floor(i * stride));
  let source: SampleSource;
  if (s.kind === 'files') {
    source = { ...s, paths: idx.map((i) => s.paths[i]!), labels: Int32Array.from(idx, (i) => s.labels[i]!) };
  } else {
    // packed images are contiguous per sample: copy the chosen ones into a new shared buffer
    const offsets = new Float64Array(n + 1);
    for (let j = 0; j < n; j++) offsets[j + 1] = offsets[j]! + (s.offsets[idx[j]! + 1]! - s.offsets[idx[j]!]!);
    const data = new Uint8Array(new SharedArrayBuffer(offsets[n]!));
    for (let j = 0; j < n; j++) data.set(s.data.subarray(s.offsets[idx[j]!]!, s.offsets[idx[j]! + 1]!), offsets[j]!);
    source = { kind: 'packed', data, offsets, widths: Int32Array.from(idx, (i) => s.widths[i]!), heights: Int32Array.from(idx, (i) => s.heights[i]!), labels: Int32Array.from(idx, (i) => s.labels[i]!) };
  }
  return { name: `${ds.name}[${n}]`, length: n, classes: ds.classes, source };
}

/** Opens the dataset a config names, for a split, limited to n images. */
export function openDataset(spec: string, split: Split, limit: number | null = null): Dataset {
  let ds: Dataset;
  if (spec === 'fashion-mnist') {
    if (!existsSync(DEBIAN_FASHION_MNIST_DIR)) {
      throw new Error(`[data] Fashion-MNIST not found in ${DEBIAN_FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist, or pass --data DIR`);
    }
    ds = fashionMnist(DEBIAN_FASHION_MNIST_DIR, { split });
  } else {
    if (!existsSync(spec)) throw new Error(`[data] ${spec}: no such file or folder`);
    const archive = /\.(tar\.gz|tgz)$/.test(spec);
    if (!archive && !statSync(spec).isDirectory()) {
      throw new Error(`[data] ${spec} is a file but not a .tar.gz archive; --data takes 'fashion-mnist', a CIFAR-10/100 binary folder, an image folder (class subfolders, optionally under train/ and test/) or a .tar.gz of one`);
    }
    const dir = archive ? extractArchive(spec) : spec;
    const files = readdirSync(dir);
    const root = splitRoot(dir);
    if (files.some((f) => /^data_batch_1(\.bin)?$/.test(f)) || files.includes('cifar-10-batches-bin')) {
      ds = cifar10(files.includes('cifar-10-batches-bin') ? join(dir, 'cifar-10-batches-bin') : dir, { split });
    } else if (files.some((f) => /^train(\.bin)?$/.test(f)) && files.some((f) => /^test(\.bin)?$/.test(f)) && files.some((f) => f.startsWith('fine_label_names') || f.startsWith('meta'))) {
      ds = cifar100(dir, { split });
    } else if (root !== null) {
      ds = imageFolder(join(root, split));
    } else {
      ds = imageFolder(dir);
    }
  }
  return subset(ds, limit);
}

/**
 * The deterministic transform for feature extraction and validation, with the augmentation's size and statistics:
 * main_lincls.py's Resize(256) + CenterCrop(224) scaled to the size (MAE runs: bicubic, as main_linprobe.py and
 * timm's eval transform in main_finetune.py). CIFAR-sized presets resize to the crop size itself, so 32 px images
 * pass unchanged, as the MoCo CIFAR demo's test transform.
 */
export function evalTransform(augment: string, size: number): ViewsSpec {
  const suffix = augment.endsWith('-cifar') ? '-cifar' : '';
  return augmentationPreset(`${augment.startsWith('mae') ? 'mae-val' : 'lincls-val'}${suffix}`, { size });
}
