// Pixel operations with the exact arithmetic of Pillow 9 as torchvision.transforms.functional_pil calls it:
// PIL's antialiased resampling (fixed-point, two passes), ImageEnhance blends, HSV hue shift, box-blur Gaussian.
import { rgbImage, roundHalfEven, tensorImage, type RgbImage, type TensorImage } from './image.js';

export type Interpolation = 'bilinear' | 'bicubic';

// ---------------------------------------------------------------- resampling (PIL Resample.c)

const PRECISION_BITS = 32 - 8 - 2;

interface Filter {
  support: number;
  weight: (x: number) => number;
}

const FILTERS: Record<Interpolation, Filter> = {
  bilinear: {
    support: 1,
    weight: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [outSize * 2]: xmin, count
  kk: Int32Array; // [outSize * ksize] fixed-point weights
}

/** PIL's precompute_coeffs + normalize_coeffs_8bpc for an input span of inSize pixels. */
function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let ww = 0;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Crop the box (top, left, height, width) out of img and resize it to outWidth x outHeight, exactly as
 * PIL's img.crop(box).resize(size, resample) (torchvision's F.resized_crop on PIL images).
 * The box must lie inside the image.
 */
export function resizedCrop(
  img: RgbImage, top: number, left: number, height: number, width: number,
  outHeight: number, outWidth: number, interpolation: Interpolation,
): RgbImage {
  if (top < 0 || left < 0 || height < 1 || width < 1 || top + height > img.height || left + width > img.width) {
    throw new Error(`[resizedCrop] box top=${top} left=${left} h=${height} w=${width} outside ${img.width}x${img.height} image`);
  }
  if (outHeight < 1 || outWidth < 1) throw new Error(`[resizedCrop] output size must be positive, got ${outWidth}x${outHeight}`);
  const filter = FILTERS[interpolation];
  const src = img.data;
  const srcStride = img.width * 3;
  const needH = outWidth !== width;
  const needV = outHeight !== height;
  const vert = precomputeCoeffs(height, outHeight, filter);
  const yFirst = needV ? vert.bounds[0]! : 0;
  const yLast = needV ? vert.bounds[outHeight * 2 - 2]! + vert.bounds[outHeight * 2 - 1]! : height;
  const rows = yLast - yFirst;

  // horizontal pass: rows [yFirst, yLast) of the crop -> tmp [rows, outWidth, 3]
  let tmp: Uint8Array;
  if (needH) {
    const horiz = precomputeCoeffs(width, outWidth, filter);
    const { ksize, bounds, kk } = horiz;
    tmp = new Uint8Array(rows * outWidth * 3);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < rows; y++) {
      const rowBase = (top + yFirst + y) * srcStride + left * 3;
      const outBase = y * outWidth * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2]!;
        const xmax = bounds[xx * 2 + 1]!;
        const kBase = xx * ksize;
        let s0 = half, s1 = half, s2 = half;
        let p = rowBase + xmin * 3;
        for (let x = 0; x < xmax; x++, p += 3) {
          const w = kk[kBase + x]!;
          s0 += src[p]! * w;
          s1 += src[p + 1]! * w;
          s2 += src[p + 2]! * w;
        }
        const o = outBase + xx * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
  } else {
    tmp = new Uint8Array(rows * width * 3);
    for (let y = 0; y < rows; y++) {
      const s = (top + yFirst + y) * srcStride + left * 3;
      tmp.set(src.subarray(s, s + width * 3), y * width * 3);
    }
  }
  if (!needV) return rgbImage(tmp, outWidth, outHeight);

  // vertical pass: tmp -> out [outHeight, outWidth, 3]
  const { ksize, bounds, kk } = vert;
  const out = new Uint8Array(outHeight * outWidth * 3);
  const stride = outWidth * 3;
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2]! - yFirst;
    const ymax = bounds[yy * 2 + 1]!;
    const kBase = yy * ksize;
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = half;
      let p = ymin * stride + i;
      for (let y = 0; y < ymax; y++, p += stride) s += tmp[p]! * kk[kBase + y]!;
      out[outBase + i] = clip8(s);
    }
  }
  return rgbImage(out, outWidth, outHeight);
}

