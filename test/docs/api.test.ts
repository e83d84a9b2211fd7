// docs/api.md's example runs as written: its code block, with 'selfsup' pointing at src/index.ts, trains, monitors,
// saves, reloads and extracts features in a child process (the example itself throws when the reloaded features
// differ). The public exports hold what the example needs and leave internals out.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as api from '../../src/index.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';

const DOC = fileURLToPath(new URL('../../docs/api.md', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INDEX = pathToFileURL(fileURLToPath(new URL('../../src/index.ts', import.meta.url))).href;

function example(): string {
  const md = readFileSync(DOC, 'utf8');
  const m = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(md);
  assert.ok(m !== null, 'docs/api.md has an ## Example section with a ts code block');
  const code = m[1]!;
  assert.ok(code.includes("from 'selfsup'"), 'the example imports from selfsup');
  return code.replaceAll("from 'selfsup'", `from '${INDEX}'`);
}

const skip = !existsSync(DEBIAN_FASHION_MNIST_DIR) ? 'dataset-fashion-mnist not installed' : false;

it('the docs/api.md example runs: trains, monitors, saves, reloads, extracts features', { skip, timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'api-example-'));
  try {
    const file = join(dir, 'example.mts'); // an ES module wherever it lies (top-level await)
    writeFileSync(file, example());
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, TMPDIR: dir } });
    assert.equal(r.status, 0, `the example failed:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    assert.match(out, /kNN top-1 before training: \d+\.\d%/);
    const epochs = [...out.matchAll(/epoch (\d): lr \S+, loss (-?\d\.\d+), kNN top-1 (\d+\.\d)%/g)];
    assert.deepEqual(epochs.map((e) => e[1]), ['1', '2'], out);
    for (const e of epochs) assert.ok(Math.abs(Number(e[2])) <= 1, `SimSiam's loss is a negative cosine: ${e[2]}`);
    assert.match(out, /features \[128, 64\]; the reloaded model's differ by 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('the public exports hold what the example needs and leave internals out', () => {
  const names = Object.keys(api);
  for (const n of ['T', 'DataLoader', 'fashionMnist', 'imageFolder', 'subset', 'augmentationPreset', 'evalTransform',
    'presetConfig', 'buildMethod', 'buildOptimizer', 'trainStep', 'adjustLearningRate', 'extractFeatures', 'knnClassify',
    'saveModule', 'loadModule', 'writeSafetensors', 'backboneStateDict', 'METHODS', 'pretrain', 'RandomResizedCrop']) {
    assert.ok(names.includes(n), `exports ${n}`);
  }
  for (const n of ['factoryTensor', 'factoryValues', 'loadPretrained', 'positiveInt', 'finiteNumber', 'registerPretrain',
    'runOnnxReference', 'GraphArena', 'nativeAddon', 'heldOutLossMeter', 'migrateConfig']) {
    assert.ok(!names.includes(n), `does not export the internal ${n}`);
  }
});
