// Module: a tree of named parameters, buffers and child modules, with PyTorch's state-dict naming
// (`layer1.0.conv1.weight`, `bn1.running_mean`, `blocks.3.attn.qkv.weight`) so checkpoints map one to one.
import * as T from '../tensor/index.js';
import type { DType, DeviceName, Rng, Tensor } from '../tensor/index.js';

/** Where and how a module creates its tensors (PyTorch's factory_kwargs), and the generator its init draws from. */
export interface Factory {
  device?: DeviceName;
  /** float dtype of parameters and float buffers (default float32) */
  dtype?: 'float32' | 'float64';
  /** generator for initialisation (default: the global one) */
  rng?: Rng;
  /** leave weights at zeros (norms at ones): fast construction when a checkpoint is loaded next */
  skipInit?: boolean;
}

export type StateDict = Map<string, Tensor>;

export interface LoadReport {
  /** keys the module has but the state dict lacks */
  missing: string[];
  /** keys the state dict has but the module lacks */
  unexpected: string[];
  /** keys on both sides with different shapes */
  mismatched: { key: string; expected: number[]; got: number[] }[];
  /** keys whose values were copied */
  loaded: string[];
}

export interface LoadOptions {
  /** throw on any missing, unexpected or mis-shaped key, changing nothing (default true) */
  strict?: boolean;
}

/** A module that maps one tensor to one tensor (layers, blocks, backbones): what Sequential holds. */
export interface Forward {
  forward(x: Tensor): Tensor;
}
export type Layer = Module & Forward;

interface BufferEntry { tensor: Tensor | null; persistent: boolean }

export abstract class Module {
  /** training mode (batch norm statistics, dropout, drop path); set with train() / eval() */
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, BufferEntry>();
  private readonly children_ = new Map<string, Module | null>();

  // ---------------------------------------------------------------- registration

  /** Registers a parameter (kept from tidy, requires grad unless given frozen). Null registers an absent one (bias=False). */
  protected registerParameter(name: string, t: Tensor | null): Tensor | null {
    this.checkName(name);
    if (t !== null) {
      T.keep(t);
      if (!t.requiresGrad) t.requiresGrad_(true);
    }
    this.params.set(name, t);
    return t;
  }

  /** Registers a buffer (running statistics, counters); non-persistent buffers stay out of the state dict. */
  protected registerBuffer(name: string, t: Tensor | null, persistent = true): Tensor | null {
    this.checkName(name);
    if (t !== null) T.keep(t);
    this.buffers.set(name, { tensor: t, persistent });
    return t;
  }