/** PIL img.resize((width, height), resample). */
export function resize(img: RgbImage, outHeight: number, outWidth: number, interpolation: Interpolation): RgbImage {
  if (outHeight === img.height && outWidth === img.width) return img;
  return resizedCrop(img, 0, 0, img.height, img.width, outHeight, outWidth, interpolation);
}

/** torchvision's output size for Resize(size): an int resizes the shorter edge, keeping the aspect ratio. */
export function resizeOutputSize(height: number, width: number, size: number | readonly [number, number], maxSize?: number): [number, number] {
  if (typeof size !== 'number') return [size[0], size[1]];
  const [short, long] = width <= height ? [width, height] : [height, width];
  if (short === size && maxSize === undefined) return [height, width];
  let newShort = size;
  let newLong = Math.trunc((size * long) / short);
  if (maxSize !== undefined) {
    if (maxSize <= size) throw new Error(`[Resize] maxSize=${maxSize} must be larger than size=${size}`);
    if (newLong > maxSize) {
      newShort = Math.trunc((maxSize * newShort) / newLong);
      newLong = maxSize;
    }
  }
  return width <= height ? [newLong, newShort] : [newShort, newLong];
}

// ---------------------------------------------------------------- geometry

/** PIL img.crop((left, top, left + width, top + height)): parts outside the image are black. */
export function crop(img: RgbImage, top: number, left: number, height: number, width: number): RgbImage {
  if (height < 1 || width < 1) throw new Error(`[crop] size must be positive, got ${width}x${height}`);
  const out = new Uint8Array(height * width * 3);
  const y0 = Math.max(0, top), y1 = Math.min(img.height, top + height);
  const x0 = Math.max(0, left), x1 = Math.min(img.width, left + width);
  if (x1 > x0) {
    for (let y = y0; y < y1; y++) {
      const s = (y * img.width + x0) * 3;
      out.set(img.data.subarray(s, s + (x1 - x0) * 3), ((y - top) * width + (x0 - left)) * 3);
    }
  }
  return rgbImage(out, width, height);
}

/** torchvision F.center_crop: offsets int(round((H - h) / 2)); pads with zeros when the crop is larger. */
export function centerCrop(img: RgbImage, height: number, width: number): RgbImage {
  if (height > img.height || width > img.width) {
    // torchvision pads symmetrically (left/top get the floor half), then crops at the centre
    const padTop = height > img.height ? Math.trunc((height - img.height) / 2) : 0;
    const padLeft = width > img.width ? Math.trunc((width - img.width) / 2) : 0;
    const padBottom = height > img.height ? Math.trunc((height - img.height + 1) / 2) : 0;
    const padRight = width > img.width ? Math.trunc((width - img.width + 1) / 2) : 0;
    img = crop(img, -padTop, -padLeft, img.height + padTop + padBottom, img.width + padLeft + padRight);
    if (img.height === height && img.width === width) return img;
  }
  const top = roundHalfEven((img.height - height) / 2);
  const left = roundHalfEven((img.width - width) / 2);
  return crop(img, top, left, height, width);
}

export function hflip(img: RgbImage): RgbImage {
  const { width, height } = img;
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      out[d] = src[s]!;
      out[d + 1] = src[s + 1]!;
      out[d + 2] = src[s + 2]!;
    }
  }
  return rgbImage(out, width, height);
}

// ---------------------------------------------------------------- colour (PIL ImageEnhance, Convert.c)

/** PIL's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Image.blend(const, img, factor) for 8-bit bands as a table: float arithmetic, truncation, clipping when extrapolating. */
function blendLut(alpha32: number, a: number): Uint8Array {
  const lut = new Uint8Array(256);
  for (let s = 0; s < 256; s++) {
    const v = Math.fround(a + Math.fround(alpha32 * (s - a)));
    lut[s] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return lut;
}

/** F.adjust_brightness (ImageEnhance.Brightness): blend with black. */
export function adjustBrightness(img: RgbImage, factor: number): RgbImage {
  if (factor < 0) throw new Error(`[adjustBrightness] factor must be non-negative, got ${factor}`);
  const lut = blendLut(Math.fround(factor), 0);
  const out = new Uint8Array(img.data.length);
  const src = img.data;
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]!]!;
  return rgbImage(out, img.width, img.height);
}

