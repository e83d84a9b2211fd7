// ONNX export of a pretrained encoder in inference form (the ResNet backbone of MoCo/SimSiam, no projection heads;
// MAE's ViT encoder reading the normed cls token), and a small ONNX interpreter on the reference backend that
// checks an export when onnxruntime is not installed.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Identity, LayerNorm, Linear, MaxPool2d, Sequential } from '../nn/layers.js';
import { Block } from '../nn/transformer.js';
import { BasicBlock, Bottleneck, ResNet } from '../models/resnet.js';
import { VisionTransformer } from '../models/vit.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../io/onnx.js';
import type { OnProgress } from '../io/progress.js';
import type { Pretrained } from './pretrained.js';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const INPUT_NAME = 'images';
export const OUTPUT_NAME = 'features';

/** Nodes and initializers in topological order; a node's output is named after the module that computes it. */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private readonly used = new Set<string>();

  /** A float32 initializer holding t's values (copied), named by its state-dict key. */
  weight(name: string, t: Tensor): string {
    return this.constant(name, [...t.shape], t.data);
  }
  constant(name: string, dims: number[], values: ArrayLike<number>): string {
    const unique = this.fresh(name); // initializers and node outputs share one namespace
    this.initializers.push({ name: unique, dims, dataType: 'float32', data: Float32Array.from(values) });
    return unique;
  }
  /** an int64 initializer (shapes, axes, pads, indices) */
  int64(name: string, dims: number[], values: number[]): string {
    const unique = this.fresh(name);
    this.initializers.push({ name: unique, dims, dataType: 'int64', data: values });
    return unique;
  }
  private fresh(name: string): string {
    let out = name;
    for (let i = 1; this.used.has(out); i++) out = `${name}_${i}`;
    this.used.add(out);
    return out;
  }
  op(opType: string, inputs: string[], name: string, attributes: Record<string, OnnxAttribute> = {}): string {
    return this.opN(opType, inputs, name, 1, attributes)[0]!;
  }
  opN(opType: string, inputs: string[], name: string, outputs: number, attributes: Record<string, OnnxAttribute> = {}): string[] {
    const node = this.fresh(name);
    const outs = outputs === 1 ? [node] : Array.from({ length: outputs }, (_, i) => this.fresh(`${node}:${i}`));
    this.nodes.push({ opType, inputs, outputs: outs, name: node, attributes });
    return outs;
  }
}

function conv(g: GraphBuilder, prefix: string, c: Conv2d, x: string): string {
  const inputs = [x, g.weight(`${prefix}.weight`, c.weight)];
  if (c.bias !== null) inputs.push(g.weight(`${prefix}.bias`, c.bias));
  const p = c.padding;
  return g.op('Conv', inputs, prefix, {
    kernel_shape: [c.kernelSize, c.kernelSize], strides: [c.stride, c.stride], pads: [p, p, p, p],
    dilations: [c.dilation, c.dilation], group: c.groups,
  });
}

/** BatchNorm2d in eval mode: the running statistics (ONNX BatchNormalization, training_mode 0). */
function batchNorm(g: GraphBuilder, prefix: string, bn: BatchNorm2d, x: string): string {
  if (bn.runningMean === null || bn.runningVar === null) {
    throw new Error(`[export] ${prefix} keeps no running statistics (track_running_stats=False), so its eval output depends on the batch`);
  }
  const C = bn.numFeatures;
  const scale = bn.weight !== null ? g.weight(`${prefix}.weight`, bn.weight) : g.constant(`${prefix}.weight`, [C], new Float32Array(C).fill(1));
  const bias = bn.bias !== null ? g.weight(`${prefix}.bias`, bn.bias) : g.constant(`${prefix}.bias`, [C], new Float32Array(C));
  return g.op('BatchNormalization', [x, scale, bias, g.weight(`${prefix}.running_mean`, bn.runningMean), g.weight(`${prefix}.running_var`, bn.runningVar)],
    prefix, { epsilon: { float: bn.eps } });
}

