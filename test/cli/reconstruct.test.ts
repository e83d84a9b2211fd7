// `selfsup reconstruct` on a tiny MAE run: the grid's size, the pasted column equal to the original on visible
// patches, the de-normalisation of norm_pix_loss predictions, and the refusal of a non-MAE run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import * as T from '../../src/tensor/index.js';
import { runReconstruct } from '../../src/cli/reconstruct.js';
import { reconstruct } from '../../src/eval/reconstruct.js';
import { MaskedAutoencoderViT } from '../../src/methods/mae.js';
import { makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-recon-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b'], perClass: 3, size: 16 });

test('reconstruct writes a rows x 4 PNG grid for an MAE run and refuses other methods', async () => {
  const run = makeTinyRun('mae', data, join(tmp, 'mae'));
  const out = join(tmp, 'recon.png');
  const r = await runReconstruct({ checkpoint: run, out, images: 3, seed: 0, zoom: 2 });
  const meta = await sharp(out).metadata();
  assert.deepEqual([meta.width, meta.height], [4 * 32 + 5 * 4, 3 * 32 + 4 * 4]);
  assert.equal(r.maskRatio, 0.75);
  assert.ok(Number.isFinite(r.loss));
  const sims = makeTinyRun('simsiam', data, join(tmp, 'sims'));
  const bad = join(tmp, 'bad.png');
  await assert.rejects(runReconstruct({ checkpoint: sims, out: bad, images: 2, seed: 0 }), /\[reconstruct\] .* holds a simsiam checkpoint; reconstruct needs mae/);
  assert.equal(existsSync(bad), false);
});

test('reconstruct: visible patches pasted back equal the input; norm_pix predictions de-normalised per patch', () => {
  const cfg = { imgSize: 8, patchSize: 4, inChans: 3, embedDim: 8, depth: 1, numHeads: 2, decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2, mlpRatio: 2, maskRatio: 0.5 };
  const rng = new T.Rng(5);
  const x = T.randn([2, 3, 8, 8], { rng });
  const noise = T.rand([2, 4], { rng });
  for (const normPixLoss of [false, true]) {
    const model = new MaskedAutoencoderViT({ ...cfg, normPixLoss }, new T.Rng(1));
    model.eval();
    const r = reconstruct(model, x, 0.5, noise);
    const raw = T.noGrad(() => model.computeLoss(x, 0.5, noise));
    const mask = raw.mask.data;
    const xp = model.patchify(x).data; // [2, 4, 48]
    const pasted = model.patchify(r.pasted).data;
    const rec = model.patchify(r.reconstruction).data;
    const pred = raw.pred.data;
    let visible = 0;
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 4; l++) {
        const base = (n * 4 + l) * 48;
        let mean = 0;
        for (let j = 0; j < 48; j++) mean += xp[base + j]! / 48;
        let v = 0;
        for (let j = 0; j < 48; j++) v += (xp[base + j]! - mean) ** 2 / 47;
        for (let j = 0; j < 48; j++) {
          const want = normPixLoss ? pred[base + j]! * Math.sqrt(v + 1e-6) + mean : pred[base + j]!;
          assert.ok(Math.abs(rec[base + j]! - want) < 1e-4, `reconstruction ${n},${l},${j}: ${rec[base + j]} vs ${want}`);
          const p = mask[n * 4 + l] === 1 ? rec[base + j]! : xp[base + j]!;
          assert.ok(Math.abs(pasted[base + j]! - p) < 1e-5);
        }
        if (mask[n * 4 + l] === 0) visible++;
      }
    }
    assert.equal(visible, 4, 'half the patches stay visible');
    assert.ok(Math.abs(r.loss - raw.loss.item()) < 1e-6);
    for (const t of [r.original, r.masked, r.reconstruction, r.pasted]) t.dispose();
    model.dispose();
  }
});