/** F.adjust_contrast (ImageEnhance.Contrast): blend with the rounded mean grey level. */
export function adjustContrast(img: RgbImage, factor: number): RgbImage {
  if (factor < 0) throw new Error(`[adjustContrast] factor must be non-negative, got ${factor}`);
  const src = img.data;
  let sum = 0;
  for (let i = 0; i < src.length; i += 3) sum += luma(src[i]!, src[i + 1]!, src[i + 2]!);
  const mean = Math.trunc(sum / (img.width * img.height) + 0.5);
  const lut = blendLut(Math.fround(factor), mean);
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]!]!;
  return rgbImage(out, img.width, img.height);
}

/** F.adjust_saturation (ImageEnhance.Color): blend with the grey (L) version. */
export function adjustSaturation(img: RgbImage, factor: number): RgbImage {
  if (factor < 0) throw new Error(`[adjustSaturation] factor must be non-negative, got ${factor}`);
  const src = img.data;
  const grey = new Uint8Array(src.length / 3);
  for (let p = 0, i = 0; p < grey.length; p++, i += 3) grey[p] = luma(src[i]!, src[i + 1]!, src[i + 2]!);
  const out = new Uint8Array(src.length);
  const alpha = Math.fround(factor);
  for (let i = 0; i < src.length; i++) {
    const a = grey[(i / 3) | 0]!;
    const v = Math.fround(a + Math.fround(alpha * (src[i]! - a)));
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v | 0;
  }
  return rgbImage(out, img.width, img.height);
}

/**
 * F.adjust_hue on a PIL image: convert to PIL's 8-bit HSV, add uint8(hue_factor * 255) to H with
 * wrap-around, convert back.
 */
export function adjustHue(img: RgbImage, hueFactor: number): RgbImage {
  if (!(hueFactor >= -0.5 && hueFactor <= 0.5)) throw new Error(`[adjustHue] hueFactor must be in [-0.5, 0.5], got ${hueFactor}`);
  const shift = ((Math.trunc(hueFactor * 255) % 256) + 256) % 256; // np.uint8(float) wraps negatives
  const { quot, hsvI, hsvF, fsTab } = hueTables();
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += 3) {
    const r = src[i]!, g = src[i + 1]!, b = src[i + 2]!;
    // rgb2hsv_row (float arithmetic as Pillow's C code)
    const maxc = r > g ? (r > b ? r : b) : g > b ? g : b;
    const minc = r < g ? (r < b ? r : b) : g < b ? g : b;
    const v = maxc;
    if (maxc === minc) {
      out[i] = v; out[i + 1] = v; out[i + 2] = v; // s = 0: hue has no effect
      continue;
    }
    const cr = maxc - minc;
    const sf = quot[(cr << 8) | maxc]!;
    let hf: number;
    if (r === maxc) hf = Math.fround(quot[((maxc - b) << 8) | cr]! - quot[((maxc - g) << 8) | cr]!);
    else if (g === maxc) hf = Math.fround(2 + quot[((maxc - r) << 8) | cr]! - quot[((maxc - b) << 8) | cr]!);
    else hf = Math.fround(4 + quot[((maxc - g) << 8) | cr]! - quot[((maxc - r) << 8) | cr]!);
    hf = Math.fround((hf / 6 + 1) % 1);
    const h = (clamp255(Math.trunc(hf * 255)) + shift) & 255;
    const s = clamp255(Math.trunc(sf * 255));
    // hsv2rgb
    if (s === 0) {
      out[i] = v; out[i + 1] = v; out[i + 2] = v;
      continue;
    }
    const hi = hsvI[h]!;
    const f = hsvF[h]!;
    const fs = fsTab[s]!;
    const p = clamp255(Math.round(Math.fround(v * Math.fround(1 - fs))));
    const q = clamp255(Math.round(Math.fround(v * Math.fround(1 - Math.fround(fs * f)))));
    const t = clamp255(Math.round(Math.fround(v * Math.fround(1 - Math.fround(fs * Math.fround(1 - f))))));
    switch (hi) {
      case 0: out[i] = v; out[i + 1] = t; out[i + 2] = p; break;
      case 1: out[i] = q; out[i + 1] = v; out[i + 2] = p; break;
      case 2: out[i] = p; out[i + 1] = v; out[i + 2] = t; break;
      case 3: out[i] = p; out[i + 1] = q; out[i + 2] = v; break;
      case 4: out[i] = t; out[i + 1] = p; out[i + 2] = v; break;
      default: out[i] = v; out[i + 1] = p; out[i + 2] = q; break;
    }
  }
  return rgbImage(out, img.width, img.height);
}

