// The one seeded generator of the library (tensor ops, initialisation, dropout, masking, the data pipeline):
// xoshiro128** on 32-bit integer arithmetic (Math.imul), so it reproduces bit-for-bit on every platform.
// Rng.fromKeys(seed, epoch, index) gives the data pipeline streams that do not depend on worker scheduling.

export interface RngState { s: [number, number, number, number]; spareNormal: number | null }

function splitmix32(seed: number): () => number {
  let z = seed >>> 0;
  return () => {
    z = (z + 0x9e3779b9) >>> 0;
    let t = z;
    t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
    t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
    return (t ^ (t >>> 16)) >>> 0;
  };
}

/** splitmix32 step: a good 32-bit finaliser, used to hash keys together. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Hashes any number of non-negative integer keys into one 32-bit seed. */
export function hashKeys(...keys: number[]): number {
  let h = 0x2545f491;
  for (const k of keys) {
    if (!Number.isInteger(k)) throw new Error(`[Rng] keys must be integers, got ${k}`);
    // fold in 53-bit integers as two 32-bit halves
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    h = mix32(h ^ lo);
    h = mix32(h ^ hi);
  }
  return h;
}

export class Rng {
  private s: [number, number, number, number] = [1, 0, 0, 0];
  private spareNormal: number | null = null;
  private gaussNext: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /** Restarts this generator from a seed, in place: every holder of it (modules, ops) sees the new stream. */
  seed(seed: number): void {
    if (!Number.isFinite(seed)) throw new Error(`[Rng] seed must be a finite number, got ${seed}`);
    // Mix both halves of a 53-bit seed so seeds above 2^32 differ too.
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const sm = splitmix32((seed >>> 0) ^ Math.imul(hi, 0x27d4eb2d));
    this.s = [sm(), sm(), sm(), sm()];
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
    this.spareNormal = null;
    this.gaussNext = null;
  }

  /**
   * A generator keyed by integers, e.g. (seed, epoch, index) for one sample of one epoch: independent of the order
   * samples are drawn in and of which worker draws them.
   */
  static fromKeys(...keys: number[]): Rng {
    const r = new Rng(0);
    let x = hashKeys(hashKeys(...keys));
    const s0 = x = mix32(x);
    const s1 = x = mix32(x);
    const s2 = x = mix32(x);
    r.s = [s0, s1, s2, (mix32(x) | 1) >>> 0]; // never the all-zero state
    return r;
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniformRange(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new Error(`[Rng.int] n must be positive, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Integer in [low, high), like torch.randint(low, high) and Python's random.randrange(low, high). */
  randint(low: number, high: number): number {
    if (!(high > low)) throw new Error(`[Rng.randint] needs high > low, got [${low}, ${high})`);
    return low + Math.floor(this.uniform() * (high - low));
  }

  /**
   * Normal with mean mu and std sigma by Python's random.gauss (Box-Muller from two uniforms, the second value
   * cached for the next gauss call), as timm's RandAugment draws its magnitude noise.
   */
  gauss(mu: number, sigma: number): number {
    let z = this.gaussNext;
    this.gaussNext = null;
    if (z === null) {
      const x2pi = this.uniform() * 2 * Math.PI;
      const g2rad = Math.sqrt(-2 * Math.log(1 - this.uniform()));
      z = Math.cos(x2pi) * g2rad;
      this.gaussNext = Math.sin(x2pi) * g2rad;
    }
    return mu + z * sigma;
  }

  /** Standard normal by the Box-Muller transform (pairs cached). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u1 = this.uniform();
    while (u1 === 0) u1 = this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Normal(mean, std) truncated to [a, b] by rejection (a, b in absolute units, like timm's trunc_normal_). */
  truncatedNormal(mean: number, std: number, a: number, b: number): number {
    if (!(a < b)) throw new Error(`[Rng.truncatedNormal] need a < b, got a=${a}, b=${b}`);
    for (let i = 0; i < 1000; i++) {
      const v = mean + std * this.normal();
      if (v >= a && v <= b) return v;
    }
    return Math.min(b, Math.max(a, mean));
  }

  bernoulli(p: number): number {
    return this.uniform() < p ? 1 : 0;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  randperm(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = out[i]!;
      out[i] = out[j]!;
      out[j] = t;
    }
    return out;
  }

  getState(): RngState {
    return { s: [...this.s], spareNormal: this.spareNormal };
  }

  setState(state: RngState): void {
    if (!Array.isArray(state.s) || state.s.length !== 4) throw new Error('[Rng.setState] malformed state');
    this.s = [state.s[0] >>> 0, state.s[1] >>> 0, state.s[2] >>> 0, state.s[3] >>> 0];
    this.spareNormal = state.spareNormal;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * The process-wide generator used when an op or module is not given one. manualSeed reseeds it in place, so the
 * modules that hold it (Dropout, DropPath, Attention, MAE's masking) follow, as torch.manual_seed.
 */
export const globalRng = new Rng(0);

export function manualSeed(seed: number): void {
  globalRng.seed(seed);
}

/**
 * Uniform [0, 1) noise, `length` values per sample, row i drawn from (seed, epoch, indices[i]) alone: a sample's
 * randomness (MAE's mask) is then the same in whatever batch, and on whatever data-parallel rank, it lands. [N * length]
 */
export function perSampleUniform(seed: number, epoch: number, indices: ArrayLike<number>, length: number): Float32Array {
  const out = new Float32Array(indices.length * length);
  for (let i = 0; i < indices.length; i++) {
    const rng = Rng.fromKeys(seed, epoch, indices[i]!, 0x4d41534b);
    for (let j = 0; j < length; j++) out[i * length + j] = rng.uniform();
  }
  return out;
}
