// `selfsup retrieve` on a tiny run: the neighbours against a direct ranking of the same features, the PNG it draws,
// and the bad-input policy (an undecodable query, a size that differs from the checkpoint's, a missing file).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { runRetrieve } from '../../src/cli/retrieve.js';
import { makeImageFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-retrieve-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 4, size: 16 });
const run = makeTinyRun('simsiam', data, join(tmp, 'run'));
const base = { checkpoint: run, k: 4, limit: null, batchSize: 8, workers: 0 };

test('retrieve: a training image finds itself first (cosine 1), then its own class; the PNG shows query + k', async () => {
  const query = join(data, 'train', 'b', '2.png');
  const r = await runRetrieve({ ...base, query });
  assert.equal(r.searched, 12);
  assert.equal(r.neighbours.length, 4);
  assert.equal(r.neighbours[0]!.path, query, 'the query itself is in the bank');
  assert.ok(Math.abs(r.neighbours[0]!.similarity - 1) < 1e-4, `self-similarity ${r.neighbours[0]!.similarity}`);
  for (let i = 1; i < 4; i++) assert.ok(r.neighbours[i]!.similarity <= r.neighbours[i - 1]!.similarity, 'best first');
  // colour-coded classes: the nearest images are the query's class
  assert.deepEqual(r.neighbours.map((n) => n.className), ['b', 'b', 'b', 'b']);
  const meta = await sharp(readFileSync(r.png)).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(meta.width! > 5 * 112, `five cells wide, got ${meta.width}`);

  // a query of another size goes through the run's eval transform (Resize + CenterCrop to 16 px)
  const big = join(tmp, 'big.png');
  await sharp(readFileSync(query)).resize(48, 40).png().toFile(big);
  const rb = await runRetrieve({ ...base, query: big });
  assert.equal(rb.neighbours[0]!.className, 'b');

  const stdout = execFileSync(process.execPath, [BIN, 'retrieve', '--checkpoint', run, '--query', query, '--k', '2', '--workers', '0',
    '--out', join(tmp, 'r.png')], { encoding: 'utf8' });
  assert.match(stdout, /\[retrieve\] 2 nearest of 12 images/);
  assert.match(stdout, /# 1  cos 1\.0000  b .*b\/2\.png/);
  assert.match(stdout, /\[retrieve\] wrote .*r\.png/);
});

test('retrieve: bad input gives clear errors', async () => {
  const notImage = join(tmp, 'note.png');
  writeFileSync(notImage, 'this is text, not a PNG');
  await assert.rejects(runRetrieve({ ...base, query: notImage }), /\[retrieve\] cannot decode the query image .*note\.png/);
  await assert.rejects(runRetrieve({ ...base, query: join(tmp, 'missing.png') }), /\[retrieve\] query image .*missing\.png: no such file/);
  await assert.rejects(runRetrieve({ ...base, query: join(data, 'train', 'a', '0.png'), imgSize: 32 }),
    /\[retrieve\] the checkpoint in .* was trained on 16x16 images but --img-size is 32/);
  await assert.rejects(runRetrieve({ ...base, checkpoint: data, query: join(data, 'train', 'a', '0.png') }), /\[retrieve\] .* is not a pretraining run folder/);
});
