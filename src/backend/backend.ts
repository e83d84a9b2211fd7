// The kernel contract every backend implements: raw typed arrays in, raw typed arrays out.
// Tensors, shapes and autograd live above this line (src/tensor); backends know only buffers and sizes.
// Signature order follows llm.c: outputs first, then saved state, then inputs and weights, then sizes; each kernel's
// argument list is written once in kernels.ts, which test/backend/signatures.test.ts holds this file to.

export type DType = 'float32' | 'float64' | 'int32' | 'uint8';
export type FloatArray = Float32Array | Float64Array;
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;
export type DeviceName = 'native' | 'reference';

/** Elementwise ops of one input; p0/p1 are scalar parameters where the op takes them. */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'square' | 'reciprocal'
  | 'relu' | 'gelu' | 'sigmoid' | 'tanh' | 'erf'
  | 'addScalar'   // x + p0
  | 'mulScalar'   // x * p0
  | 'powScalar'   // x ** p0
  | 'rsubScalar'  // p0 - x
  | 'rdivScalar'  // p0 / x
  | 'clamp'       // min(max(x, p0), p1)
  | 'gtScalar';   // x > p0 ? 1 : 0 (same dtype as x)

/** Derivatives of activations: gx = gy * f'(x), with y = f(x) given for ops that use it. */
export type UnaryGradOp = 'relu' | 'gelu' | 'sigmoid' | 'tanh';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  // comparisons write 1/0 into an output of the inputs' dtype or uint8
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export type ReduceOp = 'sum' | 'max' | 'min';

/** conv2d sizes. x [N, C, H, W], w [O, C/groups, KH, KW], y [N, O, OH, OW]. */
export interface ConvParams {
  N: number; C: number; H: number; W: number;
  O: number; KH: number; KW: number; OH: number; OW: number;
  strideH: number; strideW: number; padH: number; padW: number;
  dilationH: number; dilationW: number; groups: number;
}

/** pool2d sizes. x [N, C, H, W], y [N, C, OH, OW]. */
export interface PoolParams {
  N: number; C: number; H: number; W: number; OH: number; OW: number;
  KH: number; KW: number; strideH: number; strideW: number; padH: number; padW: number;
  /** avg pool only: divide by the full window (PyTorch count_include_pad=True) */
  countIncludePad: boolean;
}

/**
 * Native only: kernels that read and write activations in the channel-blocked layout oneDNN's conv prefers on the
 * running CPU (nChw16c with AVX-512, nChw8c with AVX2; channels a multiple of the block),
 * so a ResNet's conv -> batch norm -> ReLU -> conv chain never reorders between layers. A flag per activation says
 * whether it is blocked; the outputs that "may block" are written blocked when the primitive works in that layout,
 * and the conv kernels return whether they were.
 */
/**
 * A blocked activation buffer: f32 values, or bf16 storage (a Uint8Array of 2 bytes a value), as conv leaves a
 * ResNet's activations in bf16 precision (bf16Storage) and batch norm keeps them: every activation argument of the
 * batch norm kernels below is one or the other, all alike.
 */
export type BlockedAct = FloatArray | Uint8Array;

