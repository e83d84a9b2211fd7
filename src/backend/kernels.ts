// The kernel signatures, written once. Four glue layers restate them by position: the Backend interface
// (src/backend/backend.ts), the native backend's forwarding (src/backend/native.ts), the addon's argument unpacking
// (native/binding.cc) and the C++ entry points (native/kernels.h); test/backend/signatures.test.ts checks each of
// them against this table, name by name and position by position. A new kernel starts here.

export interface KernelSignature {
  /** name in Backend, native.ts and the addon's exports */
  readonly name: string;
  /** the C++ entry point in native/kernels.h (null: the binding does the work itself, e.g. alloc) */
  readonly cpp: string | null;
  /** arguments in order: outputs, then saved state, then inputs and weights, then sizes (STYLE.md, llm.c) */
  readonly args: readonly string[];
  /** trailing arguments of the addon and the C++ kernel only: the blocked-layout flags (BlockedKernels) */
  readonly flags?: readonly string[];
  /** the buffers are lists, one per tensor of a parameter group (the optimizer steps) */
  readonly lists?: boolean;
  /** C++ parameter names, where they differ from args */
  readonly cppArgs?: readonly string[];
}

const BN_FORWARD = ['out', 'mean', 'invstd', 'x', 'gamma', 'beta', 'N', 'C', 'HW', 'eps'];
const BN_INFERENCE = ['out', 'x', 'mean', 'variance', 'gamma', 'beta', 'N', 'C', 'HW', 'eps'];
const BN_BACKWARD = ['gx', 'ggamma', 'gbeta', 'gy', 'x', 'mean', 'invstd', 'gamma', 'N', 'C', 'HW'];
const BN_RELU_FORWARD = ['out', 'mean', 'invstd', 'x', 'residual', 'gamma', 'beta', 'N', 'C', 'HW', 'eps'];
const BN_RELU_BACKWARD = ['gx', 'gresidual', 'ggamma', 'gbeta', 'gy', 'y', 'x', 'mean', 'invstd', 'gamma', 'N', 'C', 'HW'];

