// The native backend: the oneDNN addon (native/*.cc, built by `npm ci` / `npm run build:native`) behind the Backend contract.
// Importing never throws; calling a kernel without the addon throws one line saying how to build it.

import { createRequire } from 'node:module';
import { applyRankThreads } from '../dist/launch.js';
import type {
  Backend, BinaryOp, BlockedKernels, ConvParams, DType, FloatArray, PoolParams, ReduceOp, TypedArray, UnaryGradOp,
  UnaryOp,
} from './backend.js';

/**
 * Byte counts of the addon's allocator: live blocks handed to JS, and idle resident memory kept for reuse (small
 * blocks cached by size, and the arena's idle pages; cachedBlocks counts the arena's idle ranges, coalesced).
 */
export interface NativeMemoryStats { liveBytes: number; cachedBytes: number; liveBlocks: number; cachedBlocks: number }

export type ConvLayout = 'plain' | 'blocked';
/** SELFSUP_CONV_ALGO values: the oneDNN algorithm conv passes that run in f32 ask for. */
export const CONV_ALGOS = {
  auto: "oneDNN's convolution_auto: its Winograd F(4x4, 3x3) kernels (AVX-512) for the 3x3 stride-1 shapes its fixed " +
    'heuristic expects faster, direct kernels elsewhere (default)',
  direct: "oneDNN's direct kernels only",
  winograd: 'Winograd wherever oneDNN implements it, direct elsewhere',
} as const;
export type ConvAlgo = keyof typeof CONV_ALGOS;
/** What conv and matmul multiply in: fp32, or bf16 with f32 accumulation and f32 tensors (like torch.autocast). */
export type Precision = 'fp32' | 'bf16';
/** The layout activations are kept in between layers: the channel block oneDNN's conv prefers on this CPU, or none. */
export type ActivationLayout = 'nChw16c' | 'nChw8c' | 'plain';

/** What the addon reports about the engine it runs: oneDNN version, ISA dispatched to, layouts, OpenMP threads. */
export interface NativeInfo {
  onednn: string;
  threads: number;
  convLayout: ConvLayout;
  /** the ISA oneDNN dispatches to, spelled as ONEDNN_MAX_CPU_ISA takes it (AVX2, AVX512_CORE, ...) */
  isa: string;
  /** the widest vector ISA the addon's own loops were compiled for (-march; SELFSUP_MARCH at build time) */
  compiledFor: string;
  activationLayout: ActivationLayout;
  /** the channel block oneDNN's conv picks on this CPU when free to choose (16, 8, or 0) */
  preferredBlock: number;
  /** whether the CPU, as oneDNN may use it, computes bf16 natively (AVX512-BF16 or AMX): --precision bf16 needs it */
  nativeBf16: boolean;
  precision: Precision;
}
export type BenchKind = 'matmul' | 'conv_fwd' | 'conv_bwd_data' | 'conv_bwd_weights';

/** An activation buffer as the addon takes it: f32, or bf16 storage (2 bytes a value, blocked only). */
type Act = FloatArray | Uint8Array;

type Flagged = 'conv2d' | 'conv2dBackwardData' | 'conv2dBackwardWeight' | 'batchNormForward' | 'batchNormInference'
  | 'batchNormBackward' | 'batchNormReluForward' | 'batchNormReluBackward';

/**
 * The addon's exports: the Backend kernels with the same argument order, plus memory and benchmark helpers. Conv and
 * batch norm take trailing "blocked" flags (absent: NCHW), as BlockedKernels describes; their activations may be in
 * bf16 storage (a Uint8Array, blocked only).
 */
