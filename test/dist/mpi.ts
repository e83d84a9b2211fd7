// Running test children under `mpirun -np N`: whether that is possible here (else a reason to skip), and the call.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mpiLoadError } from '../../src/dist/comm.js';
import { nativeAvailable } from '../helpers.js';

function mpirunMissing(): boolean {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return r.error !== undefined || r.status !== 0;
}

/** Why the mpirun tests cannot run here, or false. */
export const mpiSkip: string | false = mpirunMissing()
  ? 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev; CI installs them)'
  : mpiLoadError() !== null ? `Open MPI binding not built: ${mpiLoadError()}` : !nativeAvailable() ? 'native addon not built' : false;

export const MPIRUN_FLAGS = ['--allow-run-as-root', '--oversubscribe'];

/** Runs test/dist/<child> on np ranks; resolves with exit status and output. */
export function mpirun(np: number, child: string, args: string[], timeoutMs = 120_000): { status: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = performance.now();
  const script = fileURLToPath(new URL(child, import.meta.url));
  const r = spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', String(np), process.execPath, '--import', 'tsx', script, ...args],
    { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}
