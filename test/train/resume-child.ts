// Child process for resume.test.ts: runs a tiny pretraining and kills itself with SIGKILL at a given step,
// like a power cut, leaving whatever checkpoint was last committed.
import { pretrain } from '../../src/train/pretrain.js';
import type { PretrainConfig } from '../../src/train/config.js';

const cfg = JSON.parse(process.argv[2]!) as PretrainConfig;
const killAt = Number(process.argv[3]);
const resume = process.argv[4] === 'resume';
await pretrain(cfg, {
  resume,
  callbacks: {
    log: () => {},
    onStep: ({ epoch, step, iters }) => {
      if (epoch * iters + step === killAt) process.kill(process.pid, 'SIGKILL');
    },
  },
});
