// torchvision-style transforms with torchvision's parameter names, built from plain JSON specs so worker threads can rebuild them.
// Random transforms split into getParams(rng, ...) and a deterministic functional op, as torchvision does.
import * as F from './functional.js';
import { tensorImage, type PipelineImage, type RgbImage, type TensorImage } from './image.js';
import { Rng } from '../tensor/rng.js';

export type Interpolation = F.Interpolation;
export type Size = number | readonly [number, number];

export type TransformSpec =
  | { name: 'Compose'; transforms: readonly TransformSpec[] }
  | { name: 'RandomApply'; transforms: readonly TransformSpec[]; p?: number }
  | { name: 'RandomResizedCrop'; size: Size; scale?: readonly [number, number]; ratio?: readonly [number, number]; interpolation?: Interpolation; singleTry?: boolean }
  | { name: 'Resize'; size: Size; interpolation?: Interpolation; maxSize?: number }
  | { name: 'CenterCrop'; size: Size }
  | { name: 'RandomHorizontalFlip'; p?: number }
  | { name: 'ColorJitter'; brightness?: number | readonly [number, number]; contrast?: number | readonly [number, number]; saturation?: number | readonly [number, number]; hue?: number | readonly [number, number] }
  | { name: 'RandomGrayscale'; p?: number }
  | { name: 'GaussianBlur'; sigma?: readonly [number, number] }
  | { name: 'Solarize'; threshold?: number }
  | { name: 'RandAugment'; config: string; fill?: readonly [number, number, number] }
  | { name: 'RandomErasing'; p?: number; mode?: 'pixel' | 'const' | 'rand'; minArea?: number; maxArea?: number; minAspect?: number; count?: number }
  | { name: 'ToTensor' }
  | { name: 'Normalize'; mean: readonly number[]; std: readonly number[] };

/** A pipeline producing one or more views of each image (MoCo's TwoCropsTransform, MoCo v3's two transforms). */
export interface ViewsSpec {
  views: readonly TransformSpec[];
}

export interface Transform {
  readonly name: string;
  apply(img: PipelineImage, rng: Rng): PipelineImage;
}

function expectRgb(name: string, img: PipelineImage): RgbImage {
  if (img.kind !== 'rgb') throw new Error(`[${name}] expected an 8-bit RGB image, got a tensor (put ${name} before ToTensor)`);
  return img;
}

function expectTensor(name: string, img: PipelineImage): TensorImage {
  if (img.kind !== 'tensor') throw new Error(`[${name}] expected a tensor image, got 8-bit RGB (put ToTensor before ${name})`);
  return img;
}

function checkProbability(name: string, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new Error(`[${name}] p must be in [0, 1], got ${p}`);
  return p;
}

function sizePair(name: string, size: Size): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new Error(`[${name}] size must be positive integers, got ${JSON.stringify(size)}`);
  return [h, w];
}

export class Compose implements Transform {
  readonly name = 'Compose';
  readonly transforms: readonly Transform[];
  constructor(transforms: readonly Transform[]) {
    this.transforms = transforms;
  }
  apply(img: PipelineImage, rng: Rng): PipelineImage {
    for (const t of this.transforms) img = t.apply(img, rng);
    return img;
  }
}

export class RandomApply implements Transform {
  readonly name = 'RandomApply';
  readonly p: number;
  constructor(readonly transforms: readonly Transform[], p = 0.5) {
    this.p = checkProbability(this.name, p);
  }
  apply(img: PipelineImage, rng: Rng): PipelineImage {
    if (this.p < rng.uniform()) return img;
    for (const t of this.transforms) img = t.apply(img, rng);
    return img;
  }
}

export interface CropParams {
  top: number;
  left: number;
  height: number;
  width: number;
}

export class RandomResizedCrop implements Transform {
  readonly name = 'RandomResizedCrop';
  readonly size: [number, number];
  constructor(
    size: Size,
    readonly scale: readonly [number, number] = [0.08, 1],
    readonly ratio: readonly [number, number] = [3 / 4, 4 / 3],
    readonly interpolation: Interpolation = 'bilinear',
    /** MAE's util/crop.RandomResizedCrop (BYOL's TF crop): one draw, clamped to the image, instead of 10 tries */
    readonly singleTry = false,
  ) {
    this.size = sizePair(this.name, size);
    if (scale[0] > scale[1] || ratio[0] > ratio[1]) throw new Error(`[RandomResizedCrop] scale and ratio must be (min, max), got ${JSON.stringify({ scale, ratio })}`);
  }