export interface NativeAddon extends Omit<Backend, 'name' | 'supports' | 'blocked' | 'bf16Compute' | Flagged> {
  conv2d(out: Act, x: Act, w: FloatArray, bias: FloatArray | null, p: ConvParams, xBlocked?: boolean,
    outMayBlock?: boolean): boolean;
  conv2dBackwardData(gx: FloatArray, gy: FloatArray, w: FloatArray, p: ConvParams, gyBlocked?: boolean,
    gxMayBlock?: boolean): boolean;
  conv2dBackwardWeight(gw: FloatArray, gb: FloatArray | null, gy: FloatArray, x: Act, p: ConvParams,
    gyBlocked?: boolean, xBlocked?: boolean): void;
  batchNormForward(out: Act, mean: FloatArray, invstd: FloatArray, x: Act, gamma: FloatArray | null,
    beta: FloatArray | null, N: number, C: number, HW: number, eps: number, blocked?: boolean): void;
  batchNormInference(out: Act, x: Act, mean: FloatArray, variance: FloatArray, gamma: FloatArray | null,
    beta: FloatArray | null, N: number, C: number, HW: number, eps: number, blocked?: boolean): void;
  batchNormBackward(gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray, x: Act,
    mean: FloatArray, invstd: FloatArray, gamma: FloatArray | null, N: number, C: number, HW: number,
    blocked?: boolean): void;
  batchNormReluForward(out: Act, mean: FloatArray, invstd: FloatArray, x: Act, residual: Act | null,
    gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number,
    blocked?: boolean): void;
  batchNormReluBackward(gx: FloatArray, gresidual: FloatArray | null, ggamma: FloatArray | null,
    gbeta: FloatArray | null, gy: FloatArray, y: Act, x: Act, mean: FloatArray, invstd: FloatArray,
    gamma: FloatArray | null, N: number, C: number, HW: number, blocked?: boolean): void;
  relayout(buf: Float32Array, N: number, C: number, H: number, W: number, toBlocked: boolean): void;
  widenBf16(out: Float32Array, x: Uint8Array): void;
  memoryStats(): NativeMemoryStats;
  /** Returns every idle cached block, and the arena's idle pages, to the OS. */
  trimCache(): void;
  /**
   * Gets (and with an argument, sets) which conv passes run in bf16 under bf16 precision (the forward too, despite the
   * name): 'auto' (default) runs a pass in f32 where oneDNN's bf16 kernel for that shape is the slower one
   * (native/conv.cc pass_precision), 'bf16' none.
   */
  convBf16Backward(mode?: 'auto' | 'bf16' | null): 'auto' | 'bf16';
  /** Gets (and with an argument, sets) how conv lays out data for oneDNN. */
  convLayout(layout?: ConvLayout | null): ConvLayout;
  /**
   * Gets (and with an argument, sets) the oneDNN algorithm conv passes that run in f32 ask for (CONV_ALGOS). The
   * choice is by shape and ISA, never by timing: a run's numbers repeat.
   */
  convAlgo(algo?: ConvAlgo | null): ConvAlgo;
  /** The oneDNN implementation a pass of a conv with params p runs now, e.g. 'jit_wino_4x3:avx512_core'. */
  convImpl(kind: Exclude<BenchKind, 'matmul'>, p: ConvParams): string;
  /** The layout blocked activations use now: oneDNN's preferred channel block in 'blocked' conv layout, else plain. */
  activationLayout(): ActivationLayout;
  /** Seconds per iteration of the bare oneDNN primitive, on buffers oneDNN allocates in its preferred layout. */
  benchPrimitive(kind: 'matmul', sizes: { M: number; N: number; K: number }, iters: number, dtype?: 'f32' | 'bf16'): number;
  benchPrimitive(kind: BenchKind, p: ConvParams, iters: number, layout?: 'any' | 'plain' | 'any+reorder'): number;
  info(): NativeInfo;
  /** Gets (and with an argument, sets) the precision conv and matmul multiply in; 'bf16' throws without native bf16. */
  precision(p?: Precision | null): Precision;
}

const ADDON_PATH = '../../build/Release/selfsup_native.node';
const BUILD_HINT = 'install oneDNN (Debian/Ubuntu: apt-get install libdnnl-dev; macOS: brew install onednn), then ' +
  'rebuild the addon (npm rebuild selfsup; in a git checkout: npm run build:native)';

// OpenMP threads that spin while idle steal the cores the data-loader workers decode on; passive waiting costs
// little between kernels and tripled end-to-end training speed here. libgomp reads this when the addon loads.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
// Each rank of a data-parallel job on this machine computes on its share of the cores unless OMP_NUM_THREADS says.
applyRankThreads();

