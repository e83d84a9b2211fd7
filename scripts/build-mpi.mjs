#!/usr/bin/env node
// Builds the optional Open MPI binding (native/mpi -> native/mpi/build/Release/selfsup_mpi.node).
// Never fails the install: without Open MPI (or when the build fails) selfsup runs single-process as before and a
// distributed launch says what to install.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HINT = 'install the Debian packages libopenmpi-dev and openmpi-bin (apt-get install libopenmpi-dev openmpi-bin), then npm run build:mpi';

function skip(why) {
  process.stderr.write(`selfsup: the Open MPI binding was not built (${why}); distributed training is off. To enable it, ${HINT}\n`);
  process.exit(0);
}

if (process.env.SELFSUP_SKIP_MPI === '1') skip('SELFSUP_SKIP_MPI=1');
let includes;
try {
  includes = execFileSync('mpicc', ['--showme:incdirs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
} catch {
  skip('mpicc not found');
}
if (!includes.some((d) => existsSync(join(d, 'mpi.h')))) skip('mpi.h not found');

// npm puts its bundled node-gyp on PATH for package scripts
const r = spawnSync('node-gyp', ['rebuild', '--directory', join(root, 'native', 'mpi')], { stdio: 'inherit' });
if (r.error !== undefined) skip(`node-gyp could not start: ${r.error.message}`);
if (r.status !== 0) skip(`node-gyp exited with ${r.status ?? r.signal}`);