export const KERNELS: readonly KernelSignature[] = [
  // ---- memory
  { name: 'alloc', cpp: null, args: ['dtype', 'size', 'zero'] },
  { name: 'free', cpp: null, args: ['data'] },
  // ---- elementwise.cc
  { name: 'fill', cpp: 'fill', args: ['out', 'value'] },
  { name: 'cast', cpp: 'cast', args: ['out', 'x'] },
  { name: 'unary', cpp: 'unary', args: ['op', 'out', 'x', 'p0', 'p1'] },
  { name: 'unaryGrad', cpp: 'unary_grad', args: ['op', 'gx', 'gy', 'x', 'y'] },
  { name: 'binary', cpp: 'binary', args: ['op', 'out', 'a', 'b', 'shape', 'aStrides', 'bStrides'] },
  { name: 'where', cpp: 'where', args: ['out', 'cond', 'a', 'b', 'shape', 'condStrides', 'aStrides', 'bStrides'] },
  { name: 'reduce', cpp: 'reduce', args: ['op', 'out', 'x', 'outer', 'r', 'inner'] },
  { name: 'argReduce', cpp: 'arg_reduce', args: ['op', 'out', 'x', 'outer', 'r', 'inner'], cppArgs: ['isMax', 'out', 'x', 'outer', 'r', 'inner'] },
  { name: 'strided', cpp: 'strided', args: ['out', 'outOffset', 'outStrides', 'x', 'xOffset', 'xStrides', 'shape', 'accumulate'] },
  { name: 'gather', cpp: 'gather', args: ['out', 'x', 'idx', 'outer', 'dim', 'inner', 'idxDim'] },
  { name: 'scatterAdd', cpp: 'scatter_add', args: ['out', 'idx', 'src', 'outer', 'dim', 'inner', 'idxDim'] },
  { name: 'indexSelect', cpp: 'index_select', args: ['out', 'x', 'idx', 'outer', 'dim', 'inner', 'n'] },
  { name: 'indexAdd', cpp: 'index_add', args: ['out', 'idx', 'src', 'outer', 'dim', 'inner', 'n'] },
  // ---- matmul.cc
  { name: 'matmul', cpp: 'matmul_forward', args: ['out', 'a', 'b', 'bias', 'batch', 'M', 'N', 'K', 'transA', 'transB', 'aBatchStride', 'bBatchStride'] },
  { name: 'linearBackward', cpp: 'linear_backward', args: ['gx', 'gw', 'gb', 'gy', 'x', 'w', 'rows', 'I', 'O'] },
  // fused transformer MLP (T.mlp): fc1 + exact GELU saving GELU's derivative; fc2's backward scales gx by it
  { name: 'linearGelu', cpp: 'linear_gelu_forward', args: ['out', 'deriv', 'x', 'w', 'bias', 'rows', 'I', 'O'] },
  { name: 'linearBackwardScaled', cpp: 'linear_backward_scaled', args: ['gx', 'gw', 'gb', 'gxScale', 'gy', 'x', 'w', 'rows', 'I', 'O'] },
  // a Linear plus a residual, the sum fused into the matmul (optional on a backend; used in bf16 precision)
  { name: 'linearAdd', cpp: 'linear_add_forward', args: ['out', 'x', 'residual', 'w', 'bias', 'rows', 'I', 'O'] },
  // the same MLP in bf16 precision (optional on a backend): hidden and deriv in bf16 storage (Uint8Array, 2 bytes each)
  { name: 'mlpForwardBf16', cpp: 'mlp_forward_bf16', args: ['out', 'hidden', 'deriv', 'x', 'residual', 'w1', 'b1', 'w2', 'b2', 'rows', 'I', 'Hd', 'O'] },
  { name: 'mlpBackwardBf16', cpp: 'mlp_backward_bf16',
    args: ['gx', 'gw1', 'gb1', 'gw2', 'gb2', 'gy', 'hidden', 'deriv', 'x', 'w1', 'w2', 'rows', 'I', 'Hd', 'O'] },
  // ---- conv.cc (p: ConvParams)
  // the C++ kernels take the layout flags too; batch norm's binding picks the _blocked kernel instead
  { name: 'conv2d', cpp: 'conv2d_forward', args: ['out', 'x', 'w', 'bias', 'p'], flags: ['xBlocked', 'outMayBlock'],
    cppArgs: ['out', 'x', 'w', 'bias', 'p', 'xBlocked', 'outMayBlock'] },
  { name: 'conv2dBackwardData', cpp: 'conv2d_backward_data', args: ['gx', 'gy', 'w', 'p'], flags: ['gyBlocked', 'gxMayBlock'],
    cppArgs: ['gx', 'gy', 'w', 'p', 'gyBlocked', 'gxMayBlock'] },
  { name: 'conv2dBackwardWeight', cpp: 'conv2d_backward_weight', args: ['gw', 'gb', 'gy', 'x', 'p'], flags: ['gyBlocked', 'xBlocked'],
    cppArgs: ['gw', 'gb', 'gy', 'x', 'p', 'gyBlocked', 'xBlocked'] },
  // ---- norm.cc
  { name: 'batchNormForward', cpp: 'batchnorm_forward', args: BN_FORWARD, flags: ['blocked'] },
  { name: 'batchNormInference', cpp: 'batchnorm_inference', args: BN_INFERENCE, flags: ['blocked'] },
  { name: 'batchNormBackward', cpp: 'batchnorm_backward', args: BN_BACKWARD, flags: ['blocked'] },
  // fused: out = relu(bn(x) + residual), residual nullable; the backward masks gy by y > 0 (no workspace)
  { name: 'batchNormReluForward', cpp: 'batchnorm_relu_forward', args: BN_RELU_FORWARD, flags: ['blocked'] },
  { name: 'batchNormReluBackward', cpp: 'batchnorm_relu_backward', args: BN_RELU_BACKWARD, flags: ['blocked'] },
  { name: 'layerNormForward', cpp: 'layernorm_forward', args: ['out', 'mean', 'rstd', 'x', 'gamma', 'beta', 'rows', 'D', 'eps'] },
  { name: 'layerNormBackward', cpp: 'layernorm_backward', args: ['gx', 'ggamma', 'gbeta', 'gy', 'x', 'mean', 'rstd', 'gamma', 'rows', 'D'] },
  // ---- softmax.cc
  { name: 'softmax', cpp: 'softmax_forward', args: ['out', 'x', 'rows', 'D', 'log'] },
  { name: 'softmaxBackward', cpp: 'softmax_backward', args: ['gx', 'gy', 'y', 'rows', 'D', 'log'] },
  // ---- attention.cc
  { name: 'attentionForward', cpp: 'attention_forward', args: ['out', 'probs', 'qkv', 'B', 'N', 'H', 'hd', 'scale'] },
  { name: 'attentionBackward', cpp: 'attention_backward', args: ['gqkv', 'gout', 'qkv', 'probs', 'B', 'N', 'H', 'hd', 'scale'] },
  // ---- optimizers (optional on a backend: the optimizers fall back to ops); lists of one tensor group, and the C++
  // kernels take the list length n after the lists
  { name: 'sgdStep', lists: true, cpp: 'sgd_step', args: ['w', 'g', 'b', 'first', 'lr', 'momentum', 'dampening', 'weightDecay', 'nesterov'],
    cppArgs: ['w', 'g', 'b', 'first', 'n', 'lr', 'momentum', 'dampening', 'wd', 'nesterov'] },
  { name: 'adamwStep', lists: true, cpp: 'adamw_step', args: ['w', 'g', 'expAvg', 'expAvgSq', 'stepSize', 'bc2Sqrt', 'decay', 'beta1', 'beta2', 'eps'],
    cppArgs: ['w', 'g', 'm1', 'm2', 'stepSize', 'bc2Sqrt', 'n', 'decay', 'beta1', 'beta2', 'eps'] },
  { name: 'emaUpdate', lists: true, cpp: 'ema_update', args: ['targets', 'sources', 'momentum'], cppArgs: ['k', 'q', 'n', 'momentum'] },
  { name: 'larsStep', lists: true, cpp: 'lars_step', args: ['w', 'g', 'mu', 'adapt', 'lr', 'momentum', 'weightDecay', 'trustCoefficient'],
    cppArgs: ['w', 'g', 'mu', 'adapt', 'n', 'lr', 'momentum', 'wd', 'trust'] },
  // ---- pool.cc (p: PoolParams)
  { name: 'maxPool2d', cpp: 'maxpool2d_forward', args: ['out', 'indices', 'x', 'p'] },
  { name: 'maxPool2dBackward', cpp: 'maxpool2d_backward', args: ['gx', 'gy', 'indices', 'p'] },
  { name: 'avgPool2d', cpp: 'avgpool2d_forward', args: ['out', 'x', 'p'] },
  { name: 'avgPool2dBackward', cpp: 'avgpool2d_backward', args: ['gx', 'gy', 'p'] },
];