/** A bad setting in the environment: thrown, never answered by falling back to the reference backend. */
export class NativeConfigError extends Error {
  override name = 'NativeConfigError';
}

/** SELFSUP_LAYOUT values: how activations are laid out for and between oneDNN's conv. */
export const LAYOUT_MODES = {
  auto: 'oneDNN picks its layouts and activations stay in its channel-blocked layout between layers (default)',
  reorder: 'oneDNN picks its layouts; every conv reorders from and to NCHW (activations are NCHW between layers)',
  plain: 'conv runs on NCHW buffers directly; nothing is blocked',
} as const;
export type LayoutMode = keyof typeof LAYOUT_MODES;

/** SELFSUP_BF16_STORAGE values: how bf16 precision stores a ResNet's conv and batch norm activations. */
export const BF16_STORAGE_MODES = {
  on: 'in bf16, 2 bytes a value, as autocast keeps conv outputs (default)',
  off: 'in f32, only the multiplies in bf16',
} as const;
export type Bf16StorageMode = keyof typeof BF16_STORAGE_MODES;

/** The environment's choices for the native engine: SELFSUP_LAYOUT, SELFSUP_CONV_ALGO and SELFSUP_BF16_STORAGE. */
export interface NativeEnv { layout: LayoutMode; convAlgo: ConvAlgo; bf16Storage: Bf16StorageMode }

/** ONEDNN_MAX_CPU_ISA (and its older name DNNL_MAX_CPU_ISA) values oneDNN 2.6 accepts. */
const ISA_VALUES = ['SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX512_MIC', 'AVX512_MIC_4OPS', 'AVX512_CORE',
  'AVX512_CORE_VNNI', 'AVX512_CORE_BF16', 'AVX512_CORE_AMX', 'ALL'] as const;

/**
 * Checks the environment variables that steer the native engine. oneDNN ignores an ISA name it does not know, so
 * a typo would silently run at full ISA; here it is an error naming the variable and the accepted values.
 */
export function checkNativeEnv(env: NodeJS.ProcessEnv = process.env): NativeEnv {
  for (const name of ['ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA']) {
    const v = env[name];
    if (v !== undefined && v !== '' && !(ISA_VALUES as readonly string[]).includes(v.toUpperCase())) {
      throw new NativeConfigError(`[native] ${name}='${v}' is not an ISA oneDNN 2.6 knows; accepted values: ` +
        `${ISA_VALUES.join(', ')}`);
    }
  }
  const layout = env.SELFSUP_LAYOUT ?? 'auto';
  if (!Object.hasOwn(LAYOUT_MODES, layout)) {
    throw new NativeConfigError(`[native] SELFSUP_LAYOUT='${layout}' is not a layout mode; accepted values: ` +
      Object.entries(LAYOUT_MODES).map(([k, v]) => `${k} (${v})`).join('; '));
  }
  const convAlgo = env.SELFSUP_CONV_ALGO ?? 'auto';
  if (!Object.hasOwn(CONV_ALGOS, convAlgo)) {
    throw new NativeConfigError(`[native] SELFSUP_CONV_ALGO='${convAlgo}' is not a conv algorithm; accepted values: ` +
      Object.entries(CONV_ALGOS).map(([k, v]) => `${k} (${v})`).join('; '));
  }
  const bf16Storage = env.SELFSUP_BF16_STORAGE ?? 'on';
  if (!Object.hasOwn(BF16_STORAGE_MODES, bf16Storage)) {
    throw new NativeConfigError(`[native] SELFSUP_BF16_STORAGE='${bf16Storage}' is not a storage mode; accepted ` +
      'values: ' + Object.entries(BF16_STORAGE_MODES).map(([k, v]) => `${k} (${v})`).join('; '));
  }
  return { layout: layout as LayoutMode, convAlgo: convAlgo as ConvAlgo, bf16Storage: bf16Storage as Bf16StorageMode };
}

