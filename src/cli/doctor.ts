// `selfsup doctor` (and `selfsup --version`): which engine this process runs on - the backend, oneDNN's version and
// ISA, the activation layout and the thread count - so a slow run or a bug report says what it ran on.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { nativeAddon, nativeLoadError } from '../backend/native.js';
import { getDefaultDevice } from '../tensor/index.js'; // index.js registers the native backend

export interface EngineReport {
  version: string;
  node: string;
  platform: string;
  backend: 'native' | 'reference';
  /** why the native backend is not in use (null when it is) */
  fallbackReason: string | null;
  onednn: string | null;
  isa: string | null;
  /** the vector ISA the addon's own loops were compiled for (null on the reference backend) */
  compiledFor: string | null;
  activationLayout: string | null;
  threads: number;
  cores: number;
  env: Record<string, string | null>;
}

/** The package's version, read from package.json (two levels up from src/cli and from dist/cli alike). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const ENV_KEYS = ['ONEDNN_MAX_CPU_ISA', 'SELFSUP_LAYOUT', 'OMP_NUM_THREADS', 'SELFSUP_NATIVE_ADDON'] as const;

export function engineReport(): EngineReport {
  const backend = getDefaultDevice();
  const info = backend === 'native' ? nativeAddon().info() : null;
  return {
    version: packageVersion(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    backend,
    fallbackReason: backend === 'native' ? null : nativeLoadError(),
    onednn: info?.onednn ?? null,
    isa: info?.isa ?? null,
    compiledFor: info?.compiledFor ?? null,
    activationLayout: info?.activationLayout ?? null,
    // the reference backend runs on the calling thread alone
    threads: info?.threads ?? 1,
    cores: availableParallelism(),
    env: Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k] ?? null])),
  };
}

/** One line: `selfsup 0.1.0 (native: oneDNN 2.6.3, ISA AVX2, activations nChw8c, 2 threads)`. */
export function engineSummary(r: EngineReport = engineReport()): string {
  const engine = r.backend === 'native'
    ? `native: oneDNN ${r.onednn}, ISA ${r.isa}, activations ${r.activationLayout}, ${r.threads} threads`
    : 'reference backend: the native addon is not available';
  return `selfsup ${r.version} (${engine})`;
}

export function registerDoctor(program: Command): void {
  program.command('doctor')
    .description('print the engine in use: backend, oneDNN version and ISA, activation layout, threads')
    .option('--json', 'print the report as JSON')
    .action((opts: { json?: boolean }) => {
      const r = engineReport();
      if (opts.json === true) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const lines = [
        `selfsup ${r.version} on Node ${r.node} (${r.platform}), ${r.cores} cores`,
        r.backend === 'native'
          ? `backend: native (oneDNN ${r.onednn})`
          : `backend: reference (pure TypeScript) - ${r.fallbackReason ?? 'native backend not selected'}`,
      ];
      if (r.backend === 'native') {
        lines.push(`ISA: ${r.isa}`, `own kernels compiled for: ${r.compiledFor}`,
          `activation layout: ${r.activationLayout}`, `threads: ${r.threads}`);
      }
      for (const [k, v] of Object.entries(r.env)) if (v !== null) lines.push(`${k}=${v}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