interface HueTables {
  quot: Float32Array; // [num << 8 | den] = float(num / den)
  hsvI: Int32Array; // floor(h * 6 / 255) % 6
  hsvF: Float32Array; // its fractional part, in float
  fsTab: Float32Array; // s / 255 in float
}
let hueTablesCache: HueTables | null = null;

/** The divisions of Pillow's HSV conversion, precomputed in float32 (8-bit inputs make them small tables). */
function hueTables(): HueTables {
  if (hueTablesCache) return hueTablesCache;
  const quot = new Float32Array(256 * 256);
  for (let num = 0; num < 256; num++) for (let den = 1; den < 256; den++) quot[(num << 8) | den] = num / den;
  const hsvI = new Int32Array(256), hsvF = new Float32Array(256), fsTab = new Float32Array(256);
  for (let h = 0; h < 256; h++) {
    const x = Math.fround((h * 6) / 255);
    const i = Math.floor(x);
    hsvI[h] = i % 6;
    hsvF[h] = Math.fround(x - i);
    fsTab[h] = h / 255;
  }
  hueTablesCache = { quot, hsvI, hsvF, fsTab };
  return hueTablesCache;
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** F.rgb_to_grayscale(img, num_output_channels=3): PIL's L, replicated into three channels. */
export function toGrayscale(img: RgbImage): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += 3) {
    const l = luma(src[i]!, src[i + 1]!, src[i + 2]!);
    out[i] = l; out[i + 1] = l; out[i + 2] = l;
  }
  return rgbImage(out, img.width, img.height);
}

/** ImageOps.solarize: invert every value >= threshold (MoCo v3's Solarize uses 128). */
export function solarize(img: RgbImage, threshold = 128): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    out[i] = v < threshold ? v : 255 - v;
  }
  return rgbImage(out, img.width, img.height);
}

// ---------------------------------------------------------------- RandAugment's PIL ops (ImageOps, ImageEnhance, Geometry.c)

/** A per-band lookup table: PIL's Image.point / ImageOps._lut on RGB. */
function applyLut(img: RgbImage, lut: (band: number) => Uint8Array): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  const luts = [lut(0), lut(1), lut(2)];
  for (let i = 0; i < src.length; i++) out[i] = luts[i % 3]![src[i]!]!;
  return rgbImage(out, img.width, img.height);
}

function bandHistograms(img: RgbImage): Int32Array[] {
  const h = [new Int32Array(256), new Int32Array(256), new Int32Array(256)];
  const src = img.data;
  for (let i = 0; i < src.length; i++) h[i % 3]![src[i]!]!++;
  return h;
}

/** ImageOps.autocontrast (cutoff 0): each band stretched from its [min, max] to [0, 255]. */
export function autocontrast(img: RgbImage): RgbImage {
  const hist = bandHistograms(img);
  return applyLut(img, (b) => {
    const h = hist[b]!;
    let lo = 0;
    while (lo < 255 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi > 0 && h[hi] === 0) hi--;
    const lut = new Uint8Array(256);
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    for (let i = 0; i < 256; i++) lut[i] = Math.min(255, Math.max(0, Math.trunc(i * scale + offset)));
    return lut;
  });
}

/** ImageOps.equalize: each band's cumulative histogram as the table, PIL's integer steps. */
export function equalize(img: RgbImage): RgbImage {
  const hist = bandHistograms(img);
  return applyLut(img, (b) => {
    const h = hist[b]!;
    const lut = new Uint8Array(256);
    const used = Array.from(h).filter((v) => v > 0);
    const step = used.length <= 1 ? 0 : Math.floor((used.reduce((a, v) => a + v, 0) - used[used.length - 1]!) / 255);
    if (step === 0) {
      for (let i = 0; i < 256; i++) lut[i] = i;
      return lut;
    }
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i]!;
    }
    return lut;
  });
}