let addon: NativeAddon | null = null;
let loadError: string | null = null;
let configured = false;
try {
  // SELFSUP_NATIVE_ADDON: another build of the addon, for A/B benchmarks of kernel changes in one checkout.
  addon = createRequire(import.meta.url)(process.env.SELFSUP_NATIVE_ADDON ?? ADDON_PATH) as NativeAddon;
} catch (err) {
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
  loadError = /libdnnl/.test(reason)
    ? `[native] oneDNN runtime not found: ${BUILD_HINT} (${reason})`
    : `[native] addon not built: ${BUILD_HINT} (${reason})`;
}

export function nativeAvailable(): boolean {
  return addon !== null;
}

/** Why the addon did not load (one line), or null when it did. */
export function nativeLoadError(): string | null {
  return loadError;
}

/** The raw addon, for benchmarks and tests; throws the one-line build hint when it is missing. */
export function nativeAddon(): NativeAddon {
  if (addon === null) throw new Error(loadError ?? `[native] addon not built: ${BUILD_HINT}`);
  if (!configured) configure(addon);
  return addon;
}

/** Applies SELFSUP_LAYOUT and SELFSUP_CONV_ALGO on first use (after checking the environment). */
function configure(a: NativeAddon): void {
  const { layout, convAlgo, bf16Storage: storage } = checkNativeEnv();
  a.convLayout(layout === 'plain' ? 'plain' : 'blocked');
  a.convAlgo(convAlgo);
  blockedActivations = layout === 'auto';
  bf16Storage = storage === 'on';
  configured = true;
}

// Activations stay in oneDNN's blocked layout between conv / batch norm / elementwise layers unless SELFSUP_LAYOUT
// says otherwise (configure() sets this on first use)
// (then every conv reorders to and from NCHW, as in plain frameworks); conv layout 'plain' turns it off too.
let blockedActivations = true;

/** Turns keeping activations blocked between layers on or off (benchmarks, tests); returns the old setting. */
export function setBlockedActivations(on: boolean): boolean {
  if (addon !== null && !configured) configure(addon);
  const old = blockedActivations;
  blockedActivations = on;
  return old;
}

// In bf16 precision conv leaves blocked outputs in bf16 storage (BlockedKernels.bf16Storage) unless this is off
// (SELFSUP_BF16_STORAGE=off; configure() reads it on first use).
let bf16Storage = true;

/**
 * Turns bf16 storage of conv and batch norm activations in bf16 precision on (the default) or off (every activation
 * f32, as before it existed: tests and A/B benchmarks); returns the old setting.
 */
export function setBf16Storage(on: boolean): boolean {
  if (addon !== null && !configured) configure(addon);
  const old = bf16Storage;
  bf16Storage = on;
  return old;
}

/**
 * Sets the precision the native conv and matmul kernels multiply in, like entering torch.autocast(dtype=bfloat16):
 * tensors, master weights and optimizer state stay f32. 'bf16' throws on CPUs without native bf16 (AVX512-BF16 or
 * AMX), where it would be emulated and slower than fp32. Returns the previous setting.
 */
export function setPrecision(p: Precision): Precision {
  if (p !== 'fp32' && p !== 'bf16') throw new Error(`[precision] expected 'fp32' or 'bf16', got '${String(p)}'`);
  const a = nativeAddon();
  const old = a.precision();
  a.precision(p);
  return old;
}

export function getPrecision(): Precision {
  return addon === null ? 'fp32' : addon.precision();
}

