// Augmentation presets copied from the official repositories (facebookresearch/moco, moco-v3, simsiam, mae),
// plus CIFAR variants (32 px, no blur, CIFAR mean/std as in the MoCo CIFAR-10 demo).
import { type Interpolation, type TransformSpec, type ViewsSpec } from './transforms.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** The MoCo CIFAR-10 demo's normalisation (moco/colab/moco_cifar10_demo.ipynb). */
export const CIFAR_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR_STD = [0.2023, 0.1994, 0.201] as const;

export interface PresetOptions {
  /** output side in pixels (224 for ImageNet presets, 32 for CIFAR ones) */
  size?: number;
  /**
   * RandomResizedCrop's lower scale bound: MoCo v3's --crop-min (default 0.08); for moco-v1, moco-v2 and simsiam it
   * replaces their fixed 0.2 (small, centred objects such as Fashion-MNIST's keep more of their shape)
   */
  cropMin?: number;
}

interface Variant {
  size: number;
  mean: readonly number[];
  std: readonly number[];
  blur: boolean;
  /** val resize: scaled 256/224 (ImageNet) or the crop size itself (CIFAR's 32 px images) */
  valResizeRatio: number;
}

const IMAGENET: Variant = { size: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD, blur: true, valResizeRatio: 256 / 224 };
const CIFAR: Variant = { size: 32, mean: CIFAR_MEAN, std: CIFAR_STD, blur: false, valResizeRatio: 1 };

function tail(v: Variant): TransformSpec[] {
  return [{ name: 'ToTensor' }, { name: 'Normalize', mean: v.mean, std: v.std }];
}

function blurIf(v: Variant, p: number): TransformSpec[] {
  return v.blur ? [{ name: 'RandomApply', transforms: [{ name: 'GaussianBlur', sigma: [0.1, 2.0] }], p }] : [];
}

function compose(transforms: TransformSpec[]): TransformSpec {
  return { name: 'Compose', transforms };
}

