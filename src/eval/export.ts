// ONNX export of a pretrained encoder (the ResNet backbone of MoCo/SimSiam, no projection heads) in inference form,
// and a small ONNX interpreter on the reference backend that checks an export when onnxruntime is not installed.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Identity, MaxPool2d, Sequential } from '../nn/layers.js';
import { BasicBlock, Bottleneck, ResNet } from '../models/resnet.js';
import { MaskedAutoencoderViT } from '../methods/mae.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../io/onnx.js';
import type { Pretrained } from './pretrained.js';
import { frozenBackbone } from './pretrained.js';

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
    this.initializers.push({ name, dims: [...t.shape], dataType: 'float32', data: Float32Array.from(t.data) });
    return name;
  }
  constant(name: string, dims: number[], values: ArrayLike<number>): string {
    this.initializers.push({ name, dims, dataType: 'float32', data: Float32Array.from(values) });
    return name;
  }
  op(opType: string, inputs: string[], name: string, attributes: Record<string, OnnxAttribute> = {}): string {
    let out = name;
    for (let i = 1; this.used.has(out); i++) out = `${name}_${i}`;
    this.used.add(out);
    this.nodes.push({ opType, inputs, outputs: [out], name: out, attributes });
    return out;
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
  if (p.model instanceof MaskedAutoencoderViT) {
    throw new Error(`[export] ${p.dir} holds an MAE (ViT) checkpoint; ONNX export supports the ResNet encoders of MoCo and SimSiam for now`);
  }
  const fb = frozenBackbone(p);
  const net = fb.backbone;
  if (!(net instanceof ResNet)) throw new Error(`[export] the encoder of ${p.dir} is a ${net.constructor.name}, not a ResNet`);
  const imgSize = o.imgSize ?? p.cfg.imgSize;
  const g = new GraphBuilder();
  T.noGrad(() => resnetGraph(g, net, INPUT_NAME));
  const onnx: OnnxModel = {
    producerName: 'selfsup', irVersion: ONNX_IR_VERSION, opsetVersion: ONNX_OPSET,
    graph: {
      name: `${p.cfg.method}_${p.cfg.arch}_encoder`, nodes: g.nodes, initializers: g.initializers,
      inputs: [{ name: INPUT_NAME, shape: ['N', net.config.inChans, imgSize, imgSize] }],
      outputs: [{ name: OUTPUT_NAME, shape: ['N', fb.dim] }],
    },
  };
  return {
    onnx, features: fb.features, numFeatures: fb.dim, inChans: net.config.inChans, imgSize,
    description: `${p.cfg.arch} encoder of ${p.cfg.method}`, dispose: () => { if (fb.owned) fb.backbone.dispose(); },
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
export function runOnnxReference(m: OnnxModel, inputs: ReadonlyMap<string, Tensor>, o: { device?: 'reference' | 'native'; dtype?: 'float32' | 'float64' } = {}): Map<string, Tensor> {
  const device = o.device ?? 'reference';
  const dtype = o.dtype ?? 'float64';
  const env = new Map<string, Tensor>();
  const owned: Tensor[] = [];
  const own = (t: Tensor): Tensor => { owned.push(t); return t; };
  for (const t of m.graph.initializers) {
    if (t.dataType !== 'float32') throw new Error(`[onnx-run] initializer ${t.name}: only float32 is read`);
    env.set(t.name, own(T.tensor(t.data, t.dims, { device, dtype })));
  }
  for (const [k, v] of inputs) env.set(k, own(T.to(v, device, dtype)));
  const get = (n: OnnxNode, i: number): Tensor => {
    const name = n.inputs[i];
    const t = name === undefined ? undefined : env.get(name);
    if (t === undefined) throw new Error(`[onnx-run] ${n.name}: input ${i} ('${name ?? ''}') is not defined before use`);
    return t;
  };
  try {
    T.noGrad(() => {
      for (const n of m.graph.nodes) {
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
          default: throw new Error(`[onnx-run] op ${n.opType} (${n.name}) is not implemented by the reference interpreter`);
        }
        env.set(n.outputs[0]!, own(y));
      }
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