export interface BlockedKernels {
  /** whether conv may leave its outputs blocked now (the native conv layout is 'blocked') */
  enabled(): boolean;
  /**
   * Whether conv writes a blocked output in bf16 storage now: in bf16 precision, as autocast keeps conv outputs in
   * bf16 (half the memory of the activations kept for the backward), unless turned off (setBf16Storage).
   */
  bf16Storage(): boolean;
  /** out = x widened from bf16 storage to f32, in the same layout (x has 2 bytes per value of out). */
  widenBf16(out: Float32Array, x: Uint8Array): void;
  /** Channels per block of the blocked layout in use (16 for nChw16c, 8 for nChw8c; 0 when plain). */
  block(): number;
  /** In place: [N, C, H, W] from NCHW to the blocked layout (toBlocked) or back. */
  relayout(buf: Float32Array, N: number, C: number, H: number, W: number, toBlocked: boolean): void;
  conv2d(out: BlockedAct, x: BlockedAct, w: Float32Array, bias: Float32Array | null, p: ConvParams,
    xBlocked: boolean, outMayBlock: boolean): boolean;
  conv2dBackwardData(gx: Float32Array, gy: Float32Array, w: Float32Array, p: ConvParams, gyBlocked: boolean,
    gxMayBlock: boolean): boolean;
  conv2dBackwardWeight(gw: Float32Array, gb: Float32Array | null, gy: Float32Array, x: BlockedAct, p: ConvParams,
    gyBlocked: boolean, xBlocked: boolean): void;
  /**
   * Batch norm with x, out (gy, gx) all blocked; the signatures of the NCHW kernels of Backend, with the activations
   * (x, out, residual, y) in f32 or all in bf16 storage; statistics and gradients f32.
   */
  batchNormForward(out: BlockedAct, mean: FloatArray, invstd: FloatArray, x: BlockedAct, gamma: FloatArray | null,
    beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void;
  batchNormInference(out: BlockedAct, x: BlockedAct, mean: FloatArray, variance: FloatArray, gamma: FloatArray | null,
    beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void;
  batchNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
    x: BlockedAct, mean: FloatArray, invstd: FloatArray, gamma: FloatArray | null, N: number, C: number,
    HW: number): void;
  batchNormReluForward(out: BlockedAct, mean: FloatArray, invstd: FloatArray, x: BlockedAct,
    residual: BlockedAct | null, gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number,
    eps: number): void;
  batchNormReluBackward(gx: FloatArray, gresidual: FloatArray | null, ggamma: FloatArray | null,
    gbeta: FloatArray | null, gy: FloatArray, y: BlockedAct, x: BlockedAct, mean: FloatArray, invstd: FloatArray,
    gamma: FloatArray | null, N: number, C: number, HW: number): void;
}

export interface Backend {
  readonly name: DeviceName;
  /** Native only: the blocked-layout kernels (absent on backends that keep every buffer row-major). */
  readonly blocked?: BlockedKernels;
  /** Allocates a buffer of `size` elements; zero-filled when `zero` is true, otherwise contents are undefined. */
  alloc(dtype: DType, size: number, zero: boolean): TypedArray;
  /** Releases a buffer now. The array must not be used afterwards. */
  free(data: TypedArray): void;
  /** Whether this backend computes in this dtype. */
  supports(dtype: DType): boolean;

  // ---- elementwise ----
  fill(out: TypedArray, value: number): void;
  /** Converts between dtypes (float -> int truncates toward zero, like PyTorch). */
  cast(out: TypedArray, x: TypedArray): void;
  unary(op: UnaryOp, out: TypedArray, x: TypedArray, p0: number, p1: number): void;
  unaryGrad(op: UnaryGradOp, gx: FloatArray, gy: FloatArray, x: FloatArray, y: FloatArray): void;
  /**
   * Broadcasting binary op over `shape` (the output's shape, out contiguous).
   * aStrides/bStrides are element strides of a and b laid over `shape` (0 on broadcast dims).
   */
  binary(op: BinaryOp, out: TypedArray, a: TypedArray, b: TypedArray, shape: readonly number[],
    aStrides: readonly number[], bStrides: readonly number[]): void;
  /** out = cond ? a : b, broadcast like binary; cond is uint8. */
  where(out: TypedArray, cond: Uint8Array, a: TypedArray, b: TypedArray, shape: readonly number[],
    condStrides: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): void;
  /** Reduces the middle axis of x viewed as [outer, r, inner] into out [outer, inner]. */
  reduce(op: ReduceOp, out: TypedArray, x: TypedArray, outer: number, r: number, inner: number): void;
  /** Index of the max (or min) along the middle axis of [outer, r, inner]; first index on ties. */
  argReduce(op: 'max' | 'min', out: Int32Array, x: TypedArray, outer: number, r: number, inner: number): void;
  /**
   * Strided copy: for every index i over `shape`,
   * out[outOffset + sum(i*outStrides)] (+)= x[xOffset + sum(i*xStrides)].
   * Covers permute, slice, expand, concat and their backward (accumulate=true for expand's backward is not used;
   * accumulate is for scatter-like writes where several i map to one out element).
   */
  strided(out: TypedArray, outOffset: number, outStrides: readonly number[],
    x: TypedArray, xOffset: number, xStrides: readonly number[], shape: readonly number[], accumulate: boolean): void;

  // ---- indexing (x viewed as [outer, dim, inner]) ----
  /** out[o, j, i] = x[o, idx[o, j, i], i]; idx and out are [outer, idxDim, inner]. */
  gather(out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number, inner: number, idxDim: number): void;
  /** out[o, idx[o, j, i], i] += src[o, j, i]; out is [outer, dim, inner] and is accumulated into. */
  scatterAdd(out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number, inner: number, idxDim: number): void;
  /** out[o, j, i] = x[o, idx[j], i]; idx has n entries. */
  indexSelect(out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number, inner: number, n: number): void;
  /** out[o, idx[j], i] += src[o, j, i]; the backward of indexSelect. */
  indexAdd(out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number, inner: number, n: number): void;

