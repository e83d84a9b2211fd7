// --resume through the command line's config resolution: a finished run extended with a larger --epochs trains the
// extra epochs (and logs the change); a changed architecture, or any key a resumed run may not change, is refused
// naming the key. Also the real presets: every one resolves, builds its method, and its overrides are checked.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePretrainConfig, type ConfigFlags } from '../../src/cli/pretrain.js';
import { pretrain, runTrainSeconds } from '../../src/train/pretrain.js';
import { readCheckpointJson } from '../../src/train/checkpoint.js';
import { checkResumeConfig, presetConfig, presetNames } from '../../src/train/config.js';
import { METHOD_NAMES } from '../../src/methods/registry.js';
import { makeImageFolder } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'extend-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const data = makeImageFolder(join(tmp, 'data'), { classes: ['a', 'b'], perClass: 8, size: 16 });

/** The flags of `selfsup pretrain` for a tiny SimSiam run on the image folder. */
function flags(extra: { epochs?: string; set?: string[]; resume?: boolean; method?: string } = {}): ConfigFlags {
  return {
    method: extra.method ?? 'simsiam', preset: 'quick', data, out: join(tmp, 'run'), epochs: extra.epochs ?? '1', batchSize: '8', workers: '0',
    set: ['width=0.125', 'imgSize=16', 'simsiam.dim=16', 'simsiam.predDim=8', 'knn.disabled=true', 'logEvery=1', ...(extra.set ?? [])],
    progress: false, ...(extra.resume === true ? { resume: true } : {}),
  };
}