/** moco/main_moco.py without --aug-plus. */
export function mocoV1Augmentation(v: Variant, cropMin = 0.2): ViewsSpec {
  const t = compose([
    { name: 'RandomResizedCrop', size: v.size, scale: [cropMin, 1.0] },
    { name: 'RandomGrayscale', p: 0.2 },
    { name: 'ColorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.4 },
    { name: 'RandomHorizontalFlip' },
    ...tail(v),
  ]);
  return { views: [t, t] };
}

/**
 * The MoCo CIFAR-10 demo's train_transform: RandomResizedCrop(32) at torchvision's default scale (0.08, 1), flip
 * second, no blur (moco/colab/moco_cifar10_demo.ipynb).
 */
export function mocoCifarDemoAugmentation(v: Variant): ViewsSpec {
  const t = compose([
    { name: 'RandomResizedCrop', size: v.size },
    { name: 'RandomHorizontalFlip' },
    { name: 'RandomApply', transforms: [{ name: 'ColorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }], p: 0.8 },
    { name: 'RandomGrayscale', p: 0.2 },
    ...tail(v),
  ]);
  return { views: [t, t] };
}

/** moco/main_moco.py --aug-plus; SimSiam's main_simsiam.py uses the same list. */
export function mocoV2Augmentation(v: Variant, cropMin = 0.2): ViewsSpec {
  const t = compose([
    { name: 'RandomResizedCrop', size: v.size, scale: [cropMin, 1.0] },
    { name: 'RandomApply', transforms: [{ name: 'ColorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }], p: 0.8 },
    { name: 'RandomGrayscale', p: 0.2 },
    ...blurIf(v, 0.5),
    { name: 'RandomHorizontalFlip' },
    ...tail(v),
  ]);
  return { views: [t, t] };
}

/** moco-v3/main_moco.py: BYOL's asymmetric pair (blur 1.0 / 0.1, solarize only in the second view). */
export function mocoV3Augmentation(v: Variant, cropMin = 0.08): ViewsSpec {
  const jitter: TransformSpec = { name: 'RandomApply', transforms: [{ name: 'ColorJitter', brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 }], p: 0.8 };
  const crop: TransformSpec = { name: 'RandomResizedCrop', size: v.size, scale: [cropMin, 1.0] };
  const augmentation1 = compose([crop, jitter, { name: 'RandomGrayscale', p: 0.2 }, ...blurIf(v, 1.0), { name: 'RandomHorizontalFlip' }, ...tail(v)]);
  const augmentation2 = compose([
    crop, jitter, { name: 'RandomGrayscale', p: 0.2 }, ...blurIf(v, 0.1),
    { name: 'RandomApply', transforms: [{ name: 'Solarize' }], p: 0.2 },
    { name: 'RandomHorizontalFlip' }, ...tail(v),
  ]);
  return { views: [augmentation1, augmentation2] };
}

/** mae/main_pretrain.py: RandomResizedCrop(0.2, 1) bicubic + flip, one view. */
export function maeAugmentation(v: Variant): ViewsSpec {
  const interpolation: Interpolation = 'bicubic';
  return { views: [compose([{ name: 'RandomResizedCrop', size: v.size, scale: [0.2, 1.0], interpolation }, { name: 'RandomHorizontalFlip' }, ...tail(v)])] };
}

/** moco/main_lincls.py training transform. */
export function linclsTrainAugmentation(v: Variant): ViewsSpec {
  return { views: [compose([{ name: 'RandomResizedCrop', size: v.size }, { name: 'RandomHorizontalFlip' }, ...tail(v)])] };
}

/**
 * moco/main_lincls.py validation transform: Resize(256) + CenterCrop(224), scaled to the variant's size; the CIFAR
 * variant resizes to the crop size itself, so 32 px images pass unchanged.
 */
export function linclsValTransform(v: Variant): ViewsSpec {
  const resize = Math.round(v.size * v.valResizeRatio);
  return { views: [compose([{ name: 'Resize', size: resize }, { name: 'CenterCrop', size: v.size }, ...tail(v)])] };
}

/**
 * mae/main_linprobe.py training transform: MAE's own RandomResizedCrop (util/crop.py: one try, the crop clamped to
 * the image, no fallback) with bicubic interpolation, then flip.
 */
export function maeLinprobeTrainAugmentation(v: Variant): ViewsSpec {
  return { views: [compose([{ name: 'RandomResizedCrop', size: v.size, interpolation: 'bicubic', singleTry: true }, { name: 'RandomHorizontalFlip' }, ...tail(v)])] };
}

/**
 * MAE's evaluation transform (main_linprobe.py; main_finetune.py through timm's eval transform with crop_pct
 * 224/256): bicubic Resize(256) + CenterCrop(224), scaled to the variant's size.
 */
export function maeValTransform(v: Variant): ViewsSpec {
  const resize = Math.round(v.size * v.valResizeRatio);
  return { views: [compose([{ name: 'Resize', size: resize, interpolation: 'bicubic' }, { name: 'CenterCrop', size: v.size }, ...tail(v)])] };
}

/**
 * mae/main_finetune.py's training transform, timm 0.3.2's create_transform(is_training=True, auto_augment=
 * 'rand-m9-mstd0.5-inc1', interpolation='bicubic', re_prob=0.25, re_mode='pixel', re_count=1): bicubic
 * RandomResizedCrop (0.08-1), flip, RandAugment (fill: the mean as 8-bit colour), ToTensor, Normalize, RandomErasing.
 */
export function maeFinetuneAugmentation(v: Variant): ViewsSpec {
  const fill = v.mean.map((m) => Math.min(255, Math.round(255 * m))) as [number, number, number];
  return {
    views: [compose([
      { name: 'RandomResizedCrop', size: v.size, interpolation: 'bicubic' },
      { name: 'RandomHorizontalFlip' },
      { name: 'RandAugment', config: 'rand-m9-mstd0.5-inc1', fill },
      ...tail(v),
      { name: 'RandomErasing', p: 0.25, mode: 'pixel' },
    ])],
  };
}

const BUILDERS = {
  'moco-v1': (v: Variant, o: PresetOptions) => mocoV1Augmentation(v, o.cropMin),
  'moco-v2': (v: Variant, o: PresetOptions) => mocoV2Augmentation(v, o.cropMin),
  'moco-demo': (v: Variant) => mocoCifarDemoAugmentation(v),
  simsiam: (v: Variant, o: PresetOptions) => mocoV2Augmentation(v, o.cropMin),
  'moco-v3': (v: Variant, o: PresetOptions) => mocoV3Augmentation(v, o.cropMin),
  mae: (v: Variant) => maeAugmentation(v),
  'lincls-train': (v: Variant) => linclsTrainAugmentation(v),
  'lincls-val': (v: Variant) => linclsValTransform(v),
  'mae-lincls-train': (v: Variant) => maeLinprobeTrainAugmentation(v),
  'mae-val': (v: Variant) => maeValTransform(v),
  'mae-finetune': (v: Variant) => maeFinetuneAugmentation(v),
} as const;

export type PresetBase = keyof typeof BUILDERS;
/** The presets whose RandomResizedCrop lower bound cropMin sets. */
const CROP_MIN_PRESETS: readonly string[] = ['moco-v1', 'moco-v2', 'simsiam', 'moco-v3'];
export const PRESET_NAMES: readonly string[] = Object.keys(BUILDERS).flatMap((k) => [k, `${k}-cifar`]);

/** A preset by name: 'moco-v2', 'moco-v3', 'mae', 'lincls-val', ... and each with a '-cifar' suffix. */
export function preset(name: string, options: PresetOptions = {}): ViewsSpec {
  const cifar = name.endsWith('-cifar');
  const base = cifar ? name.slice(0, -'-cifar'.length) : name;
  if (!(base in BUILDERS)) throw new Error(`[preset] unknown preset '${name}'; known: ${PRESET_NAMES.join(', ')}`);
  if (options.cropMin !== undefined && !CROP_MIN_PRESETS.includes(base)) {
    throw new Error(`[preset] cropMin applies to the ${CROP_MIN_PRESETS.join(', ')} augmentations only, not '${name}'`);
  }
  const variant = { ...(cifar ? CIFAR : IMAGENET) };
  if (options.size !== undefined) variant.size = options.size;
  return BUILDERS[base as PresetBase](variant, options);
}

/** The Normalize of a preset's first view, for showing tensors as images again. */
export function presetNormalization(spec: ViewsSpec): { mean: readonly number[]; std: readonly number[] } | null {
  const find = (t: TransformSpec): { mean: readonly number[]; std: readonly number[] } | null => {
    if (t.name === 'Normalize') return { mean: t.mean, std: t.std };
    if (t.name === 'Compose' || t.name === 'RandomApply') {
      for (const c of t.transforms) {
        const r = find(c);
        if (r) return r;
      }
    }
    return null;
  };
  const first = spec.views[0];
  return first ? find(first) : null;
}
