// Decoding against Pillow, and the folder / CIFAR / MNIST / cache datasets on small files written to a temp dir.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { cacheDecoded, cifar10, cifar100, fashionMnist, imageFolder, mnist, DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';
import { decodeImage } from '../../src/data/decode.js';
import { openDataset } from '../../src/data/open.js';
import { decodeJpeg, UnsupportedJpeg } from '../../src/data/jpeg.js';
import { bytes, expectClose, FIXTURE_DIR, loadFixtures } from './fixtures.js';
import { encodePng } from './png.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-datasets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('decoding matches Pillow convert("RGB"): JPEG (4:2:0, 4:2:2, 4:4:4, grey, progressive), grey/RGBA PNG, WebP', async () => {
  for (const d of loadFixtures().decode) {
    const bytesIn = readFileSync(join(FIXTURE_DIR, d.file));
    const img = await decodeImage(bytesIn, d.file);
    assert.deepEqual([img.height, img.width], [d.height, d.width], d.file);
    // baseline JPEGs go through the TypeScript decoder and are bit-exact with libjpeg-turbo; progressive ones through
    // sharp (mozjpeg), which may round differently; lossless formats are exact
    expectClose(`decode ${d.file}`, img.data, bytes(d.data), d.file.includes('progressive') ? 2 : 0);
    if (d.file.endsWith('.jpg') && !d.file.includes('progressive')) {
      const direct = decodeJpeg(bytesIn);
      expectClose(`decodeJpeg ${d.file}`, direct.data, bytes(d.data), 0);
    }
  }
  assert.throws(() => decodeJpeg(readFileSync(join(FIXTURE_DIR, 'tiny-progressive.jpg'))), UnsupportedJpeg);
  const jpg = readFileSync(join(FIXTURE_DIR, 'tiny.jpg'));
  assert.throws(() => decodeJpeg(jpg.subarray(0, jpg.length - 200)), /premature end/);
  assert.throws(() => decodeJpeg(jpg, 100), UnsupportedJpeg, 'above the pixel budget it defers to sharp');
});

test('16-bit PNGs are scaled to 8 bits, alpha dropped, grey expanded', async () => {
  const rgb16 = Array.from({ length: 2 * 3 * 3 }, (_, i) => (i * 3851) % 65536);
  const img = await decodeImage(encodePng(3, 2, 3, 16, rgb16), 'rgb16.png');
  assert.deepEqual(Array.from(img.data), rgb16.map((v) => v >> 8));
  const ga16 = [0, 65535, 40000, 0, 65535, 123];
  const g = await decodeImage(encodePng(3, 1, 2, 16, ga16), 'ga16.png');
  assert.deepEqual(Array.from(g.data), [0, 0, 0, 156, 156, 156, 255, 255, 255]);
  const rgba8 = await decodeImage(encodePng(1, 1, 4, 8, [10, 20, 30, 0]), 'rgba.png');
  assert.deepEqual(Array.from(rgba8.data), [10, 20, 30], 'alpha is dropped, not composited (as PIL convert("RGB"))');
});

test('decode errors name the file', async () => {
  await assert.rejects(decodeImage(new TextEncoder().encode('not an image'), 'notes.jpg'), /\[decodeImage\] notes\.jpg: .*unsupported image format/);
  const jpg = readFileSync(join(FIXTURE_DIR, 'tiny.jpg'));
  await assert.rejects(decodeImage(jpg.subarray(0, jpg.length >> 1), 'cut.jpg'), /\[decodeImage\] cut\.jpg: .*(premature end|truncated)/i);
  await assert.rejects(decodeImage(jpg, 'big.jpg', 100), /\[decodeImage\] big\.jpg: .*pixel limit.*maxPixels=100/);
});

function writeTree(root: string, files: Record<string, Uint8Array | string>): void {
  for (const [rel, data] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, data);
  }
}

test('ImageFolder: sorted classes, recursive files, empty class keeps its index with one warning; flat folders', () => {
  const png = encodePng(2, 2, 3, 8, new Array(12).fill(100));
  const root = join(tmp, 'folder');
  writeTree(root, { 'dog/b.png': png, 'dog/a.png': png, 'cat/x/deep.png': png, 'cat/c.PNG': png, 'cat/readme.txt': 'ignored' });
  mkdirSync(join(root, 'bird'));
  const warnings: string[] = [];
  const ds = imageFolder(root, { warn: (m) => warnings.push(m) });
  assert.deepEqual(ds.classes, ['bird', 'cat', 'dog']);
  assert.ok(ds.source.kind === 'files');
  assert.deepEqual(ds.source.paths.map((p) => p.slice(root.length + 1)), ['cat/c.PNG', 'cat/x/deep.png', 'dog/a.png', 'dog/b.png']);
  assert.deepEqual(Array.from(ds.source.labels), [1, 1, 2, 2]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /class folder '.*bird' has no images; its label 0 is kept/);

  const flat = imageFolder(join(root, 'dog'));
  assert.equal(flat.length, 2);
  assert.deepEqual(flat.classes, []);
  assert.deepEqual(Array.from(flat.source.labels), [-1, -1]);
  assert.throws(() => imageFolder(join(root, 'bird')), /\[ImageFolder\] .*no images/);
  assert.throws(() => imageFolder(join(root, 'nope')), /\[ImageFolder\] .*not a directory/);
});

