// Config resolution: defaults <- file <- flags; unknown keys and type changes are errors naming the key.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeConfig, parseOverrides, readConfigFile } from '../../src/io/config.js';

const defaults = { epochs: 10, lr: 0.03, name: 'run', resume: null as string | null, moco: { K: 4096, mlp: true }, milestones: [60, 80] };

it('merges file then flags with types kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'c.yaml'), 'epochs: 3\nmoco:\n  K: 1024\n');
  const file = readConfigFile(join(dir, 'c.yaml'));
  const flags = parseOverrides(defaults, ['lr=0.5', 'moco.mlp=false', 'resume=runs/x', 'milestones=[1,2]']);
  const cfg = mergeConfig(mergeConfig(defaults, file), flags);
  assert.deepEqual(cfg, { epochs: 3, lr: 0.5, name: 'run', resume: 'runs/x', moco: { K: 1024, mlp: false }, milestones: [1, 2] });
  assert.equal(defaults.epochs, 10, 'defaults are not mutated');
});

it('rejects unknown keys and type changes, naming the key', () => {
  assert.throws(() => mergeConfig(defaults, { epoch: 3 }), /unknown key 'epoch'/);
  assert.throws(() => mergeConfig(defaults, { moco: { k: 3 } }), /unknown key 'moco\.k'/);
  assert.throws(() => mergeConfig(defaults, { epochs: '3' }), /'epochs' must be a number, got string/);
  assert.throws(() => parseOverrides(defaults, ['lr=fast']), /'lr' must be a number, got 'fast'/);
  assert.throws(() => parseOverrides(defaults, ['nope=1']), /unknown key 'nope'/);
  assert.throws(() => parseOverrides(defaults, ['lr']), /must look like key=value/);
});
