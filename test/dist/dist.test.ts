// Data parallelism on Open MPI, run with `mpirun --allow-run-as-root --oversubscribe -np 2`: the collectives and the
// sampler, then 2 ranks at batch B/2 against 1 process at batch B (SimSiam with SyncBN, MAE with plain DDP, MoCo's
// shuffling BN against split BN), and bad launches.
import { it, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { mpirun, mpiSkip } from './mpi.js';
import { assertLossesClose, exemptAttentionKeyBias, worstRelative } from './compare.js';
import { tinyConfig, mocoBatches, mocoShuffles, gatheredToGlobal, MOCO_BATCH, MOCO_STEPS } from './tiny.js';
import { pretrain, buildOptimizer, trainStep } from '../../src/train/pretrain.js';
import { buildMethod } from '../../src/methods/registry.js';
import { readCheckpointJson } from '../../src/train/checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../../src/data/datasets.js';
import * as T from '../../src/tensor/index.js';

const dataSkip = mpiSkip !== false ? mpiSkip : !existsSync(DEBIAN_FASHION_MNIST_DIR) ? 'dataset-fashion-mnist not installed' : false;

function weightsOf(dir: string): Map<string, Float32Array> {
  const json = readCheckpointJson(dir);
  assert.ok(json !== null, `no checkpoint in ${dir}`);
  const { tensors } = readSafetensors(join(dir, json.weights), { device: 'reference' });
  return new Map([...tensors].filter(([k]) => k.startsWith('model.')).map(([k, t]) => [k, Float32Array.from(t.data)]));
}

function stepLosses(dir: string): number[] {
  return readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; loss: number })
    .filter((e) => e.event === 'step').map((e) => e.loss);
}

describe('data parallel on Open MPI (mpirun -np 2)', () => {
  it('collectives and the DistributedSampler shards (disjoint, union = the epoch)', { skip: mpiSkip, timeout: 60_000 }, () => {
    const r = mpirun(2, 'collectives-child.ts', []);
    assert.equal(r.status, 0, `mpirun failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /ok rank 0/);
    assert.match(r.stdout, /ok rank 1/);
  });

  for (const method of ['simsiam', 'mae', 'mocov3'] as const) {
    const what = method === 'simsiam' ? 'SimSiam with SyncBatchNorm' : method === 'mae' ? 'MAE (plain DDP, per-sample masks)'
      : 'MoCo v3 with SyncBatchNorm and keys gathered across ranks';
    it(`${what}: 2 ranks at batch 8 = 1 process at batch 16 after 3 steps (loss and weights, 1e-5 relative)`, { skip: dataSkip, timeout: 120_000 }, async () => {
      const root = mkdtempSync(join(tmpdir(), `dist-${method}-`));
      try {
        const r = mpirun(2, 'equivalence-child.ts', [method, join(root, 'two')]);
        assert.equal(r.status, 0, `mpirun failed:\n${r.stdout}\n${r.stderr}`);
        await pretrain(tinyConfig(method, join(root, 'one')), { callbacks: { log: () => undefined } });
        const one = stepLosses(join(root, 'one'));
        assert.equal(one.length, 3);
        assertLossesClose(one, stepLosses(join(root, 'two')), 1e-5);
        const oneW = weightsOf(join(root, 'one'));
        const twoW = weightsOf(join(root, 'two'));
        if (method === 'mae') {
          const cfg = tinyConfig('mae', root);
          exemptAttentionKeyBias(oneW, twoW, (cfg.optim.lr * cfg.batchSize) / 256, 3);
        }
        const w = worstRelative(oneW, twoW);
        assert.ok(w.worst <= 1e-5, `weights differ: ${w.at} by ${w.worst.toExponential(2)} of its scale`);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }

  it('MoCo with shuffling BN on 2 ranks = 1 process with bnSplits=2 and the same permutations (3 steps)', { skip: mpiSkip, timeout: 120_000 }, () => {
    const root = mkdtempSync(join(tmpdir(), 'dist-moco-'));
    try {
      const r = mpirun(2, 'equivalence-child.ts', ['moco', root]);
      assert.equal(r.status, 0, `mpirun failed:\n${r.stdout}\n${r.stderr}`);
      const two = JSON.parse(readFileSync(join(root, 'losses.json'), 'utf8')) as number[];
      // one process: split BN over the two halves (the ranks' batches), the same shuffle permutations (drawn from
      // the method's generator on both sides) and the whole batch
      const base = tinyConfig('moco', root);
      const cfg = { ...base, moco: { ...base.moco, bnSplits: 2 } };
      const model = buildMethod(cfg, new T.Rng(cfg.seed));
      model.train();
      const { opt } = buildOptimizer(cfg, model);
      // the same permutations: the ranks permute the gathered batch (rank-major), one process the global batch
      const one = mocoBatches().map((views, step) => {
        const p = mocoShuffles()[step]!;
        const single = new Int32Array(MOCO_BATCH);
        for (let r = 0; r < 2; r++) for (let j = 0; j < MOCO_BATCH / 2; j++) single[r + 2 * j] = gatheredToGlobal(p[r * (MOCO_BATCH / 2) + j]!);
        return trainStep(model, opt, views, 0, { context: { shuffles: [single] } }).loss;
      });
      assertLossesClose(one, two, 1e-5);
      const mine = new Map([...model.stateDict()].map(([k, t]) => [k, Float32Array.from(t.data)]));
      const theirs = new Map([...readSafetensors(join(root, 'moco.safetensors'), { device: 'reference' }).tensors].map(([k, t]) => [k, Float32Array.from(t.data)]));
      // the ranks enqueue their keys rank after rank, one process in batch order: the same columns, permuted
      const queue = theirs.get('queue')!;
      const reordered = new Float32Array(queue.length);
      const K = tinyConfig('moco', root).moco.K;
      for (let c = 0; c < queue.length / K; c++) {
        for (let col = 0; col < K; col++) {
          const block = Math.floor(col / MOCO_BATCH) * MOCO_BATCH;
          const src = col < MOCO_STEPS * MOCO_BATCH ? block + gatheredToGlobal(col - block) : col;
          reordered[c * K + src] = queue[c * K + col]!;
        }
      }
      theirs.set('queue', reordered);
      // BN running statistics differ by design (DDP keeps rank 0's, split BN averages the splits)
      const keep = (m: Map<string, Float32Array>): Map<string, Float32Array> => new Map([...m].filter(([k]) => !/running_|num_batches/.test(k)));
      const w = worstRelative(keep(mine), keep(theirs));
      assert.ok(w.worst <= 1e-5, `weights differ: ${w.at} by ${w.worst.toExponential(2)} of its scale`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
