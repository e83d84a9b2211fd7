// Chainable Tensor methods (x.add(y).relu().sum()), attached to the prototype so tensor.ts stays free of op imports.
import type { DType, DeviceName } from '../backend/backend.js';
import { backward as runBackward, type BackwardOptions } from './autograd.js';
import * as ops from './ops.js';
import * as comp from './composite.js';
import { Tensor } from './tensor.js';

type Dims = number | readonly number[];

declare module './tensor.js' {
  interface Tensor {
    add(o: Tensor | number): Tensor;
    sub(o: Tensor | number): Tensor;
    mul(o: Tensor | number): Tensor;
    div(o: Tensor | number): Tensor;
    pow(o: Tensor | number): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    abs(): Tensor;
    square(): Tensor;
    relu(): Tensor;
    gelu(): Tensor;
    sigmoid(): Tensor;
    tanh(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    sum(dims?: Dims, keepdim?: boolean): Tensor;
    mean(dims?: Dims, keepdim?: boolean): Tensor;
    var(dims?: Dims, keepdim?: boolean, correction?: number): Tensor;
    max(dims?: Dims, keepdim?: boolean): Tensor;
    min(dims?: Dims, keepdim?: boolean): Tensor;
    argmax(dim: number, keepdim?: boolean): Tensor;
    reshape(shape: readonly number[]): Tensor;
    permute(perm: readonly number[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    slice(dim: number, start: number, end?: number): Tensor;
    matmul(o: Tensor, opts?: ops.MatmulOptions): Tensor;
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;
    detach(): Tensor;
    clone(): Tensor;
    cast(dtype: DType): Tensor;
    to(device: DeviceName, dtype?: DType): Tensor;
    backward(grad?: Tensor, opts?: BackwardOptions): void;
    /** Marks a tensor as a leaf that receives gradients. */
    requiresGrad_(flag?: boolean): Tensor;
  }
}

const backwardOps = { onesLike: ops.onesLike, add: (a: Tensor, b: Tensor) => ops.add(a, b), clone: ops.clone };

const P = Tensor.prototype;
P.add = function (o) { return ops.add(this, o); };
P.sub = function (o) { return ops.sub(this, o); };
P.mul = function (o) { return ops.mul(this, o); };
P.div = function (o) { return ops.div(this, o); };
P.pow = function (o) { return ops.pow(this, o); };
P.neg = function () { return ops.neg(this); };
P.exp = function () { return ops.exp(this); };
P.log = function () { return ops.log(this); };
P.sqrt = function () { return ops.sqrt(this); };
P.abs = function () { return ops.abs(this); };
P.square = function () { return ops.square(this); };
P.relu = function () { return ops.relu(this); };
P.gelu = function () { return ops.gelu(this); };
P.sigmoid = function () { return ops.sigmoid(this); };
P.tanh = function () { return ops.tanh(this); };
P.clamp = function (min, max) { return ops.clamp(this, min, max); };
P.sum = function (dims, keepdim) { return ops.sum(this, dims, keepdim); };
P.mean = function (dims, keepdim) { return comp.mean(this, dims, keepdim); };
P.var = function (dims, keepdim, correction) { return comp.variance(this, dims, keepdim, correction); };
P.max = function (dims, keepdim) { return ops.max(this, dims, keepdim); };
P.min = function (dims, keepdim) { return ops.min(this, dims, keepdim); };
P.argmax = function (dim, keepdim) { return ops.argmax(this, dim, keepdim); };
P.reshape = function (shape) { return ops.reshape(this, shape); };
P.permute = function (perm) { return ops.permute(this, perm); };
P.transpose = function (a, b) { return comp.transpose(this, a, b); };
P.flatten = function (s, e) { return comp.flatten(this, s, e); };
P.unsqueeze = function (d) { return comp.unsqueeze(this, d); };
P.squeeze = function (d) { return comp.squeeze(this, d); };
P.expand = function (shape) { return ops.expand(this, shape); };
P.slice = function (dim, start, end) { return ops.slice(this, dim, start, end); };
P.matmul = function (o, opts) { return ops.matmul(this, o, opts); };
P.softmax = function (dim) { return ops.softmax(this, dim); };
P.logSoftmax = function (dim) { return ops.logSoftmax(this, dim); };
P.detach = function () { return ops.detach(this); };
P.clone = function () { return ops.clone(this); };
P.cast = function (dtype) { return ops.cast(this, dtype); };
P.to = function (device, dtype) { return ops.to(this, device, dtype); };
P.backward = function (grad, opts) { runBackward(this, grad, opts ?? {}, backwardOps); };
P.requiresGrad_ = function (flag = true) {
  if (flag && this.dtype !== 'float32' && this.dtype !== 'float64') {
    throw new Error(`[requiresGrad_] only float tensors can require grad, got ${this.dtype}`);
  }
  this.requiresGrad = flag;
  return this;
};
