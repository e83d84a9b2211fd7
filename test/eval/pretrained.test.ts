// writeRunFromWeights: bare weights under the method's (official) names become a run folder that every evaluation
// command reads as a pretrain run; weights that do not fit the config are refused with the tensor named.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as T from '../../src/tensor/index.js';
import { buildMethod } from '../../src/methods/registry.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { loadPretrained, writeRunFromWeights } from '../../src/eval/pretrained.js';
import { runKnn } from '../../src/cli/knn.js';
import { makeImageFolder, tinyConfig } from './tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-import-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 4, size: 16 });

test('writeRunFromWeights: an MAE state dict under its official names scores as the model it came from; a misfit is refused', async () => {
  const cfg = tinyConfig('mae', data, join(tmp, 'unused'));
  // weights that differ from what the config's seed would build, saved bare (no 'model.' prefix), as budget_torch.py does
  const src = buildMethod({ ...cfg, seed: 7 }, new T.Rng(7));
  const weights = join(tmp, 'mae.safetensors');
  writeSafetensors(weights, new Map(src.stateDict()));
  const run = join(tmp, 'imported');
  writeRunFromWeights(cfg, weights, run, 5);
  const p = loadPretrained(run, 'test');
  assert.equal(p.epoch, 5);
  for (const [k, v] of src.stateDict()) assert.deepEqual(p.model.stateDict().get(k)!.data, v.data, k);
  p.model.dispose();
  // the held-out loss of the imported run is the source model's, with the monitor's fixed masks
  const k = await runKnn({ checkpoint: run, k: 3, t: 0.1, limit: null, testLimit: null, batchSize: 8, workers: 0, confusion: join(tmp, 'c.png') });
  assert.ok(k.testLoss !== undefined && Number.isFinite(k.testLoss));
  const fresh = buildMethod(cfg, new T.Rng(cfg.seed));
  assert.notDeepEqual(fresh.stateDict().get('blocks.0.attn.qkv.weight')!.data, src.stateDict().get('blocks.0.attn.qkv.weight')!.data, 'the import is not the config\'s own init');
  fresh.dispose();
  // a state dict of another shape: refused, naming the file and the tensor, and no folder written
  const wide = buildMethod({ ...cfg, mae: { ...cfg.mae, decoderEmbedDim: cfg.mae.decoderEmbedDim * 2 } }, new T.Rng(0));
  const bad = join(tmp, 'wide.safetensors');
  writeSafetensors(bad, new Map(wide.stateDict()));
  wide.dispose();
  const none = join(tmp, 'none');
  assert.throws(() => writeRunFromWeights(cfg, bad, none, 1), /^Error: \[import\] .*wide\.safetensors does not fit a mae model of arch .*decoder_/);
  assert.equal(existsSync(none), false);
  src.dispose();
});