const blockedKernels: BlockedKernels = {
  enabled: () => blockedActivations && nativeAddon().activationLayout() !== 'plain',
  block: () => {
    const m = /^nChw(\d+)c$/.exec(nativeAddon().activationLayout());
    return m === null ? 0 : Number(m[1]);
  },
  bf16Storage: () => bf16Storage && nativeAddon().precision() === 'bf16',
  widenBf16: (out, x) => nativeAddon().widenBf16(out, x),
  relayout: (buf, N, C, H, W, toBlocked) => nativeAddon().relayout(buf, N, C, H, W, toBlocked),
  conv2d: (out, x, w, bias, p, xBlocked, outMayBlock) => nativeAddon().conv2d(out, x, w, bias, p, xBlocked, outMayBlock),
  conv2dBackwardData: (gx, gy, w, p, gyBlocked, gxMayBlock) =>
    nativeAddon().conv2dBackwardData(gx, gy, w, p, gyBlocked, gxMayBlock),
  conv2dBackwardWeight: (gw, gb, gy, x, p, gyBlocked, xBlocked) =>
    nativeAddon().conv2dBackwardWeight(gw, gb, gy, x, p, gyBlocked, xBlocked),
  batchNormForward: (out, mean, invstd, x, gamma, beta, N, C, HW, eps) =>
    nativeAddon().batchNormForward(out, mean, invstd, x, gamma, beta, N, C, HW, eps, true),
  batchNormInference: (out, x, mean, variance, gamma, beta, N, C, HW, eps) =>
    nativeAddon().batchNormInference(out, x, mean, variance, gamma, beta, N, C, HW, eps, true),
  batchNormBackward: (gx, ggamma, gbeta, gy, x, mean, invstd, gamma, N, C, HW) =>
    nativeAddon().batchNormBackward(gx, ggamma, gbeta, gy, x, mean, invstd, gamma, N, C, HW, true),
  batchNormReluForward: (out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps) =>
    nativeAddon().batchNormReluForward(out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps, true),
  batchNormReluBackward: (gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW) =>
    nativeAddon().batchNormReluBackward(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW, true),
};

const SUPPORTED: ReadonlySet<DType> = new Set<DType>(['float32', 'int32', 'uint8']);