it('--resume with a larger --epochs trains the extra epochs and logs the change', async () => {
  const first = await pretrain(resolvePretrainConfig(flags()), { callbacks: { log: () => {} } });
  assert.equal(first.epochs, 1);
  assert.equal(readCheckpointJson(join(tmp, 'run'))?.state.epoch, 1);
  first.model.dispose();

  const resumed = resolvePretrainConfig(flags({ epochs: '3', resume: true }));
  assert.equal(resumed.epochs, 3);
  const lines: string[] = [];
  const second = await pretrain(resumed, { resume: true, callbacks: { log: (s) => lines.push(s) } });
  second.model.dispose();
  assert.equal(second.epochs, 3);
  const ckpt = readCheckpointJson(join(tmp, 'run'))!;
  assert.equal(ckpt.state.epoch, 3);
  assert.equal(ckpt.state.step, 3 * 2, '16 images in batches of 8: 2 steps per epoch');
  assert.deepEqual(ckpt.state.losses.map((l) => l.epoch), [1, 2, 3]);
  assert.ok(lines.some((l) => /resumed with changed epochs 1 -> 3/.test(l)), lines.join('\n'));
  const log = readFileSync(join(tmp, 'run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const event = log.find((e) => e.event === 'resume');
  assert.deepEqual(event?.changed, { epochs: { from: 1, to: 3 } });
  assert.equal(log.filter((e) => e.event === 'epoch').length, 3);
  // the result says where this call began and how long the whole run (both calls) trained
  assert.equal(first.firstEpoch, 0);
  assert.equal(second.firstEpoch, 1);
  const perEpoch = log.filter((e) => e.event === 'epoch').map((e) => e.trainSeconds as number);
  assert.ok(perEpoch.every((t) => t > 0));
  assert.equal(second.trainSeconds, perEpoch.reduce((a, b) => a + b, 0));
  assert.ok(second.trainSeconds! > first.trainSeconds!);
  assert.equal(JSON.parse(readFileSync(join(tmp, 'run', 'config.json'), 'utf8')).epochs, 3, 'the saved config follows');
});

it('--resume refuses a changed architecture (or method, or optimizer), naming the key', async () => {
  const arch = resolvePretrainConfig(flags({ epochs: '4', resume: true, set: ['arch=resnet34-cifar'] }));
  await assert.rejects(pretrain(arch, { resume: true, callbacks: { log: () => {} } }),
    /\[pretrain\] --resume cannot change 'arch' \("resnet18-cifar" -> "resnet34-cifar"\); a resumed run may change only epochs, knn/);
  const two = resolvePretrainConfig(flags({ resume: true, set: ['optim.lr=0.5', 'simsiam.dim=32'] }));
  assert.throws(() => checkResumeConfig(resolvePretrainConfig(flags({ resume: true })), two), /cannot change 'optim\.lr' \(0\.06 -> 0\.5\), 'simsiam\.dim' \(16 -> 32\)/);
  assert.throws(() => resolvePretrainConfig(flags({ resume: true, method: 'moco' }), { methodGiven: true }), /--resume cannot change 'method' \("simsiam" -> "moco"\)/);
  // the run is untouched
  assert.equal(readCheckpointJson(join(tmp, 'run'))?.state.epoch, 3);
  assert.throws(() => resolvePretrainConfig({ ...flags({ resume: true }), out: join(tmp, 'none') }), /--resume: no run in .*none \(config\.json missing\)/);
});

it('every real preset resolves through the command line, builds, and checks its overrides', () => {
  for (const method of METHOD_NAMES) {
    const names = presetNames(method);
    assert.ok(names.includes('quick'), `${method} has a quick preset`);
    for (const preset of names) {
      const cfg = presetConfig(method, preset);
      assert.equal(cfg.method, method);
      assert.equal(cfg.preset, preset);
      assert.ok(cfg.epochs > 0 && cfg.batchSize > 0 && cfg.optim.lr > 0, `${method}/${preset}`);
      const viaCli = resolvePretrainConfig({ method, preset, set: [], progress: false });
      assert.deepEqual(viaCli, cfg);
    }
  }
  const moco = presetConfig('moco', 'cifar');
  assert.deepEqual([moco.moco.K, moco.moco.m, moco.moco.T, moco.moco.bnSplits, moco.arch], [4096, 0.99, 0.1, 8, 'resnet18-cifar']);
  assert.deepEqual([presetConfig('mae', 'vit-base').arch, presetConfig('mae', 'vit-base').mae.decoderEmbedDim], ['vit-base', 512]);
  const set = resolvePretrainConfig({ method: 'moco', preset: 'v2', set: ['moco.K=4096', 'optim.milestones=[10,20]'], epochs: '7', progress: false });
  assert.deepEqual([set.moco.K, set.optim.milestones, set.epochs], [4096, [10, 20], 7]);
  assert.throws(() => resolvePretrainConfig({ method: 'moco', preset: 'v2', set: ['moco.k=3'], progress: false }), /\[pretrain\] unknown key 'moco\.k'/);
  assert.throws(() => resolvePretrainConfig({ method: 'moco', preset: 'v2', set: ['mae.maskRatio=high'], progress: false }), /'mae\.maskRatio' must be a number, got 'high'/);
  assert.throws(() => resolvePretrainConfig({ method: 'byol', preset: 'quick', set: [], progress: false }), /\[pretrain\] unknown method 'byol'/);
  assert.throws(() => resolvePretrainConfig({ method: 'mae', preset: 'v2', set: [], progress: false }), /\[pretrain\] unknown preset 'v2' for mae; known: quick, cifar, vit-base/);
});

/** A log.jsonl of these lines (newline-terminated) in the test folder; returns its path. */
function logFile(name: string, lines: string[]): string {
  const path = join(tmp, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

it('runTrainSeconds: each epoch once (its last record), other events and epochs without trainSeconds skipped', () => {
  const path = logFile('log-sum.jsonl', [
    '{"event":"knn","epoch":0,"top1":0.3}',
    '{"event":"epoch","epoch":1,"loss":5,"seconds":12,"trainSeconds":10}',
    '{"event":"step","epoch":1,"step":4,"loss":4.5}',
    '{"event":"epoch","epoch":2,"loss":4,"seconds":9,"trainSeconds":7.5}',
    '{"event":"resume","changed":{}}',
    '{"event":"epoch","epoch":2,"loss":4,"seconds":8,"trainSeconds":6.5}',
    '{"event":"epoch","epoch":3,"loss":3,"seconds":4}',
  ]);
  assert.equal(runTrainSeconds(path), 16.5);
});

it('runTrainSeconds: a line a kill cut short, with the record appended to it on resume, is skipped, not fatal', () => {
  const path = logFile('log-cut.jsonl', [
    '{"event":"epoch","epoch":1,"loss":5,"seconds":12,"trainSeconds":10}',
    '{"event":"epoch","epoch":3,"lo{"event":"resume","changed":{}}',
    '{"event":"epoch","epoch":2,"loss":4,"seconds":9,"trainSeconds":7.5}',
  ]);
  assert.equal(runTrainSeconds(path), 17.5);
});
