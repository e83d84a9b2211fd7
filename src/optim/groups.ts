// Parameter groups built from named parameters: no weight decay for biases and norm gains (timm's add_weight_decay,
// used by MAE pre-training) and BEiT/MAE layer-wise lr decay (MAE util/lr_decay.py param_groups_lrd, fine-tuning).
import type { Tensor } from '../tensor/index.js';
import type { BasicGroupInit } from './optimizer.js';

export type NamedParameters = ReadonlyArray<readonly [string, Tensor]>;

/** A group the helpers produce: accepted by every optimizer. */
export interface DecayGroup extends BasicGroupInit {
  weightDecay: number;
}

/**
 * Two groups, [noDecay, decay]: 1-D parameters, names ending in `.bias` and names in skipList get weight decay 0
 * (timm 0.3.2 optim_factory.add_weight_decay). Frozen parameters (requiresGrad false) are left out.
 */
export function weightDecayGroups(named: NamedParameters, weightDecay: number, skipList: readonly string[] = []): [DecayGroup, DecayGroup] {
  const skip = new Set(skipList);
  const noDecay: Tensor[] = [];
  const decay: Tensor[] = [];
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    if (p.ndim === 1 || name.endsWith('.bias') || skip.has(name)) noDecay.push(p);
    else decay.push(p);
  }
  return [{ name: 'no_decay', params: noDecay, weightDecay: 0 }, { name: 'decay', params: decay, weightDecay }];
}

/**
 * A ViT parameter's layer id (BEiT's rule via MAE): cls_token, pos_embed and patch_embed.* are layer 0,
 * blocks.<i>.* is layer i + 1, everything else (norms, head) is numLayers = depth + 1.
 */
export function vitLayerId(name: string, numLayers: number): number {
  if (name === 'cls_token' || name === 'pos_embed') return 0;
  if (name.startsWith('patch_embed')) return 0;
  if (name.startsWith('blocks')) {
    const i = Number.parseInt(name.split('.')[1] ?? '', 10);
    if (!Number.isInteger(i)) throw new Error(`[layerDecayGroups] cannot read a block index from '${name}'`);
    return i + 1;
  }
  return numLayers;
}

export interface LayerDecayOptions {
  /** number of transformer blocks (len(model.blocks)); MAE's num_layers is depth + 1 */
  depth: number;
  weightDecay?: number;
  /** names that get no weight decay besides 1-D parameters (the model's no_weight_decay(): pos_embed, cls_token) */
  noWeightDecayList?: readonly string[];
  layerDecay?: number;
}

/**
 * MAE's param_groups_lrd: one group per (layer id, decay or not), in order of first appearance, each with
 * lrScale = layerDecay ** (numLayers - layerId) for the schedule to multiply into the lr.
 */
export function layerDecayGroups(named: NamedParameters, opts: LayerDecayOptions): (DecayGroup & { name: string; lrScale: number })[] {
  const weightDecay = opts.weightDecay ?? 0.05;
  const layerDecay = opts.layerDecay ?? 0.75;
  const skip = new Set(opts.noWeightDecayList ?? []);
  const numLayers = opts.depth + 1;
  const groups = new Map<string, DecayGroup & { name: string; lrScale: number }>();
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    const noDecay = p.ndim === 1 || skip.has(name);
    const layerId = vitLayerId(name, numLayers);
    if (layerId > numLayers) throw new Error(`[layerDecayGroups] '${name}' is in block ${layerId - 1}, but depth is ${opts.depth}`);
    const key = `layer_${layerId}_${noDecay ? 'no_decay' : 'decay'}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { name: key, params: [], weightDecay: noDecay ? 0 : weightDecay, lrScale: layerDecay ** (numLayers - layerId) };
      groups.set(key, g);
    }
    g.params.push(p);
  }
  return [...groups.values()];
}
