// `selfsup doctor` reports what the engine runs on, including the vector ISA the addon's own loops were compiled for
// (binding.gyp's -march, from scripts/march.cjs: SELFSUP_MARCH or `native`).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { engineReport, engineSummary } from '../../src/cli/doctor.js';

const require = createRequire(import.meta.url);
const { march } = require('../../scripts/march.cjs') as { march: (env: Record<string, string | undefined>) => string };

test('march.cjs: SELFSUP_MARCH or native; a value that is not a CPU name is refused before it reaches the compiler', () => {
  assert.equal(march({}), 'native');
  assert.equal(march({ SELFSUP_MARCH: '' }), 'native');
  assert.equal(march({ SELFSUP_MARCH: 'haswell' }), 'haswell');
  assert.equal(march({ SELFSUP_MARCH: 'skylake-avx512' }), 'skylake-avx512');
  assert.equal(march({ SELFSUP_MARCH: 'x86-64-v3' }), 'x86-64-v3');
  for (const bad of ['native -O0', 'haswell;rm', '-mavx512f', '$(id)']) {
    assert.throws(() => march({ SELFSUP_MARCH: bad }), /^Error: selfsup build: SELFSUP_MARCH='.*' is not a compiler CPU name/, bad);
  }
});

/** What -march=native targets on this CPU, from /proc/cpuinfo's flags (x86-64 Linux only). */
function nativeVectorIsa(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return null;
  const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
  return flags.has('avx512f') ? 'AVX-512' : flags.has('avx2') ? 'AVX2' : flags.has('avx') ? 'AVX' : 'SSE4.2';
}

test('doctor: the native addon built here reports the widest vector ISA this CPU has as the one its loops target', (t) => {
  const r = engineReport();
  if (r.backend !== 'native') {
    assert.equal(r.compiledFor, null);
    t.skip('reference backend');
    return;
  }
  const expected = process.env.SELFSUP_NATIVE_ADDON === undefined ? nativeVectorIsa() : null;
  if (expected === null) {
    assert.match(r.compiledFor ?? '', /^(AVX-512|AVX2|AVX|SSE4\.2|SVE|NEON|baseline)$/);
    t.skip('another build of the addon, or not x86-64 Linux: checked the name only');
    return;
  }
  assert.equal(r.compiledFor, expected);
  assert.match(engineSummary(r), /^selfsup \d+\.\d+\.\d+ \(native: oneDNN \d+\.\d+\.\d+, ISA [A-Z0-9_]+, activations (nChw16c|nChw8c|plain), \d+ threads\)$/);
});
