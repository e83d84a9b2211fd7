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
 * stops with an error naming the ranks and keys that differ (rank 0's config is broadcast to say which).
 */
export function checkSameConfig(config: unknown, comm: Comm, op: string): void {
  if (comm.size === 1) return;
  const text = JSON.stringify(canonical(config));
  const digest = createHash('sha256').update(text).digest();
  const mine = new Int32Array(digest.buffer.slice(digest.byteOffset, digest.byteOffset + 8));
  const all = comm.allgather(mine); // [P * 2]
  const differing: number[] = [];
  for (let r = 1; r < comm.size; r++) if (all[2 * r] !== all[0] || all[2 * r + 1] !== all[1]) differing.push(r);
  if (differing.length === 0) return;
  const len = Int32Array.of(Buffer.byteLength(text));
  comm.broadcast(len, 0);
  const bytes = new Uint8Array(len[0]!);
  if (comm.rank === 0) bytes.set(Buffer.from(text));
  comm.broadcast(bytes, 0);
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(JSON.parse(Buffer.from(bytes).toString('utf8')), '', a);
  flatten(JSON.parse(text), '', b);
  const keys = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  const here = differing.includes(comm.rank)
    ? `; this rank (${comm.rank}) has ${keys.slice(0, 8).map((k) => `${k}=${b.get(k) ?? '(unset)'} where rank 0 has ${a.get(k) ?? '(unset)'}`).join(', ')}`
    : '';
  throw new Error(`[${op}] the config differs across ranks (checked by a hash at start): rank(s) ${differing.join(', ')} differ from rank 0${here}. Launch every rank with the same arguments and files.`);
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
