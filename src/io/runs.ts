// Reading run folders as they are written, for the dashboard: the config, the JSON-lines log from a byte offset
// (a line cut by a kill or still being written is left for later, a damaged one is reported and skipped), the
// checkpoint's presence, the pictures (augs.png, recon/epoch-NNN.png, loss curves), evaluation results, and the
// embedding sets written by `selfsup embed` (embeddings.safetensors + the projector's sprite).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { readSafetensors } from './safetensors.js';

export interface LogChunk {
  /** the parsed records, in file order */
  records: Record<string, unknown>[];
  /** byte offset to continue from */
  next: number;
  /** lines that are not JSON objects: 1-based line numbers are not known from an offset, so byte offsets */
  damaged: { offset: number; text: string }[];
  /** bytes after the last newline: a line being written, or cut by a kill */
  pendingBytes: number;
}

/** Reads log.jsonl from byte `from`: complete lines only; a damaged line is reported and skipped. */
export function readLogChunk(path: string, from = 0): LogChunk {
  if (!existsSync(path)) return { records: [], next: 0, damaged: [], pendingBytes: 0 };
  const size = statSync(path).size;
  const start = from >= 0 && from <= size ? from : 0;
  const buf = Buffer.alloc(size - start);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  const lastNl = buf.lastIndexOf(0x0a);
  const complete = lastNl < 0 ? 0 : lastNl + 1;
  const records: Record<string, unknown>[] = [];
  const damaged: { offset: number; text: string }[] = [];
  let off = 0;
  for (const line of buf.subarray(0, complete).toString('utf8').split('\n')) {
    const bytes = Buffer.byteLength(line) + 1;
    if (line.trim() !== '') {
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = null;
      }
      if (rec !== null && typeof rec === 'object' && !Array.isArray(rec)) records.push(rec as Record<string, unknown>);
      else damaged.push({ offset: start + off, text: line.slice(0, 120) });
    }
    off += bytes;
  }
  return { records, next: start + complete, damaged, pendingBytes: buf.length - complete };
}

export type PictureState = 'ok' | 'unreadable';

/** A PNG's state: ok when it has the signature, an IHDR chunk and an IEND chunk at its end (a whole file). */
export function pngState(path: string): PictureState {
  try {
    const b = readFileSync(path);
    const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (b.length < 45 || sig.some((v, i) => b[i] !== v) || b.toString('latin1', 12, 16) !== 'IHDR') return 'unreadable';
    return b.toString('latin1', b.length - 8, b.length - 4) === 'IEND' ? 'ok' : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

export interface EmbeddingSet {
  /** folder name inside the run (embed-test, ...) */
  name: string;
  split: string;
  count: number;
  dim: number;
  classes: string[];
  sprite: { path: string; dim: number; cols: number } | null;
}

export interface RunSummary {
  /** path relative to the runs root, '/'-separated; '.' when the root is itself a run */
  id: string;
  method: string;
  config: Record<string, unknown>;
  checkpoint: { epoch: number; step: number } | null;
  pictures: { augs: PictureState | null; recon: { epoch: number; state: PictureState }[]; curves: { name: string; state: PictureState }[] };
  evaluations: Record<string, { top1?: number; top5?: number }>;
  embeddings: EmbeddingSet[];
  /** what is missing or damaged, in words */
  problems: string[];
}

function isRun(dir: string): boolean {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    return typeof c.method === 'string';
  } catch {
    return existsSync(join(dir, 'log.jsonl'));
  }
}

/** Run folders under root (root itself, or up to `depth` levels down), sorted by path. */
export function findRuns(root: string, depth = 3): string[] {
  const out: string[] = [];
  const walk = (dir: string, d: number): void => {
    if (isRun(dir)) { out.push(dir); return; }
    if (d === 0) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules') walk(join(dir, e.name), d - 1);
    }
  };
  walk(resolve(root), depth);
  return out.sort();
}

export function runId(root: string, dir: string): string {
  const r = relative(resolve(root), dir);
  return r === '' ? '.' : r.split(sep).join('/');
}

/**
 * Resolves `rel` inside `base` and returns the absolute path, or null when it would leave base (.., absolute
 * paths, NUL bytes) - the check behind every file the dashboard serves.
 */
export function insideFolder(base: string, rel: string): string | null {
  if (rel.includes('\0')) return null;
  const b = resolve(base);
  const p = resolve(b, rel);
  return p === b || p.startsWith(b + sep) ? p : null;
}

