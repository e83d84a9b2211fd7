// Without the native addon (here: SELFSUP_NATIVE_ADDON names a file that does not exist, as when libdnnl-dev was
// missing at install time) everything runs on the reference backend after one warning naming the missing package;
// a bad engine setting is an error, never a silent fall back.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeAvailable } from '../../src/backend/native.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// two ops and a backward: the warning must come once, not per op
const SCRIPT = `
import * as T from './src/tensor/index.js';
const x = T.randn([2, 3, 8, 8], { rng: new T.Rng(1) });
const w = T.randn([4, 3, 3, 3], { rng: new T.Rng(2), requiresGrad: true });
const y = T.sum(T.relu(T.conv2d(x, w, null, { padding: 1 })));
y.backward();
console.log(JSON.stringify({ device: T.getDefaultDevice(), xDevice: x.device, finite: Number.isFinite(y.item()),
  grad: w.grad !== null && w.grad.data.every(Number.isFinite) }));
`;

function run(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const base = { ...process.env };
  delete base.SELFSUP_NATIVE_ADDON;
  delete base.SELFSUP_LAYOUT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT],
    { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('no addon: ops and gradients run on the reference backend after exactly one warning', () => {
  const r = run({ SELFSUP_NATIVE_ADDON: '/nonexistent/selfsup_native.node' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { device: 'reference', xDevice: 'reference', finite: true, grad: true });
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 2, `one warning (two lines: the reason, then the cost), got:\n${r.stderr}`);
  assert.match(lines[0]!, /^\[native\] addon not built: install oneDNN \(Debian\/Ubuntu: apt-get install libdnnl-dev/);
  assert.match(lines[1]!, /^\[selfsup\] running on the pure-TypeScript reference backend instead, about \d+x slower/);
});

test('a bad SELFSUP_LAYOUT is an error naming the variable, not a fall back to the reference backend',
  { skip: nativeAvailable() ? false : 'the addon is not built here' }, () => {
  const r = run({ SELFSUP_LAYOUT: 'blocked16' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /SELFSUP_LAYOUT='blocked16' is not a layout mode; accepted values: auto/);
  assert.equal(r.stdout, '');
});
