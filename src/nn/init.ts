// Initialisers with PyTorch's (torch.nn.init), torchvision's and timm/MAE's formulas, filling tensors in place from a
// seeded Rng. They write the buffer directly (no graph), like torch.nn.init under no_grad.
import type { Rng, Tensor } from '../tensor/index.js';
import { globalRng } from '../tensor/index.js';

function floatData(op: string, t: Tensor): Float32Array | Float64Array {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`[${op}] expected a float tensor, got ${t.dtype}`);
  return t.data as Float32Array | Float64Array;
}

function fill(op: string, t: Tensor, gen: () => number): Tensor {
  const d = floatData(op, t);
  for (let i = 0; i < d.length; i++) d[i] = gen();
  return t;
}

/** torch.nn.init._calculate_fan_in_and_fan_out: [out, in, *receptive] -> (in * rf, out * rf). */
export function fanInAndFanOut(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`[init] fan in and fan out need at least 2 dims, got [${shape.join(', ')}]`);
  let rf = 1;
  for (let i = 2; i < shape.length; i++) rf *= shape[i]!;
  return { fanIn: shape[1]! * rf, fanOut: shape[0]! * rf };
}

export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

/** torch.nn.init.calculate_gain. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
  }
}

export function uniform_(t: Tensor, lo: number, hi: number, rng: Rng = globalRng): Tensor {
  return fill('uniform_', t, () => rng.uniformRange(lo, hi));
}

export function normal_(t: Tensor, mean = 0, std = 1, rng: Rng = globalRng): Tensor {
  return fill('normal_', t, () => mean + std * rng.normal());
}

/** timm's trunc_normal_: normal(mean, std) truncated to [a, b] in absolute units (default [-2, 2]). */
export function truncNormal_(t: Tensor, std = 1, rng: Rng = globalRng, mean = 0, a = -2, b = 2): Tensor {
  return fill('truncNormal_', t, () => rng.truncatedNormal(mean, std, a, b));
}

export function constant_(t: Tensor, value: number): Tensor {
  return fill('constant_', t, () => value);
}

export function zeros_(t: Tensor): Tensor { return constant_(t, 0); }
export function ones_(t: Tensor): Tensor { return constant_(t, 1); }

export interface KaimingOptions {
  /** negative slope of leaky_relu (a = sqrt(5) gives PyTorch's default Linear/Conv init) */
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(shape: readonly number[], o: KaimingOptions): number {
  const { fanIn, fanOut } = fanInAndFanOut(shape);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}, rng: Rng = globalRng): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t.shape, o);
  return uniform_(t, -bound, bound, rng);
}

export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}, rng: Rng = globalRng): Tensor {
  return normal_(t, 0, kaimingStd(t.shape, o), rng);
}

/** Xavier/Glorot uniform; `viewShape` lets MAE's patch_embed init treat a conv weight as [out, in*kh*kw]. */
export function xavierUniform_(t: Tensor, gain = 1, rng: Rng = globalRng, viewShape: readonly number[] = t.shape): Tensor {
  const { fanIn, fanOut } = fanInAndFanOut(viewShape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, rng);
}

/**
 * PyTorch's default nn.Linear / nn.Conv2d reset_parameters: weight kaiming_uniform(a=sqrt(5)), that is
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 */
export function defaultLinearInit(weight: Tensor, bias: Tensor | null, rng: Rng = globalRng): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) }, rng);
  if (bias !== null) {
    const { fanIn } = fanInAndFanOut(weight.shape);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound, rng);
  }
}

// ---------------------------------------------------------------- MAE's util/pos_embed.py

/** Rows [sin(pos * omega), cos(pos * omega)] with omega = 1 / 10000^(i / (D/2)), i < D/2 (1-D, float64). */
function sincos1d(embedDim: number, pos: Float64Array): Float64Array {
  if (embedDim % 2 !== 0) throw new Error(`[sincos] embed dim must be even, got ${embedDim}`);
  const half = embedDim / 2;
  const out = new Float64Array(pos.length * embedDim);
  for (let m = 0; m < pos.length; m++) {
    for (let d = 0; d < half; d++) {
      const omega = 1 / 10000 ** (d / half);
      const v = pos[m]! * omega;
      out[m * embedDim + d] = Math.sin(v);
      out[m * embedDim + half + d] = Math.cos(v);
    }
  }
  return out;
}

/**
 * MAE's get_2d_sincos_pos_embed: [gridSize^2 (+1), embedDim], float64, patches in row-major order. MAE's meshgrid
 * puts w first, so the first half of each row encodes the column (w) and the second half the row (h), although
 * MAE names them the other way round. With clsToken, a row of zeros comes first.
 */
export function get2dSincosPosEmbed(embedDim: number, gridSize: number, clsToken = false): Float64Array {
  if (embedDim % 4 !== 0) throw new Error(`[get2dSincosPosEmbed] embed dim must be divisible by 4, got ${embedDim}`);
  const L = gridSize * gridSize;
  const gw = new Float64Array(L);
  const gh = new Float64Array(L);
  for (let h = 0; h < gridSize; h++) {
    for (let w = 0; w < gridSize; w++) { gw[h * gridSize + w] = w; gh[h * gridSize + w] = h; }
  }
  const half = embedDim / 2;
  const embW = sincos1d(half, gw); // [L, D/2] from grid[0] (w)
  const embH = sincos1d(half, gh); // [L, D/2] from grid[1] (h)
  const off = clsToken ? 1 : 0;
  const out = new Float64Array((L + off) * embedDim);
  for (let m = 0; m < L; m++) {
    out.set(embW.subarray(m * half, (m + 1) * half), (m + off) * embedDim);
    out.set(embH.subarray(m * half, (m + 1) * half), (m + off) * embedDim + half);
  }
  return out;
}

// ---------------------------------------------------------------- MoCo v3's vits.py

/**
 * MoCo v3's build_2d_sincos_position_embedding: [1 + gridSize^2, embedDim] (float64), a zero row for the cls token,
 * then per patch m [sin(a w), cos(a w), sin(b w), cos(b w)] with w = 1 / temperature^(i / (D/4)), i < D/4, and
 * (a, b) = (m div grid, m mod grid): torch.meshgrid's 'ij' indexing puts the patch row first. A different layout
 * from MAE's table, so one cannot stand in for the other.
 */
export function mocoV3SincosPosEmbed(embedDim: number, gridSize: number, temperature = 10000): Float64Array {
  if (embedDim % 4 !== 0) throw new Error(`[mocoV3SincosPosEmbed] embed dim must be divisible by 4, got ${embedDim}`);
  const q = embedDim / 4;
  const L = gridSize * gridSize;
  const out = new Float64Array((L + 1) * embedDim);
  for (let m = 0; m < L; m++) {
    const a = Math.floor(m / gridSize);
    const b = m % gridSize;
    const row = (m + 1) * embedDim;
    for (let i = 0; i < q; i++) {
      const omega = 1 / temperature ** (i / q);
      out[row + i] = Math.sin(a * omega);
      out[row + q + i] = Math.cos(a * omega);
      out[row + 2 * q + i] = Math.sin(b * omega);
      out[row + 3 * q + i] = Math.cos(b * omega);
    }
  }
  return out;
}
