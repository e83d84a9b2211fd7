// Decodes JPEG/PNG/WebP/TIFF bytes to 8-bit RGB: small baseline JPEGs in TypeScript, the rest with sharp. Grey is expanded,
// alpha dropped (like PIL's convert('RGB')), 16-bit scaled to 8 bits (v >> 8), CMYK to sRGB; EXIF orientation ignored (as torchvision).
import type { OutputInfo, Sharp, SharpOptions } from 'sharp';
import { rgbImage, type RgbImage } from './image.js';
import { decodeJpeg } from './jpeg.js';

/** JPEGs up to this many pixels go through the TypeScript decoder (bit-exact with libjpeg-turbo, no per-call overhead). */
export const SMALL_JPEG_PIXELS = 256 * 256;

/** Images above this many pixels are refused before decoding (a 40 MP RGB image is 120 MB). */
export const DEFAULT_MAX_PIXELS = 40_000_000;

type SharpFactory = (input: Uint8Array, options: SharpOptions) => Sharp;
let sharpFactory: Promise<SharpFactory> | null = null;

/** sharp, loaded on first use: workers over packed data or small JPEGs never pay for loading libvips. */
function loadSharp(): Promise<SharpFactory> {
  sharpFactory ??= import('sharp').then((m) => {
    // one libvips thread per image: parallelism comes from decoding many images at once; no cache for one-shot files
    m.default.concurrency(1);
    m.default.cache(false);
    return m.default;
  });
  return sharpFactory;
}

export async function decodeImage(bytes: Uint8Array, name: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    try {
      const j = decodeJpeg(bytes, Math.min(maxPixels, SMALL_JPEG_PIXELS));
      return rgbImage(j.data, j.width, j.height);
    } catch {
      // unsupported or corrupt: sharp decides, so the accept/reject verdict is always libjpeg's
    }
  }
  let out: { data: Buffer; info: OutputInfo };
  try {
    const sharp = await loadSharp();
    out = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'warning' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const hint = /pixel limit/i.test(msg) ? ` (maxPixels=${maxPixels})` : '';
    throw new Error(`[decodeImage] ${name}: ${msg.trim()}${hint}`);
  }
  const { width, height, channels } = out.info;
  if (channels !== 3) throw new Error(`[decodeImage] ${name}: expected 3 channels after conversion, got ${channels}`);
  return rgbImage(new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength), width, height);
}