/** ImageOps.invert. */
export function invert(img: RgbImage): RgbImage {
  return applyLut(img, () => Uint8Array.from({ length: 256 }, (_, i) => 255 - i));
}

/** ImageOps.posterize: keep the top `bits` bits of each value (0 bits: black). */
export function posterize(img: RgbImage, bits: number): RgbImage {
  const mask = ~(2 ** (8 - bits) - 1) & 0xff;
  return applyLut(img, () => Uint8Array.from({ length: 256 }, (_, i) => i & mask));
}

/** timm's solarize_add: values below the threshold get `add` (saturating at 255). */
export function solarizeAdd(img: RgbImage, add: number, threshold = 128): RgbImage {
  return applyLut(img, () => Uint8Array.from({ length: 256 }, (_, i) => (i < threshold ? Math.min(255, i + add) : i)));
}

/** Image.blend(degenerate, img, alpha) per pixel: float arithmetic, truncation, clipping when extrapolating. */
function blendImages(degenerate: Uint8Array, img: RgbImage, factor: number): RgbImage {
  const src = img.data;
  const out = new Uint8Array(src.length);
  const alpha = Math.fround(factor);
  for (let i = 0; i < src.length; i++) {
    const a = degenerate[i]!;
    const v = Math.fround(a + Math.fround(alpha * (src[i]! - a)));
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return rgbImage(out, img.width, img.height);
}

/**
 * ImageEnhance.Sharpness: blend with ImageFilter.SMOOTH (3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13 in float32, rounded),
 * whose border pixels PIL copies unfiltered.
 */
export function adjustSharpness(img: RgbImage, factor: number): RgbImage {
  const { width: W, height: H } = img;
  const src = img.data;
  const smooth = Uint8Array.from(src);
  const k1 = Math.fround(1 / 13);
  const k5 = Math.fround(5 / 13);
  for (let y = 1; y < H - 1; y++) {
    for (let x = 1; x < W - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number): number => src[(yy * W + xx) * 3 + c]!;
        // PIL sums the row below, the row itself, then the row above, each left to right, in float32
        let ss = 0;
        for (const yy of [y + 1, y, y - 1]) {
          const row = Math.fround(Math.fround(Math.fround(at(yy, x - 1) * k1) + Math.fround(at(yy, x) * (yy === y ? k5 : k1))) + Math.fround(at(yy, x + 1) * k1));
          ss = Math.fround(ss + row);
        }
        smooth[(y * W + x) * 3 + c] = ss <= 0 ? 0 : ss >= 255 ? 255 : Math.trunc(ss + 0.5);
      }
    }
  }
  return blendImages(smooth, img, factor);
}

/**
 * Image.transform(size, AFFINE, (a, b, c, d, e, f), BICUBIC, fillcolor): output pixel (x, y) samples the input at
 * (a (x+.5) + b (y+.5) + c, d (x+.5) + e (y+.5) + f) with PIL's bicubic (a = -1 cubic, edge rows and columns
 * replicated, truncated to 8 bits); samples outside the image keep the fill colour.
 */