  /** torchvision's get_params: 10 attempts at a random area and log-uniform aspect ratio, then the central crop. */
  static getParams(height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Rng): CropParams {
    const area = height * width;
    const logRatio0 = Math.log(ratio[0]);
    const logRatio1 = Math.log(ratio[1]);
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = area * rng.uniformRange(scale[0], scale[1]);
      const aspectRatio = Math.exp(rng.uniformRange(logRatio0, logRatio1));
      const w = roundPy(Math.sqrt(targetArea * aspectRatio));
      const h = roundPy(Math.sqrt(targetArea / aspectRatio));
      if (w > 0 && w <= width && h > 0 && h <= height) {
        const top = rng.int(height - h + 1);
        const left = rng.int(width - w + 1);
        return { top, left, height: h, width: w };
      }
    }
    return RandomResizedCrop.fallbackParams(height, width, ratio);
  }

  /**
   * MAE's util/crop.py get_params: one area and log-ratio draw, w and h clamped to the image (so the crop may be
   * squeezed out of the ratio range), then a uniform position.
   */
  static getParamsSingleTry(height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Rng): CropParams {
    const targetArea = height * width * rng.uniformRange(scale[0], scale[1]);
    const aspectRatio = Math.exp(rng.uniformRange(Math.log(ratio[0]), Math.log(ratio[1])));
    // at least one pixel: on tiny images MAE's version can round to an empty crop and fail inside PIL
    const w = Math.max(1, Math.min(roundPy(Math.sqrt(targetArea * aspectRatio)), width));
    const h = Math.max(1, Math.min(roundPy(Math.sqrt(targetArea / aspectRatio)), height));
    const top = rng.randint(0, height - h + 1);
    const left = rng.randint(0, width - w + 1);
    return { top, left, height: h, width: w };
  }

  /** The central crop torchvision falls back to after 10 failed attempts. */
  static fallbackParams(height: number, width: number, ratio: readonly [number, number]): CropParams {
    const inRatio = width / height;
    let w: number, h: number;
    if (inRatio < Math.min(ratio[0], ratio[1])) {
      w = width;
      h = roundPy(w / Math.min(ratio[0], ratio[1]));
    } else if (inRatio > Math.max(ratio[0], ratio[1])) {
      h = height;
      w = roundPy(h * Math.max(ratio[0], ratio[1]));
    } else {
      w = width;
      h = height;
    }
    return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
  }

  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectRgb(this.name, input);
    const p = this.singleTry
      ? RandomResizedCrop.getParamsSingleTry(img.height, img.width, this.scale, this.ratio, rng)
      : RandomResizedCrop.getParams(img.height, img.width, this.scale, this.ratio, rng);
    return F.resizedCrop(img, p.top, p.left, p.height, p.width, this.size[0], this.size[1], this.interpolation);
  }
}

function roundPy(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class Resize implements Transform {
  readonly name = 'Resize';
  constructor(readonly size: Size, readonly interpolation: Interpolation = 'bilinear', readonly maxSize?: number) {
    sizePair(this.name, size);
  }
  apply(input: PipelineImage): PipelineImage {
    const img = expectRgb(this.name, input);
    const [h, w] = F.resizeOutputSize(img.height, img.width, this.size, this.maxSize);
    return F.resize(img, h, w, this.interpolation);
  }
}

export class CenterCrop implements Transform {
  readonly name = 'CenterCrop';
  readonly size: [number, number];
  constructor(size: Size) {
    this.size = sizePair(this.name, size);
  }
  apply(input: PipelineImage): PipelineImage {
    const img = expectRgb(this.name, input);
    return F.centerCrop(img, this.size[0], this.size[1]);
  }
}

export class RandomHorizontalFlip implements Transform {
  readonly name = 'RandomHorizontalFlip';
  readonly p: number;
  constructor(p = 0.5) {
    this.p = checkProbability(this.name, p);
  }
  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectRgb(this.name, input);
    return rng.uniform() < this.p ? F.hflip(img) : img;
  }
}

