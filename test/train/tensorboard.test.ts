// A tiny pretraining's TensorBoard files, read back by the spec-written reader: the scalars of log.jsonl at the same
// steps, kNN and held-out MAE loss, the augmentation grid and per-epoch reconstructions as PNGs, the config as text.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { pretrain } from '../../src/train/pretrain.js';
import { runKnn } from '../../src/cli/knn.js';
import { makeImageFolder, tinyConfig } from '../eval/tiny-run.js';
import { readEvents, scalarsByTag, type DecodedEvent } from '../io/tfevents.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-tbrun-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b'], perClass: 8, size: 16 });

function runEvents(out: string): DecodedEvent[] {
  const files = readdirSync(join(out, 'tb')).filter((f) => f.startsWith('events.out.tfevents.'));
  assert.equal(files.length, 1);
  return readEvents(new Uint8Array(readFileSync(join(out, 'tb', files[0]!))));
}

test('MAE pretraining writes scalars, images and the config to tb/ (and the same PNGs beside the log)', async () => {
  const base = tinyConfig('mae', data, join(tmp, 'mae'));
  const cfg = { ...base, epochs: 2, logEvery: 1, knn: { ...base.knn, disabled: false, k: 3, every: 1 } };
  const progress: string[] = [];
  await pretrain(cfg, { callbacks: { log: () => {}, onProgress: (phase, done, total) => progress.push(`${phase} ${done}/${total}`) } });
  // the kNN monitor's passes before training and after each epoch (bank 16 and test 16 images, batches of 8)
  assert.deepEqual(progress, Array.from({ length: 3 }, () => ['kNN monitor: feature bank 1/2', 'kNN monitor: feature bank 2/2', 'kNN monitor: test images 1/2', 'kNN monitor: test images 2/2']).flat());
  const events = runEvents(cfg.out);
  const scalars = scalarsByTag(events);
  const log = readFileSync(join(cfg.out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
  const steps = log.filter((l) => l.event === 'step');
  assert.equal(steps.length, 4, '16 images, batch 8, 2 epochs');
  assert.deepEqual(scalars.get('train/loss'), steps.map((l) => [l.step, Math.fround(l.loss as number)]));
  assert.deepEqual(scalars.get('train/lr')!.map(([s]) => s), [1, 2, 3, 4]);
  assert.equal(scalars.get('train/img_per_sec')!.length, 4);
  const epochs = log.filter((l) => l.event === 'epoch');
  assert.deepEqual(scalars.get('train/epoch_loss'), epochs.map((l, i) => [2 * (i + 1), Math.fround(l.loss as number)]));
  // an epoch's seconds include its kNN pass; trainSeconds stop before it (bench:budget sums them)
  for (const l of epochs) assert.ok((l.trainSeconds as number) > 0 && (l.trainSeconds as number) < (l.seconds as number), JSON.stringify(l));
  // kNN before training (step 0) and after each epoch, with MAE's held-out loss
  const before = log.find((l) => l.event === 'knn')!;
  assert.deepEqual(scalars.get('knn/top1'), [[0, Math.fround(before.top1 as number)], ...epochs.map((l, i) => [2 * (i + 1), Math.fround(l.knnTop1 as number)])]);
  assert.deepEqual(scalars.get('knn/top5')!.map(([s]) => s), [0, 2, 4]);
  assert.deepEqual(scalars.get('test/mae_loss'), [[0, Math.fround(before.testLoss as number)], ...epochs.map((l, i) => [2 * (i + 1), Math.fround(l.testLoss as number)])]);
  // images: the augmentation grid at step 0, reconstructions before training and after each epoch
  const images = events.flatMap((e) => (e.values ?? []).filter((v) => v.image !== undefined).map((v) => ({ step: e.step, ...v })));
  assert.deepEqual(images.map((v) => [v.tag, v.step]), [['augmentations', 0], ['mae/reconstruction', 0], ['mae/reconstruction', 2], ['mae/reconstruction', 4]]);
  for (const v of images) {
    const meta = await sharp(v.image!.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', v.image!.width, v.image!.height]);
  }
  // 8 rows (held-out images) x 4 columns of 16 px cells zoomed x6, with 4 px gaps
  assert.deepEqual([images[1]!.image!.width, images[1]!.image!.height], [4 * 96 + 5 * 4, 8 * 96 + 9 * 4]);
  assert.deepEqual(readdirSync(join(cfg.out, 'recon')), ['epoch-000.png', 'epoch-001.png', 'epoch-002.png']);
  assert.deepEqual(new Uint8Array(readFileSync(join(cfg.out, 'recon', 'epoch-002.png'))), images[3]!.image!.png);
  assert.deepEqual(new Uint8Array(readFileSync(join(cfg.out, 'augs.png'))), images[0]!.image!.png);
  const text = events.flatMap((e) => (e.values ?? []).filter((v) => v.tensor !== undefined));
  assert.equal(text.length, 1);
  assert.equal(text[0]!.tag, 'config');
  assert.deepEqual(JSON.parse(text[0]!.tensor!.stringVal[0]!.split('\n').map((l) => l.slice(4)).join('\n')), cfg);
  // `selfsup knn` on the finished run scores it as the monitor did after the last epoch: the same kNN top-1 and the
  // same held-out reconstruction loss (same test images, batches and fixed masks)
  const k = await runKnn({ checkpoint: cfg.out, k: 3, t: 0.1, limit: null, testLimit: null, batchSize: 8, workers: 0, confusion: join(tmp, 'mae-confusion.png') });
  const last = epochs[epochs.length - 1]!;
  assert.equal(k.top1, last.knnTop1);
  assert.ok(k.testLoss !== undefined && Math.abs(k.testLoss - (last.testLoss as number)) <= 1e-6 * (last.testLoss as number), `knn command ${k.testLoss} vs monitor ${last.testLoss}`);
  assert.notEqual(k.testLoss, before.testLoss, 'training moved the held-out loss');
});

test('MoCo logs its InfoNCE accuracy; summaries: false (non-zero ranks) writes no tb/ and no pictures', async () => {
  const base = tinyConfig('moco', data, join(tmp, 'moco'));
  const cfg = { ...base, logEvery: 1 };
  await pretrain(cfg, { callbacks: { log: () => {} } });
  const acc = scalarsByTag(runEvents(cfg.out)).get('train/infonce_acc1')!;
  const steps = readFileSync(join(cfg.out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((l) => l.event === undefined || l.acc1 !== undefined);
  assert.deepEqual(acc, steps.map((l) => [l.step, Math.fround(l.acc1!)]));
  const quiet = { ...cfg, out: join(tmp, 'quiet') };
  await pretrain(quiet, { callbacks: { log: () => {} }, summaries: false });
  assert.equal(existsSync(join(quiet.out, 'tb')), false);
  assert.equal(existsSync(join(quiet.out, 'augs.png')), false);
  assert.equal(existsSync(join(quiet.out, 'log.jsonl')), true);
});