function convBn(g: GraphBuilder, block: Module, prefix: string, convName: string, bnName: string, x: string): string {
  const p = prefix === '' ? '' : `${prefix}.`;
  return batchNorm(g, `${p}${bnName}`, block.child<BatchNorm2d>(bnName), conv(g, `${p}${convName}`, block.child<Conv2d>(convName), x));
}

function residualBlock(g: GraphBuilder, prefix: string, b: BasicBlock | Bottleneck, x: string): string {
  let out: string;
  if (b instanceof BasicBlock) {
    out = g.op('Relu', [convBn(g, b, prefix, 'conv1', 'bn1', x)], `${prefix}.relu1`);
    out = convBn(g, b, prefix, 'conv2', 'bn2', out);
  } else {
    out = g.op('Relu', [convBn(g, b, prefix, 'conv1', 'bn1', x)], `${prefix}.relu1`);
    out = g.op('Relu', [convBn(g, b, prefix, 'conv2', 'bn2', out)], `${prefix}.relu2`);
    out = convBn(g, b, prefix, 'conv3', 'bn3', out);
  }
  const ds = b.childOrNull<Sequential>('downsample');
  let identity = x;
  if (ds !== null) {
    const [c, bn] = [ds.at(0), ds.at(1)];
    if (!(c instanceof Conv2d) || !(bn instanceof BatchNorm2d) || ds.length !== 2) {
      throw new Error(`[export] ${prefix}.downsample is not conv1x1 + BatchNorm2d`);
    }
    identity = batchNorm(g, `${prefix}.downsample.1`, bn, conv(g, `${prefix}.downsample.0`, c, x));
  }
  return g.op('Relu', [g.op('Add', [out, identity], `${prefix}.add`)], `${prefix}.relu`);
}

/** ResNet.forwardFeatures: stem, four stages, global average pool, flatten -> [N, numFeatures]. */
function resnetGraph(g: GraphBuilder, net: ResNet, x: string): string {
  let y = g.op('Relu', [convBn(g, net, '', 'conv1', 'bn1', x)], 'relu'); // [N, w0, H', W']
  const pool = net.child('maxpool');
  if (pool instanceof MaxPool2d) {
    const { kernelSize: k, stride: s, padding: p } = pool;
    y = g.op('MaxPool', [y], 'maxpool', { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] });
  } else if (!(pool instanceof Identity)) {
    throw new Error(`[export] unexpected ResNet maxpool ${pool.constructor.name}`);
  }
  for (let s = 1; s <= 4; s++) {
    const stage = net.child<Sequential>(`layer${s}`);
    for (let i = 0; i < stage.length; i++) {
      const b = stage.at(i);
      if (!(b instanceof BasicBlock) && !(b instanceof Bottleneck)) throw new Error(`[export] layer${s}.${i} is a ${b.constructor.name}, not a ResNet block`);
      y = residualBlock(g, `layer${s}.${i}`, b, y); // [N, C_s, h, w]
    }
  }
  y = g.op('GlobalAveragePool', [y], 'avgpool'); // [N, numFeatures, 1, 1]
  return g.op('Flatten', [y], OUTPUT_NAME, { axis: 1 }); // [N, numFeatures]
}

/** x @ W^T + b for a Linear on [.., in] (the weight stays as stored, [out, in], behind a Transpose). */
function linear(g: GraphBuilder, prefix: string, l: Linear, x: string): string {
  const wT = g.op('Transpose', [g.weight(`${prefix}.weight`, l.weight)], `${prefix}.weight_t`, { perm: [1, 0] }); // [in, out]
  const y = g.op('MatMul', [x, wT], `${prefix}.matmul`); // [.., out]
  return l.bias === null ? y : g.op('Add', [y, g.weight(`${prefix}.bias`, l.bias)], prefix);
}

