// Learning-rate schedules evaluated at a fractional epoch (MAE calls them every iteration with
// data_iter_step / len(data_loader) + epoch), and the rule that writes the scheduled lr into each group.
// Formulas are the official ones: MAE util/lr_sched.py, SimSiam and MoCo main_*.py, MoCo v3 adjust_moco_momentum.

export type LrSchedule =
  /** MAE / MoCo v3: linear warmup from 0, then half-cycle cosine down to minLr */
  | { kind: 'warmupCosine'; lr: number; minLr: number; warmupEpochs: number; epochs: number }
  /** SimSiam, MoCo v2 --cos: lr * 0.5 * (1 + cos(pi * epoch / epochs)) */
  | { kind: 'cosine'; lr: number; epochs: number }
  /** MoCo v1: lr *= gamma (0.1) at each milestone epoch reached */
  | { kind: 'step'; lr: number; milestones: readonly number[]; gamma?: number }
  | { kind: 'constant'; lr: number };

/** The scheduled (unscaled) lr at a possibly fractional epoch. */
export function scheduledLr(s: LrSchedule, epoch: number): number {
  switch (s.kind) {
    case 'warmupCosine': {
      if (!(s.epochs > s.warmupEpochs)) {
        throw new Error(`[lr schedule] epochs (${s.epochs}) must exceed warmupEpochs (${s.warmupEpochs})`);
      }
      if (epoch < s.warmupEpochs) return (s.lr * epoch) / s.warmupEpochs;
      return s.minLr + (s.lr - s.minLr) * 0.5 * (1 + Math.cos((Math.PI * (epoch - s.warmupEpochs)) / (s.epochs - s.warmupEpochs)));
    }
    case 'cosine':
      return s.lr * 0.5 * (1 + Math.cos((Math.PI * epoch) / s.epochs));
    case 'step': {
      // repeated multiplication, not gamma ** k, so values match the official loop bit for bit
      const gamma = s.gamma ?? 0.1;
      let lr = s.lr;
      for (const m of s.milestones) lr *= epoch >= m ? gamma : 1;
      return lr;
    }
    case 'constant':
      return s.lr;
  }
}

/** What the schedule reads and writes in a parameter group. */
export interface ScheduledGroup {
  lr: number;
  lrScale: number;
  fixedLr: boolean;
}

/**
 * Sets every group's lr for this epoch: fixedLr groups keep the schedule's base lr (SimSiam's fix_lr predictor),
 * the others get the scheduled lr; both times the group's lrScale (MAE's lr_scale, 1 by default).
 * Returns the scheduled lr (what MAE logs).
 */
export function adjustLearningRate(optimizer: { readonly paramGroups: readonly ScheduledGroup[] }, s: LrSchedule, epoch: number): number {
  const lr = scheduledLr(s, epoch);
  for (const g of optimizer.paramGroups) g.lr = (g.fixedLr ? s.lr : lr) * g.lrScale;
  return lr;
}

/** MoCo v3's momentum schedule for the key encoder: 1 - 0.5 * (1 + cos(pi * epoch / epochs)) * (1 - m). */
export function mocoMomentum(epoch: number, m: number, epochs: number): number {
  return 1 - 0.5 * (1 + Math.cos((Math.PI * epoch) / epochs)) * (1 - m);
}
