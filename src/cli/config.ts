// `selfsup config`: the resolved configuration of a method's preset (then --config file, then --set overrides) as
// JSON, exactly what `selfsup pretrain` would train with and save as config.json, without training.
import type { Command } from 'commander';
import { METHOD_NAMES } from '../methods/registry.js';
import { presetNames, type PretrainConfig } from '../train/config.js';
import { resolvePretrainConfig } from './pretrain.js';

export interface ConfigCommandOptions {
  method: string;
  preset: string;
  /** JSON or YAML file whose keys override the preset */
  config?: string;
  /** key=value overrides, as pretrain --set */
  set?: readonly string[];
}

/** The resolved config a `selfsup config` command line describes. */
export function runConfig(o: ConfigCommandOptions): PretrainConfig {
  return resolvePretrainConfig({
    method: o.method, preset: o.preset, set: [...(o.set ?? [])], progress: false,
    ...(o.config !== undefined ? { config: o.config } : {}),
  });
}

export function registerConfig(program: Command): void {
  program
    .command('config')
    .description("print a preset's resolved pretraining configuration as JSON (what 'selfsup pretrain' would use)")
    .requiredOption('--method <name>', METHOD_NAMES.join(' | '))
    .option('--preset <name>', 'preset name (see --help of pretrain)', 'quick')
    .option('--config <file>', 'JSON or YAML config; its keys override the preset')
    .option('--set <key=value>', 'override any config key (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addHelpText('after', `\nPresets: ${METHOD_NAMES.map((n) => `${n}: ${presetNames(n).join(', ')}`).join('; ')}`)
    .action((f: { method: string; preset: string; config?: string; set: string[] }) => {
      const cfg = runConfig({ method: f.method, preset: f.preset, set: f.set, ...(f.config !== undefined ? { config: f.config } : {}) });
      process.stdout.write(`${JSON.stringify(cfg, null, 2)}\n`);
    });
}
