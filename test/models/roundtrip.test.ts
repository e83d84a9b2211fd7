// Save a model to safetensors, load it in a fresh process: identical outputs.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.js';
import { resnet18Cifar } from '../../src/models/resnet.js';
import { vitTinyPatch4 } from '../../src/models/vit.js';
import { saveModule } from '../../src/io/safetensors.js';

const CHILD = fileURLToPath(new URL('./roundtrip-child.ts', import.meta.url));

for (const kind of ['resnet', 'vit'] as const) {
  it(`${kind}: weights saved here give bit-identical outputs when loaded in a fresh process`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'roundtrip-'));
    try {
      const m = kind === 'vit' ? vitTinyPatch4({ depth: 2, numClasses: 5 }, { rng: new T.Rng(1) }) : resnet18Cifar({ width: 0.125, numClasses: 5 }, { rng: new T.Rng(1) });
      // one training step's worth of BN statistics so the buffers differ from their defaults
      T.tidy(() => { m.forward(T.randn([4, 3, 32, 32], { rng: new T.Rng(3) })); });
      m.eval();
      const path = join(dir, 'model.safetensors');
      saveModule(path, m);
      const x = T.randn([2, 3, 32, 32], { rng: new T.Rng(7) });
      const ours = Array.from(T.noGrad(() => m.forward(x)).data);
      const theirs = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', CHILD, kind, path], { encoding: 'utf8' })) as number[];
      assert.equal(theirs.length, 10);
      assert.deepEqual(theirs, ours);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
