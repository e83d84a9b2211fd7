// Datasets: image folders (class subfolders like torchvision's ImageFolder, or flat), CIFAR-10/100 binary batches,
// MNIST/Fashion-MNIST IDX files, and an in-memory decoded cache. Each describes its samples as a plain, shareable source.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decodeImage, DEFAULT_MAX_PIXELS } from './decode.js';
import { rgbImage, type RgbImage } from './image.js';

/** Images decoded on demand from files (what workers receive for folder datasets). */
export interface FileSource {
  kind: 'files';
  paths: readonly string[];
  labels: Int32Array;
  maxPixels: number;
}

/** Decoded 8-bit RGB HWC images packed in one (shared) buffer: CIFAR, MNIST, cached folders. */
export interface PackedSource {
  kind: 'packed';
  data: Uint8Array; // backed by a SharedArrayBuffer so workers read it without copies
  offsets: Float64Array; // [count + 1] byte offsets into data
  widths: Int32Array;
  heights: Int32Array;
  labels: Int32Array;
}

export type SampleSource = FileSource | PackedSource;

export interface Dataset {
  readonly name: string;
  readonly length: number;
  /** class names; label k means classes[k]; empty for unlabeled data (labels are -1) */
  readonly classes: readonly string[];
  readonly source: SampleSource;
}

export type Warn = (message: string) => void;
const defaultWarn: Warn = (m) => process.emitWarning(m);

/** Extensions read from folders (torchvision's IMG_EXTENSIONS that sharp decodes); others are ignored. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff'] as const;

function isImageFile(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** All image files under dir, recursively, sorted like torchvision's sorted(os.walk(...)) + sorted(fnames). */
function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    const entries = readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) if (!isDirLike(d, e) && isImageFile(e.name)) out.push(join(d, e.name));
    for (const e of entries) if (isDirLike(d, e)) walk(join(d, e.name));
  };
  walk(dir);
  return out;
}

function isDirLike(parent: string, e: { name: string; isDirectory(): boolean; isSymbolicLink(): boolean }): boolean {
  if (e.isDirectory()) return true;
  if (!e.isSymbolicLink()) return false;
  try {
    return statSync(join(parent, e.name)).isDirectory();
  } catch {
    return false;
  }
}

export interface ImageFolderOptions {
  /** 'classes': one subfolder per class (ImageFolder); 'flat': every image under root, unlabeled; 'auto' picks by layout */
  layout?: 'classes' | 'flat' | 'auto';
  /** refuse images above this many pixels (per the bad-input policy) */
  maxPixels?: number;
  warn?: Warn;
}

/**
 * An image folder. With class subfolders, classes are the sorted folder names and labels their indices, exactly as
 * torchvision's ImageFolder. An empty class folder keeps its index (so labels stay aligned with the class list and with
 * other splits) and produces one warning naming it.
 */
export function imageFolder(root: string, options: ImageFolderOptions = {}): Dataset {
  const warn = options.warn ?? defaultWarn;
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`[ImageFolder] ${root}: not a directory`);
  const entries = readdirSync(root, { withFileTypes: true });
  const subdirs = entries.filter((e) => isDirLike(root, e)).map((e) => e.name).sort();
  const topImages = entries.filter((e) => !isDirLike(root, e) && isImageFile(e.name));
  let layout = options.layout ?? 'auto';
  if (layout === 'auto') layout = subdirs.length > 0 && topImages.length === 0 ? 'classes' : 'flat';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (layout === 'flat') {
    const paths = listImages(root);
    if (paths.length === 0) throw new Error(`[ImageFolder] ${root}: no images (${IMAGE_EXTENSIONS.join(', ')}) found`);
    return { name: `folder:${root}`, length: paths.length, classes: [], source: { kind: 'files', paths, labels: new Int32Array(paths.length).fill(-1), maxPixels } };
  }
  if (topImages.length > 0) warn(`[ImageFolder] ${root}: ${topImages.length} images directly under root are ignored in class layout`);
  const paths: string[] = [];
  const labels: number[] = [];
  subdirs.forEach((cls, label) => {
    const files = listImages(join(root, cls));
    if (files.length === 0) warn(`[ImageFolder] class folder '${join(root, cls)}' has no images; its label ${label} is kept so labels stay aligned`);
    for (const f of files) {
      paths.push(f);
      labels.push(label);
    }
  });
  if (paths.length === 0) throw new Error(`[ImageFolder] ${root}: no images found in ${subdirs.length} class folders`);
  return { name: `imagefolder:${root}`, length: paths.length, classes: subdirs, source: { kind: 'files', paths, labels: Int32Array.from(labels), maxPixels } };
}