export interface ColorJitterParams {
  /** order of application: 0 brightness, 1 contrast, 2 saturation, 3 hue (torch.randperm(4)) */
  order: readonly number[];
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

type Range = readonly [number, number];

/** torchvision ColorJitter._check_input: a number v means [max(0, center - v), center + v]; identity ranges become null. */
function jitterRange(name: string, value: number | Range | undefined, center: number, bound: Range, clipFirstOnZero: boolean): Range | null {
  if (value === undefined) return null;
  let r: Range;
  if (typeof value === 'number') {
    if (value < 0) throw new Error(`[ColorJitter] If ${name} is a single number, it must be non negative, got ${value}`);
    r = [center - value, center + value];
    if (clipFirstOnZero) r = [Math.max(r[0], 0), r[1]];
  } else {
    r = value;
  }
  if (!(bound[0] <= r[0] && r[0] <= r[1] && r[1] <= bound[1])) throw new Error(`[ColorJitter] ${name} values should be between ${JSON.stringify(bound)}, got ${JSON.stringify(r)}`);
  if (r[0] === r[1] && r[0] === center) return null;
  return r;
}

export class ColorJitter implements Transform {
  readonly name = 'ColorJitter';
  readonly brightness: Range | null;
  readonly contrast: Range | null;
  readonly saturation: Range | null;
  readonly hue: Range | null;
  constructor(brightness: number | Range = 0, contrast: number | Range = 0, saturation: number | Range = 0, hue: number | Range = 0) {
    this.brightness = jitterRange('brightness', brightness, 1, [0, Infinity], true);
    this.contrast = jitterRange('contrast', contrast, 1, [0, Infinity], true);
    this.saturation = jitterRange('saturation', saturation, 1, [0, Infinity], true);
    this.hue = jitterRange('hue', hue, 0, [-0.5, 0.5], false);
  }

  /** torchvision's get_params: a random order, then one uniform factor per enabled adjustment. */
  static getParams(brightness: Range | null, contrast: Range | null, saturation: Range | null, hue: Range | null, rng: Rng): ColorJitterParams {
    const order = Array.from(rng.randperm(4));
    const draw = (r: Range | null): number | null => (r === null ? null : rng.uniformRange(r[0], r[1]));
    return { order, brightness: draw(brightness), contrast: draw(contrast), saturation: draw(saturation), hue: draw(hue) };
  }

  static applyParams(img: RgbImage, p: ColorJitterParams): RgbImage {
    for (const fn of p.order) {
      if (fn === 0 && p.brightness !== null) img = F.adjustBrightness(img, p.brightness);
      else if (fn === 1 && p.contrast !== null) img = F.adjustContrast(img, p.contrast);
      else if (fn === 2 && p.saturation !== null) img = F.adjustSaturation(img, p.saturation);
      else if (fn === 3 && p.hue !== null) img = F.adjustHue(img, p.hue);
    }
    return img;
  }

  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectRgb(this.name, input);
    return ColorJitter.applyParams(img, ColorJitter.getParams(this.brightness, this.contrast, this.saturation, this.hue, rng));
  }
}

export class RandomGrayscale implements Transform {
  readonly name = 'RandomGrayscale';
  readonly p: number;
  constructor(p = 0.1) {
    this.p = checkProbability(this.name, p);
  }
  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectRgb(this.name, input);
    return rng.uniform() < this.p ? F.toGrayscale(img) : img;
  }
}

/** MoCo's GaussianBlur (moco/loader.py): PIL ImageFilter.GaussianBlur(radius=sigma), sigma ~ U(sigma[0], sigma[1]). */
export class GaussianBlur implements Transform {
  readonly name = 'GaussianBlur';
  constructor(readonly sigma: Range = [0.1, 2.0]) {
    if (!(sigma[0] > 0 && sigma[0] <= sigma[1])) throw new Error(`[GaussianBlur] sigma must be (min, max) with 0 < min <= max, got ${JSON.stringify(sigma)}`);
  }
  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectRgb(this.name, input);
    return F.gaussianBlurPil(img, rng.uniformRange(this.sigma[0], this.sigma[1]));
  }
}

/** MoCo v3's Solarize (ImageOps.solarize, threshold 128); wrap in RandomApply for a probability. */
export class Solarize implements Transform {
  readonly name = 'Solarize';
  constructor(readonly threshold = 128) {}
  apply(input: PipelineImage): PipelineImage {
    return F.solarize(expectRgb(this.name, input), this.threshold);
  }
}