  /** Registers or replaces a child module (e.g. a method swapping a backbone's `fc` for its projector). */
  registerModule<M extends Module | null>(name: string, m: M): M {
    if (!this.children_.has(name)) this.checkName(name);
    this.children_.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`[Module] invalid name '${name}': must be non-empty without '.'`);
    if (this.params.has(name) || this.buffers.has(name) || this.children_.has(name)) {
      throw new Error(`[Module] '${name}' is already registered on ${this.constructor.name}`);
    }
  }

  protected param(name: string): Tensor {
    const t = this.params.get(name);
    if (t == null) throw new Error(`[Module] ${this.constructor.name} has no parameter '${name}'`);
    return t;
  }

  protected paramOrNull(name: string): Tensor | null {
    return this.params.get(name) ?? null;
  }

  /** Replaces a registered parameter's tensor (e.g. with a pre-built embedding). */
  protected setParameter(name: string, t: Tensor): void {
    if (!this.params.has(name)) throw new Error(`[Module] ${this.constructor.name} has no parameter '${name}'`);
    T.keep(t);
    this.params.set(name, t);
  }

  protected buffer(name: string): Tensor {
    const t = this.buffers.get(name)?.tensor;
    if (t == null) throw new Error(`[Module] ${this.constructor.name} has no buffer '${name}'`);
    return t;
  }

  protected bufferOrNull(name: string): Tensor | null {
    return this.buffers.get(name)?.tensor ?? null;
  }

  child<M extends Module = Module>(name: string): M {
    const m = this.children_.get(name);
    if (m == null) throw new Error(`[Module] ${this.constructor.name} has no child '${name}'`);
    return m as M;
  }

  childOrNull<M extends Module = Module>(name: string): M | null {
    return (this.children_.get(name) ?? null) as M | null;
  }

  // ---------------------------------------------------------------- traversal (PyTorch order: own entries, then children)

  *namedChildren(): Generator<[string, Module]> {
    for (const [k, m] of this.children_) if (m !== null) yield [k, m];
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    const seen = new Set<Module>();
    const walk = function* (m: Module, p: string): Generator<[string, Module]> {
      if (seen.has(m)) return;
      seen.add(m);
      yield [p, m];
      for (const [k, c] of m.namedChildren()) yield* walk(c, p === '' ? k : `${p}.${k}`);
    };
    yield* walk(this, prefix);
  }

  *modules(): Generator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /** Every parameter with its dotted name, each tensor once (shared parameters keep their first name). */
  *namedParameters(): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [p, m] of this.namedModules()) {
      for (const [k, t] of m.params) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        yield [p === '' ? k : `${p}.${k}`, t];
      }
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  *namedBuffers(opts: { persistentOnly?: boolean } = {}): Generator<[string, Tensor]> {
    for (const [p, m] of this.namedModules()) {
      for (const [k, b] of m.buffers) {
        if (b.tensor === null || (opts.persistentOnly === true && !b.persistent)) continue;
        yield [p === '' ? k : `${p}.${k}`, b.tensor];
      }
    }
  }

  /** Number of parameter elements (only trainable ones when asked, as `sum(p.numel() for p if p.requires_grad)`). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const [, t] of this.namedParameters()) if (opts.trainableOnly !== true || t.requiresGrad) n += t.size;
    return n;
  }

  // ---------------------------------------------------------------- state dict

  /** Parameters and persistent buffers by dotted name, in PyTorch's order. The tensors are the module's own (not copies). */
  stateDict(): StateDict {
    const sd: StateDict = new Map();
    for (const [p, m] of this.namedModules()) {
      const pre = p === '' ? '' : `${p}.`;
      for (const [k, t] of m.params) if (t !== null) sd.set(pre + k, t);
      for (const [k, b] of m.buffers) if (b.tensor !== null && b.persistent) sd.set(pre + k, b.tensor);
    }
    return sd;
  }

  /**
   * Copies values from a state dict into this module's tensors (in place: references stay valid; dtype and device
   * are converted). Strict (the default) throws listing every missing, unexpected and mis-shaped key and changes
   * nothing; non-strict loads the matching keys and returns the report.
   */
  loadStateDict(sd: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>, opts: LoadOptions = {}): LoadReport {
    const src: ReadonlyMap<string, Tensor> = sd instanceof Map ? sd as ReadonlyMap<string, Tensor>
      : new Map(Object.entries(sd as Readonly<Record<string, Tensor>>));
    const own = this.stateDict();
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [], loaded: [] };
    for (const k of own.keys()) if (!src.has(k)) report.missing.push(k);
    for (const k of src.keys()) if (!own.has(k)) report.unexpected.push(k);
    const todo: [Tensor, Tensor, string][] = [];
    for (const [k, dst] of own) {
      const s = src.get(k);
      if (s === undefined) continue;
      if (s.shape.length !== dst.shape.length || s.shape.some((d, i) => d !== dst.shape[i])) {
        report.mismatched.push({ key: k, expected: [...dst.shape], got: [...s.shape] });
        continue;
      }
      todo.push([dst, s, k]);
    }
    if ((opts.strict ?? true) && (report.missing.length + report.unexpected.length + report.mismatched.length) > 0) {
      throw new Error(`[loadStateDict] ${this.constructor.name}: ${formatLoadReport(report)}`);
    }
    T.noGrad(() => {
      for (const [dst, s, k] of todo) {
        if (s.device === dst.device && s.dtype === dst.dtype) {
          if (s !== dst) T.copy_(dst, s);
        } else {
          const tmp = T.to(s, dst.device, dst.dtype);
          T.copy_(dst, tmp);
          tmp.dispose();
        }
        report.loaded.push(k);
      }
    });
    return report;
  }

  // ---------------------------------------------------------------- modes, gradients, devices

  /** Sets training mode on the whole subtree (batch norm, dropout, drop path). */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Freezes (false) or unfreezes every parameter of the subtree; frozen parameters get no .grad. */
  requiresGrad_(flag = true): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad = flag;
    return this;
  }

  /** Drops every parameter's gradient (PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const [, t] of this.namedParameters()) {
      if (t.grad !== null) { t.grad.dispose(); t.grad = null; }
    }
  }

  /**
   * Moves every parameter and buffer to a device and/or float dtype (int buffers keep their dtype). The old tensors
   * are freed, so hold tensors through the module (getters), not in variables, across to().
   */
  to(device: DeviceName, dtype?: 'float32' | 'float64'): this {
    const moved = new Map<Tensor, Tensor>();
    const convert = (t: Tensor): Tensor => {
      const hit = moved.get(t);
      if (hit !== undefined) return hit;
      const isFloat = t.dtype === 'float32' || t.dtype === 'float64';
      const dt: DType = isFloat && dtype !== undefined ? dtype : t.dtype;
      const out = t.device === device && t.dtype === dt ? t : T.keep(T.to(t, device, dt));
      if (out !== t) {
        out.requiresGrad = t.requiresGrad;
        t.dispose();
      }
      moved.set(t, out);
      return out;
    };
    for (const m of this.modules()) {
      for (const [k, t] of m.params) if (t !== null) m.params.set(k, convert(t));
      for (const [k, b] of m.buffers) if (b.tensor !== null) m.buffers.set(k, { tensor: convert(b.tensor), persistent: b.persistent });
    }
    return this;
  }

  /** Frees every parameter, gradient and buffer of the subtree. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }

  /** One line per module with its parameter count, like printing a PyTorch model. */
  summary(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      let n = 0;
      for (const [, t] of m.params) if (t !== null) n += t.size;
      const depth = name === '' ? 0 : name.split('.').length;
      lines.push(`${'  '.repeat(depth)}${name === '' ? '(root)' : name.split('.').pop()}: ${m.constructor.name}${n > 0 ? ` (${n} params)` : ''}`);
    }
    lines.push(`total: ${this.numParameters()} parameters`);
    return lines.join('\n');
  }
}