// ---------------------------------------------------------------- packed arrays

function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

/** A packed source of `count` images of one size from HWC bytes. */
function fixedSizePacked(data: Uint8Array, count: number, height: number, width: number, labels: Int32Array): PackedSource {
  const size = height * width * 3;
  const offsets = new Float64Array(count + 1);
  for (let i = 0; i <= count; i++) offsets[i] = i * size;
  return { kind: 'packed', data, offsets, widths: new Int32Array(count).fill(width), heights: new Int32Array(count).fill(height), labels };
}

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;

export interface CifarOptions {
  split?: 'train' | 'test';
  /** CIFAR-100 only: 'fine' (100 classes, default) or 'coarse' (20 superclasses) */
  labels?: 'fine' | 'coarse';
}

function findFile(dir: string, candidates: string[], what: string): string {
  for (const c of candidates) {
    const p = join(dir, c);
    if (existsSync(p)) return p;
  }
  throw new Error(`[${what}] none of ${candidates.join(', ')} found in ${dir}`);
}

function readCifarRecords(files: string[], labelBytes: 1 | 2, labelByte: 0 | 1, what: string): { data: Uint8Array; labels: Int32Array; count: number } {
  const record = labelBytes + 3072;
  const buffers = files.map((f) => {
    const b = readFileSync(f);
    if (b.length === 0 || b.length % record !== 0) throw new Error(`[${what}] ${f}: size ${b.length} is not a multiple of the ${record}-byte record`);
    return b;
  });
  const count = buffers.reduce((a, b) => a + b.length / record, 0);
  const data = sharedBytes(count * 3072);
  const labels = new Int32Array(count);
  let n = 0;
  for (const b of buffers) {
    for (let r = 0; r < b.length; r += record, n++) {
      labels[n] = b[r + labelByte]!;
      // CHW planes -> HWC pixels
      const base = r + labelBytes;
      const out = n * 3072;
      for (let p = 0; p < 1024; p++) {
        data[out + p * 3] = b[base + p]!;
        data[out + p * 3 + 1] = b[base + 1024 + p]!;
        data[out + p * 3 + 2] = b[base + 2048 + p]!;
      }
    }
  }
  return { data, labels, count };
}

