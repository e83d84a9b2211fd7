// Loads test/fixtures/data/transforms.json (written by reference/transforms.py) and compares images against it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { rgbImage, type RgbImage } from '../../src/data/image.js';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/data/', import.meta.url));
const REGENERATE = 'regenerate with: /usr/bin/python3 reference/transforms.py';

export interface FixtureCase {
  op: string;
  image: string;
  params: Record<string, unknown>;
  height: number;
  width: number;
  dtype: 'uint8' | 'float32';
  data: string;
}

interface Moments { mean: number; std: number }

export interface Fixtures {
  magic: string;
  version: number;
  images: Record<string, { height: number; width: number; data: string }>;
  cases: FixtureCase[];
  rrc_fallback: Array<{ height: number; width: number; ratio: [number, number]; params: [number, number, number, number] }>;
  rrc_stats: { height: number; width: number; scale: [number, number]; ratio: [number, number]; n: number; moments: Record<string, Moments>; full_image_rate: number };
  color_jitter_stats: { n: number; moments: Record<string, Moments>; position_freq: number[][] };
  decode: Array<{ file: string; height: number; width: number; data: string }>;
}

let cached: Fixtures | null = null;

export function loadFixtures(): Fixtures {
  if (cached) return cached;
  const doc = JSON.parse(readFileSync(FIXTURE_DIR + 'transforms.json', 'utf8')) as Fixtures;
  if (doc.magic !== 'selfsup-data-fixtures' || doc.version !== 1) {
    throw new Error(`[fixtures] bad header ${doc.magic} v${doc.version}; ${REGENERATE}`);
  }
  cached = doc;
  return doc;
}

export function bytes(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

export function floats(b64: string): Float32Array {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function fixtureImage(id: string): RgbImage {
  const img = loadFixtures().images[id];
  if (!img) throw new Error(`[fixtures] no image '${id}'`);
  return rgbImage(bytes(img.data), img.width, img.height);
}

/** Max |a - b| over all values; throws with the first differences and how to regenerate when above `tol`. */
export function expectClose(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): number {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  let max = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d > max) max = d;
    if (d > tol && first < 0) first = i;
  }
  if (max > tol) {
    const at = Array.from({ length: Math.min(6, actual.length - first) }, (_, k) => `${actual[first + k]} vs ${expected[first + k]}`);
    throw new Error(`${label}: max difference ${max} > ${tol}; first at ${first}: ${at.join(', ')} (${REGENERATE})`);
  }
  return max;
}