/** One of timm 0.3.2's RandAugment ops: its name and what it does at a (clipped) magnitude in [0, 10]. */
interface AugmentOp {
  name: string;
  apply(img: RgbImage, magnitude: number, rng: Rng, fill: readonly [number, number, number]): RgbImage;
}

const MAX_LEVEL = 10;

/** timm's _randomly_negate: with probability 1/2 (random() > 0.5) the value is negated. */
function randomlyNegate(v: number, rng: Rng): number {
  return rng.uniform() > 0.5 ? -v : v;
}

/** 1 +- level * 0.9 / 10 (timm's _enhance_increasing_level_to_arg): the blend factor of the *Increasing enhancers. */
function enhanceIncreasing(level: number, rng: Rng): number {
  return 1.0 + randomlyNegate((level / MAX_LEVEL) * 0.9, rng);
}

function shear(level: number, rng: Rng): number {
  return randomlyNegate((level / MAX_LEVEL) * 0.3, rng);
}

function translatePct(level: number, rng: Rng): number {
  return randomlyNegate((level / MAX_LEVEL) * 0.45, rng);
}

/** timm 0.3.2's _RAND_INCREASING_TRANSFORMS, in its order (the order the op choice indexes). */
const RAND_INCREASING_OPS: readonly AugmentOp[] = [
  { name: 'AutoContrast', apply: (img) => F.autocontrast(img) },
  { name: 'Equalize', apply: (img) => F.equalize(img) },
  { name: 'Invert', apply: (img) => F.invert(img) },
  { name: 'Rotate', apply: (img, l, rng, fill) => F.rotateBicubic(img, randomlyNegate((l / MAX_LEVEL) * 30, rng), fill) },
  {
    name: 'PosterizeIncreasing',
    apply: (img, l) => {
      const bits = 4 - Math.trunc((l / MAX_LEVEL) * 4);
      return bits >= 8 ? img : F.posterize(img, bits);
    },
  },
  { name: 'SolarizeIncreasing', apply: (img, l) => F.solarize(img, 256 - Math.trunc((l / MAX_LEVEL) * 256)) },
  { name: 'SolarizeAdd', apply: (img, l) => F.solarizeAdd(img, Math.trunc((l / MAX_LEVEL) * 110), 128) },
  { name: 'ColorIncreasing', apply: (img, l, rng) => F.adjustSaturation(img, enhanceIncreasing(l, rng)) },
  { name: 'ContrastIncreasing', apply: (img, l, rng) => F.adjustContrast(img, enhanceIncreasing(l, rng)) },
  { name: 'BrightnessIncreasing', apply: (img, l, rng) => F.adjustBrightness(img, enhanceIncreasing(l, rng)) },
  { name: 'SharpnessIncreasing', apply: (img, l, rng) => F.adjustSharpness(img, enhanceIncreasing(l, rng)) },
  { name: 'ShearX', apply: (img, l, rng, fill) => F.affineBicubic(img, [1, shear(l, rng), 0, 0, 1, 0], fill) },
  { name: 'ShearY', apply: (img, l, rng, fill) => F.affineBicubic(img, [1, 0, 0, shear(l, rng), 1, 0], fill) },
  { name: 'TranslateXRel', apply: (img, l, rng, fill) => F.affineBicubic(img, [1, 0, translatePct(l, rng) * img.width, 0, 1, 0], fill) },
  { name: 'TranslateYRel', apply: (img, l, rng, fill) => F.affineBicubic(img, [1, 0, 0, 0, 1, translatePct(l, rng) * img.height], fill) },
];

export interface RandAugmentConfig {
  magnitude: number;
  numLayers: number;
  magnitudeStd: number;
  /** the *Increasing op set (inc1); timm's default set is not implemented */
  increasing: boolean;
}

