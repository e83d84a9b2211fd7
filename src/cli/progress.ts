// The command line's progress bar: one cli-progress bar with ETA on stderr for the pass in progress; a new phase
// replaces it. Nothing is drawn when stderr is not a terminal (logs and pipes stay clean).
import { SingleBar } from 'cli-progress';
import type { OnProgress } from '../io/progress.js';

export interface ProgressBar {
  /** the library callback */
  update: OnProgress;
  /** ends the bar in progress (before printing a line, and at the end) */
  stop(): void;
}

export function progressBar(where: string, enabled = process.stderr.isTTY === true): ProgressBar {
  let bar: SingleBar | null = null;
  let current = '';
  const stop = (): void => {
    bar?.stop();
    bar = null;
    current = '';
  };
  return {
    update: (phase, done, total) => {
      if (!enabled) return;
      if (bar === null || phase !== current) {
        stop();
        bar = new SingleBar({
          format: `[${where}] {phase} [{bar}] {value}/{total} | {percentage}% | {duration_formatted} elapsed | ETA {eta_formatted}`,
          stream: process.stderr, hideCursor: true, etaBuffer: 20, clearOnComplete: false,
        });
        bar.start(total, 0, { phase });
        current = phase;
      }
      bar.setTotal(total);
      bar.update(done, { phase });
      if (done >= total) stop();
    },
    stop,
  };
}
