// The registry of methods: one line per method. A new method adds its file (a Method class and a MethodSpec), its
// presets in src/train/presets.ts and one line here; the config type, the CLI and evaluation follow from this table.
import type { Rng } from '../tensor/index.js';
import type { PretrainConfig } from '../train/config.js';
import type { Method, MethodSpec } from './method.js';
import { mocoMethod } from './moco.js';
import { simsiamMethod } from './simsiam.js';
import { maeMethod } from './mae.js';

export const METHODS = {
  moco: mocoMethod,
  simsiam: simsiamMethod,
  mae: maeMethod,
} as const;

export type MethodName = keyof typeof METHODS;

/** Each method's config section, keyed by method name (cfg.moco, cfg.simsiam, ...). */
export type MethodSections = { [N in MethodName]: ReturnType<(typeof METHODS)[N]['defaultConfig']> };

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(METHODS, name);
}

/** The spec of a method by name; `where` prefixes the error for an unknown one. */
export function methodSpec(name: string, where = 'methods'): MethodSpec<object> {
  if (!isMethodName(name)) throw new Error(`[${where}] unknown method '${name}'; expected one of ${METHOD_NAMES.join(', ')}`);
  return METHODS[name] as MethodSpec<object>;
}

/** Builds the method a config names from its own section; every initialisation draws from rng. */
export function buildMethod(cfg: PretrainConfig, rng: Rng): Method {
  const spec = methodSpec(cfg.method, 'pretrain');
  const section = (cfg as unknown as Record<string, unknown>)[spec.name];
  if (typeof section !== 'object' || section === null) throw new Error(`[pretrain] the config has no '${spec.name}' section`);
  return spec.build(cfg, section, rng);
}
