// The optimizer base: parameter groups with per-group hyperparameters (PyTorch's param_groups), per-parameter
// state held as kept tensors on the parameter's device, zeroGrad, and a state dict of JSON plus named arrays.
import { keep, tensor, zeros, type Tensor, type TypedArray } from '../tensor/index.js';
import { inPhase } from '../tensor/profiler.js';
import type { Backend } from '../backend/backend.js';

/** Hyperparameters every group carries, whatever the optimizer. */
export interface CommonGroupOptions {
  lr: number;
  weightDecay: number;
  /** multiplied into the scheduled lr (MAE's layer-wise lr decay `lr_scale`) */
  lrScale: number;
  /** the schedule leaves this group at the base lr (SimSiam's predictor, `fix_lr`) */
  fixedLr: boolean;
}

/** A live parameter group: the parameters plus every hyperparameter, all resolved. */
export type ParamGroup<H> = H & CommonGroupOptions & { params: Tensor[]; name?: string };

/** What callers pass for one group: parameters plus any hyperparameters that differ from the defaults. */
export interface BasicGroupInit {
  params: Tensor[];
  name?: string;
  lr?: number;
  weightDecay?: number;
  lrScale?: number;
  fixedLr?: boolean;
}
export type ParamGroupInit<H> = BasicGroupInit & Partial<H>;

/** Parameters as one flat list (one group) or as groups. */
export type ParamsInit<H> = readonly Tensor[] | readonly ParamGroupInit<H>[];

/** A JSON-safe hyperparameter value. */
export type GroupValue = number | boolean | string | number[];

export type OptimizerKind = 'sgd' | 'lars' | 'larc' | 'adamw';

/** Everything needed to resume an optimizer exactly: `meta` is JSON, `tensors` are the state buffers. */
export interface OptimizerStateDict {
  meta: OptimizerStateMeta;
  /** `state.<paramIndex>.<key>`, keys as in PyTorch: momentum_buffer, mu, exp_avg, exp_avg_sq, max_exp_avg_sq */
  tensors: Record<string, Float32Array | Float64Array>;
}

export interface OptimizerStateMeta {
  format: 'selfsup-optimizer';
  version: 1;
  kind: OptimizerKind;
  /** hyperparameters per group; params are indices counted across groups in order, as in PyTorch */
  paramGroups: Array<{ options: Record<string, GroupValue>; params: number[] }>;
  /** per-parameter state, by parameter index */
  state: Record<string, { step?: number; buffers: string[] }>;
}

/** One parameter's state: a step count (AdamW) and named buffers shaped like the parameter. */
export interface ParamState {
  step: number;
  buffers: Map<string, Tensor>;
}

const STATE_FORMAT = 'selfsup-optimizer';

/** A parameter with a gradient, and its state, as a group step sees it. */
export interface FusedItem { p: Tensor; g: Tensor; state: ParamState }

// SELFSUP_FUSED_OPTIM=0 keeps the per-parameter loops everywhere (A/B benchmarks, bisecting)
let fusedOptimizers = process.env.SELFSUP_FUSED_OPTIM !== '0';

/** Turns the multi-tensor optimizer kernels on or off (tests compare the two paths); returns the old setting. */
export function setFusedOptimizers(on: boolean): boolean {
  const old = fusedOptimizers;
  fusedOptimizers = on;
  return old;
}

function isGroupList<H>(params: ParamsInit<H>): params is readonly ParamGroupInit<H>[] {
  return params.length > 0 && !('shape' in (params[0] as object));
}

export abstract class Optimizer<H extends object> {
  // a getter, not a field: the base constructor validates the groups (messages name the kind) before a subclass's
  // fields exist
  abstract get kind(): OptimizerKind;
  readonly paramGroups: ParamGroup<H>[] = [];
  readonly defaults: H & CommonGroupOptions;
  protected readonly state = new Map<Tensor, ParamState>();
  /** whether the per-parameter step count is part of the state (AdamW's bias corrections) */
  protected readonly countsSteps: boolean = false;

