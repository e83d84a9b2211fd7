// Child of roundtrip.test.ts: builds a fresh model, loads the weights file, prints its eval-mode output as JSON.
import * as T from '../../src/tensor/index.js';
import { resnet18Cifar } from '../../src/models/resnet.js';
import { vitTinyPatch4 } from '../../src/models/vit.js';
import { loadModule } from '../../src/io/safetensors.js';

const [, , kind, path] = process.argv;
const m = kind === 'vit' ? vitTinyPatch4({ depth: 2, numClasses: 5 }, { rng: new T.Rng(99) }) : resnet18Cifar({ width: 0.125, numClasses: 5 }, { rng: new T.Rng(99) });
loadModule(path!, m);
m.eval();
const x = T.randn([2, 3, 32, 32], { rng: new T.Rng(7) });
process.stdout.write(JSON.stringify(Array.from(T.noGrad(() => m.forward(x)).data)));
