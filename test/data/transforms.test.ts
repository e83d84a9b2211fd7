// Transforms against torchvision/Pillow fixtures with fixed parameters (within 2 intensity levels),
// and the random-parameter sampling of RandomResizedCrop and ColorJitter against torch's statistics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/data/functional.js';
import { Rng } from '../../src/tensor/rng.js';
import { ColorJitter, RandomResizedCrop, buildTransform, MultiView, type TransformSpec } from '../../src/data/transforms.js';
import { preset, PRESET_NAMES } from '../../src/data/presets.js';
import { rgbImage, type RgbImage } from '../../src/data/image.js';
import { bytes, expectClose, fixtureImage, floats, loadFixtures, type FixtureCase } from './fixtures.js';

type Interp = F.Interpolation;

/** The union of the fixture parameters each op reads. */
interface Params {
  size: number | [number, number]; interpolation: Interp;
  top: number; left: number; height: number; width: number;
  threshold: number; factor: number; sigma: number; mean: number[]; std: number[];
}

function run(c: FixtureCase): { out: ArrayLike<number>; h: number; w: number } {
  const img = fixtureImage(c.image);
  const p = c.params as unknown as Params;
  const asRgb = (r: RgbImage) => ({ out: r.data, h: r.height, w: r.width });
  switch (c.op) {
    case 'resize': {
      const [h, w] = F.resizeOutputSize(img.height, img.width, p.size);
      return asRgb(F.resize(img, h, w, p.interpolation));
    }
    case 'resized_crop': {
      const [h, w] = p.size as [number, number];
      return asRgb(F.resizedCrop(img, p.top, p.left, p.height, p.width, h, w, p.interpolation));
    }
    case 'center_crop': {
      const [h, w] = p.size as [number, number];
      return asRgb(F.centerCrop(img, h, w));
    }
    case 'hflip': return asRgb(F.hflip(img));
    case 'grayscale': return asRgb(F.toGrayscale(img));
    case 'solarize': return asRgb(F.solarize(img, p.threshold));
    case 'brightness': return asRgb(F.adjustBrightness(img, p.factor));
    case 'contrast': return asRgb(F.adjustContrast(img, p.factor));
    case 'saturation': return asRgb(F.adjustSaturation(img, p.factor));
    case 'hue': return asRgb(F.adjustHue(img, p.factor));
    case 'gaussian_blur': return asRgb(F.gaussianBlurPil(img, p.sigma));
    case 'color_jitter': return asRgb(ColorJitter.applyParams(img, c.params as never));
    case 'to_tensor': return { out: F.toTensor(img).data, h: img.height, w: img.width };
    case 'normalize': {
      const t = F.normalize(F.toTensor(img), p.mean, p.std);
      const fused = new Float32Array(t.data.length);
      F.toTensorNormalizeInto(img, p.mean, p.std, fused, 0);
      assert.deepEqual(fused, t.data, 'fused ToTensor+Normalize must be bit-identical to the two steps');
      return { out: t.data, h: img.height, w: img.width };
    }
    default: throw new Error(`unknown fixture op ${c.op}`);
  }
}

test('transforms match torchvision + Pillow on fixed images and parameters', () => {
  const fx = loadFixtures();
  const worst = new Map<string, number>();
  for (const c of fx.cases) {
    const label = `${c.op} ${c.image} ${JSON.stringify(c.params)}`;
    const { out, h, w } = run(c);
    assert.equal(h, c.height, `${label}: height`);
    assert.equal(w, c.width, `${label}: width`);
    const diff = c.dtype === 'uint8'
      ? expectClose(label, out, bytes(c.data), 2)
      : expectClose(label, out, floats(c.data), 1e-6);
    worst.set(c.op, Math.max(worst.get(c.op) ?? 0, diff));
  }
  // documents how close each op is (most are bit-exact)
  console.log('max |diff| per op:', JSON.stringify(Object.fromEntries(worst)));
});

test('RandomResizedCrop falls back to the central crop exactly as torchvision', () => {
  for (const f of loadFixtures().rrc_fallback) {
    const rng = new Rng(1);
    const p = RandomResizedCrop.getParams(f.height, f.width, [2, 3], f.ratio, rng);
    assert.deepEqual([p.top, p.left, p.height, p.width], f.params, JSON.stringify(f));
  }
});