  constructor(params: ParamsInit<H>, defaults: H & CommonGroupOptions) {
    this.defaults = defaults;
    if (params.length === 0) throw new Error(`[optimizer] got an empty parameter list`);
    const groups: readonly ParamGroupInit<H>[] = isGroupList(params) ? params : [{ params: [...(params as readonly Tensor[])] } as ParamGroupInit<H>];
    for (const g of groups) this.addParamGroup(g);
  }

  /** Adds a group; unspecified hyperparameters come from the defaults. A parameter may be in one group only. */
  addParamGroup(init: ParamGroupInit<H>): void {
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    for (const p of init.params) {
      if (p.dtype !== 'float32' && p.dtype !== 'float64') {
        throw new Error(`[optimizer] can only optimize float tensors, got ${p.dtype} of shape [${p.shape.join(', ')}]`);
      }
      if (seen.has(p)) throw new Error(`[optimizer] some parameters appear in more than one parameter group`);
      seen.add(p);
    }
    const group = { ...this.defaults } as ParamGroup<H>;
    for (const [k, v] of Object.entries(init)) {
      if (v !== undefined && k !== 'params') (group as Record<string, unknown>)[k] = v;
    }
    group.params = [...init.params];
    this.validateGroup(group);
    this.paramGroups.push(group);
  }

  /** Throws on hyperparameters the optimizer rejects. */
  protected validateGroup(group: ParamGroup<H>): void {
    if (!(group.lr >= 0)) throw new Error(`[${this.kind}] invalid learning rate ${group.lr}`);
    if (!(group.weightDecay >= 0)) throw new Error(`[${this.kind}] invalid weight decay ${group.weightDecay}`);
  }

