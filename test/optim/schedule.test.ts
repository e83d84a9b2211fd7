// lr schedules at chosen (fractional) epochs against the official formulas, group lrs through lrScale / fixedLr,
// and MoCo v3's momentum schedule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adjustLearningRate, mocoMomentum, scheduledLr, type ScheduledGroup } from '../../src/optim/index.js';
import { assertClose } from '../helpers.js';
import { loadOptimFixtures } from './fixtures.js';

const fx = loadOptimFixtures().schedules;

describe('lr schedules', () => {
  for (const c of fx.cases) {
    it(`${c.schedule.kind} ${JSON.stringify(c.schedule)}`, () => {
      const got = c.epochs.map((e) => scheduledLr(c.schedule, e));
      assertClose(got, c.lrs, `[${c.schedule.kind}] lr`, 1e-14, 1e-18);
    });
  }

  it('writes group lrs: plain, lrScale and fixedLr groups', () => {
    const lrScale = fx.groupLrs.lrScale;
    const groups: ScheduledGroup[] = [
      { lr: 0, lrScale: 1, fixedLr: false },
      { lr: 0, lrScale, fixedLr: false },
      { lr: 0, lrScale: 1, fixedLr: true },
    ];
    fx.cases.forEach((c, k) => {
      c.epochs.forEach((e, j) => {
        const lr = adjustLearningRate({ paramGroups: groups }, c.schedule, e);
        assert.equal(lr, c.lrs[j]);
        assertClose(groups.map((g) => g.lr), fx.groupLrs.lrs[k]![j]!, `[${c.schedule.kind}] group lrs at epoch ${e}`, 1e-14, 1e-18);
      });
    });
  });

  it('step decay matches the official loop exactly and honours gamma', () => {
    assert.equal(scheduledLr({ kind: 'step', lr: 0.1, milestones: [1, 3] }, 3), 0.1 * 0.1 * 0.1);
    assert.equal(scheduledLr({ kind: 'step', lr: 1, milestones: [2], gamma: 0.5 }, 2.5), 0.5);
    assert.equal(scheduledLr({ kind: 'constant', lr: 0.3 }, 17), 0.3);
  });

  it('warmupCosine rejects epochs <= warmupEpochs', () => {
    assert.throws(() => scheduledLr({ kind: 'warmupCosine', lr: 1, minLr: 0, warmupEpochs: 5, epochs: 5 }, 6), /must exceed/);
  });

  it('MoCo v3 momentum schedule', () => {
    const m = fx.mocoMomentum;
    assertClose(m.at.map((e) => mocoMomentum(e, m.m, m.epochs)), m.values, 'moco momentum', 1e-14, 1e-18);
  });
});
