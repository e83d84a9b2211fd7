// Config resolution on the real pretraining config: defaults <- file <- flags; unknown keys and type changes are
// errors naming the key. (The presets and the --resume path: test/train/extend.test.ts.)
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeConfig, parseOverrides, readConfigFile } from '../../src/io/config.js';
import { defaultConfig } from '../../src/train/config.js';

it('merges file then flags with types kept', () => {
  const defaults = defaultConfig();
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'c.yaml'), 'epochs: 3\nmoco:\n  K: 1024\n');
  const file = readConfigFile(join(dir, 'c.yaml'));
  const flags = parseOverrides(defaults, ['optim.lr=0.5', 'moco.mlp=false', 'testData=runs/x', 'optim.milestones=[1,2]', 'knn.bankSize=500']);
  const cfg = mergeConfig(mergeConfig(defaults, file), flags);
  assert.deepEqual(cfg, {
    ...defaults, epochs: 3, testData: 'runs/x', optim: { ...defaults.optim, lr: 0.5, milestones: [1, 2] },
    moco: { ...defaults.moco, K: 1024, mlp: false }, knn: { ...defaults.knn, bankSize: 500 },
  });
  assert.equal(defaultConfig().epochs, 100, 'defaults are not mutated');
  assert.equal(defaults.moco.K, 65536);
});

it('rejects unknown keys and type changes, naming the key', () => {
  const defaults = defaultConfig();
  assert.throws(() => mergeConfig(defaults, { epoch: 3 }), /unknown key 'epoch'/);
  assert.throws(() => mergeConfig(defaults, { moco: { k: 3 } }), /unknown key 'moco\.k'/);
  assert.throws(() => mergeConfig(defaults, { epochs: '3' }), /'epochs' must be a number, got string/);
  assert.throws(() => parseOverrides(defaults, ['optim.lr=fast']), /'optim\.lr' must be a number, got 'fast'/);
  assert.throws(() => parseOverrides(defaults, ['nope=1']), /unknown key 'nope'/);
  assert.throws(() => parseOverrides(defaults, ['epochs']), /must look like key=value/);
  assert.throws(() => parseOverrides(defaults, ['moco=1']), /'moco' is a section; set one of its keys/);
  assert.throws(() => parseOverrides(defaults, ['mae.normPixLoss=maybe']), /'mae\.normPixLoss' must be true or false/);
});