  /** Updates one parameter from its gradient; data arrays are the parameter's and gradient's buffers. */
  protected abstract updateParam(p: Tensor, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** One optimization step over every parameter that has a gradient (parameters without one are skipped). */
  step(): void {
    inPhase('optimizer', () => this.stepAll());
  }

  private stepAll(): void {
    for (const group of this.paramGroups) {
      const items: FusedItem[] = [];
      for (const p of group.params) {
        const g = p.grad;
        if (g === null) continue;
        if (g.size !== p.size) {
          throw new Error(`[${this.kind}] gradient of shape [${g.shape.join(', ')}] does not match parameter [${p.shape.join(', ')}]`);
        }
        items.push({ p, g, state: this.stateOf(p) });
      }
      // one multi-tensor kernel call for the group where the backend has one (native float32); else per parameter
      const backend = items[0]?.p.backend;
      if (fusedOptimizers && backend !== undefined && items.every((it) => it.p.dtype === 'float32' && it.g.dtype === 'float32'
        && it.p.backend === backend && it.g.backend === backend) && this.fusedGroupStep(backend, group, items)) continue;
      for (const it of items) this.updateParam(it.p, it.g, group, it.state);
    }
  }

  /**
   * Updates a whole group with one multi-tensor kernel of `backend`; returns false (having changed nothing) where
   * there is none for this optimizer or these settings, and the per-parameter loop runs instead.
   */
  protected fusedGroupStep(_backend: Backend, _group: ParamGroup<H>, _items: readonly FusedItem[]): boolean {
    return false;
  }

  /** Clears gradients: disposes them (setToNone, the PyTorch 2 default) or fills them with zeros. */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        const g = p.grad;
        if (g === null) continue;
        if (setToNone) {
          g.dispose();
          p.grad = null;
        } else {
          g.backend.fill(g.data, 0);
        }
      }
    }
  }

  /** The current lr of every group. */
  getLr(): number[] {
    return this.paramGroups.map((g) => g.lr);
  }

  /** Every parameter, in group order. */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  protected stateOf(p: Tensor): ParamState {
    let s = this.state.get(p);
    if (s === undefined) {
      s = { step: 0, buffers: new Map() };
      this.state.set(p, s);
    }
    return s;
  }

  /** The named state buffer of p, created (zero-filled, kept) on first use. `created` tells whether it is new. */
  protected buffer(p: Tensor, state: ParamState, key: string): { buf: Tensor; created: boolean } {
    const hit = state.buffers.get(key);
    if (hit !== undefined) return { buf: hit, created: false };
    const buf = keep(zeros(p.shape, { dtype: p.dtype, device: p.device }));
    state.buffers.set(key, buf);
    return { buf, created: true };
  }

  /** Snapshot of the state (copies), enough to resume bit-exactly. */
  stateDict(): OptimizerStateDict {
    const tensors: Record<string, Float32Array | Float64Array> = {};
    const state: OptimizerStateMeta['state'] = {};
    const paramGroups: OptimizerStateMeta['paramGroups'] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const options: Record<string, GroupValue> = {};
      for (const [k, v] of Object.entries(group)) {
        if (k === 'params') continue;
        options[k] = Array.isArray(v) ? [...(v as number[])] : (v as GroupValue);
      }
      const params: number[] = [];
      for (const p of group.params) {
        const s = this.state.get(p);
        if (s !== undefined) {
          const buffers = [...s.buffers.keys()];
          state[String(index)] = this.countsSteps ? { step: s.step, buffers } : { buffers };
          for (const [key, buf] of s.buffers) tensors[`state.${index}.${key}`] = floatCopy(buf.data);
        }
        params.push(index++);
      }
      paramGroups.push({ options, params });
    }
    return { meta: { format: STATE_FORMAT, version: 1, kind: this.kind, paramGroups, state }, tensors };
  }

  /**
   * Restores hyperparameters and state saved by stateDict() into an optimizer built over the same parameters
   * (same groups, same order, same shapes), as PyTorch's load_state_dict does.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const { meta, tensors } = sd;
    if (meta.format !== STATE_FORMAT || meta.version !== 1) {
      throw new Error(`[optimizer] not an optimizer state dict (format ${String(meta.format)} v${String(meta.version)})`);
    }
    if (meta.kind !== this.kind) throw new Error(`[optimizer] state dict is for ${meta.kind}, this optimizer is ${this.kind}`);
    if (meta.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`[optimizer] state dict has ${meta.paramGroups.length} parameter groups, the optimizer ${this.paramGroups.length}`);
    }
    meta.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi]!;
      if (saved.params.length !== group.params.length) {
        throw new Error(`[optimizer] group ${gi} has ${group.params.length} parameters, the state dict ${saved.params.length}`);
      }
    });
    // validate every buffer before touching any state, so a bad dict leaves the optimizer as it was
    const next = new Map<Tensor, ParamState>();
    try {
      meta.paramGroups.forEach((saved, gi) => {
        const group = this.paramGroups[gi]!;
        saved.params.forEach((index, j) => {
          const p = group.params[j]!;
          const s = meta.state[String(index)];
          if (s === undefined) return;
          const ps: ParamState = { step: s.step ?? 0, buffers: new Map() };
          next.set(p, ps);
          for (const key of s.buffers) {
            const values = tensors[`state.${index}.${key}`];
            if (values === undefined) throw new Error(`[optimizer] state dict lacks tensor state.${index}.${key}`);
            if (values.length !== p.size) {
              throw new Error(`[optimizer] state.${index}.${key} has ${values.length} values, parameter [${p.shape.join(', ')}] has ${p.size}`);
            }
            ps.buffers.set(key, keep(tensor(values, p.shape, { dtype: p.dtype, device: p.device })));
          }
        });
      });
    } catch (e) {
      for (const s of next.values()) for (const b of s.buffers.values()) b.dispose();
      throw e;
    }
    meta.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi]! as Record<string, unknown>;
      for (const [k, v] of Object.entries(saved.options)) group[k] = Array.isArray(v) ? [...v] : v;
    });
    this.disposeState();
    for (const [p, s] of next) this.state.set(p, s);
  }

  /** Frees every state buffer (the optimizer starts afresh on the next step). */
  disposeState(): void {
    for (const s of this.state.values()) for (const b of s.buffers.values()) b.dispose();
    this.state.clear();
  }

  dispose(): void {
    this.disposeState();
  }
}

function floatCopy(d: TypedArray): Float32Array | Float64Array {
  if (d instanceof Float64Array) return d.slice();
  if (d instanceof Float32Array) return d.slice();
  return Float32Array.from(d);
}

/** A parameter's or gradient's buffer as a float array (parameters are float32, or float64 on the reference device). */
export function floatData(t: Tensor): Float32Array | Float64Array {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Float64Array) return d;
  throw new Error(`[optimizer] expected a float tensor, got ${t.dtype}`);
}