  // ---- linear algebra ----
  /**
   * Batched matmul: out[b] = op(a[b]) @ op(b[b]) (+ bias[N] broadcast over rows), out [batch, M, N] contiguous.
   * a is [.., M, K] (or [.., K, M] when transA), b is [.., K, N] (or [.., N, K] when transB);
   * aBatchStride/bBatchStride are element strides between batch items (0 broadcasts one matrix over the batch).
   */
  matmul(out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null,
    batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
    aBatchStride: number, bBatchStride: number): void;

  /**
   * The backward of y = x w^T + b (x [rows, I], w [O, I], gy [rows, O]): gx = gy w, gw = gy^T x, gb = gy summed over
   * rows, each overwritten; a null output is skipped.
   */
  linearBackward(gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null, gy: FloatArray, x: FloatArray,
    w: FloatArray, rows: number, I: number, O: number): void;
  /**
   * Linear + exact-erf GELU (x [rows, I], w [O, I], bias [O] or null): out [rows, O] = gelu(x w^T + bias) and deriv
   * [rows, O] = gelu'(x w^T + bias), the derivative saved for the backward.
   */
  linearGelu(out: FloatArray, deriv: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null, rows: number,
    I: number, O: number): void;
  /** linearBackward with gx scaled elementwise: gx = (gy w) * gxScale, gxScale [rows, I] (null only when gx is). */
  linearBackwardScaled(gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null, gxScale: FloatArray | null,
    gy: FloatArray, x: FloatArray, w: FloatArray, rows: number, I: number, O: number): void;
  /**
   * Optional (native; T.linear uses it in bf16 precision): out [rows, O] = x w^T + bias + residual, the residual added
   * inside the matmul (a transformer block's attention projection and skip connection).
   */
  linearAdd?(out: Float32Array, x: Float32Array, residual: Float32Array, w: Float32Array, bias: Float32Array | null,
    rows: number, I: number, O: number): void;
  /**
   * Optional (native, bf16 precision only: see bf16Compute): the fused MLP out = fc2(gelu(fc1(x))) (x [rows, I], w1
   * [Hd, I], w2 [O, Hd]) keeping hidden = gelu(..) and deriv = gelu'(..) [rows, Hd] in bf16 storage, 2 bytes per
   * value in a Uint8Array, as autocast keeps fc1's bf16 output: half the memory, and fc2 reads hidden unconverted.
   * residual [rows, O] (or null) is added to out inside fc2's matmul.
   */
  mlpForwardBf16?(out: Float32Array, hidden: Uint8Array, deriv: Uint8Array, x: Float32Array, residual: Float32Array | null,
    w1: Float32Array, b1: Float32Array | null, w2: Float32Array, b2: Float32Array | null, rows: number, I: number,
    Hd: number, O: number): void;
  /** Its backward, every output overwritten, a null one skipped. */
  mlpBackwardBf16?(gx: Float32Array | null, gw1: Float32Array | null, gb1: Float32Array | null, gw2: Float32Array | null,
    gb2: Float32Array | null, gy: Float32Array, hidden: Uint8Array, deriv: Uint8Array, x: Float32Array, w1: Float32Array,
    w2: Float32Array, rows: number, I: number, Hd: number, O: number): void;
  /** Native only: whether conv and matmul multiply in bf16 now (setPrecision('bf16')); absent means never. */
  readonly bf16Compute?: () => boolean;

  // ---- convolution ----
  conv2d(out: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null, p: ConvParams): void;
  conv2dBackwardData(gx: FloatArray, gy: FloatArray, w: FloatArray, p: ConvParams): void;
  /** gb (when given) receives the bias gradient: gy summed over N, OH, OW. */
  conv2dBackwardWeight(gw: FloatArray, gb: FloatArray | null, gy: FloatArray, x: FloatArray, p: ConvParams): void;