// Each method forwards straight to the addon; `nativeAddon()` resolves it once per call so a missing addon
// surfaces as the build hint rather than a TypeError.
export const nativeBackend: Backend = {
  name: 'native',
  alloc: (dtype: DType, size: number, zero: boolean): TypedArray => nativeAddon().alloc(dtype, size, zero),
  free: (data: TypedArray): void => nativeAddon().free(data),
  supports: (dtype: DType): boolean => SUPPORTED.has(dtype),
  blocked: blockedKernels,

  fill: (out: TypedArray, value: number) => nativeAddon().fill(out, value),
  cast: (out: TypedArray, x: TypedArray) => nativeAddon().cast(out, x),
  unary: (op: UnaryOp, out: TypedArray, x: TypedArray, p0: number, p1: number) =>
    nativeAddon().unary(op, out, x, p0, p1),
  unaryGrad: (op: UnaryGradOp, gx: FloatArray, gy: FloatArray, x: FloatArray, y: FloatArray) =>
    nativeAddon().unaryGrad(op, gx, gy, x, y),
  binary: (op: BinaryOp, out: TypedArray, a: TypedArray, b: TypedArray, shape: readonly number[],
    aStrides: readonly number[], bStrides: readonly number[]) =>
    nativeAddon().binary(op, out, a, b, shape, aStrides, bStrides),
  where: (out: TypedArray, cond: Uint8Array, a: TypedArray, b: TypedArray, shape: readonly number[],
    condStrides: readonly number[], aStrides: readonly number[], bStrides: readonly number[]) =>
    nativeAddon().where(out, cond, a, b, shape, condStrides, aStrides, bStrides),
  reduce: (op: ReduceOp, out: TypedArray, x: TypedArray, outer: number, r: number, inner: number) =>
    nativeAddon().reduce(op, out, x, outer, r, inner),
  argReduce: (op: 'max' | 'min', out: Int32Array, x: TypedArray, outer: number, r: number, inner: number) =>
    nativeAddon().argReduce(op, out, x, outer, r, inner),
  strided: (out: TypedArray, outOffset: number, outStrides: readonly number[], x: TypedArray, xOffset: number,
    xStrides: readonly number[], shape: readonly number[], accumulate: boolean) =>
    nativeAddon().strided(out, outOffset, outStrides, x, xOffset, xStrides, shape, accumulate),

  gather: (out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number, inner: number, idxDim: number) =>
    nativeAddon().gather(out, x, idx, outer, dim, inner, idxDim),
  scatterAdd: (out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number, inner: number,
    idxDim: number) => nativeAddon().scatterAdd(out, idx, src, outer, dim, inner, idxDim),
  indexSelect: (out: TypedArray, x: TypedArray, idx: Int32Array, outer: number, dim: number, inner: number, n: number) =>
    nativeAddon().indexSelect(out, x, idx, outer, dim, inner, n),
  indexAdd: (out: TypedArray, idx: Int32Array, src: TypedArray, outer: number, dim: number, inner: number, n: number) =>
    nativeAddon().indexAdd(out, idx, src, outer, dim, inner, n),

  matmul: (out: FloatArray, a: FloatArray, b: FloatArray, bias: FloatArray | null, batch: number, M: number,
    N: number, K: number, transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number) =>
    nativeAddon().matmul(out, a, b, bias, batch, M, N, K, transA, transB, aBatchStride, bBatchStride),
  linearBackward: (gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null, gy: FloatArray, x: FloatArray,
    w: FloatArray, rows: number, I: number, O: number) => nativeAddon().linearBackward(gx, gw, gb, gy, x, w, rows, I, O),
  linearGelu: (out: FloatArray, deriv: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null, rows: number,
    I: number, O: number) => nativeAddon().linearGelu(out, deriv, x, w, bias, rows, I, O),
  linearBackwardScaled: (gx: FloatArray | null, gw: FloatArray | null, gb: FloatArray | null, gxScale: FloatArray | null,
    gy: FloatArray, x: FloatArray, w: FloatArray, rows: number, I: number, O: number) =>
    nativeAddon().linearBackwardScaled(gx, gw, gb, gxScale, gy, x, w, rows, I, O),

  linearAdd: (out: Float32Array, x: Float32Array, residual: Float32Array, w: Float32Array, bias: Float32Array | null,
    rows: number, I: number, O: number) => nativeAddon().linearAdd!(out, x, residual, w, bias, rows, I, O),
  mlpForwardBf16: (out: Float32Array, hidden: Uint8Array, deriv: Uint8Array, x: Float32Array,
    residual: Float32Array | null, w1: Float32Array, b1: Float32Array | null, w2: Float32Array, b2: Float32Array | null,
    rows: number, I: number, Hd: number, O: number) =>
    nativeAddon().mlpForwardBf16!(out, hidden, deriv, x, residual, w1, b1, w2, b2, rows, I, Hd, O),
  mlpBackwardBf16: (gx: Float32Array | null, gw1: Float32Array | null, gb1: Float32Array | null,
    gw2: Float32Array | null, gb2: Float32Array | null, gy: Float32Array, hidden: Uint8Array, deriv: Uint8Array,
    x: Float32Array, w1: Float32Array, w2: Float32Array, rows: number, I: number, Hd: number, O: number) =>
    nativeAddon().mlpBackwardBf16!(gx, gw1, gb1, gw2, gb2, gy, hidden, deriv, x, w1, w2, rows, I, Hd, O),
  bf16Compute: () => getPrecision() === 'bf16',

  conv2d: (out: FloatArray, x: FloatArray, w: FloatArray, bias: FloatArray | null, p: ConvParams) => {
    nativeAddon().conv2d(out, x, w, bias, p);
  },
  conv2dBackwardData: (gx: FloatArray, gy: FloatArray, w: FloatArray, p: ConvParams) => {
    nativeAddon().conv2dBackwardData(gx, gy, w, p);
  },
  conv2dBackwardWeight: (gw: FloatArray, gb: FloatArray | null, gy: FloatArray, x: FloatArray, p: ConvParams) =>
    nativeAddon().conv2dBackwardWeight(gw, gb, gy, x, p),

  batchNormForward: (out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray, gamma: FloatArray | null,
    beta: FloatArray | null, N: number, C: number, HW: number, eps: number) =>
    nativeAddon().batchNormForward(out, mean, invstd, x, gamma, beta, N, C, HW, eps),
  batchNormInference: (out: FloatArray, x: FloatArray, mean: FloatArray, variance: FloatArray,
    gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number, eps: number) =>
    nativeAddon().batchNormInference(out, x, mean, variance, gamma, beta, N, C, HW, eps),
  batchNormBackward: (gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
    x: FloatArray, mean: FloatArray, invstd: FloatArray, gamma: FloatArray | null, N: number, C: number, HW: number) =>
    nativeAddon().batchNormBackward(gx, ggamma, gbeta, gy, x, mean, invstd, gamma, N, C, HW),
  batchNormReluForward: (out: FloatArray, mean: FloatArray, invstd: FloatArray, x: FloatArray,
    residual: FloatArray | null, gamma: FloatArray | null, beta: FloatArray | null, N: number, C: number, HW: number,
    eps: number) => nativeAddon().batchNormReluForward(out, mean, invstd, x, residual, gamma, beta, N, C, HW, eps),
  batchNormReluBackward: (gx: FloatArray, gresidual: FloatArray | null, ggamma: FloatArray | null,
    gbeta: FloatArray | null, gy: FloatArray, y: FloatArray, x: FloatArray, mean: FloatArray, invstd: FloatArray,
    gamma: FloatArray | null, N: number, C: number, HW: number) =>
    nativeAddon().batchNormReluBackward(gx, gresidual, ggamma, gbeta, gy, y, x, mean, invstd, gamma, N, C, HW),
  layerNormForward: (out: FloatArray, mean: FloatArray, rstd: FloatArray, x: FloatArray, gamma: FloatArray | null,
    beta: FloatArray | null, rows: number, D: number, eps: number) =>
    nativeAddon().layerNormForward(out, mean, rstd, x, gamma, beta, rows, D, eps),
  layerNormBackward: (gx: FloatArray, ggamma: FloatArray | null, gbeta: FloatArray | null, gy: FloatArray,
    x: FloatArray, mean: FloatArray, rstd: FloatArray, gamma: FloatArray | null, rows: number, D: number) =>
    nativeAddon().layerNormBackward(gx, ggamma, gbeta, gy, x, mean, rstd, gamma, rows, D),

  softmax: (out: FloatArray, x: FloatArray, rows: number, D: number, log: boolean) =>
    nativeAddon().softmax(out, x, rows, D, log),
  softmaxBackward: (gx: FloatArray, gy: FloatArray, y: FloatArray, rows: number, D: number, log: boolean) =>
    nativeAddon().softmaxBackward(gx, gy, y, rows, D, log),

  attentionForward: (out: FloatArray, probs: FloatArray, qkv: FloatArray, B: number, N: number, H: number, hd: number,
    scale: number) => nativeAddon().attentionForward(out, probs, qkv, B, N, H, hd, scale),
  attentionBackward: (gqkv: FloatArray, gout: FloatArray, qkv: FloatArray, probs: FloatArray, B: number, N: number,
    H: number, hd: number, scale: number) => nativeAddon().attentionBackward(gqkv, gout, qkv, probs, B, N, H, hd, scale),

  maxPool2d: (out: FloatArray, indices: Int32Array, x: FloatArray, p: PoolParams) =>
    nativeAddon().maxPool2d(out, indices, x, p),
  maxPool2dBackward: (gx: FloatArray, gy: FloatArray, indices: Int32Array, p: PoolParams) =>
    nativeAddon().maxPool2dBackward(gx, gy, indices, p),
  sgdStep: (w, g, b, first, lr, momentum, dampening, weightDecay, nesterov) =>
    nativeAddon().sgdStep!(w, g, b, first, lr, momentum, dampening, weightDecay, nesterov),
  adamwStep: (w, g, expAvg, expAvgSq, stepSize, bc2Sqrt, decay, beta1, beta2, eps) =>
    nativeAddon().adamwStep!(w, g, expAvg, expAvgSq, stepSize, bc2Sqrt, decay, beta1, beta2, eps),
  emaUpdate: (targets, sources, momentum) => nativeAddon().emaUpdate!(targets, sources, momentum),
  larsStep: (w, g, mu, adapt, lr, momentum, weightDecay, trustCoefficient) =>
    nativeAddon().larsStep!(w, g, mu, adapt, lr, momentum, weightDecay, trustCoefficient),

  avgPool2d: (out: FloatArray, x: FloatArray, p: PoolParams) => nativeAddon().avgPool2d(out, x, p),
  avgPool2dBackward: (gx: FloatArray, gy: FloatArray, p: PoolParams) => nativeAddon().avgPool2dBackward(gx, gy, p),
};