function layerNorm(g: GraphBuilder, prefix: string, ln: LayerNorm, x: string): string {
  const D = ln.normalizedShape;
  const scale = ln.weight !== null ? g.weight(`${prefix}.weight`, ln.weight) : g.constant(`${prefix}.weight`, [D], new Float32Array(D).fill(1));
  const bias = ln.bias !== null ? g.weight(`${prefix}.bias`, ln.bias) : g.constant(`${prefix}.bias`, [D], new Float32Array(D));
  return g.op('LayerNormalization', [x, scale, bias], prefix, { axis: -1, epsilon: { float: ln.eps } });
}

/** timm's Block in eval mode (drop path and dropout are identities). */
function transformerBlock(g: GraphBuilder, prefix: string, b: Block, x: string, numHeads: number): string {
  const D = b.dim;
  const H = numHeads;
  const hd = D / H;
  // attention
  let h = layerNorm(g, `${prefix}.norm1`, b.norm1, x); // [B, N, D]
  const qkv = linear(g, `${prefix}.attn.qkv`, b.attn.qkv, h); // [B, N, 3D]
  const heads = g.op('Reshape', [qkv, g.int64(`${prefix}.attn.qkv_shape`, [5], [0, 0, 3, H, hd])], `${prefix}.attn.qkv_heads`); // [B, N, 3, H, hd]
  const perm = g.op('Transpose', [heads], `${prefix}.attn.qkv_perm`, { perm: [2, 0, 3, 1, 4] }); // [3, B, H, N, hd]
  const axis0 = g.int64(`${prefix}.attn.axis0`, [1], [0]);
  const [q, k, v] = g.opN('Split', [perm], `${prefix}.attn.split`, 3, { axis: 0 })
    .map((t, i) => g.op('Squeeze', [t, axis0], `${prefix}.attn.${'qkv'[i]!}`)) as [string, string, string]; // [B, H, N, hd]
  const kT = g.op('Transpose', [k], `${prefix}.attn.k_t`, { perm: [0, 1, 3, 2] }); // [B, H, hd, N]
  const logits = g.op('Mul', [g.op('MatMul', [q, kT], `${prefix}.attn.qk`), g.constant(`${prefix}.attn.scale`, [], [b.attn.scale])], `${prefix}.attn.logits`); // [B, H, N, N]
  const attn = g.op('Softmax', [logits], `${prefix}.attn.softmax`, { axis: -1 });
  const o = g.op('Transpose', [g.op('MatMul', [attn, v], `${prefix}.attn.av`)], `${prefix}.attn.o_perm`, { perm: [0, 2, 1, 3] }); // [B, N, H, hd]
  const merged = g.op('Reshape', [o, g.int64(`${prefix}.attn.merge_shape`, [3], [0, 0, D])], `${prefix}.attn.merge`); // [B, N, D]
  h = g.op('Add', [x, linear(g, `${prefix}.attn.proj`, b.attn.proj, merged)], `${prefix}.add1`); // [B, N, D]
  // MLP with the exact GELU: 0.5 x (1 + erf(x / sqrt 2))
  const f1 = linear(g, `${prefix}.mlp.fc1`, b.mlp.fc1, layerNorm(g, `${prefix}.norm2`, b.norm2, h)); // [B, N, hidden]
  const erf = g.op('Erf', [g.op('Div', [f1, g.constant(`${prefix}.mlp.sqrt2`, [], [Math.SQRT2])], `${prefix}.mlp.gelu_div`)], `${prefix}.mlp.gelu_erf`);
  const gate = g.op('Add', [erf, g.constant(`${prefix}.mlp.one`, [], [1])], `${prefix}.mlp.gelu_add`);
  const gelu = g.op('Mul', [g.op('Mul', [f1, gate], `${prefix}.mlp.gelu_mul`), g.constant(`${prefix}.mlp.half`, [], [0.5])], `${prefix}.mlp.act`);
  return g.op('Add', [h, linear(g, `${prefix}.mlp.fc2`, b.mlp.fc2, gelu)], `${prefix}.add2`); // [B, N, D]
}

