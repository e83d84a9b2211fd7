// `npm install` step: builds the native addon (C++ over oneDNN) when oneDNN is installed, and never fails the install.
// Without oneDNN (or when the build fails) selfsup still works: everything runs on the pure-TypeScript reference
// backend, with one warning at first use (src/tensor/device.ts). SELFSUP_SKIP_NATIVE=1 skips the build on purpose.
'use strict';
const { spawnSync } = require('node:child_process');
const { findPrefix, candidates, HEADER } = require('./onednn.cjs');

const warn = (msg) => process.stderr.write(`selfsup: ${msg}\n`);
const FALLBACK = 'selfsup will run on its pure-TypeScript reference backend (correct, but much slower). ' +
  'Install oneDNN (Debian/Ubuntu: apt-get install libdnnl-dev g++ make; macOS: brew install onednn libomp) and run ' +
  '`npm rebuild selfsup` to build it.';

function main() {
  if (process.env.SELFSUP_SKIP_NATIVE === '1') {
    warn(`SELFSUP_SKIP_NATIVE=1: the native addon is not built. ${FALLBACK}`);
    return;
  }
  if (findPrefix() === null) {
    warn(`oneDNN not found (no ${HEADER} under ${candidates().join(', ')}; SELFSUP_ONEDNN_PREFIX names another ` +
      `prefix): the native addon is not built. ${FALLBACK}`);
    return;
  }
  // npm runs install scripts with its bundled node-gyp on PATH; npm_config_node_gyp names it when PATH does not
  const gyp = process.env.npm_config_node_gyp;
  const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
  const r = spawnSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    warn(`building the native addon failed (${r.error ? r.error.message : `exit code ${r.status}`}). ${FALLBACK}`);
  }
}

main();