  // ---- normalization (x viewed as [N, C, HW] for batch norm, [rows, D] for layer norm) ----
  /** Training-mode batch norm: saves the batch mean and 1/sqrt(biased var + eps) per channel. */
  batchNormForward(out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray,
    gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void;
  /** Inference-mode batch norm with given statistics (running mean and var). */
  batchNormInference(out: FloatArray, x: FloatArray, mean: FloatArray, variance: FloatArray,
    gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void;
  /** Backward of training-mode batch norm. ggamma/gbeta may be null when there is no affine. */
  batchNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
    x: FloatArray, mean: FloatArray, invstd: FloatArray, gamma: FloatArray | null,
    N: number, C: number, HW: number): void;
  /**
   * Fused training-mode batch norm, residual add and ReLU: out = relu(bn(x) + residual) (residual may be null), as
   * a ResNet block ends; saves mean and invstd as batchNormForward does.
   */
  batchNormReluForward(out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray, residual: FloatArray | null,
    gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number): void;
  /**
   * Backward of batchNormReluForward: gy masked by y > 0 (y: its output) is the residual's gradient (written to
   * gresidual when not null) and runs through batch norm's backward into gx, ggamma, gbeta.
   */
  batchNormReluBackward(gx: FloatArray, gresidual: FloatArray | null, ggamma: FloatArray | null,
    gbeta: FloatArray | null, gy: FloatArray, y: FloatArray, x: FloatArray, mean: FloatArray, invstd: FloatArray,
    gamma: FloatArray | null, N: number, C: number, HW: number): void;
  layerNormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, x: FloatArray,
    gamma: FloatArray | null, beta: FloatArray | null, rows: number, D: number, eps: number): void;
  layerNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
    x: FloatArray, mean: FloatArray, rstd: FloatArray, gamma: FloatArray | null, rows: number, D: number): void;

  // ---- softmax over the last axis of [rows, D] ----
  softmax(out: FloatArray, x: FloatArray, rows: number, D: number, log: boolean): void;
  /** gx from gy and the forward output y (softmax or log-softmax). */
  softmaxBackward(gx: FloatArray, gy: FloatArray, y: FloatArray, rows: number, D: number, log: boolean): void;

  // ---- fused multi-head self-attention ----
  /**
   * out [B, N, H, hd] (heads merged) = softmax(q k^T * scale) v per (batch, head), with q, k, v read from the qkv
   * projection's output [B, N, 3, H, hd] as is; probs [B, H, N, N] receives the softmax for the backward.
   */
  attentionForward(out: FloatArray, probs: FloatArray, qkv: FloatArray, B: number, N: number, H: number, hd: number,
    scale: number): void;
  /** Overwrites gqkv [B, N, 3, H, hd] from gout [B, N, H, hd], the forward's qkv and probs. */
  attentionBackward(gqkv: FloatArray, gout: FloatArray, qkv: FloatArray, probs: FloatArray, B: number, N: number,
    H: number, hd: number, scale: number): void;

  // ---- multi-tensor optimizer steps (optional: the optimizers fall back to their per-parameter loops) ----
  /** SGD over a group: b null means no momentum; first[t] = 1 when b[t] is new (it starts as the decayed gradient). */
  sgdStep?(w: Float32Array[], g: Float32Array[], b: (Float32Array | null)[], first: Uint8Array, lr: number,
    momentum: number, dampening: number, weightDecay: number, nesterov: boolean): void;
  /** AdamW over a group: stepSize[t] = lr / (1 - beta1^step), bc2Sqrt[t] = sqrt(1 - beta2^step), decay = 1 - lr wd. */
  adamwStep?(w: Float32Array[], g: Float32Array[], expAvg: Float32Array[], expAvgSq: Float32Array[],
    stepSize: Float64Array, bc2Sqrt: Float64Array, decay: number, beta1: number, beta2: number, eps: number): void;
  /** In place, for every pair: target = target * momentum + source * (1 - momentum), in float (MoCo's key encoder). */
  emaUpdate?(targets: Float32Array[], sources: Float32Array[], momentum: number): void;
  /** LARS over a group; adapt[t] = 1 where the trust ratio applies. */
  larsStep?(w: Float32Array[], g: Float32Array[], mu: Float32Array[], adapt: Uint8Array, lr: number, momentum: number,
    weightDecay: number, trustCoefficient: number): void;

  // ---- pooling ----
  /** indices (max only) receive the flat h*W+w position of each max within its (n, c) plane. */
  maxPool2d(out: FloatArray, indices: Int32Array, x: FloatArray, p: PoolParams): void;
  maxPool2dBackward(gx: FloatArray, gy: FloatArray, indices: Int32Array, p: PoolParams): void;
  avgPool2d(out: FloatArray, x: FloatArray, p: PoolParams): void;
  avgPool2dBackward(gx: FloatArray, gy: FloatArray, p: PoolParams): void;
}
