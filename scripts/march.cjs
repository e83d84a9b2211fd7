// The CPU that the addon's own loops (batch norm, elementwise, attention, optimizers) are compiled for, asked by
// binding.gyp (`node scripts/march.cjs`): SELFSUP_MARCH, or `native`, the CPU that builds the addon. oneDNN picks its
// kernels at run time whatever this says. `SELFSUP_MARCH=haswell` builds AVX2 loops on any x86-64 CPU that has AVX2,
// which CI uses (scripts/build-march.cjs) to test the code an AVX2-only machine compiles.
'use strict';

function march(env = process.env) {
  const m = env.SELFSUP_MARCH || 'native';
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(m)) {
    throw new Error(`selfsup build: SELFSUP_MARCH='${m}' is not a compiler CPU name (e.g. native, haswell, skylake-avx512)`);
  }
  return m;
}

module.exports = { march };

if (require.main === module) process.stdout.write(march());