/** VisionTransformer.forwardFeatures with cls-token pooling: the normed cls token, [N, D]. */
function vitGraph(g: GraphBuilder, vit: VisionTransformer, x: string): string {
  const c = vit.config;
  if (c.globalPool) throw new Error('[export] global-pool ViTs are not exported (the run\'s encoder reads the cls token)');
  const pe = vit.patchEmbed;
  const D = c.embedDim;
  const L = pe.numPatches;
  let y = conv(g, 'patch_embed.proj', pe.proj, x); // [N, D, h, w]
  y = g.op('Reshape', [y, g.int64('patch_embed.shape', [3], [0, D, L])], 'patch_embed.flatten'); // [N, D, L]
  y = g.op('Transpose', [y], 'patch_embed', { perm: [0, 2, 1] }); // [N, L, D]
  // concat(cls, tokens) + pos_embed == pad(tokens, one zero row in front) + (pos_embed with cls added to row 0): the
  // same float32 sums, without a batch-sized Expand of the cls token
  y = g.op('Pad', [y, g.int64('cls_pad.pads', [6], [0, 1, 0, 0, 0, 0])], 'cls_pad'); // [N, 1+L, D]
  const pos = Float32Array.from(vit.posEmbed.data); // [1, 1+L, D]
  const cls = vit.clsToken.data; // [1, 1, D]
  for (let d = 0; d < D; d++) pos[d] = Math.fround(cls[d]! + pos[d]!);
  y = g.op('Add', [y, g.constant('pos_embed_plus_cls_token', [1, L + 1, D], pos)], 'embed'); // [N, 1+L, D]
  const blocks = vit.blocks;
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks.at(i);
    if (!(b instanceof Block)) throw new Error(`[export] blocks.${i} is a ${b.constructor.name}, not a transformer Block`);
    y = transformerBlock(g, `blocks.${i}`, b, y, c.numHeads); // [N, 1+L, D]
  }
  y = g.op('Gather', [y, g.int64('cls.index', [], [0])], 'cls', { axis: 1 }); // [N, D]
  return g.op('Identity', [layerNorm(g, 'norm', vit.norm, y)], OUTPUT_NAME); // [N, D]
}

export interface ExportedEncoder {
  onnx: OnnxModel;
  /** our forward of the same encoder (eval mode), the export's reference */
  features: (x: Tensor) => Tensor;
  numFeatures: number;
  inChans: number;
  imgSize: number;
  /** 'resnet18-cifar encoder of simsiam' */
  description: string;
  /** frees what the export built (not p.model) */
  dispose: () => void;
}

/** The encoder of a run as an ONNX graph: images [N, C, imgSize, imgSize] -> features [N, numFeatures]. */
export function exportEncoder(p: Pretrained, o: { imgSize?: number } = {}): ExportedEncoder {
  const fb = p.model.frozenBackbone();
  const net = fb.module;
  let imgSize = o.imgSize ?? p.cfg.imgSize;
  let inChans: number;
  const g = new GraphBuilder();
  try {
    if (net instanceof ResNet) {
      inChans = net.config.inChans;
      T.noGrad(() => resnetGraph(g, net, INPUT_NAME));
    } else if (net instanceof VisionTransformer) {
      if (o.imgSize !== undefined && o.imgSize !== net.config.imgSize) {
        throw new Error(`[export] a ViT takes ${net.config.imgSize} px images (its position embeddings are fixed); --img-size ${o.imgSize} does not fit`);
      }
      imgSize = net.config.imgSize;
      inChans = net.config.inChans;
      T.noGrad(() => vitGraph(g, net, INPUT_NAME));
    } else {
      throw new Error(`[export] the encoder of ${p.dir} is a ${net.constructor.name}, neither a ResNet nor a ViT`);
    }
  } catch (e) {
    if (fb.owned) fb.module.dispose();
    throw e;
  }
  const onnx: OnnxModel = {
    producerName: 'selfsup', irVersion: ONNX_IR_VERSION, opsetVersion: ONNX_OPSET,
    graph: {
      name: `${p.cfg.method}_${p.cfg.arch}_encoder`, nodes: g.nodes, initializers: g.initializers,
      inputs: [{ name: INPUT_NAME, shape: ['N', inChans, imgSize, imgSize] }],
      outputs: [{ name: OUTPUT_NAME, shape: ['N', fb.dim] }],
    },
  };
  return {
    onnx, features: fb.features, numFeatures: fb.dim, inChans, imgSize,
    description: `${p.cfg.arch} encoder of ${p.cfg.method}`, dispose: () => { if (fb.owned) fb.module.dispose(); },
  };
}

