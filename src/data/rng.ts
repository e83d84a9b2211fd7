// Seeded, splittable random numbers for the data pipeline (xoshiro128** seeded through splitmix32).
// Each sample's augmentation stream derives from (seed, epoch, index), so batches do not depend on worker scheduling.

/** splitmix32 step: a good 32-bit finaliser, used both to seed and to hash keys together. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Hash any number of non-negative integer keys into one 32-bit seed. */
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
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = hashKeys(seed);
    this.s0 = x = mix32(x);
    this.s1 = x = mix32(x);
    this.s2 = x = mix32(x);
    this.s3 = mix32(x) | 1; // never the all-zero state
  }

  /** The generator for one sample of one epoch: independent of order and of which worker runs it. */
  static forSample(seed: number, epoch: number, index: number): Rng {
    return new Rng(hashKeys(seed, epoch, index));
  }

  /** Next raw 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [low, high), like torch.empty(1).uniform_(low, high) and Python's random.uniform. */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  /** Integer in [low, high), like torch.randint(low, high). */
  randint(low: number, high: number): number {
    if (!(high > low)) throw new Error(`[Rng] randint needs high > low, got [${low}, ${high})`);
    return low + Math.floor(this.random() * (high - low));
  }

  /** A random permutation of 0..n-1 (Fisher-Yates), like torch.randperm(n). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Uniform [0, 1) noise, `length` values per sample, row i drawn from (seed, epoch, indices[i]) alone: a sample's
 * randomness (MAE's mask) is then the same in whatever batch, and on whatever data-parallel rank, it lands. [N * length]
 */
export function perSampleUniform(seed: number, epoch: number, indices: ArrayLike<number>, length: number): Float32Array {
  const out = new Float32Array(indices.length * length);
  for (let i = 0; i < indices.length; i++) {
    const rng = new Rng(hashKeys(seed, epoch, indices[i]!, 0x4d41534b));
    for (let j = 0; j < length; j++) out[i * length + j] = rng.random();
  }
  return out;
}
