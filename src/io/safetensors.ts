// safetensors read/write (u64 LE header length, JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// raw little-endian data), atomic writes, loading into modules with a report, and key maps for official checkpoints.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import * as T from '../tensor/index.js';
import type { DType, DeviceName, Tensor, TypedArray } from '../tensor/index.js';
import type { LoadOptions, LoadReport, Module } from '../nn/module.js';

export type Metadata = Record<string, string>;

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

const WRITE_CODE: Record<DType, string> = { float32: 'F32', float64: 'F64', int32: 'I32', uint8: 'U8' };
const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const MAX_HEADER = 100 * 1024 * 1024;

function isLittleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** Serialises tensors (in the map's or object's order) and string metadata into one safetensors buffer. */
export function serializeSafetensors(tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata: Metadata = {}): Buffer {
  if (!isLittleEndianHost()) throw new Error('[safetensors] big-endian hosts are not supported');
  const entries: [string, Tensor][] = tensors instanceof Map ? [...(tensors as ReadonlyMap<string, Tensor>)]
    : Object.entries(tensors as Readonly<Record<string, Tensor>>);
  const header: Record<string, HeaderEntry | Metadata> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`[safetensors] metadata value of '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = { ...metadata };
  }
  let offset = 0;
  const blobs: Uint8Array[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error('[safetensors] a tensor cannot be named __metadata__');
    if (name in header) throw new Error(`[safetensors] duplicate tensor name '${name}'`);
    const d = t.data;
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    header[name] = { dtype: WRITE_CODE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // pad with spaces so the data starts 8-byte aligned, as the reference (Rust) writer does
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + hb.byteLength + offset);
  out.writeBigUInt64LE(BigInt(hb.byteLength), 0);
  hb.copy(out, 8);
  let pos = 8 + hb.byteLength;
  for (const b of blobs) { out.set(b, pos); pos += b.byteLength; }
  return out;
}

/** Writes tensors and metadata to a .safetensors file atomically. */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata: Metadata = {}): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

export interface ReadOptions {
  /**
   * device of the returned tensors (default: the default device, where models are built; float64 tensors stay on
   * the reference device when the default one has no float64)
   */
  device?: DeviceName;
  /** only these names (default all) */
  names?: readonly string[];
}

export interface SafetensorsFile {
  /** tensors in file order; F16/BF16 become float32, I64 becomes int32 (range-checked), BOOL/U8 become uint8 */
  tensors: Map<string, Tensor>;
  metadata: Metadata;
  /** the dtype code each tensor had in the file */
  dtypes: Map<string, string>;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(code: string, bytes: Uint8Array, n: number, name: string): TypedArray {
  // copy into a fresh, aligned buffer: data offsets need not be aligned to the element size
  const own = new Uint8Array(bytes.byteLength);
  own.set(bytes);
  const buf = own.buffer;
  switch (code) {
    case 'F32': return new Float32Array(buf, 0, n);
    case 'F64': return new Float64Array(buf, 0, n);
    case 'I32': return new Int32Array(buf, 0, n);
    case 'U8': case 'BOOL': return own;
    case 'I8': return Int32Array.from(new Int8Array(buf, 0, n));
    case 'I16': return Int32Array.from(new Int16Array(buf, 0, n));
    case 'I64': {
      const src = new BigInt64Array(buf, 0, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        if (v > 2147483647n || v < -2147483648n) throw new Error(`[safetensors] '${name}': I64 value ${v} does not fit int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'F16': {
      const src = new Uint16Array(buf, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
    case 'BF16': {
      const src = new Uint16Array(buf, 0, n);
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = src[i]! << 16;
      return out;
    }
    default: throw new Error(`[safetensors] '${name}': unsupported dtype ${code}`);
  }
}

/** Parses a safetensors buffer, validating the header (offsets contiguous, in range, matching shapes). */
export function parseSafetensors(buf: Uint8Array, opts: ReadOptions = {}, source = 'buffer'): SafetensorsFile {
  if (!isLittleEndianHost()) throw new Error('[safetensors] big-endian hosts are not supported');
  if (buf.byteLength < 8) throw new Error(`[safetensors] ${source}: too short (${buf.byteLength} bytes) for a header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > buf.byteLength) {
    throw new Error(`[safetensors] ${source}: header length ${n} does not fit a ${buf.byteLength}-byte file (not a safetensors file?)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`[safetensors] ${source}: header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new Error(`[safetensors] ${source}: header must be a JSON object`);
  }
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Metadata = {};
  const rawMeta = header.__metadata__;
  if (rawMeta !== undefined) {
    if (rawMeta === null || typeof rawMeta !== 'object') throw new Error(`[safetensors] ${source}: __metadata__ must be an object`);
    for (const [k, v] of Object.entries(rawMeta)) metadata[k] = String(v);
  }
  const entries: [string, HeaderEntry][] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const h = e as HeaderEntry;
    if (h === null || typeof h !== 'object' || typeof h.dtype !== 'string' || !Array.isArray(h.shape) || !Array.isArray(h.data_offsets)
      || h.data_offsets.length !== 2) {
      throw new Error(`[safetensors] ${source}: malformed header entry for '${name}'`);
    }
    entries.push([name, h]);
  }
  // offsets must tile the data area exactly (the format's own validation)
  const sorted = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let expect = 0;
  for (const [name, h] of sorted) {
    const [a, b] = h.data_offsets;
    const width = BYTES[h.dtype];
    if (width === undefined) throw new Error(`[safetensors] ${source}: '${name}' has unsupported dtype ${h.dtype}`);
    const count = h.shape.reduce((p, d) => p * d, 1);
    if (a !== expect || b < a || b > dataLen) {
      throw new Error(`[safetensors] ${source}: '${name}' data_offsets [${a}, ${b}] are not contiguous within ${dataLen} data bytes`);
    }
    if (b - a !== count * width) {
      throw new Error(`[safetensors] ${source}: '${name}' holds ${b - a} bytes, but ${h.dtype} [${h.shape.join(', ')}] needs ${count * width}`);
    }
    expect = b;
  }
  if (expect !== dataLen) throw new Error(`[safetensors] ${source}: ${dataLen - expect} trailing bytes after the last tensor`);
  const want = opts.names === undefined ? null : new Set(opts.names);
  const tensors = new Map<string, Tensor>();
  const dtypes = new Map<string, string>();
  for (const [name, h] of entries) {
    if (want !== null && !want.has(name)) continue;
    const [a, b] = h.data_offsets;
    const count = h.shape.reduce((p, d) => p * d, 1);
    const data = decode(h.dtype, buf.subarray(dataStart + a, dataStart + b), count, name);
    const ref = T.fromTyped(data, h.shape);
    let t = ref;
    // float64 stays on the reference device when the default one cannot hold it (an explicit device must)
    const dflt = T.getDefaultDevice();
    const device = opts.device ?? (T.getBackend(dflt).supports(ref.dtype) ? dflt : 'reference');
    if (device !== 'reference') {
      t = T.to(ref, device);
      ref.dispose();
    }
    tensors.set(name, t);
    dtypes.set(name, h.dtype);
  }
  if (want !== null) {
    const absent = [...want].filter((k) => !tensors.has(k));
    if (absent.length > 0) throw new Error(`[safetensors] ${source}: no tensors named ${absent.join(', ')}`);
  }
  return { tensors, metadata, dtypes };
}

export function readSafetensors(path: string, opts: ReadOptions = {}): SafetensorsFile {
  return parseSafetensors(readFileSync(path), opts, path);
}

// ---------------------------------------------------------------- modules

/** Saves a module's state dict (parameters and persistent buffers, PyTorch names) atomically. */
export function saveModule(path: string, module: Module, metadata: Metadata = {}): void {
  writeSafetensors(path, module.stateDict(), metadata);
}

/**
 * Maps checkpoint keys to this library's names: return the new name, or null to drop the key. Official
 * checkpoints need one (each method file has its own: mocoKeys, simsiamKeys, maeKeys); compose with composeKeyMaps.
 */
export type KeyMap = (key: string) => string | null;

export interface LoadModuleOptions extends LoadOptions {
  keyMap?: KeyMap;
}

export interface LoadModuleReport extends LoadReport {
  /** checkpoint keys the key map dropped */
  dropped: string[];
  metadata: Metadata;
}

/** Applies a key map to a state dict; throws when two keys map to one name. */
export function remapStateDict(sd: ReadonlyMap<string, Tensor>, keyMap: KeyMap): { mapped: Map<string, Tensor>; dropped: string[] } {
  const mapped = new Map<string, Tensor>();
  const dropped: string[] = [];
  const from = new Map<string, string>();
  for (const [k, v] of sd) {
    const nk = keyMap(k);
    if (nk === null) { dropped.push(k); continue; }
    const prev = from.get(nk);
    if (prev !== undefined) throw new Error(`[safetensors] key map sends both '${prev}' and '${k}' to '${nk}'`);
    from.set(nk, k);
    mapped.set(nk, v);
  }
  return { mapped, dropped };
}

/**
 * Loads a .safetensors file into a module through an optional key map. Strict (default) throws listing every missing,
 * unexpected and mis-shaped key and changes nothing; non-strict loads what matches and returns the report.
 */
export function loadModule(path: string, module: Module, opts: LoadModuleOptions = {}): LoadModuleReport {
  const file = readSafetensors(path);
  try {
    const { mapped, dropped } = remapStateDict(file.tensors, opts.keyMap ?? ((k) => k));
    let report: LoadReport;
    try {
      report = module.loadStateDict(mapped, { strict: opts.strict ?? true });
    } catch (e) {
      throw new Error(`${(e as Error).message} (loading ${path}${dropped.length > 0 ? `; ${dropped.length} keys dropped by the key map` : ''})`);
    }
    return { ...report, dropped, metadata: file.metadata };
  } finally {
    for (const t of file.tensors.values()) t.dispose();
  }
}

// ---------------------------------------------------------------- key maps for official checkpoints

/** Keeps keys under `prefix` with the prefix removed (dropping the rest, and any key matching `drop`). */
export function stripPrefix(prefix: string, drop?: RegExp): KeyMap {
  return (k) => {
    if (!k.startsWith(prefix)) return null;
    const rest = k.slice(prefix.length);
    return drop !== undefined && drop.test(rest) ? null : rest;
  };
}

/** Runs maps in order; a null from any drops the key. */
export function composeKeyMaps(...maps: KeyMap[]): KeyMap {
  return (k) => {
    let cur: string | null = k;
    for (const m of maps) { if (cur === null) return null; cur = m(cur); }
    return cur;
  };
}

/** facebookresearch/moco-v3 checkpoints: `module.base_encoder.*` (ResNet `fc.*` / ViT `head.*` heads dropped). */
export function mocoV3Keys(opts: { keepHead?: boolean } = {}): KeyMap {
  return stripPrefix('module.base_encoder.', opts.keepHead === true ? undefined : /^(fc|head)\./);
}

/**
 * facebookresearch/moco-v3 pre-training checkpoints as a whole MoCo v3 model (resuming or evaluating every part):
 * `module.base_encoder.*`, `module.momentum_encoder.*` and `module.predictor.*` without the DDP prefix.
 */
export function mocoV3PretrainKeys(): KeyMap {
  return stripPrefix('module.');
}
