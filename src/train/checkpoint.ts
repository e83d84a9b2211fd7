// Checkpoints that resume exactly: weights, buffers (BN statistics, MoCo's queue) and optimizer state in one
// safetensors file; epoch, step, RNG state, history and config in a JSON file that names it. The JSON is the
// commit point: both files are written to temporary names and renamed, weights first, so a kill at any moment
// leaves the previous checkpoint whole.
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor, RngState } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import type { OptimizerStateDict } from '../optim/optimizer.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';

import type { PixelBaseline } from '../eval/pixels.js';

export interface TrainState {
  /** epochs completed */
  epoch: number;
  /** optimisation steps completed */
  step: number;
  rng: RngState;
  losses: { epoch: number; loss: number }[];
  knn: { epoch: number; top1: number; top5: number; testLoss?: number }[];
  knnBefore: { epoch: number; top1: number; top5: number; testLoss?: number } | null;
  /** kNN on the raw pixels of the monitor's images: the baseline learned features must beat (absent before v0.2) */
  pixelBaseline?: PixelBaseline | null;
  /** data-parallel ranks the run trains on (absent in older checkpoints: 1) */
  worldSize?: number;
}

interface CheckpointJson {
  format: 'selfsup-checkpoint';
  version: 1;
  weights: string;
  state: TrainState;
  optimizer: OptimizerStateDict['meta'] | null;
  config: unknown;
  method: string;
}

const STATE_FILE = 'checkpoint.json';

export interface Optimizable {
  stateDict(): OptimizerStateDict;
  loadStateDict(sd: OptimizerStateDict): void;
}

/** Writes model + optimizer + state atomically into dir; older weight files are removed afterwards. */
export function saveCheckpoint(dir: string, model: Module, opt: Optimizable | null, state: TrainState, config: unknown): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of model.stateDict()) tensors.set(`model.${k}`, v);
  const osd = opt?.stateDict() ?? null;
  const made: Tensor[] = [];
  if (osd !== null) {
    for (const [k, arr] of Object.entries(osd.tensors)) {
      const t = T.tensor(arr, [arr.length], { device: 'reference', dtype: arr instanceof Float64Array ? 'float64' : 'float32' });
      made.push(t);
      tensors.set(`optimizer.${k}`, t);
    }
  }
  const weights = `checkpoint-step${state.step}.safetensors`;
  try {
    writeSafetensors(join(dir, weights), tensors, { format: 'selfsup-checkpoint', epoch: String(state.epoch), step: String(state.step) });
  } finally {
    for (const t of made) t.dispose();
  }
  const json: CheckpointJson = {
    format: 'selfsup-checkpoint', version: 1, weights, state, optimizer: osd?.meta ?? null, config,
    method: model.constructor.name,
  };
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(json)}\n`);
  for (const f of readdirSync(dir)) {
    if (/^checkpoint-step\d+\.safetensors$/.test(f) && f !== weights) {
      try { unlinkSync(join(dir, f)); } catch { /* a concurrent reader may hold it; harmless */ }
    }
  }
}

/** Reads dir's checkpoint JSON (null when there is none). */
export function readCheckpointJson(dir: string): CheckpointJson | null {
  const p = join(dir, STATE_FILE);
  if (!existsSync(p)) return null;
  let json: CheckpointJson;
  try {
    json = JSON.parse(readFileSync(p, 'utf8')) as CheckpointJson;
  } catch (e) {
    throw new Error(`[checkpoint] ${p} is not valid JSON: ${(e as Error).message}`);
  }
  if (json.format !== 'selfsup-checkpoint') throw new Error(`[checkpoint] ${p} is not a selfsup checkpoint`);
  return json;
}

/**
 * Loads dir's checkpoint into model (strictly: any missing, unexpected or mis-shaped key is an error that
 * changes nothing) and opt. Returns the saved train state, or null when dir has no checkpoint.
 */
export function loadCheckpoint(dir: string, model: Module, opt: Optimizable | null): TrainState | null {
  const json = readCheckpointJson(dir);
  if (json === null) return null;
  if (json.method !== model.constructor.name) {
    throw new Error(`[checkpoint] ${dir} holds a ${json.method} checkpoint, not ${model.constructor.name}`);
  }
  const { tensors } = readSafetensors(join(dir, json.weights), { device: 'reference' });
  const sd = new Map<string, Tensor>();
  const optTensors: Record<string, Float32Array | Float64Array> = {};
  for (const [k, v] of tensors) {
    if (k.startsWith('model.')) sd.set(k.slice(6), v);
    else if (k.startsWith('optimizer.')) optTensors[k.slice(10)] = v.data as Float32Array | Float64Array;
  }
  try {
    model.loadStateDict(sd, { strict: true });
    if (opt !== null && json.optimizer !== null) opt.loadStateDict({ meta: json.optimizer, tensors: optTensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return json.state;
}

/**
 * Loads only the model weights of a checkpoint folder or a .safetensors file (for evaluation commands). Every key
 * must match except `optional` ones (a method's checkpointExtras, such as MoCo's queue), which may be absent.
 */
export function loadModelWeights(path: string, model: Module, optional: readonly string[] = []): void {
  let file = path;
  if (existsSync(join(path, STATE_FILE))) file = join(path, readCheckpointJson(path)!.weights);
  const { tensors } = readSafetensors(file, { device: 'reference' });
  const sd = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith('model.')) sd.set(k.slice(6), v); else if (!k.startsWith('optimizer.')) sd.set(k, v);
  try {
    // an absent optional key keeps the model's own value (loading a tensor onto itself copies nothing)
    const own = model.stateDict();
    for (const k of optional) if (!sd.has(k) && own.has(k)) sd.set(k, own.get(k)!);
    model.loadStateDict(sd, { strict: true });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