export function affineBicubic(img: RgbImage, m: readonly [number, number, number, number, number, number], fill: readonly [number, number, number]): RgbImage {
  const { width: W, height: H } = img;
  const src = img.data;
  const out = new Uint8Array(src.length);
  const cubic = (v1: number, v2: number, v3: number, v4: number, d: number): number => {
    const p1 = v2;
    const p2 = -v1 + v3;
    const p3 = 2 * (v1 - v2) + v3 - v4;
    const p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
  };
  const clipX = (x: number): number => (x < 0 ? 0 : x < W ? x : W - 1);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      let xin = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2];
      let yin = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
      if (xin < 0 || xin >= W || yin < 0 || yin >= H) {
        out[o] = fill[0]; out[o + 1] = fill[1]; out[o + 2] = fill[2];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      let xi = Math.floor(xin);
      let yi = Math.floor(yin);
      const dx = xin - xi;
      const dy = yin - yi;
      xi--; yi--;
      const cols = [clipX(xi), clipX(xi + 1), clipX(xi + 2), clipX(xi + 3)];
      for (let c = 0; c < 3; c++) {
        const row = (r: number): number => {
          const base = r * W;
          return cubic(src[(base + cols[0]!) * 3 + c]!, src[(base + cols[1]!) * 3 + c]!, src[(base + cols[2]!) * 3 + c]!, src[(base + cols[3]!) * 3 + c]!, dx);
        };
        // the first row is clamped into the image; rows past an edge repeat the previous row's value
        const v1 = row(yi < 0 ? 0 : yi < H ? yi : H - 1);
        const v2 = yi + 1 >= 0 && yi + 1 < H ? row(yi + 1) : v1;
        const v3 = yi + 2 >= 0 && yi + 2 < H ? row(yi + 2) : v2;
        const v4 = yi + 3 >= 0 && yi + 3 < H ? row(yi + 3) : v3;
        const v = cubic(v1, v2, v3, v4, dy);
        out[o + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
  }
  return rgbImage(out, W, H);
}

/** Python's round(x, 15) on the rotation matrix, as Image.rotate writes it. */
function round15(x: number): number {
  return Math.round(x * 1e15) / 1e15;
}

/** Image.rotate(degrees, BICUBIC, fillcolor): counter-clockwise about the centre, same size. */
export function rotateBicubic(img: RgbImage, degrees: number, fill: readonly [number, number, number]): RgbImage {
  const angle = ((degrees % 360) + 360) % 360;
  if (angle === 0) return rgbImage(Uint8Array.from(img.data), img.width, img.height);
  const { width: W, height: H } = img;
  const [cx, cy] = [W / 2, H / 2];
  const a = -(angle * Math.PI) / 180;
  const m: [number, number, number, number, number, number] = [round15(Math.cos(a)), round15(Math.sin(a)), 0, round15(-Math.sin(a)), round15(Math.cos(a)), 0];
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  return affineBicubic(img, m, fill);
}

// ---------------------------------------------------------------- blur (PIL BoxBlur.c)

/** PIL's extended box radius for `passes` box blurs approximating a Gaussian of std `radius`. */
function gaussianBoxRadius(radius: number, passes: number): number {
  const f = Math.fround;
  const sigma2 = f(f(radius * radius) / passes);
  const L = f(Math.sqrt(12 * sigma2 + 1));
  const l = f(Math.floor((L - 1) / 2));
  let a = f((2 * l + 1) * (l * (l + 1) - 3 * sigma2));
  a = f(a / (6 * (sigma2 - (l + 1) * (l + 1))));
  return f(l + a);
}

/**
 * One pass of PIL's fractional-radius box blur with edge clamping along `count` lines of `length` RGB pixels; line l
 * starts at byte l * lineStep and its pixels are `stride` bytes apart. src and dst may not alias.
 */
function boxBlurLines(dst: Uint8Array, src: Uint8Array, count: number, lineStep: number, length: number, stride: number, floatRadius: number): void {
  const radius = Math.trunc(floatRadius);
  const ww = Math.trunc(Math.fround(16777216 / Math.fround(floatRadius * 2 + 1)));
  const fw = Math.trunc((16777216 - (radius * 2 + 1) * ww) / 2);
  const last = length - 1;
  // line[3 * (k + radius + 1) + c] holds channel c of pixel clamp(k), k in [-radius-1, length+radius]
  const n = length + 2 * radius + 2;
  const line = new Int32Array(n * 3);
  const span = 3 * (2 * radius + 2);
  for (let l = 0; l < count; l++) {
    const base = l * lineStep;
    const e = base + last * stride;
    let j = 0;
    for (let k = 0; k <= radius; k++, j += 3) { line[j] = src[base]!; line[j + 1] = src[base + 1]!; line[j + 2] = src[base + 2]!; }
    for (let k = 0, s = base; k <= last; k++, s += stride, j += 3) { line[j] = src[s]!; line[j + 1] = src[s + 1]!; line[j + 2] = src[s + 2]!; }
    for (; j < n * 3; j += 3) { line[j] = src[e]!; line[j + 1] = src[e + 1]!; line[j + 2] = src[e + 2]!; }
    let a0 = 0, a1 = 0, a2 = 0;
    for (let q = 3; q <= 3 * (2 * radius + 1); q += 3) { a0 += line[q]!; a1 += line[q + 1]!; a2 += line[q + 2]!; }
    for (let x = 0, o = base, q = 0; x <= last; x++, o += stride, q += 3) {
      const r0 = line[q + span]!, r1 = line[q + span + 1]!, r2 = line[q + span + 2]!;
      // (bulk + 2**23) >> 24 on a bulk below 2**32, as PIL's UINT32 arithmetic
      dst[o] = ((a0 * ww + (line[q]! + r0) * fw + 8388608) / 16777216) | 0;
      dst[o + 1] = ((a1 * ww + (line[q + 1]! + r1) * fw + 8388608) / 16777216) | 0;
      dst[o + 2] = ((a2 * ww + (line[q + 2]! + r2) * fw + 8388608) / 16777216) | 0;
      a0 += r0 - line[q + 3]!; a1 += r1 - line[q + 4]!; a2 += r2 - line[q + 5]!;
    }
  }
}

/** PIL ImageFilter.GaussianBlur(radius=sigma): three extended box blurs along x, then three along y (MoCo's GaussianBlur). */
export function gaussianBlurPil(img: RgbImage, sigma: number): RgbImage {
  if (!(sigma >= 0)) throw new Error(`[GaussianBlur] sigma must be non-negative, got ${sigma}`);
  if (sigma === 0) return img;
  const passes = 3;
  const r = gaussianBoxRadius(sigma, passes);
  const { width, height } = img;
  let a: Uint8Array = new Uint8Array(img.data.length);
  let b: Uint8Array = new Uint8Array(img.data.length);
  boxBlurLines(a, img.data, height, width * 3, width, 3, r);
  for (let i = 1; i < passes; i++) {
    boxBlurLines(b, a, height, width * 3, width, 3, r);
    [a, b] = [b, a];
  }
  for (let i = 0; i < passes; i++) {
    boxBlurLines(b, a, width, 3, height, width * 3, r);
    [a, b] = [b, a];
  }
  return rgbImage(a, width, height);
}

// ---------------------------------------------------------------- to tensor

/** F.to_tensor: uint8 HWC -> float32 CHW in [0, 1]. */
export function toTensor(img: RgbImage): TensorImage {
  const { width, height } = img;
  const plane = width * height;
  const out = new Float32Array(plane * 3);
  const src = img.data;
  for (let p = 0, i = 0; p < plane; p++, i += 3) {
    out[p] = src[i]! / 255;
    out[plane + p] = src[i + 1]! / 255;
    out[2 * plane + p] = src[i + 2]! / 255;
  }
  return tensorImage(out, 3, height, width);
}

/** F.normalize: (x - mean) / std per channel, in float32 like torch. */
export function normalize(img: TensorImage, mean: readonly number[], std: readonly number[]): TensorImage {
  const { channels, height, width } = img;
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`[Normalize] mean/std have ${mean.length}/${std.length} entries for ${channels} channels`);
  }
  const plane = height * width;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < channels; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    if (s === 0) throw new Error('[Normalize] std evaluated to zero, leading to division by zero');
    for (let p = c * plane; p < (c + 1) * plane; p++) out[p] = Math.fround(img.data[p]! - m) / s;
  }
  return tensorImage(out, channels, height, width);
}

/**
 * ToTensor followed by Normalize, written straight into `out` at `offset` (a slot of an NCHW batch).
 * Bit-identical to the two steps: the per-channel lookup table holds the float32 results of each.
 */
export function toTensorNormalizeInto(
  img: RgbImage, mean: readonly number[] | null, std: readonly number[] | null, out: Float32Array, offset: number,
): void {
  const plane = img.width * img.height;
  const src = img.data;
  const lut = (c: number): Float32Array => {
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(v / 255);
      t[v] = mean && std ? Math.fround(x - Math.fround(mean[c]!)) / Math.fround(std[c]!) : x;
    }
    return t;
  };
  const l0 = lut(0), l1 = lut(1), l2 = lut(2);
  // one pass over the pixels: far faster in V8 than one strided pass per channel
  for (let p = 0, i = 0, o = offset; p < plane; p++, i += 3, o++) {
    out[o] = l0[src[i]!]!;
    out[o + plane] = l1[src[i + 1]!]!;
    out[o + 2 * plane] = l2[src[i + 2]!]!;
  }
}