/** timm's rand_augment_transform config string: 'rand-m9-mstd0.5-inc1' (m magnitude, n layers, mstd noise, inc). */
export function parseRandAugment(config: string): RandAugmentConfig {
  const parts = config.split('-');
  if (parts[0] !== 'rand') throw new Error(`[RandAugment] config must start with 'rand', got '${config}'`);
  const out: RandAugmentConfig = { magnitude: MAX_LEVEL, numLayers: 2, magnitudeStd: 0, increasing: false };
  for (const c of parts.slice(1)) {
    const m = /^([a-z]+)(\d.*)$/.exec(c);
    if (m === null) continue;
    const [, key, val] = m as unknown as [string, string, string];
    if (key === 'mstd') out.magnitudeStd = Number(val);
    else if (key === 'inc') out.increasing = Boolean(Number(val));
    else if (key === 'm') out.magnitude = Number.parseInt(val, 10);
    else if (key === 'n') out.numLayers = Number.parseInt(val, 10);
    else throw new Error(`[RandAugment] unsupported config section '${c}' in '${config}' (m, n, mstd, inc)`);
  }
  if (!out.increasing) throw new Error(`[RandAugment] only the increasing op set (inc1) is implemented, as MAE's 'rand-m9-mstd0.5-inc1'; got '${config}'`);
  if (!(out.magnitudeStd >= 0)) throw new Error(`[RandAugment] mstd must be >= 0 in '${config}'`);
  return out;
}

/**
 * timm 0.3.2's RandAugment as create_transform builds it for MAE's fine-tuning: numLayers ops drawn uniformly with
 * replacement, each applied with probability 0.5 at magnitude ~ N(m, mstd) clipped to [0, 10], affine ops bicubic
 * with the dataset mean as fill colour (timm's img_mean hparam).
 */
export class RandAugment implements Transform {
  readonly name = 'RandAugment';
  readonly cfg: RandAugmentConfig;
  constructor(readonly config: string, readonly fill: readonly [number, number, number] = [128, 128, 128]) {
    this.cfg = parseRandAugment(config);
  }
  apply(input: PipelineImage, rng: Rng): PipelineImage {
    let img = expectRgb(this.name, input);
    const ops = RAND_INCREASING_OPS;
    // np.random.choice(ops, num_layers, replace=True): all choices first, then the ops in turn
    const chosen = Array.from({ length: this.cfg.numLayers }, () => ops[rng.randint(0, ops.length)]!);
    for (const op of chosen) {
      if (rng.uniform() > 0.5) continue; // AugmentOp prob 0.5
      let magnitude = this.cfg.magnitude;
      if (this.cfg.magnitudeStd > 0) magnitude = rng.gauss(magnitude, this.cfg.magnitudeStd);
      magnitude = Math.min(MAX_LEVEL, Math.max(0, magnitude));
      img = op.apply(img, magnitude, rng, this.fill);
    }
    return img;
  }
}

/** The names of the ops RandAugment picks from, in index order (tests and docs). */
export const RAND_AUGMENT_OPS: readonly string[] = RAND_INCREASING_OPS.map((o) => o.name);

/** Applies one RandAugment op at a magnitude (its random sign drawn from rng), for tests against timm's ops. */
export function applyRandAugmentOp(name: string, img: RgbImage, magnitude: number, rng: Rng, fill: readonly [number, number, number]): RgbImage {
  const op = RAND_INCREASING_OPS.find((o) => o.name === name);
  if (op === undefined) throw new Error(`[RandAugment] unknown op '${name}'; known: ${RAND_AUGMENT_OPS.join(', ')}`);
  return op.apply(img, magnitude, rng, fill);
}

/**
 * timm 0.3.2's RandomErasing on a normalised tensor: with probability p, up to 10 tries at a box of area
 * U(minArea, maxArea) x image and log-uniform aspect in [minAspect, 1/minAspect] that fits strictly inside; the
 * box is filled per pixel with N(0, 1) ('pixel', MAE's --remode), per channel ('rand') or with zeros ('const').
 */
