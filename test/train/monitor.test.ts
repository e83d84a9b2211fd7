// The kNN monitor draws nothing from training's randomness: for every method, a run that monitors after each epoch,
// one that monitors only before and after, and one that never monitors end with bit-identical weights, and the
// first two report the same final kNN numbers.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { METHOD_NAMES } from '../../src/methods/registry.js';
import { pretrain, type PretrainResult } from '../../src/train/pretrain.js';
import type { PretrainConfig } from '../../src/train/config.js';
import { makeImageFolder, tinyConfig } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-monitor-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b', 'c'], perClass: 8, size: 16 });

async function run(cfg: PretrainConfig): Promise<{ r: PretrainResult; weights: Map<string, Float64Array> }> {
  const r = await pretrain(cfg, { callbacks: { log: () => {} } });
  const weights = new Map([...r.model.stateDict()].map(([k, t]) => [k, Float64Array.from(t.data as ArrayLike<number>)]));
  r.model.dispose();
  return { r, weights };
}

for (const method of METHOD_NAMES) {
  it(`${method}: monitoring on, at the ends only, or off leaves the training weights identical after 2 epochs`, async () => {
    const base = tinyConfig(method, data, '');
    const cfg = (name: string, knn: Partial<PretrainConfig['knn']>): PretrainConfig => ({
      ...base, out: join(tmp, `${method}-${name}`), epochs: 2, knn: { ...base.knn, bankSize: null, testSize: null, k: 5, ...knn },
      ...(method === 'mocov3' ? { optim: { ...base.optim, warmupEpochs: 0 } } : {}),
    });
    const every = await run(cfg('every', { disabled: false, every: 1 }));
    const ends = await run(cfg('ends', { disabled: false, every: 0 }));
    const off = await run(cfg('off', { disabled: true }));
    assert.equal(every.r.epochs, 2);
    for (const [k, w] of every.weights) {
      assert.deepEqual(ends.weights.get(k), w, `${k}: monitoring every epoch changed training`);
      assert.deepEqual(off.weights.get(k), w, `${k}: monitoring at all changed training`);
    }
    assert.ok(every.r.knnAfter !== null && ends.r.knnAfter !== null);
    assert.deepEqual({ ...every.r.knnAfter }, { ...ends.r.knnAfter }, 'the final kNN numbers do not depend on earlier monitoring');
    assert.deepEqual(every.r.knnBefore, ends.r.knnBefore);
  });
}
