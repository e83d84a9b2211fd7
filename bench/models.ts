// Training throughput of the backbones (forward + backward + SGD step) as JSON lines {name, value, unit, ...}; when
// /usr/bin/python3 has PyTorch, times the same models there (2 threads) and adds torch_value and ratio.
// Run: npm run bench:models [-- --steps 5 --batch 64 --device native]
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import type { DeviceName, Tensor } from '../src/tensor/index.js';
import type { Layer } from '../src/nn/module.js';
import { resnet18Cifar, vitTinyPatch4 } from '../src/models/index.js';
import { setBlockedActivations } from '../src/backend/native.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const device = arg('device', T.getDefaultDevice()) as DeviceName;
const onReference = device === 'reference';
// the reference backend is a plain-loop oracle: keep its run short
const batch = Number(arg('batch', onReference ? '8' : '64'));
const steps = Number(arg('steps', onReference ? '1' : '5'));
const warmup = Number(arg('warmup', '1'));

/** SGD with momentum and weight decay, PyTorch's update: buf = m buf + (g + wd p); p -= lr buf. */
function sgdStep(params: Tensor[], bufs: Map<Tensor, Tensor>, lr = 0.05, momentum = 0.9, wd = 5e-4): void {
  T.noGrad(() => T.tidy(() => {
    for (const p of params) {
      if (p.grad === null) continue;
      const d = T.add(p.grad, T.mulScalar(p, wd));
      const prev = bufs.get(p);
      const buf = prev === undefined ? T.clone(d) : T.add(T.mulScalar(prev, momentum), d);
      T.copy_(p, T.sub(p, T.mulScalar(buf, lr)));
      if (prev === undefined) bufs.set(p, T.keep(buf));
      else T.copy_(prev, buf);
    }
  }));
}

function timeTraining(model: Layer, imgSize: number, numClasses: number): number {
  const rng = new T.Rng(0);
  const x = T.keep(T.randn([batch, 3, imgSize, imgSize], { device, rng }));
  const y = T.keep(T.randint([batch], 0, numClasses, { device, rng }));
  const params = model.parameters();
  const bufs = new Map<Tensor, Tensor>();
  model.train();
  const step = (): void => {
    T.tidy(() => {
      const loss = T.crossEntropy(model.forward(x), y);
      if (!Number.isFinite(loss.item())) throw new Error('[bench] non-finite loss');
      loss.backward();
    });
    sgdStep(params, bufs);
    model.zeroGrad();
  };
  for (let i = 0; i < warmup; i++) step();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const secs = (performance.now() - t0) / 1000;
  x.dispose(); y.dispose();
  for (const b of bufs.values()) b.dispose();
  return (batch * steps) / secs;
}

const TORCH_SCRIPT = `
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, torch.nn as nn, torch.nn.functional as F
from make_fixtures import WideResNet, VisionTransformer
from torchvision.models.resnet import BasicBlock
torch.set_num_threads(2)
torch.manual_seed(0)
batch, steps, warmup = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def bench(model, img, classes):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, img, img); y = torch.randint(0, classes, (batch,))
    model.train()
    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(warmup): step()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    return batch * steps / (time.perf_counter() - t0)
out = {}
out["resnet18_cifar"] = bench(WideResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, cifar_stem=True), 32, 10)
out["vit_tiny_patch4"] = bench(VisionTransformer(32, 4, 192, 12, 3, 10), 32, 10)
print(json.dumps(out))
`;

function torchTimes(): Record<string, number> | null {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const script = join(dir, 'bench_torch.py');
  writeFileSync(script, TORCH_SCRIPT);
  const refDir = new URL('../reference/', import.meta.url).pathname;
  const out = execFileSync('/usr/bin/python3', [script, refDir, String(batch), String(steps), String(warmup)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

const cases: [string, () => Layer, number][] = [
  ['resnet18_cifar', () => resnet18Cifar({ numClasses: 10 }, { device }), 32],
  ['vit_tiny_patch4', () => vitTinyPatch4({ numClasses: 10 }, { device }), 32],
];
const ours: Record<string, number> = {};
for (const [name, build, img] of cases) {
  const m = build();
  ours[name] = timeTraining(m, img, 10);
  m.dispose();
}
// the ResNet again with every conv reordering NCHW <-> nChw16c itself, as when activations are not kept blocked
let nchwActivations: number | null = null;
if (device === 'native') {
  const old = setBlockedActivations(false);
  const m = resnet18Cifar({ numClasses: 10 }, { device });
  nchwActivations = timeTraining(m, 32, 10);
  m.dispose();
  setBlockedActivations(old);
}
const torch = torchTimes();
for (const [name] of cases) {
  const value = ours[name]!;
  const line: Record<string, unknown> = {
    name: `${name}_train`, value: +value.toFixed(2), unit: 'img/s', device, batch, steps, img: 32,
    what: 'forward + backward + SGD(momentum 0.9, wd 5e-4) step, cross-entropy, 10 classes',
  };
  if (name === 'resnet18_cifar' && nchwActivations !== null) line.nchw_activations_value = +nchwActivations.toFixed(2);
  const tv = torch?.[name];
  if (tv !== undefined) {
    line.torch_value = +tv.toFixed(2);
    line.ratio = +(value / tv).toFixed(3);
  }
  console.log(JSON.stringify(line));
}
