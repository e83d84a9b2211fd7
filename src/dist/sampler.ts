// DistributedSampler's semantics (torch.utils.data.distributed): every rank takes the same seeded permutation of an
// epoch and keeps the indices rank, rank + P, rank + 2P, ...; with dropLast the tail that does not divide by P is
// dropped, without it the order is padded by wrapping around so every rank gets as many samples.

/** This rank's share of an epoch's sample order. */
export function shardOrder(order: Int32Array, rank: number, worldSize: number, dropLast: boolean): Int32Array {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`[sampler] worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new Error(`[sampler] rank ${rank} is not in [0, ${worldSize})`);
  const n = order.length;
  const perRank = dropLast ? Math.floor(n / worldSize) : Math.ceil(n / worldSize);
  if (perRank === 0) throw new Error(`[sampler] ${n} samples cannot be split over ${worldSize} ranks with dropLast`);
  const out = new Int32Array(perRank);
  for (let i = 0; i < perRank; i++) out[i] = order[(rank + i * worldSize) % n]!;
  return out;
}

/**
 * The inverse of shardOrder without dropLast: rows gathered rank after rank ([P * perRank, D], rank r's block holding
 * the rows of positions r, r + P, ...) put back in the order's positions, padding removed. Returns a row index map:
 * position i of the order is row map[i] of the gathered matrix.
 */
export function unshardRows(n: number, worldSize: number): Int32Array {
  const perRank = Math.ceil(n / worldSize);
  const map = new Int32Array(n);
  for (let i = 0; i < n; i++) map[i] = (i % worldSize) * perRank + Math.floor(i / worldSize);
  return map;
}
