// Builds the native addon for another CPU than this one, into its own folder, leaving build/ alone:
//   node scripts/build-march.cjs <march> <dir>      (npm run build:native:march -- haswell /tmp/selfsup-haswell)
// prints the addon's path (alone on stdout; the compiler's output goes to stderr), for SELFSUP_NATIVE_ADDON. CI
// builds `haswell` and runs the native suite on it under ONEDNN_MAX_CPU_ISA=AVX2, so the AVX2 code of the addon's
// own loops is tested on an AVX-512 machine too.
'use strict';
const { spawnSync } = require('node:child_process');
const { copyFileSync, existsSync, mkdirSync, symlinkSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { march } = require('./march.cjs');

function main() {
  const [m, dirArg] = process.argv.slice(2);
  if (m === undefined || dirArg === undefined) throw new Error('build-march: usage: node scripts/build-march.cjs <march> <dir>');
  const cpu = march({ SELFSUP_MARCH: m });
  const root = resolve(__dirname, '..');
  const dir = resolve(dirArg);
  mkdirSync(dir, { recursive: true });
  // binding.gyp reads native/, scripts/ and node-addon-api relative to its own folder
  copyFileSync(join(root, 'binding.gyp'), join(dir, 'binding.gyp'));
  for (const name of ['native', 'scripts', 'node_modules']) if (!existsSync(join(dir, name))) symlinkSync(join(root, name), join(dir, name));
  const gyp = process.env.npm_config_node_gyp;
  const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
  const r = spawnSync(cmd, args, { cwd: dir, stdio: ['ignore', 2, 'inherit'], env: { ...process.env, SELFSUP_MARCH: cpu } });
  if (r.status !== 0) throw new Error(`build-march: node-gyp failed (${r.error ? r.error.message : `exit code ${r.status}`})`);
  process.stdout.write(`${join(dir, 'build', 'Release', 'selfsup_native.node')}\n`);
}

main();
