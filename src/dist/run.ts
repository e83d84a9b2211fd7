// What a data-parallel run needs besides the collectives: the same config on every rank (checked by hash at
// start), randomness per sample, and sharded evaluation passes gathered back into dataset order.
import { createHash } from 'node:crypto';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { Comm } from './comm.js';
import { unshardRows } from './sampler.js';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  }
  return v;
}

function flatten(v: unknown, prefix: string, into: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix === '' ? k : `${prefix}.${k}`, into);
  } else {
    into.set(prefix, JSON.stringify(v));
  }
}

/**
 * Every rank must train the same thing: the config's hash is compared with rank 0's, and on a mismatch every rank
 * stops with an error naming the ranks and keys that differ (the configs are gathered to say which).
 */
export function checkSameConfig(config: unknown, comm: Comm, op: string): void {
  if (comm.size === 1) return;
  const text = JSON.stringify(canonical(config));
  const digest = createHash('sha256').update(text).digest();
  const mine = new Int32Array(digest.buffer.slice(digest.byteOffset, digest.byteOffset + 8));
  const hashes = comm.allgather(mine); // [P * 2]
  const differing: number[] = [];
  for (let r = 1; r < comm.size; r++) if (hashes[2 * r] !== hashes[0] || hashes[2 * r + 1] !== hashes[1]) differing.push(r);
  if (differing.length === 0) return;
  // say which keys differ: every rank's config, gathered (as UTF-8 in int32 words, padded to the longest)
  const bytes = Buffer.from(text);
  const lengths = comm.allgather(Int32Array.of(bytes.length));
  const words = Math.ceil(Math.max(...lengths) / 4);
  const mineWords = new Int32Array(words);
  new Uint8Array(mineWords.buffer).set(bytes);
  const all = comm.allgather(mineWords);
  const configOf = (r: number): Map<string, string> => {
    const m = new Map<string, string>();
    const b = new Uint8Array(all.buffer, r * words * 4, lengths[r]!);
    flatten(JSON.parse(Buffer.from(b).toString('utf8')), '', m);
    return m;
  };
  const base = configOf(0);
  const details = differing.map((r) => {
    const other = configOf(r);
    const keys = [...new Set([...base.keys(), ...other.keys()])].filter((k) => base.get(k) !== other.get(k));
    return `rank ${r} has ${keys.slice(0, 8).map((k) => `${k}=${other.get(k) ?? '(unset)'} where rank 0 has ${base.get(k) ?? '(unset)'}`).join(', ')}`;
  });
  throw new Error(`[${op}] the config differs across ranks (checked by a hash at start): ${details.join('; ')}. Launch every rank with the same arguments and files.`);
}

/** Each rank's share of a global batch size; an error naming the command when it does not divide over the ranks. */
export function perRankBatch(globalBatch: number, comm: Comm, op: string): number {
  if (globalBatch % comm.size !== 0) {
    throw new Error(`[${op}] the batch size ${globalBatch} (the global batch) does not divide over ${comm.size} ranks`);
  }
  return globalBatch / comm.size;
}

/** How many of this rank's shard positions hold real samples (the rest are wrap-around padding). */
export function realShardSize(total: number, comm: Comm): number {
  return Math.max(0, Math.ceil((total - comm.rank) / comm.size));
}

/**
 * Rows and labels extracted by every rank from its shard (no dropLast) put together in dataset order: the same
 * matrix one process would have extracted. Disposes the local rows when it replaces them.
 */
export function gatherSharded([rows, labels]: [Tensor, Int32Array], total: number, comm: Comm): [Tensor, Int32Array] {
  if (comm.size === 1) return [rows, labels];
  const perRank = Math.ceil(total / comm.size);
  const D = rows.shape[1]!;
  if (rows.shape[0] !== perRank) throw new Error(`[gatherSharded] expected ${perRank} rows from this rank, got ${rows.shape[0]}`);
  const allRows = comm.allgather(rows.data as Float32Array);
  const allLabels = comm.allgather(labels);
  rows.dispose();
  const map = unshardRows(total, comm.size);
  const out = new Float32Array(total * D);
  const outLabels = new Int32Array(total);
  for (let i = 0; i < total; i++) {
    const src = map[i]!;
    out.set(allRows.subarray(src * D, (src + 1) * D), i * D);
    outLabels[i] = allLabels[src]!;
  }
  return [T.keep(T.tensor(out, [total, D])), outLabels];
}