test('CIFAR-10/100 binary batches: CHW records become HWC images with their labels', () => {
  const dir10 = join(tmp, 'cifar-10-batches-bin');
  mkdirSync(dir10, { recursive: true });
  const record = (labelBytes: number[], fill: (p: number, c: number) => number): Uint8Array => {
    const r = new Uint8Array(labelBytes.length + 3072);
    r.set(labelBytes);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) r[labelBytes.length + c * 1024 + p] = fill(p, c);
    return r;
  };
  for (let k = 1; k <= 5; k++) writeFileSync(join(dir10, `data_batch_${k}.bin`), Buffer.concat([record([k], (p, c) => (p + c * 7 + k) & 255), record([9], () => 3)]));
  writeFileSync(join(dir10, 'test_batch.bin'), record([4], (_p, c) => c * 100));
  const train = cifar10(tmp);
  assert.equal(train.length, 10);
  assert.deepEqual(Array.from(train.source.labels), [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
  assert.equal(train.classes[1], 'automobile');
  const test10 = cifar10(dir10, { split: 'test' });
  assert.ok(test10.source.kind === 'packed');
  assert.deepEqual(Array.from(test10.source.data.subarray(0, 6)), [0, 100, 200, 0, 100, 200]);
  assert.ok(test10.source.data.buffer instanceof SharedArrayBuffer);
  // sample 0 of batch 1, pixel 5, channel 1: (5 + 7 + 1) & 255
  assert.ok(train.source.kind === 'packed');
  assert.equal(train.source.data[5 * 3 + 1], 13);

  const dir100 = join(tmp, 'c100');
  mkdirSync(dir100);
  writeFileSync(join(dir100, 'train.bin'), Buffer.concat([record([3, 77], () => 1), record([19, 99], () => 2)]));
  assert.deepEqual(Array.from(cifar100(dir100).source.labels), [77, 99]);
  assert.deepEqual(Array.from(cifar100(dir100, { labels: 'coarse' }).source.labels), [3, 19]);
  writeFileSync(join(dir100, 'test.bin'), new Uint8Array(100));
  assert.throws(() => cifar100(dir100, { split: 'test' }), /\[CIFAR-100\] .*test\.bin: size 100 is not a multiple of the 3074-byte record/);
});

function idx(magic: number, dims: number[], body: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(magic, 0);
  dims.forEach((d, k) => head.writeUInt32BE(d, 4 + 4 * k));
  return Buffer.concat([head, body]);
}

test('MNIST IDX files, gzipped or not; grey replicated to RGB', () => {
  const dir = join(tmp, 'mnist');
  mkdirSync(dir);
  const pixels = Uint8Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20);
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idx(0x803, [3, 2, 2], pixels));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idx(0x801, [3], Uint8Array.from([7, 0, 9]))));
  const ds = mnist(dir);
  assert.equal(ds.length, 3);
  assert.deepEqual(Array.from(ds.source.labels), [7, 0, 9]);
  assert.ok(ds.source.kind === 'packed');
  assert.deepEqual(Array.from(ds.source.data.subarray(12, 18)), [80, 80, 80, 100, 100, 100]);
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx(0x801, [3], new Uint8Array(3)));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx(0x801, [3], new Uint8Array(3)));
  assert.throws(() => mnist(dir, { split: 'test' }), /\[MNIST\] .*bad IDX magic 2049 \(expected 2051\)/);
});

test('Fashion-MNIST from Debian\'s dataset-fashion-mnist', (t) => {
  if (!existsSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'))) {
    t.skip(`${DEBIAN_FASHION_MNIST_DIR} not installed (apt install dataset-fashion-mnist)`);
    return;
  }
  const ds = fashionMnist(DEBIAN_FASHION_MNIST_DIR, { split: 'test' });
  assert.equal(ds.length, 10000);
  assert.equal(ds.classes[9], 'Ankle boot');
  const counts = new Array(10).fill(0);
  for (const l of ds.source.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(1000));
});

test('cacheDecoded packs decoded images and drops undecodable files with a warning', async () => {
  const root = join(tmp, 'cache');
  writeTree(root, {
    'a/1.png': encodePng(2, 1, 3, 8, [1, 2, 3, 4, 5, 6]),
    'a/bad.jpg': 'text pretending to be a jpeg',
    'b/2.png': encodePng(1, 3, 1, 8, [7, 8, 9]),
  });
  const warnings: string[] = [];
  const ds = await cacheDecoded(imageFolder(root), { warn: (m) => warnings.push(m) });
  assert.equal(ds.length, 2);
  assert.deepEqual(Array.from(ds.source.labels), [0, 1]);
  assert.ok(ds.source.kind === 'packed');
  assert.deepEqual(Array.from(ds.source.data), [1, 2, 3, 4, 5, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9]);
  assert.deepEqual([...ds.source.widths, ...ds.source.heights], [2, 1, 1, 3]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /bad\.jpg/);
});

test('openDataset names what is wrong with --data: missing, a plain file, a folder without images', () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfsup-open-'));
  try {
    assert.throws(() => openDataset(join(dir, 'nope'), 'train'), /^Error: \[data\] .*nope: no such file or folder$/);
    const file = join(dir, 'labels.txt');
    writeFileSync(file, 'not a dataset\n');
    assert.throws(() => openDataset(file, 'train'), /^Error: \[data\] .*labels\.txt is a file but not a \.tar\.gz archive; --data takes/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    assert.throws(() => openDataset(empty, 'train'), /^Error: \[ImageFolder\] .*empty: no images/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
