// `selfsup embed` on a tiny run: safetensors + CSV + PCA map, PCA against a direct eigen-decomposition, and an
// unlabelled folder embedded with label -1.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { runEmbed } from '../../src/cli/embed.js';
import { pca, embeddingsCsv } from '../../src/eval/embed.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { makeFlatFolder, makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-embed-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 3, size: 16 });

test('embed writes embeddings.safetensors, embeddings.csv and pca.png', async () => {
  const run = makeTinyRun('mae', data, join(tmp, 'run'));
  const out = join(tmp, 'emb');
  const progress: string[] = [];
  const r = await runEmbed({ checkpoint: run, split: 'test', out, limit: null, batchSize: 4, workers: 0, onProgress: (phase, done, total) => progress.push(`${phase} ${done}/${total}`) });
  assert.deepEqual(progress, ['features 1/3', 'features 2/3', 'features 3/3']);
  assert.equal(r.count, 9);
  assert.equal(r.dim, 16);
  const st = readSafetensors(join(out, 'embeddings.safetensors'));
  assert.deepEqual(st.tensors.get('embeddings')!.shape, [9, 16]);
  assert.deepEqual([...st.tensors.get('labels')!.data], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
  assert.equal(st.metadata.method, 'mae');
  const csv = readFileSync(join(out, 'embeddings.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'index,path,label,class');
  assert.match(csv[4]!, /^3,.*test\/b\/0\.png,1,b$/);
  const meta = await sharp(join(out, 'pca.png')).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(r.explained[0]! >= r.explained[1]! && r.explained[0]! + r.explained[1]! <= 1 + 1e-9);
  // the TensorBoard projector: 9 rows of 16 values, metadata with a header, a 3 x 3 sprite of 16 px thumbnails
  const tensors = readFileSync(join(out, 'tb/00000/default/tensors.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t').map(Number));
  assert.equal(tensors.length, 9);
  assert.deepEqual(tensors[4], [...st.tensors.get('embeddings')!.data.slice(4 * 16, 5 * 16)]);
  const tsv = readFileSync(join(out, 'tb/00000/default/metadata.tsv'), 'utf8').trim().split('\n');
  assert.equal(tsv[0], 'label\tclass\tpath');
  assert.match(tsv[4]!, /^1\tb\t.*test\/b\/0\.png$/);
  assert.match(readFileSync(join(out, 'tb/projector_config.pbtxt'), 'utf8'), /sprite \{\n {4}image_path: "00000\/default\/sprite\.png"\n {4}single_image_dim: 16\n {4}single_image_dim: 16/);
  const sprite = await sharp(join(out, 'tb/00000/default/sprite.png')).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([sprite.info.width, sprite.info.height], [48, 48]);
  // thumbnail 4 (row 1, col 1) holds test/b/0.png: its centre pixel is class b's colour (97, 241, 173) within the noise
  const c = ((16 + 8) * 48 + 16 + 8) * 3;
  for (const [k, base] of [97, 241, 173].entries()) assert.ok(Math.abs(sprite.data[c + k]! - base) <= 21, `sprite channel ${k}: ${sprite.data[c + k]} vs ${base}`);
  // with a t-SNE map too
  const kls: number[] = [];
  const rt = await runEmbed({ checkpoint: run, split: 'test', out: join(tmp, 'emb-tsne'), limit: null, batchSize: 4, workers: 0, tsnePerplexity: 3, onTsne: (_, kl) => kls.push(kl) });
  assert.equal(kls.length, 20);
  assert.ok(Number.isFinite(rt.tsneKl) && rt.tsneKl! >= 0);
  assert.deepEqual(readSafetensors(join(tmp, 'emb-tsne', 'embeddings.safetensors')).tensors.get('tsne')!.shape, [9, 2]);
  assert.equal((await sharp(join(tmp, 'emb-tsne', 'tsne.png')).metadata()).format, 'png');
  // a perplexity the 9 points cannot support fails before anything is written
  await assert.rejects(runEmbed({ checkpoint: run, split: 'test', out: join(tmp, 'emb-bad'), limit: null, batchSize: 4, workers: 0, tsnePerplexity: 30 }), /\[tsne\] perplexity must be in \(0, 9\)/);
  assert.equal(existsSync(join(tmp, 'emb-bad')), false);
  // unlabelled folder: label -1, empty class
  const flat = makeFlatFolder(join(tmp, 'flat'), 3, 16);
  const r2 = await runEmbed({ checkpoint: run, data: flat, split: 'test', out: join(tmp, 'emb2'), limit: null, batchSize: 4, workers: 0 });
  assert.equal(r2.labelled, false);
  assert.match(readFileSync(join(tmp, 'emb2', 'embeddings.csv'), 'utf8'), /\n0,.*0\.png,-1,\n/);
  // a wrong path writes nothing
  await assert.rejects(runEmbed({ checkpoint: join(tmp, 'nope'), split: 'test', out: join(tmp, 'emb3'), limit: null, batchSize: 4, workers: 0 }), /\[embed\] .*nope is not a pretraining run folder/);
  assert.equal(existsSync(join(tmp, 'emb3')), false);
});

test('pca finds the principal axes of an anisotropic cloud; CSV quotes odd paths', () => {
  // points along (1, 1, 0) with spread 10, along (1, -1, 0) with spread 1, plus a shift
  const n = 200;
  const x = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = 10 * Math.sin(i * 0.37);
    const b = Math.cos(i * 1.91);
    x.set([a + b + 5, a - b - 2, 0.01 * Math.sin(i)], i * 3);
  }
  const { projection, explained } = pca(x, n, 3, 2);
  // PC1 is +-(1,1,0)/sqrt2: the projection equals (x0 + x1 - 3) / sqrt2 up to the centring and sign
  let mean = 0;
  for (let i = 0; i < n; i++) mean += (x[3 * i]! + x[3 * i + 1]!) / n;
  const sign = Math.sign(projection[0]! * ((x[0]! + x[1]! - mean) / Math.SQRT2));
  for (let i = 0; i < n; i++) {
    const want = (sign * (x[3 * i]! + x[3 * i + 1]! - mean)) / Math.SQRT2;
    assert.ok(Math.abs(projection[2 * i]! - want) < 1e-3, `PC1 of point ${i}: ${projection[2 * i]} vs ${want}`);
  }
  assert.ok(explained[0]! > 0.95 && explained[1]! > 0.005 && explained[1]! < 0.05, `explained ${explained}`);
  assert.equal(embeddingsCsv(['a,b.png', 'say "hi".png'], [0, -1], ['x']), 'index,path,label,class\n0,"a,b.png",0,x\n1,"say ""hi"".png",-1,\n');
});
