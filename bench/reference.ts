// How much slower the pure-TypeScript reference backend trains than the native (oneDNN) one: the figure the
// one-line fallback warning quotes (REFERENCE_SLOWDOWN in src/tensor/device.ts). One SimSiam training step
// (forward, backward, SGD) of a ResNet-18 (CIFAR stem, width 0.25) at batch 8 on 32x32 views, on each backend.
// Prints JSON lines; run: npm run bench:reference [-- --steps 3]
import { cpus, loadavg } from 'node:os';
import * as T from '../src/tensor/index.js';
import { resnet18Cifar } from '../src/models/index.js';
import { SimSiam, simsiamConfig } from '../src/methods/simsiam.js';
import { SGD } from '../src/optim/index.js';
import type { DeviceName } from '../src/backend/backend.js';

const steps = Number(process.argv[process.argv.indexOf('--steps') + 1] ?? 3) || 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function secondsPerStep(device: DeviceName): number {
  T.setDefaultDevice(device);
  const rng = new T.Rng(0);
  const model = new SimSiam((numClasses) => resnet18Cifar({ width: 0.25, numClasses }, { rng }), simsiamConfig(), rng);
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    T.tidy(() => {
      const x1 = T.randn([8, 3, 32, 32], { rng }), x2 = T.randn([8, 3, 32, 32], { rng });
      opt.zeroGrad();
      model.computeLoss(x1, x2).loss.backward();
      opt.step();
    });
    if (i > 0) times.push((performance.now() - t0) / 1000); // the first step builds primitives: warm-up
  }
  model.dispose();
  return median(times);
}

const native = secondsPerStep('native');
const reference = secondsPerStep('reference');
console.log(JSON.stringify({
  name: 'reference_slowdown', value: reference / native, unit: 'x', native_s: native, reference_s: reference,
  config: 'SimSiam ResNet-18 CIFAR w0.25, batch 8, 32x32', steps, cpu: cpus()[0]?.model,
  load1: loadavg()[0],
}));
