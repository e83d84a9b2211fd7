// A run killed with SIGKILL mid-epoch and resumed ends with the same weights as an uninterrupted run.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { presetConfig, type MethodName, type PretrainConfig } from '../../src/train/config.js';
import { readCheckpointJson } from '../../src/train/checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';
import { nativeAvailable } from '../helpers.js';
import { readEvents, scalarsByTag } from '../io/tfevents.js';

const CHILD = fileURLToPath(new URL('./resume-child.ts', import.meta.url));

function tinyConfig(method: MethodName, out: string): PretrainConfig {
  const c = presetConfig(method, 'quick');
  return {
    ...c, out, epochs: 2, arch: method === 'mae' ? 'vit-d32-depth1-heads2-patch4' : c.arch, batchSize: 16, limit: 64, workers: 0, width: 0.125, ckptEverySteps: 2, logEvery: 1,
    knn: { ...c.knn, disabled: true },
    moco: { ...c.moco, K: 64, bnSplits: 2 },
    simsiam: { ...c.simsiam, dim: 32, predDim: 8 },
    mae: { ...c.mae, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2 },
  };
}

function runChild(cfg: PretrainConfig, killAt: number, resume: boolean): number | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(cfg), String(killAt), resume ? 'resume' : 'fresh'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0 && r.signal !== 'SIGKILL') assert.fail(`child failed (${r.status}): ${r.stderr}`);
  return r.signal === 'SIGKILL' ? null : r.status;
}

function finalWeights(dir: string): Map<string, Float32Array> {
  const json = readCheckpointJson(dir);
  assert.ok(json !== null, `no checkpoint in ${dir}`);
  const { tensors } = readSafetensors(join(dir, json.weights), { device: 'reference' });
  return new Map([...tensors].map(([k, t]) => [k, Float32Array.from(t.data)]));
}

const skip = !nativeAvailable() ? 'native addon not built' : !existsSync(DEBIAN_FASHION_MNIST_DIR) ? 'dataset-fashion-mnist not installed' : false;

for (const method of ['moco', 'simsiam', 'mae'] as const) {
  it(`${method}: SIGKILL mid-epoch, then --resume, gives the uninterrupted weights`, { skip, timeout: 240_000 }, () => {
    const root = mkdtempSync(join(tmpdir(), `resume-${method}-`));
    try {
      const a = tinyConfig(method, join(root, 'a'));
      const b = tinyConfig(method, join(root, 'b'));
      assert.equal(runChild(a, -1, false), 0);
      // 4 steps per epoch: killed at step 7 (epoch 2, after the mid-epoch checkpoint at step 6)
      assert.equal(runChild(b, 7, false), null, 'the child should have been killed');
      const mid = readCheckpointJson(b.out);
      assert.equal(mid?.state.step, 6, 'the last committed checkpoint is the one at step 6');
      assert.equal(runChild(b, -1, true), 0);
      const wa = finalWeights(a.out);
      const wb = finalWeights(b.out);
      assert.deepEqual([...wb.keys()].sort(), [...wa.keys()].sort());
      let worst = 0;
      for (const [k, va] of wa) {
        const vb = wb.get(k)!;
        for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i]! - vb[i]!));
      }
      assert.ok(worst <= 1e-6, `resumed weights differ by up to ${worst}`);
      assert.equal(readCheckpointJson(b.out)?.state.step, 8);
      // TensorBoard: the resumed process's event file opens with SessionLog.START at step 6; dropping the killed
      // file's events past it (what TensorBoard's reader does) leaves every step's loss exactly once
      const files = readdirSync(join(b.out, 'tb')).filter((f) => f.startsWith('events.out.tfevents.')).map((f) => readEvents(new Uint8Array(readFileSync(join(b.out, 'tb', f)))));
      assert.equal(files.length, 2);
      const resumed = files.find((ev) => ev.some((e) => e.sessionStatus === 1))!;
      const killed = files.find((ev) => ev !== resumed)!;
      assert.deepEqual(resumed.filter((e) => e.sessionStatus === 1).map((e) => e.step), [6]);
      const steps = [...(scalarsByTag(killed).get('train/loss') ?? []).filter(([st]) => st <= 6), ...(scalarsByTag(resumed).get('train/loss') ?? [])].map(([st]) => st);
      assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