// ---- a reference interpreter for the ops the exporter writes ----

function attrInts(n: OnnxNode, k: string, dflt: number[]): number[] {
  const a = n.attributes[k];
  if (a === undefined) return dflt;
  if (!Array.isArray(a)) throw new Error(`[onnx-run] ${n.name}: attribute ${k} is not INTS`);
  return a;
}
function attrInt(n: OnnxNode, k: string, dflt: number): number {
  const a = n.attributes[k];
  if (a === undefined) return dflt;
  if (typeof a !== 'number') throw new Error(`[onnx-run] ${n.name}: attribute ${k} is not INT`);
  return a;
}
function attrFloat(n: OnnxNode, k: string, dflt: number): number {
  const a = n.attributes[k];
  if (a === undefined) return dflt;
  if (typeof a === 'number' || Array.isArray(a)) throw new Error(`[onnx-run] ${n.name}: attribute ${k} is not FLOAT`);
  return a.float;
}
/** one number for a square kernel's per-axis values (our ops take square, symmetric parameters) */
function uniform(n: OnnxNode, k: string, v: number[]): number {
  if (v.some((x) => x !== v[0])) throw new Error(`[onnx-run] ${n.name}: ${k}=[${v.join(', ')}] is not uniform; the reference interpreter needs square, symmetric ones`);
  return v[0]!;
}

/**
 * Runs a decoded ONNX graph (the ops the exporter writes) with our ops on `device` (default the float64 reference
 * backend): an oracle for the export that reads only the file, not the module that wrote it.
 */
