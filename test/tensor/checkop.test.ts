// checkOp cannot pass silently without its native half: with no addon the test is reported skipped, with the
// reason; SELFSUP_REQUIRE_NATIVE=1 turns that into a failure; with the addon the native half runs.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeAvailable } from '../helpers.js';

const CHILD = fileURLToPath(new URL('./checkop-child.ts', import.meta.url));

function run(env: Record<string, string>): { status: number | null; out: string } {
  const parent: Record<string, string | undefined> = { ...process.env };
  delete parent.NODE_TEST_CONTEXT; // else the child reports to this runner instead of printing TAP
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', CHILD], {
    encoding: 'utf8', env: { ...parent, SELFSUP_REQUIRE_NATIVE: '', ...env },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

it('without the addon, the skipped native half is reported on the test', () => {
  const r = run({ SELFSUP_NATIVE_ADDON: '/nonexistent/selfsup_native.node' });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /ok 1 - neg through checkOp # SKIP \[neg\] native half skipped: \[native\] addon not built/);
  assert.match(r.out, /# skipped 1/);
});

it('SELFSUP_REQUIRE_NATIVE=1 makes the skip a failure', () => {
  const r = run({ SELFSUP_NATIVE_ADDON: '/nonexistent/selfsup_native.node', SELFSUP_REQUIRE_NATIVE: '1' });
  assert.notEqual(r.status, 0);
  assert.match(r.out, /not ok 1 - neg through checkOp/);
  assert.match(r.out, /native half skipped.*SELFSUP_REQUIRE_NATIVE=1/);
});

it('with the addon, the native half runs and nothing is skipped', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const r = run({});
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /ok 1 - neg through checkOp\n/);
  assert.match(r.out, /# skipped 0/);
});
