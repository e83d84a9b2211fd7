// A small ONNX interpreter on our ops (the float64 reference backend by default) for the ops src/eval/export.ts
// writes: an oracle that reads only the exported file, used when onnxruntime is not installed.
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { OnnxModel, OnnxNode } from './onnx.js';
import type { OnProgress } from './progress.js';

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