export function runOnnxReference(m: OnnxModel, inputs: ReadonlyMap<string, Tensor>,
  o: { device?: 'reference' | 'native'; dtype?: 'float32' | 'float64'; onProgress?: OnProgress } = {}): Map<string, Tensor> {
  const device = o.device ?? 'reference';
  const dtype = o.dtype ?? 'float64';
  const env = new Map<string, Tensor>();
  const owned: Tensor[] = [];
  const own = (t: Tensor): Tensor => { owned.push(t); return t; };
  const int64 = new Map<string, number[]>(); // shapes, axes, pads, indices: constants only, kept as numbers
  for (const t of m.graph.initializers) {
    if (t.dataType === 'int64') int64.set(t.name, [...t.data]);
    else env.set(t.name, own(T.tensor(t.data, t.dims, { device, dtype })));
  }
  const ints = (n: OnnxNode, i: number): number[] => {
    const v = int64.get(n.inputs[i] ?? '');
    if (v === undefined) throw new Error(`[onnx-run] ${n.name}: input ${i} ('${n.inputs[i] ?? ''}') must be an int64 initializer`);
    return v;
  };
  const axis = (a: number, rank: number): number => (a < 0 ? a + rank : a);
  for (const [k, v] of inputs) env.set(k, own(T.to(v, device, dtype)));
  const get = (n: OnnxNode, i: number): Tensor => {
    const name = n.inputs[i];
    const t = name === undefined ? undefined : env.get(name);
    if (t === undefined) throw new Error(`[onnx-run] ${n.name}: input ${i} ('${name ?? ''}') is not defined before use`);
    return t;
  };
  try {
    T.noGrad(() => {
      let done = 0;
      for (const n of m.graph.nodes) {
        o.onProgress?.('check: reference interpreter (float64), ONNX nodes', done++, m.graph.nodes.length);
        let y: Tensor;
        switch (n.opType) {
          case 'Conv': {
            const w = get(n, 1);
            const ks = attrInts(n, 'kernel_shape', w.shape.slice(2));
            if (ks[0] !== w.shape[2] || ks[1] !== w.shape[3]) throw new Error(`[onnx-run] ${n.name}: kernel_shape [${ks.join(', ')}] does not match the weight [${w.shape.join(', ')}]`);
            y = T.conv2d(get(n, 0), w, n.inputs.length > 2 ? get(n, 2) : null, {
              stride: uniform(n, 'strides', attrInts(n, 'strides', [1, 1])), padding: uniform(n, 'pads', attrInts(n, 'pads', [0, 0, 0, 0])),
              dilation: uniform(n, 'dilations', attrInts(n, 'dilations', [1, 1])), groups: attrInt(n, 'group', 1),
            });
            break;
          }
          case 'BatchNormalization': {
            // y = (x - mean) / sqrt(var + eps) * scale + B, per channel, written out rather than through batchNorm
            const x = get(n, 0);
            const c = (i: number): Tensor => own(T.reshape(get(n, i), [1, x.shape[1]!, ...x.shape.slice(2).map(() => 1)])); // [1, C, 1, 1]
            const rstd = own(T.div(own(T.onesLike(c(4))), own(T.sqrt(own(T.addScalar(c(4), attrFloat(n, 'epsilon', 1e-5)))))));
            y = T.add(own(T.mul(own(T.mul(own(T.sub(x, c(3))), rstd)), c(1))), c(2));
            break;
          }
          case 'Relu': y = T.relu(get(n, 0)); break;
          case 'Add': y = T.add(get(n, 0), get(n, 1)); break;
          case 'MaxPool': {
            const k = uniform(n, 'kernel_shape', attrInts(n, 'kernel_shape', []));
            y = T.maxPool2d(get(n, 0), k, { stride: uniform(n, 'strides', attrInts(n, 'strides', [1, 1])), padding: uniform(n, 'pads', attrInts(n, 'pads', [0, 0, 0, 0])) });
            break;
          }
          case 'GlobalAveragePool': y = T.mean(get(n, 0), [2, 3], true); break;
          case 'Flatten': {
            const x = get(n, 0);
            const axis = attrInt(n, 'axis', 1);
            y = T.reshape(x, [x.shape.slice(0, axis).reduce((a, b) => a * b, 1), x.shape.slice(axis).reduce((a, b) => a * b, 1)]);
            break;
          }
          case 'Identity': y = T.mulScalar(get(n, 0), 1); break;
          case 'Mul': y = T.mul(get(n, 0), get(n, 1)); break;
          case 'Div': y = T.div(get(n, 0), get(n, 1)); break;
          case 'Erf': y = T.erf(get(n, 0)); break;
          case 'Softmax': y = T.softmax(get(n, 0), attrInt(n, 'axis', -1)); break;
          case 'Transpose': {
            const x = get(n, 0);
            y = T.permute(x, attrInts(n, 'perm', x.shape.map((_, i) => x.ndim - 1 - i)));
            break;
          }
          case 'Reshape': {
            const x = get(n, 0);
            y = T.reshape(x, ints(n, 1).map((d, i) => (d === 0 ? x.shape[i]! : d)));
            break;
          }
          case 'Squeeze': {
            const x = get(n, 0);
            const drop = ints(n, 1).map((a) => axis(a, x.ndim));
            y = T.reshape(x, x.shape.filter((_, i) => !drop.includes(i)));
            break;
          }
          case 'Pad': {
            // constant mode with zeros only: concatenate zero blocks before and after each padded axis
            let x = get(n, 0);
            const pads = ints(n, 1);
            if (n.inputs.length > 2 || (n.attributes.mode !== undefined)) throw new Error(`[onnx-run] ${n.name}: only zero constant padding is read`);
            for (let d = 0; d < x.ndim; d++) {
              const [before, after] = [pads[d]!, pads[d + x.ndim]!];
              if (before === 0 && after === 0) continue;
              const zeros = (k: number): Tensor => own(T.zeros(x.shape.map((s, i) => (i === d ? k : s)), { device, dtype }));
              x = own(T.concat([...(before > 0 ? [zeros(before)] : []), x, ...(after > 0 ? [zeros(after)] : [])], d));
            }
            y = T.mulScalar(x, 1);
            break;
          }
          case 'MatMul': {
            const [a, b] = [get(n, 0), get(n, 1)];
            if (b.ndim === 2 && a.ndim > 2) { // [.., K] @ [K, M]
              const a2 = own(T.reshape(a, [a.size / a.shape[a.ndim - 1]!, a.shape[a.ndim - 1]!]));
              y = T.reshape(own(T.matmul(a2, b)), [...a.shape.slice(0, -1), b.shape[1]!]);
            } else {
              y = T.matmul(a, b);
            }
            break;
          }
          case 'LayerNormalization': {
            const x = get(n, 0);
            if (axis(attrInt(n, 'axis', -1), x.ndim) !== x.ndim - 1) throw new Error(`[onnx-run] ${n.name}: only the last axis is normalised here`);
            y = T.layerNorm(x, get(n, 1), n.inputs.length > 2 ? get(n, 2) : null, attrFloat(n, 'epsilon', 1e-5));
            break;
          }
          case 'Split': {
            const x = get(n, 0);
            const a = axis(attrInt(n, 'axis', 0), x.ndim);
            const k = n.outputs.length;
            if (n.inputs.length > 1 || x.shape[a]! % k !== 0) throw new Error(`[onnx-run] ${n.name}: only equal splits are read`);
            const size = x.shape[a]! / k;
            n.outputs.forEach((name, i) => env.set(name, own(T.mulScalar(own(T.slice(x, a, i * size, (i + 1) * size)), 1))));
            continue;
          }
          case 'Gather': {
            const x = get(n, 0);
            const a = axis(attrInt(n, 'axis', 0), x.ndim);
            const idx = ints(n, 1);
            const init = m.graph.initializers.find((t) => t.name === n.inputs[1]);
            if (idx.length !== 1 || init === undefined || init.dims.length !== 0) throw new Error(`[onnx-run] ${n.name}: only a scalar index is read`);
            const i = idx[0]! < 0 ? idx[0]! + x.shape[a]! : idx[0]!;
            y = T.reshape(own(T.slice(x, a, i, i + 1)), x.shape.filter((_, j) => j !== a));
            break;
          }
          default: throw new Error(`[onnx-run] op ${n.opType} (${n.name}) is not implemented by the reference interpreter`);
        }
        env.set(n.outputs[0]!, own(y));
      }
      o.onProgress?.('check: reference interpreter (float64), ONNX nodes', done, m.graph.nodes.length);
    });
    const out = new Map<string, Tensor>();
    for (const v of m.graph.outputs) {
      const t = env.get(v.name);
      if (t === undefined) throw new Error(`[onnx-run] graph output ${v.name} is never computed`);
      out.set(v.name, T.to(t, device, dtype));
    }
    return out;
  } finally {
    for (const t of owned) if (!t.isDisposed) t.dispose();
  }
}
