// The official recipes' evaluation and fine-tuning transforms against reference/recipe_transforms.py: MAE's
// single-try crop (replaying its recorded draws), Resize(256) + CenterCrop(224) (bilinear / MAE bicubic), the CIFAR
// demo's test transform, and MAE's fine-tuning transform (timm 0.3.2's RandAugment and random erasing).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as F from '../../src/data/functional.js';
import { RAND_AUGMENT_OPS, RandomResizedCrop, applyRandAugmentOp, buildTransform } from '../../src/data/transforms.js';
import { preset } from '../../src/data/presets.js';
import { rgbImage, type RgbImage, type TensorImage } from '../../src/data/image.js';
import { evalTransform } from '../../src/data/open.js';
import { Rng } from '../../src/tensor/rng.js';
import { FIXTURE_DIR, bytes, expectClose, floats } from './fixtures.js';
import { ReplayRng, type Draw } from './replay.js';

const REGENERATE = 'regenerate with: /usr/bin/python3 reference/recipe_transforms.py';

interface RecipeFixtures {
  magic: string;
  version: number;
  images: Record<string, { height: number; width: number; data: string }>;
  mae_crop: Array<{ image: string; size: number; scale: [number, number]; draws: Draw[]; params: [number, number, number, number]; data: string }>;
  eval: Array<{ image: string; augment: string; size: number; data: string }>;
}

let cached: RecipeFixtures | null = null;
export function recipeFixtures(): RecipeFixtures {
  if (cached !== null) return cached;
  const doc = JSON.parse(readFileSync(`${FIXTURE_DIR}recipes.json`, 'utf8')) as RecipeFixtures;
  if (doc.magic !== 'selfsup-recipe-transforms' || doc.version !== 1) throw new Error(`[fixtures] bad header ${doc.magic} v${doc.version}; ${REGENERATE}`);
  cached = doc;
  return doc;
}

export function recipeImage(id: string): RgbImage {
  const img = recipeFixtures().images[id];
  if (img === undefined) throw new Error(`[fixtures] no image '${id}'; ${REGENERATE}`);
  return rgbImage(bytes(img.data), img.width, img.height);
}

test("MAE's single-try RandomResizedCrop (util/crop.py) reaches the reference's crops from the same draws, clamping included", () => {
  let clamped = 0;
  for (const [n, c] of recipeFixtures().mae_crop.entries()) {
    const img = recipeImage(c.image);
    const rng = new ReplayRng(c.draws, `crop ${n}`);
    const p = RandomResizedCrop.getParamsSingleTry(img.height, img.width, c.scale, [3 / 4, 4 / 3], rng);
    assert.ok(rng.done, `crop ${n}: the reference drew ${c.draws.length} values`);
    assert.deepEqual([p.top, p.left, p.height, p.width], c.params, `crop ${n} params`);
    if (p.height === img.height || p.width === img.width) clamped++;
    const out = F.resizedCrop(img, p.top, p.left, p.height, p.width, c.size, c.size, 'bicubic');
    expectClose(`crop ${n} pixels`, out.data, bytes(c.data), 2);
  }
  assert.ok(clamped >= 2, 'the fixture exercises the clamp to the image');
  // the transform itself draws a single area and ratio: 4 draws per image, never a fallback
  const t = buildTransform({ name: 'RandomResizedCrop', size: 8, interpolation: 'bicubic', singleTry: true });
  const tiny = rgbImage(new Uint8Array([1, 2, 3]), 1, 1);
  assert.equal((t.apply(tiny, new Rng(3)) as RgbImage).width, 8, 'a 1x1 image still crops (at least one pixel)');
});

test('evaluation transforms: Resize(256/224 x size) + CenterCrop (bilinear; MAE bicubic) and the CIFAR demo test transform', () => {
  for (const c of recipeFixtures().eval) {
    const t = buildTransform(evalTransform(c.augment, c.size).views[0]!);
    const out = t.apply(recipeImage(c.image), new Rng(0)) as TensorImage;
    // 2 intensity levels of resampling difference, after Normalize's 1/std
    expectClose(`eval ${c.augment} on ${c.image}`, out.data, floats(c.data), 2 / 255 / 0.2);
  }
});

interface OpCase { op: string; image: string; level: number; fill: [number, number, number]; draws: Draw[]; data: string }
interface FinetuneCase { image: string; size: number; chosen: string[]; draws: Draw[]; data: string }

test("each of timm 0.3.2's RandAugment ops (the increasing set) matches timm + Pillow bit for bit at fixed magnitudes", () => {
  const cases = (recipeFixtures() as unknown as { randaugment_ops: OpCase[] }).randaugment_ops;
  const worst = new Map<string, number>();
  for (const c of cases) {
    const rng = new ReplayRng(c.draws, `${c.op} on ${c.image}`);
    const out = applyRandAugmentOp(c.op, recipeImage(c.image), c.level, rng, c.fill);
    assert.ok(rng.done, `${c.op}: the reference drew ${c.draws.length} values`);
    const d = expectClose(`${c.op} level ${c.level} on ${c.image}`, out.data, bytes(c.data), 0);
    worst.set(c.op, Math.max(worst.get(c.op) ?? 0, d));
  }
  assert.deepEqual([...new Set(cases.map((c) => c.op))], [...RAND_AUGMENT_OPS], 'every op of the set is checked');
  console.log('max |diff| per RandAugment op:', JSON.stringify(Object.fromEntries(worst)));
});

test("MAE's fine-tuning transform (timm create_transform: bicubic crop, flip, RandAugment, random erasing 0.25 pixel) from the same draws", () => {
  const cases = (recipeFixtures() as unknown as { mae_finetune: FinetuneCase[] }).mae_finetune;
  const t = buildTransform(preset('mae-finetune', { size: 32 }).views[0]!);
  let erased = 0;
  for (const [n, c] of cases.entries()) {
    const rng = new ReplayRng(c.draws, `finetune ${n}`);
    const out = t.apply(recipeImage(c.image), rng) as TensorImage;
    assert.ok(rng.done, `finetune ${n} (${c.chosen.join(', ')}): the reference drew ${c.draws.length} values`);
    if (c.draws.some((d) => d[0] === 'normal')) erased++;
    expectClose(`finetune ${n} (${c.chosen.join(', ')})`, out.data, floats(c.data), 1e-6);
  }
  assert.ok(erased >= 3, `the fixture erases in ${erased} cases`);
});