function embeddingSets(dir: string, problems: string[]): EmbeddingSet[] {
  const sets: EmbeddingSet[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return sets;
  }
  for (const e of entries) {
    if (!e.isDirectory() || !existsSync(join(dir, e.name, 'embeddings.safetensors'))) continue;
    try {
      const f = readSafetensors(join(dir, e.name, 'embeddings.safetensors'), { device: 'reference' });
      const emb = f.tensors.get('embeddings');
      if (emb === undefined) throw new Error('no embeddings tensor');
      const spriteDim = Number(f.metadata.spriteDim ?? 0);
      const spritePath = `${e.name}/tb/00000/default/sprite.png`;
      const sprite = spriteDim > 0 && existsSync(join(dir, spritePath)) && pngState(join(dir, spritePath)) === 'ok'
        ? { path: spritePath, dim: spriteDim, cols: Math.max(1, Math.ceil(Math.sqrt(emb.shape[0]!))) } : null;
      if (sprite === null) problems.push(`${e.name}: no readable sprite (images will not show)`);
      sets.push({
        name: e.name, split: f.metadata.split ?? 'unknown', count: emb.shape[0]!, dim: emb.shape[1]!,
        classes: JSON.parse(f.metadata.classes ?? '[]') as string[], sprite,
      });
      for (const t of f.tensors.values()) t.dispose();
    } catch (err) {
      problems.push(`${e.name}/embeddings.safetensors is unreadable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return sets.sort((a, b) => a.name.localeCompare(b.name));
}

/** Everything the dashboard shows of a run except its log. */
export function summarizeRun(root: string, dir: string): RunSummary {
  const problems: string[] = [];
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    problems.push('config.json is missing or unreadable');
  }
  let checkpoint: RunSummary['checkpoint'] = null;
  try {
    const c = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { weights: string; state: { epoch: number; step: number } };
    if (existsSync(join(dir, c.weights))) checkpoint = { epoch: c.state.epoch, step: c.state.step };
    else problems.push(`checkpoint weights ${c.weights} are missing`);
  } catch {
    problems.push('no checkpoint (checkpoint.json missing or unreadable)');
  }
  const augs = existsSync(join(dir, 'augs.png')) ? pngState(join(dir, 'augs.png')) : null;
  if (augs === 'unreadable') problems.push('augs.png is unreadable');
  const recon: { epoch: number; state: PictureState }[] = [];
  if (existsSync(join(dir, 'recon'))) {
    for (const f of readdirSync(join(dir, 'recon')).sort()) {
      const m = /^epoch-(\d+)\.png$/.exec(f);
      if (m === null) continue;
      const state = pngState(join(dir, 'recon', f));
      if (state === 'unreadable') problems.push(`recon/${f} is unreadable`);
      recon.push({ epoch: Number(m[1]), state });
    }
  }
  const curves = ['loss.png', 'knn.png', 'test-loss.png'].filter((f) => existsSync(join(dir, f))).map((name) => ({ name, state: pngState(join(dir, name)) }));
  const evaluations: RunSummary['evaluations'] = {};
  for (const [file, key] of [['linear.json', 'linear'], ['finetune.json', 'finetune'], ['knn.json', 'knn']] as const) {
    for (const sub of ['.', 'linear', 'finetune', 'knn']) {
      const p = join(dir, sub, file);
      if (!existsSync(p)) continue;
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { top1?: number; top5?: number };
        evaluations[key] = { ...(j.top1 !== undefined ? { top1: j.top1 } : {}), ...(j.top5 !== undefined ? { top5: j.top5 } : {}) };
      } catch {
        problems.push(`${sub === '.' ? '' : `${sub}/`}${file} is unreadable`);
      }
    }
  }
  const embeddings = embeddingSets(dir, problems);
  return {
    id: runId(root, dir), method: typeof config.method === 'string' ? config.method : 'unknown', config, checkpoint,
    pictures: { augs, recon, curves }, evaluations, embeddings, problems,
  };
}

export interface LoadedEmbeddings {
  n: number;
  d: number;
  /** L2-normalised rows [n, d] */
  unit: Float32Array;
  labels: Int32Array;
  pca: Float32Array | null;
  tsne: Float32Array | null;
  classes: string[];
  paths: string[];
}

/** An embedding set's vectors (normalised for cosine similarity), 2-D maps, labels and file paths. */
export function loadEmbeddings(dir: string): LoadedEmbeddings {
  const f = readSafetensors(join(dir, 'embeddings.safetensors'), { device: 'reference' });
  try {
    const emb = f.tensors.get('embeddings');
    const lab = f.tensors.get('labels');
    if (emb === undefined || lab === undefined) throw new Error(`[dashboard] ${dir}/embeddings.safetensors lacks embeddings or labels`);
    const [n, d] = emb.shape as [number, number];
    const unit = Float32Array.from(emb.data as ArrayLike<number>);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += unit[i * d + j]! ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let j = 0; j < d; j++) unit[i * d + j]! *= inv;
    }
    const map = (k: string): Float32Array | null => {
      const t = f.tensors.get(k);
      return t === undefined ? null : Float32Array.from(t.data as ArrayLike<number>);
    };
    const paths: string[] = [];
    try {
      const csv = readFileSync(join(dir, 'embeddings.csv'), 'utf8').trim().split('\n').slice(1);
      // index,path,label,class with RFC 4180 quoting of the path
      for (const line of csv) {
        const m = /^\d+,("(?:[^"]|"")*"|[^,]*),/.exec(line);
        paths.push(m === null ? '' : m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replace(/""/g, '"') : m[1]!);
      }
    } catch {
      // paths are only shown; their absence is not an error
    }
    return {
      n, d, unit, labels: Int32Array.from(lab.data as ArrayLike<number>), pca: map('pca'), tsne: map('tsne'),
      classes: JSON.parse(f.metadata.classes ?? '[]') as string[], paths,
    };
  } finally {
    for (const t of f.tensors.values()) t.dispose();
  }
}

/** The k rows of bank most cosine-similar to row q of queries (excluding q itself when both are the same set). */
export function nearestNeighbours(queries: LoadedEmbeddings, q: number, bank: LoadedEmbeddings, k: number, sameSet: boolean): { index: number; similarity: number }[] {
  if (queries.d !== bank.d) throw new Error(`[dashboard] query embeddings have ${queries.d} dimensions, the bank ${bank.d}`);
  const d = queries.d;
  const top: { index: number; similarity: number }[] = [];
  for (let i = 0; i < bank.n; i++) {
    if (sameSet && i === q) continue;
    let s = 0;
    for (let j = 0; j < d; j++) s += queries.unit[q * d + j]! * bank.unit[i * d + j]!;
    if (top.length < k || s > top[top.length - 1]!.similarity) {
      let p = top.length < k ? top.length : k - 1;
      if (top.length < k) top.push({ index: i, similarity: s });
      while (p > 0 && top[p - 1]!.similarity < s) { top[p] = top[p - 1]!; p--; }
      top[p] = { index: i, similarity: s };
    }
  }
  return top;
}
