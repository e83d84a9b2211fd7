// `npm install` step after the native addon: builds the optional Open MPI binding (native/mpi ->
// native/mpi/build/Release/selfsup_mpi.node) for data-parallel training. Never fails the install: without Open MPI
// (or when the build fails) everything single-process works as before, and a distributed launch says what to install.
// SELFSUP_SKIP_MPI=1 skips it on purpose.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const HINT = 'install the Debian packages libopenmpi-dev and openmpi-bin (apt-get install libopenmpi-dev openmpi-bin), then run npm run build:mpi';

function skip(why) {
  process.stderr.write(`selfsup: the Open MPI binding is not built (${why}); data-parallel training is off. To enable it, ${HINT}\n`);
}

function main() {
  if (process.env.SELFSUP_SKIP_MPI === '1') return skip('SELFSUP_SKIP_MPI=1');
  let includes;
  try {
    includes = execFileSync('mpicc', ['--showme:incdirs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {
    return skip('mpicc not found');
  }
  if (!includes.some((d) => existsSync(join(d, 'mpi.h')))) return skip(`mpi.h not found under ${includes.join(', ')}`);
  // npm runs install scripts with its bundled node-gyp on PATH; npm_config_node_gyp names it when PATH does not
  const gyp = process.env.npm_config_node_gyp;
  const dir = ['--directory', join(__dirname, '..', 'native', 'mpi')];
  const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild', ...dir]] : ['node-gyp', ['rebuild', ...dir]];
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) skip(`building it failed: ${r.error ? r.error.message : `exit code ${r.status}`}`);
}

main();