/** |ours - torch| within 5 standard errors of the difference of two means of n draws. */
function checkMoment(label: string, ours: number[], ref: { mean: number; std: number }): void {
  const n = ours.length;
  const mean = ours.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(ours.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  const se = Math.sqrt((ref.std ** 2 + std ** 2) / n);
  assert.ok(Math.abs(mean - ref.mean) < 5 * se + 1e-12, `${label}: mean ${mean} vs torch ${ref.mean} (se ${se})`);
  assert.ok(Math.abs(std - ref.std) < 0.05 * ref.std + 1e-12, `${label}: std ${std} vs torch ${ref.std}`);
}

test('RandomResizedCrop parameter sampling matches torchvision statistics', () => {
  const s = loadFixtures().rrc_stats;
  const rng = new Rng(123);
  const cols: Record<string, number[]> = { top: [], left: [], h: [], w: [], area: [], logratio: [] };
  let full = 0;
  for (let k = 0; k < s.n; k++) {
    const p = RandomResizedCrop.getParams(s.height, s.width, s.scale, s.ratio, rng);
    cols.top!.push(p.top); cols.left!.push(p.left); cols.h!.push(p.height); cols.w!.push(p.width);
    cols.area!.push((p.height * p.width) / (s.height * s.width));
    cols.logratio!.push(Math.log(p.width / p.height));
    if (p.height === s.height && p.width === s.width) full++;
  }
  for (const [name, ref] of Object.entries(s.moments)) checkMoment(`rrc ${name}`, cols[name]!, ref);
  const rate = full / s.n;
  assert.ok(Math.abs(rate - s.full_image_rate) < 5 * Math.sqrt((s.full_image_rate * (1 - s.full_image_rate)) / s.n) + 0.002, `full-image rate ${rate} vs ${s.full_image_rate}`);
});

test('ColorJitter parameter sampling matches torchvision statistics', () => {
  const s = loadFixtures().color_jitter_stats;
  const t = new ColorJitter(0.4, 0.4, 0.4, 0.1);
  const rng = new Rng(7);
  const cols: Record<string, number[]> = { brightness: [], contrast: [], saturation: [], hue: [] };
  const freq = [0, 1, 2, 3].map(() => [0, 0, 0, 0]);
  for (let k = 0; k < s.n; k++) {
    const p = ColorJitter.getParams(t.brightness, t.contrast, t.saturation, t.hue, rng);
    cols.brightness!.push(p.brightness!); cols.contrast!.push(p.contrast!); cols.saturation!.push(p.saturation!); cols.hue!.push(p.hue!);
    p.order.forEach((fn, pos) => { freq[pos]![fn]!++; });
  }
  for (const [name, ref] of Object.entries(s.moments)) checkMoment(`jitter ${name}`, cols[name]!, ref);
  const se = Math.sqrt((0.25 * 0.75) / s.n);
  for (let pos = 0; pos < 4; pos++) {
    for (let fn = 0; fn < 4; fn++) {
      const ours = freq[pos]![fn]! / s.n;
      const ref = s.position_freq[pos]![fn]!;
      assert.ok(Math.abs(ours - ref) < 6 * se, `order position ${pos} fn ${fn}: ${ours} vs ${ref}`);
    }
  }
});

test('every preset builds and yields normalized CHW views of the right size', () => {
  const img = fixtureImage('b');
  for (const name of PRESET_NAMES) {
    const spec = preset(name, { size: 16 });
    const views = MultiView.fromSpec(spec).apply(img, 42);
    assert.ok(views.length === 1 || views.length === 2, name);
    for (const v of views) {
      assert.equal(v.kind, 'tensor', name);
      if (v.kind === 'tensor') assert.deepEqual([v.channels, v.height, v.width], [3, 16, 16], name);
    }
    // determinism: same sample seed, same views
    const again = MultiView.fromSpec(spec).apply(img, 42);
    assert.deepEqual(again.map((v) => v.data), views.map((v) => v.data), name);
  }
  assert.throws(() => preset('byol'), /\[preset\] unknown preset 'byol'/);
});

test('cropMin sets the RandomResizedCrop lower bound of moco-v1, moco-v2, simsiam and moco-v3, and the others refuse it', () => {
  const cropScale = (name: string, cropMin?: number): readonly number[] | undefined => {
    const first = preset(name, { size: 16, ...(cropMin !== undefined ? { cropMin } : {}) }).views[0]!;
    const crop = first.name === 'Compose' ? first.transforms.find((t) => t.name === 'RandomResizedCrop') : undefined;
    return crop?.name === 'RandomResizedCrop' ? crop.scale : undefined;
  };
  for (const [name, own] of [['moco-v1', 0.2], ['moco-v2-cifar', 0.2], ['simsiam', 0.2], ['moco-v3-cifar', 0.08]] as const) {
    assert.deepEqual(cropScale(name), [own, 1], `${name} keeps its own scale`);
    assert.deepEqual(cropScale(name, 0.5), [0.5, 1], name);
  }
  for (const name of ['mae', 'moco-demo-cifar', 'lincls-train']) {
    assert.throws(() => preset(name, { cropMin: 0.5 }), new RegExp(`\\[preset\\] cropMin applies to the moco-v1, moco-v2, simsiam, moco-v3 augmentations only, not '${name}'`));
  }
});

test('transform errors name the transform', () => {
  const img = rgbImage(new Uint8Array(12), 2, 2);
  const t = buildTransform({ name: 'Compose', transforms: [{ name: 'ToTensor' }, { name: 'RandomHorizontalFlip' }] });
  assert.throws(() => t.apply(img, new Rng(0)), /\[RandomHorizontalFlip\] expected an 8-bit RGB image/);
  assert.throws(() => buildTransform({ name: 'RandomGrayscale', p: 2 }), /\[RandomGrayscale\] p must be in \[0, 1\]/);
  assert.throws(() => buildTransform({ name: 'ColorJitter', hue: 0.7 }), /\[ColorJitter\] hue values/);
  // a 1x1 image goes through every preset
  const one = rgbImage(new Uint8Array([10, 200, 30]), 1, 1);
  for (const name of PRESET_NAMES) MultiView.fromSpec(preset(name, { size: 8 })).apply(one, 1);
});

test('presets list the official transforms in the official order', () => {
  const names = (t: TransformSpec): string => {
    if (t.name === 'Compose') return t.transforms.map(names).join(' ');
    if (t.name === 'RandomApply') return `RandomApply(${t.transforms.map(names).join(' ')},p=${t.p})`;
    if (t.name === 'RandomResizedCrop') return `RRC(${t.size},${t.scale?.join('-') ?? 'default'},${t.interpolation ?? 'bilinear'}${t.singleTry === true ? ',1try' : ''})`;
    if (t.name === 'Resize') return `Resize(${t.size},${t.interpolation ?? 'bilinear'})`;
    if (t.name === 'ColorJitter') return `CJ(${t.brightness},${t.contrast},${t.saturation},${t.hue})`;
    if (t.name === 'RandomGrayscale') return `Gray(${t.p})`;
    if (t.name === 'Normalize') return `Norm(${t.mean[0]})`;
    return t.name;
  };
  const views = (name: string): string[] => preset(name).views.map(names);
  assert.deepEqual(views('moco-v1'), Array(2).fill('RRC(224,0.2-1,bilinear) Gray(0.2) CJ(0.4,0.4,0.4,0.4) RandomHorizontalFlip ToTensor Norm(0.485)'));
  const v2 = 'RRC(224,0.2-1,bilinear) RandomApply(CJ(0.4,0.4,0.4,0.1),p=0.8) Gray(0.2) RandomApply(GaussianBlur,p=0.5) RandomHorizontalFlip ToTensor Norm(0.485)';
  assert.deepEqual(views('moco-v2'), [v2, v2]);
  assert.deepEqual(views('simsiam'), [v2, v2]);
  assert.deepEqual(views('moco-v3'), [
    'RRC(224,0.08-1,bilinear) RandomApply(CJ(0.4,0.4,0.2,0.1),p=0.8) Gray(0.2) RandomApply(GaussianBlur,p=1) RandomHorizontalFlip ToTensor Norm(0.485)',
    'RRC(224,0.08-1,bilinear) RandomApply(CJ(0.4,0.4,0.2,0.1),p=0.8) Gray(0.2) RandomApply(GaussianBlur,p=0.1) RandomApply(Solarize,p=0.2) RandomHorizontalFlip ToTensor Norm(0.485)',
  ]);
  assert.deepEqual(views('mae'), ['RRC(224,0.2-1,bicubic) RandomHorizontalFlip ToTensor Norm(0.485)']);
  assert.deepEqual(views('lincls-train'), ['RRC(224,default,bilinear) RandomHorizontalFlip ToTensor Norm(0.485)']);
  assert.deepEqual(views('lincls-val'), ['Resize(256,bilinear) CenterCrop ToTensor Norm(0.485)']);
  // mae/main_linprobe.py: util/crop.py's single-try bicubic crop; bicubic Resize(256) for validation
  assert.deepEqual(views('mae-lincls-train'), ['RRC(224,default,bicubic,1try) RandomHorizontalFlip ToTensor Norm(0.485)']);
  assert.deepEqual(views('mae-val'), ['Resize(256,bicubic) CenterCrop ToTensor Norm(0.485)']);
  // the MoCo CIFAR demo: RandomResizedCrop(32) at the default scale, flip second, no blur
  const demo = 'RRC(32,default,bilinear) RandomHorizontalFlip RandomApply(CJ(0.4,0.4,0.4,0.1),p=0.8) Gray(0.2) ToTensor Norm(0.4914)';
  assert.deepEqual(views('moco-demo-cifar'), [demo, demo]);
  const v2c = 'RRC(32,0.2-1,bilinear) RandomApply(CJ(0.4,0.4,0.4,0.1),p=0.8) Gray(0.2) RandomHorizontalFlip ToTensor Norm(0.4914)';
  assert.deepEqual(views('moco-v2-cifar'), [v2c, v2c]);
  const val = preset('lincls-val-cifar').views[0]!;
  assert.ok(val.name === 'Compose' && val.transforms[0]!.name === 'Resize' && val.transforms[0]!.size === 32);
});