export function formatLoadReport(r: LoadReport): string {
  const parts: string[] = [];
  const list = (xs: string[]): string => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, ... (${xs.length} in all)` : xs.join(', '));
  if (r.missing.length > 0) parts.push(`missing keys: ${list(r.missing)}`);
  if (r.unexpected.length > 0) parts.push(`unexpected keys: ${list(r.unexpected)}`);
  if (r.mismatched.length > 0) {
    parts.push(`shape mismatches: ${list(r.mismatched.map((m) => `${m.key} (expected [${m.expected.join(', ')}], got [${m.got.join(', ')}])`))}`);
  }
  return parts.length === 0 ? `all ${r.loaded.length} keys matched` : parts.join('; ');
}

/** A float tensor on the factory's device and dtype, filled with a constant (initialisers overwrite it). */
export function factoryTensor(shape: readonly number[], f: Factory, value = 0): Tensor {
  return T.full(shape, value, { dtype: f.dtype ?? 'float32', ...(f.device !== undefined ? { device: f.device } : {}) });
}

/** A float tensor on the factory's device and dtype holding the given values. */
export function factoryValues(shape: readonly number[], f: Factory, values: ArrayLike<number>): Tensor {
  return T.tensor(values, shape, { dtype: f.dtype ?? 'float32', ...(f.device !== undefined ? { device: f.device } : {}) });
}