export class RandomErasing implements Transform {
  readonly name = 'RandomErasing';
  constructor(
    readonly p = 0.5,
    readonly mode: 'pixel' | 'const' | 'rand' = 'const',
    readonly minArea = 0.02,
    readonly maxArea = 1 / 3,
    readonly minAspect = 0.3,
    readonly count = 1,
  ) {
    checkProbability(this.name, p);
    if (!(minArea > 0 && minArea <= maxArea && maxArea <= 1)) throw new Error(`[RandomErasing] need 0 < minArea <= maxArea <= 1, got ${minArea}, ${maxArea}`);
    if (!(minAspect > 0)) throw new Error(`[RandomErasing] minAspect must be positive, got ${minAspect}`);
    if (!(Number.isInteger(count) && count >= 1)) throw new Error(`[RandomErasing] count must be a positive integer, got ${count}`);
  }
  apply(input: PipelineImage, rng: Rng): PipelineImage {
    const img = expectTensor(this.name, input);
    if (rng.uniform() > this.p) return img;
    const { channels: C, height: H, width: W } = img;
    const data = Float32Array.from(img.data);
    const logAspect = [Math.log(this.minAspect), Math.log(1 / this.minAspect)] as const;
    for (let n = 0; n < this.count; n++) {
      for (let attempt = 0; attempt < 10; attempt++) {
        const targetArea = (rng.uniformRange(this.minArea, this.maxArea) * H * W) / this.count;
        const aspect = Math.exp(rng.uniformRange(logAspect[0], logAspect[1]));
        const h = roundPy(Math.sqrt(targetArea * aspect));
        const w = roundPy(Math.sqrt(targetArea / aspect));
        if (w < W && h < H) {
          const top = rng.randint(0, H - h + 1);
          const left = rng.randint(0, W - w + 1);
          const perChannel = this.mode === 'rand' ? Array.from({ length: C }, () => rng.normal()) : null;
          // torch.empty((C, h, w)).normal_() fills channel by channel, row by row
          for (let c = 0; c < C; c++) {
            for (let y = top; y < top + h; y++) {
              for (let x = left; x < left + w; x++) {
                data[(c * H + y) * W + x] = this.mode === 'pixel' ? rng.normal() : perChannel !== null ? perChannel[c]! : 0;
              }
            }
          }
          break;
        }
      }
    }
    return tensorImage(data, C, H, W);
  }
}

export class ToTensor implements Transform {
  readonly name = 'ToTensor';
  apply(input: PipelineImage): PipelineImage {
    return F.toTensor(expectRgb(this.name, input));
  }
}

export class Normalize implements Transform {
  readonly name = 'Normalize';
  constructor(readonly mean: readonly number[], readonly std: readonly number[]) {
    if (mean.length !== std.length) throw new Error(`[Normalize] mean and std lengths differ: ${mean.length} vs ${std.length}`);
  }
  apply(input: PipelineImage): PipelineImage {
    return F.normalize(expectTensor(this.name, input), this.mean, this.std);
  }
}

/** Rebuild a transform from its JSON spec (what worker threads receive). */
export function buildTransform(spec: TransformSpec): Transform {
  switch (spec.name) {
    case 'Compose': return new Compose(spec.transforms.map(buildTransform));
    case 'RandomApply': return new RandomApply(spec.transforms.map(buildTransform), spec.p);
    case 'RandomResizedCrop': return new RandomResizedCrop(spec.size, spec.scale, spec.ratio, spec.interpolation, spec.singleTry);
    case 'Resize': return new Resize(spec.size, spec.interpolation, spec.maxSize);
    case 'CenterCrop': return new CenterCrop(spec.size);
    case 'RandomHorizontalFlip': return new RandomHorizontalFlip(spec.p);
    case 'ColorJitter': return new ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue);
    case 'RandomGrayscale': return new RandomGrayscale(spec.p);
    case 'GaussianBlur': return new GaussianBlur(spec.sigma);
    case 'Solarize': return new Solarize(spec.threshold);
    case 'RandAugment': return new RandAugment(spec.config, spec.fill);
    case 'RandomErasing': return new RandomErasing(spec.p, spec.mode, spec.minArea, spec.maxArea, spec.minAspect, spec.count);
    case 'ToTensor': return new ToTensor();
    case 'Normalize': return new Normalize(spec.mean, spec.std);
    default: {
      const unknown: { name?: unknown } = spec;
      throw new Error(`[buildTransform] unknown transform ${JSON.stringify(unknown.name)}`);
    }
  }
}

/** Multi-view wrapper: view v of sample i uses its own stream derived from the sample's seed, so views are independent. */
export class MultiView {
  readonly views: readonly Transform[];
  constructor(views: readonly Transform[]) {
    if (views.length < 1) throw new Error('[MultiView] needs at least one view');
    this.views = views;
  }
  static fromSpec(spec: ViewsSpec): MultiView {
    return new MultiView(spec.views.map(buildTransform));
  }
  /** All views of one image; `sampleSeed` is e.g. hashKeys(seed, epoch, index). */
  apply(img: RgbImage, sampleSeed: number): PipelineImage[] {
    return this.views.map((t, v) => t.apply(img, Rng.fromKeys(sampleSeed, v)));
  }
}

/** MoCo's TwoCropsTransform: two views from the same transform. */
export function twoCrops(t: TransformSpec): ViewsSpec {
  return { views: [t, t] };
}
