// ONNX export of a pretrained encoder in inference form (the ResNet backbone of MoCo/SimSiam, no projection heads;
// MAE's ViT encoder reading the normed cls token). src/io/onnx-run.ts checks an export when onnxruntime is absent.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Identity, LayerNorm, Linear, MaxPool2d, Sequential } from '../nn/layers.js';
import { Block } from '../nn/transformer.js';
import { BasicBlock, Bottleneck, ResNet } from '../models/resnet.js';
import { VisionTransformer } from '../models/vit.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../io/onnx.js';
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
