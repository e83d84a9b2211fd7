// Typed configs: defaults, then a JSON/YAML file, then key=value flags (nanoGPT's configurator, with types checked).
// Unknown keys and type changes are errors that name the key.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export type ConfigValue = string | number | boolean | null | ConfigValue[] | { [k: string]: ConfigValue };
export type ConfigObject = { [k: string]: ConfigValue };

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Returns base with override applied. Every key of override must exist in base with the same kind
 * (a null default accepts a string or number, for optional paths and sizes).
 */
export function mergeConfig<T extends object>(base: T, override: unknown, where = 'config', path = ''): T {
  if (override === undefined) return base;
  if (kind(override) !== 'object') throw new Error(`[${where}] ${path || 'config'} must be an object, got ${kind(override)}`);
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(override as Record<string, unknown>)) {
    const full = path ? `${path}.${key}` : key;
    if (!(key in out)) {
      throw new Error(`[${where}] unknown key '${full}'; known keys: ${Object.keys(out).join(', ')}`);
    }
    const cur = out[key];
    if (kind(cur) === 'object' && kind(value) === 'object') {
      out[key] = mergeConfig(cur as object, value, where, full);
      continue;
    }
    const ok = kind(cur) === kind(value) || (cur === null && (typeof value === 'string' || typeof value === 'number'))
      || (value === null && cur === null) || (typeof cur === 'string' && value === null);
    if (!ok) throw new Error(`[${where}] '${full}' must be a ${kind(cur)}, got ${kind(value)} (${JSON.stringify(value)})`);
    out[key] = value;
  }
  return out as T;
}

/** Reads a .json, .yaml or .yml config file into a plain object. */
export function readConfigFile(file: string, where = 'config'): ConfigObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`[${where}] cannot read config file ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`[${where}] ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (kind(value) !== 'object') throw new Error(`[${where}] ${file} must hold an object at the top level`);
  return value as ConfigObject;
}

/**
 * Turns 'a.b=3' overrides into a nested object, converting each value to the type of its default
 * (numbers, booleans, null for optional values, JSON for arrays).
 */
export function parseOverrides(base: object, assignments: readonly string[], where = 'config'): ConfigObject {
  const out: ConfigObject = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new Error(`[${where}] override '${a}' must look like key=value`);
    const key = a.slice(0, eq);
    const raw = a.slice(eq + 1);
    const parts = key.split('.');
    let def: unknown = base;
    for (const p of parts) {
      if (kind(def) !== 'object' || !(p in (def as object))) throw new Error(`[${where}] unknown key '${key}'`);
      def = (def as Record<string, unknown>)[p];
    }
    const value = coerce(raw, def, key, where);
    let node = out;
    for (const p of parts.slice(0, -1)) {
      if (kind(node[p]) !== 'object') node[p] = {};
      node = node[p] as ConfigObject;
    }
    node[parts[parts.length - 1]!] = value;
  }
  return out;
}

function coerce(raw: string, def: unknown, key: string, where: string): ConfigValue {
  if (raw === 'null' && (def === null || typeof def === 'string')) return null;
  switch (kind(def)) {
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`[${where}] '${key}' must be a number, got '${raw}'`);
      return n;
    }
    case 'boolean':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new Error(`[${where}] '${key}' must be true or false, got '${raw}'`);
    case 'array':
      try {
        const v = JSON.parse(raw) as unknown;
        if (!Array.isArray(v)) throw new Error('not an array');
        return v as ConfigValue[];
      } catch {
        throw new Error(`[${where}] '${key}' must be a JSON array like [1,2], got '${raw}'`);
      }
    case 'null': {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    }
    case 'object':
      throw new Error(`[${where}] '${key}' is a section; set one of its keys (${key}.<name>=...)`);
    default:
      return raw;
  }
}