/** CIFAR-10 binary version: data_batch_1..5.bin / test_batch.bin in dir or dir/cifar-10-batches-bin. */
export function cifar10(dir: string, options: CifarOptions = {}): Dataset {
  const base = existsSync(join(dir, 'cifar-10-batches-bin')) ? join(dir, 'cifar-10-batches-bin') : dir;
  const names = options.split === 'test' ? ['test_batch.bin'] : [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`);
  const files = names.map((n) => findFile(base, [n], 'CIFAR-10'));
  const { data, labels, count } = readCifarRecords(files, 1, 0, 'CIFAR-10');
  for (const l of labels) if (l > 9) throw new Error(`[CIFAR-10] label ${l} out of range 0..9 in ${base}`);
  const metaPath = join(base, 'batches.meta.txt');
  const classes = existsSync(metaPath) ? readFileSync(metaPath, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean) : [...CIFAR10_CLASSES];
  return { name: `cifar10:${options.split ?? 'train'}`, length: count, classes, source: fixedSizePacked(data, count, 32, 32, labels) };
}

/** CIFAR-100 binary version: train.bin / test.bin in dir or dir/cifar-100-binary. */
export function cifar100(dir: string, options: CifarOptions = {}): Dataset {
  const base = existsSync(join(dir, 'cifar-100-binary')) ? join(dir, 'cifar-100-binary') : dir;
  const file = findFile(base, [options.split === 'test' ? 'test.bin' : 'train.bin'], 'CIFAR-100');
  const coarse = options.labels === 'coarse';
  const { data, labels, count } = readCifarRecords([file], 2, coarse ? 0 : 1, 'CIFAR-100');
  const nClasses = coarse ? 20 : 100;
  for (const l of labels) if (l >= nClasses) throw new Error(`[CIFAR-100] label ${l} out of range 0..${nClasses - 1} in ${file}`);
  const metaPath = join(base, coarse ? 'coarse_label_names.txt' : 'fine_label_names.txt');
  const classes = existsSync(metaPath)
    ? readFileSync(metaPath, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean)
    : Array.from({ length: nClasses }, (_, k) => String(k));
  return { name: `cifar100:${options.split ?? 'train'}`, length: count, classes, source: fixedSizePacked(data, count, 32, 32, labels) };
}

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;
/** Where Debian's dataset-fashion-mnist package installs the IDX files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

function readIdx(path: string, expectMagic: number): { dims: number[]; body: Uint8Array } {
  let b: Uint8Array = readFileSync(path);
  if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 8 || view.getUint32(0) !== expectMagic) {
    throw new Error(`[MNIST] ${path}: bad IDX magic ${b.length >= 4 ? view.getUint32(0) : 'none'} (expected ${expectMagic})`);
  }
  const ndim = expectMagic & 0xff;
  const dims = Array.from({ length: ndim }, (_, k) => view.getUint32(4 + 4 * k));
  const start = 4 + 4 * ndim;
  const size = dims.reduce((a, d) => a * d, 1);
  if (b.length - start !== size) throw new Error(`[MNIST] ${path}: expected ${size} data bytes for dims ${dims.join('x')}, got ${b.length - start}`);
  return { dims, body: b.subarray(start) };
}

export interface MnistOptions {
  split?: 'train' | 'test';
  classes?: readonly string[];
}

/** MNIST-format IDX files (train-images-idx3-ubyte[.gz] ...). Grey digits are replicated to RGB for the shared pipeline. */
export function mnist(dir: string, options: MnistOptions = {}): Dataset {
  const prefix = options.split === 'test' ? 't10k' : 'train';
  const imagesPath = findFile(dir, [`${prefix}-images-idx3-ubyte`, `${prefix}-images-idx3-ubyte.gz`, `${prefix}-images.idx3-ubyte`], 'MNIST');
  const labelsPath = findFile(dir, [`${prefix}-labels-idx1-ubyte`, `${prefix}-labels-idx1-ubyte.gz`, `${prefix}-labels.idx1-ubyte`], 'MNIST');
  const images = readIdx(imagesPath, 0x803);
  const lab = readIdx(labelsPath, 0x801);
  const [count, height, width] = images.dims as [number, number, number];
  if (lab.dims[0] !== count) throw new Error(`[MNIST] ${imagesPath} has ${count} images but ${labelsPath} has ${lab.dims[0]} labels`);
  const data = sharedBytes(count * height * width * 3);
  for (let p = 0; p < count * height * width; p++) {
    const v = images.body[p]!;
    data[p * 3] = v; data[p * 3 + 1] = v; data[p * 3 + 2] = v;
  }
  const classes = options.classes ?? MNIST_CLASSES;
  const labels = Int32Array.from(lab.body);
  for (const l of labels) if (l >= classes.length) throw new Error(`[MNIST] label ${l} out of range for ${classes.length} classes in ${labelsPath}`);
  return { name: `mnist:${dir}:${prefix}`, length: count, classes, source: fixedSizePacked(data, count, height, width, labels) };
}

export function fashionMnist(dir = DEBIAN_FASHION_MNIST_DIR, options: Omit<MnistOptions, 'classes'> = {}): Dataset {
  return { ...mnist(dir, { ...options, classes: FASHION_MNIST_CLASSES }), name: `fashion-mnist:${options.split ?? 'train'}` };
}

// ---------------------------------------------------------------- cache

export interface CacheOptions {
  /** refuse to cache more than this many decoded bytes (default 4 GiB) */
  maxBytes?: number;
  /** files decoded at once */
  concurrency?: number;
  warn?: Warn;
}

/**
 * Decode every image once into one shared buffer, for small datasets (CIFAR-sized folders): workers then skip decoding.
 * Files that fail to decode are dropped with one warning each; the remaining samples keep their own labels.
 */
export async function cacheDecoded(ds: Dataset, options: CacheOptions = {}): Promise<Dataset> {
  if (ds.source.kind === 'packed') return ds;
  const src = ds.source;
  const warn = options.warn ?? defaultWarn;
  const maxBytes = options.maxBytes ?? 4 * 1024 ** 3;
  const decoded: Array<{ data: Uint8Array; width: number; height: number } | null> = new Array(src.paths.length).fill(null);
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < src.paths.length) {
      const i = next++;
      const path = src.paths[i]!;
      try {
        const img = await decodeImage(await readFileOrThrow(path), path, src.maxPixels);
        total += img.data.length;
        if (total > maxBytes) throw new Error(`[cacheDecoded] ${ds.name}: decoded images exceed maxBytes=${maxBytes}; load from files instead`);
        decoded[i] = img;
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        if (msg.startsWith('[cacheDecoded]')) throw e;
        warn(`[cacheDecoded] skipping ${path}: ${msg}`);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  const kept = decoded.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  if (kept.length === 0) throw new Error(`[cacheDecoded] ${ds.name}: no image could be decoded`);
  const data = sharedBytes(total);
  const offsets = new Float64Array(kept.length + 1);
  const widths = new Int32Array(kept.length);
  const heights = new Int32Array(kept.length);
  const labels = new Int32Array(kept.length);
  let off = 0;
  kept.forEach((i, k) => {
    const img = decoded[i]!;
    data.set(img.data, off);
    offsets[k] = off;
    off += img.data.length;
    widths[k] = img.width;
    heights[k] = img.height;
    labels[k] = src.labels[i]!;
  });
  offsets[kept.length] = off;
  return { name: `cached:${ds.name}`, length: kept.length, classes: ds.classes, source: { kind: 'packed', data, offsets, widths, heights, labels } };
}

/**
 * Read a file, with the error naming it (EACCES, ENOENT, EISDIR ...). Synchronous on purpose: for the small files of
 * image datasets fs.promises.readFile costs ~0.6 ms of CPU per file against ~0.03 ms here, and the callers are loader
 * workers whose only job is this.
 */
export async function readFileOrThrow(path: string): Promise<Uint8Array> {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new Error(`[readFile] ${path}: cannot read (${code || (e instanceof Error ? e.message : String(e))})`);
  }
}

/** Path of sample i relative to root, for messages. */
export function describeSample(ds: Dataset, i: number, root?: string): string {
  if (ds.source.kind === 'files') {
    const p = ds.source.paths[i] ?? `#${i}`;
    return root ? relative(root, p) : p;
  }
  return `${ds.name}#${i}`;
}

/** Sample i as 8-bit RGB: a view into a packed source, or read + decoded from its file (errors name the file). */
export async function loadSampleImage(source: SampleSource, index: number): Promise<RgbImage> {
  if (!(index >= 0 && index < source.labels.length)) throw new Error(`[loadSampleImage] index ${index} out of range 0..${source.labels.length - 1}`);
  if (source.kind === 'packed') {
    const off = source.offsets[index]!;
    return rgbImage(source.data.subarray(off, source.offsets[index + 1]!), source.widths[index]!, source.heights[index]!);
  }
  const path = source.paths[index]!;
  return decodeImage(await readFileOrThrow(path), path, source.maxPixels);
}
