// The npm package as a user gets it (run by .ci/run through `npm run test:package`; slow, so not in `npm test`):
// `npm pack`, then install the tarball into fresh projects - one with oneDNN (the addon builds), one where oneDNN
// cannot be found (the install still succeeds and everything runs on the reference backend with one warning).
// Each imports `selfsup` from plain Node ESM, builds a ResNet-18 at width 0.25 and runs one SimSiam training step;
// a TypeScript file type-checks against the shipped .d.ts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAX_TARBALL_BYTES = 1.5 * 1024 * 1024;
let work = '';
let tarball = '';

// One SimSiam step from the public API only, printed as JSON: what a user's first script does.
const STEP_SCRIPT = `import { T, SimSiam, simsiamConfig, resnet18Cifar, SGD, engineReport } from 'selfsup';
const rng = new T.Rng(0);
const model = new SimSiam((numClasses) => resnet18Cifar({ width: 0.25, numClasses }, { rng }), simsiamConfig(), rng);
const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
const x1 = T.randn([4, 3, 16, 16], { rng }), x2 = T.randn([4, 3, 16, 16], { rng });
const loss = model.computeLoss(x1, x2).loss;
loss.backward();
opt.step();
console.log(JSON.stringify({ loss: loss.item(), device: T.getDefaultDevice(), engine: engineReport() }));
`;

// Uses the shipped types the way a TypeScript user would; a wrong or missing .d.ts fails tsc.
const TYPES_FILE = `import { T, SimSiam, simsiamConfig, resnet18Cifar, SGD, type SimSiamConfig } from 'selfsup';
import type { Tensor } from 'selfsup/tensor';
const cfg: SimSiamConfig = { ...simsiamConfig(), dim: 256 };
const model = new SimSiam((numClasses: number) => resnet18Cifar({ width: 0.25, numClasses }), cfg);
const opt = new SGD(model.parameters(), { lr: 0.1 });
const x: Tensor = T.randn([2, 3, 16, 16]);
const loss: Tensor = model.computeLoss(x, x).loss;
const value: number = loss.item();
opt.zeroGrad();
// @ts-expect-error: computeLoss takes two views
model.computeLoss(x);
export { value };
`;

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_nodedir: '/usr', ...env } });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}\n${r.stderr}`;
}

function project(name: string, env: NodeJS.ProcessEnv = {}): { dir: string; installLog: string } {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  // --foreground-scripts: npm hides install-script output otherwise, and the test reads the install step's warning
  const installLog = npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', tarball],
    dir, env);
  writeFileSync(join(dir, 'step.mjs'), STEP_SCRIPT);
  return { dir, installLog };
}

function runStep(dir: string): { result: { loss: number; device: string; engine: { backend: string; isa: string | null } }; stderr: string } {
  const r = spawnSync(process.execPath, ['step.mjs'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `step.mjs failed:\n${r.stdout}\n${r.stderr}`);
  return { result: JSON.parse(r.stdout.trim().split('\n').pop()!), stderr: r.stderr };
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'selfsup-pack-'));
  const out = npm(['pack', '--json', '--pack-destination', work], ROOT);
  const name = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(name !== undefined, `npm pack wrote no tarball:\n${out}`);
  tarball = join(work, name);
});

after(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

test('the tarball holds what users need and stays small', () => {
  const bytes = statSync(tarball).size;
  console.log(`tarball: ${(bytes / 1024 / 1024).toFixed(2)} MB (${bytes} bytes)`);
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter((f) => f !== '');
  for (const need of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/index.js.map',
    'package/dist/cli/main.js', 'package/bin/selfsup.js', 'package/binding.gyp', 'package/native/conv.cc',
    'package/scripts/install.cjs', 'package/LICENSE']) {
    assert.ok(files.includes(need), `tarball lacks ${need}`);
  }
  const unwanted = files.filter((f) => /^package\/(test|bench|reference|docs)\/|\/fixtures\/|\.(png|safetensors)$/.test(f));
  assert.deepEqual(unwanted, [], 'fixtures, test data and pictures stay out of the tarball');
  assert.ok(bytes < MAX_TARBALL_BYTES, `tarball is ${bytes} bytes, over the ${MAX_TARBALL_BYTES}-byte target`);
});

test('installed with oneDNN: plain Node ESM imports selfsup and trains a SimSiam step on the native backend', () => {
  const { dir } = project('with-onednn');
  const { result } = runStep(dir);
  assert.ok(Number.isFinite(result.loss), `loss ${result.loss}`);
  assert.ok(result.loss > -1 && result.loss < 1, `SimSiam's loss is a negative cosine: ${result.loss}`);
  assert.equal(result.device, 'native');
  assert.equal(result.engine.backend, 'native');
  const version = spawnSync(process.execPath, [join(dir, 'node_modules/selfsup/bin/selfsup.js'), '--version'], { encoding: 'utf8' });
  assert.match(version.stdout, /^selfsup \d+\.\d+\.\d+ \(native: oneDNN [\d.]+, ISA \w+, activations (nChw\d+c|plain), \d+ threads\)/);

  // a TypeScript user's file type-checks against the shipped declarations
  writeFileSync(join(dir, 'use.ts'), TYPES_FILE);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
      typeRoots: [join(ROOT, 'node_modules/@types')], types: ['node'],
    },
    files: ['use.ts'],
  }));
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, `tsc against the shipped .d.ts:\n${tsc.stdout}${tsc.stderr}`);
});

test('installed without oneDNN: the install succeeds, and the same step runs on the reference backend with one warning', () => {
  const { dir, installLog } = project('without-onednn', { SELFSUP_ONEDNN_PREFIX: join(work, 'no-onednn-here') });
  assert.match(installLog, /oneDNN not found .*the native addon is not built/);
  const { result, stderr } = runStep(dir);
  assert.ok(Number.isFinite(result.loss), `loss ${result.loss}`);
  assert.equal(result.device, 'reference');
  assert.equal(result.engine.backend, 'reference');
  const warnings = stderr.split('\n').filter((l) => l.includes('reference backend instead'));
  assert.equal(warnings.length, 1, `one fallback warning, got:\n${stderr}`);
  assert.match(stderr, /libdnnl-dev/, 'the warning names the package to install');
  assert.match(warnings[0]!, /about \d+x slower/);
});
