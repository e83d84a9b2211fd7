// TensorBoard event files and projector files, written without TensorFlow: TFRecord framing (length, masked CRC32C,
// payload, masked CRC32C) around Event protobufs, encoded by hand from tensorboard/compat/proto/{event,summary,
// tensor,tensor_shape,types}.proto. The layout follows tensorboard's summary/writer/record_writer.py and torch's
// SummaryWriter (file names, first event "brain.Event:2", text as a DT_STRING tensor for the text plugin, the
// projector's NNNNN/tag/{tensors,metadata}.tsv + sprite.png + projector_config.pbtxt).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';

// ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses --------------------------------

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TensorFlow's masked CRC (tensorflow/core/lib/hash/crc32c.h: Mask): rotate right by 15, add 0xa282ead8. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 length, uint32 masked CRC of the length bytes, data, uint32 masked CRC of the data (little-endian). */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// ---- protobuf wire format: just what Event and Summary need ------------------------------------------------------

class Proto {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(b: Uint8Array): void { this.parts.push(b); this.size += b.length; }

  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const bytes: number[] = [];
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      bytes.push(b);
    } while (x !== 0n);
    this.push(Uint8Array.from(bytes));
  }

  private key(field: number, wireType: number): void { this.varint((field << 3) | wireType); }

  /** int32 / int64 / enum (wire type 0); proto3 leaves zeros out */
  int(field: number, v: number): this {
    if (v !== 0) { this.key(field, 0); this.varint(v); }
    return this;
  }

  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.key(field, 1);
    this.push(b);
    return this;
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.key(field, 5);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    this.push(b);
    return this;
  }

  string(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }

  message(field: number, m: Proto): this { return this.bytes(field, m.finish()); }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) { out.set(p, off); off += p.length; }
    return out;
  }
}

// ---- Event / Summary ---------------------------------------------------------------------------------------------

/** One Summary.Value: a scalar (simple_value), a PNG image (Summary.Image) or text (the text plugin's string tensor). */
export type SummaryValue =
  | { tag: string; scalar: number }
  | { tag: string; image: { png: Uint8Array; width: number; height: number; colorspace: number } }
  | { tag: string; text: string };

const DT_STRING = 7; // types.proto: DT_STRING = 7

function encodeValue(v: SummaryValue): Proto {
  const p = new Proto().string(1, v.tag); // Value.tag = 1
  if ('scalar' in v) return p.float(2, v.scalar); // Value.simple_value = 2
  if ('image' in v) {
    // Value.image = 4: Image { height = 1, width = 2, colorspace = 3, encoded_image_string = 4 }
    const img = new Proto().int(1, v.image.height).int(2, v.image.width).int(3, v.image.colorspace).bytes(4, v.image.png);
    return p.message(4, img);
  }
  // text, as torch's summary.text: Value.metadata = 9 { plugin_data = 1 { plugin_name = 1: "text" } }, Value.tensor = 8:
  // TensorProto { dtype = 1: DT_STRING, tensor_shape = 2: { dim = 2: { size = 1: 1 } }, string_val = 8 }
  const metadata = new Proto().message(1, new Proto().string(1, 'text'));
  const shape = new Proto().message(2, new Proto().int(1, 1));
  const tensor = new Proto().int(1, DT_STRING).message(2, shape).string(8, v.text);
  return p.message(8, tensor).message(9, metadata); // fields in number order, as protobuf serialisers write them
}

/**
 * Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 { repeated value = 1 } |
 * session_log = 7 { status = 1 (START = 1) } }.
 */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; values?: readonly SummaryValue[]; sessionStart?: boolean }): Uint8Array {
  const p = new Proto().double(1, e.wallTime).int(2, e.step);
  if (e.fileVersion !== undefined) p.string(3, e.fileVersion);
  if (e.sessionStart === true) p.message(7, new Proto().int(1, 1));
  if (e.values !== undefined) {
    const summary = new Proto();
    for (const v of e.values) summary.message(1, encodeValue(v));
    p.message(5, summary);
  }
  return p.finish();
}

/** Width, height and Summary.Image colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) from a PNG's IHDR chunk. */
export function pngInfo(png: Uint8Array, where = 'tensorboard'): { width: number; height: number; colorspace: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.length < 33 || sig.some((b, i) => png[i] !== b) || String.fromCharCode(...png.subarray(12, 16)) !== 'IHDR') {
    throw new Error(`[${where}] not a PNG (no signature and IHDR chunk)`);
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const colourType = png[25]!;
  const colorspace = colourType === 0 ? 1 : colourType === 4 ? 2 : colourType === 6 ? 4 : 3; // palette shows as RGB
  return { width: view.getUint32(16), height: view.getUint32(20), colorspace };
}

// ---- the writer ----------------------------------------------------------------------------------------------------

let fileCounter = 0;

/** What training code logs to: a real SummaryWriter, or nothing (non-zero ranks, --no-tensorboard). */
export interface ScalarLogger {
  readonly logdir: string | null;
  addScalar(tag: string, value: number, step: number): void;
  addScalars(values: Readonly<Record<string, number | undefined>>, step: number): void;
  addImage(tag: string, png: Uint8Array, step: number): void;
  addText(tag: string, text: string, step: number): void;
  addSessionStart(step: number): void;
  close(): void;
}

/**
 * Appends events to logdir/events.out.tfevents.<seconds>.<host>.<pid>.<n> (torch's naming), one unbuffered write
 * per event so TensorBoard and the dashboard see a run while it trains; a kill leaves at most a truncated last
 * record, which TensorBoard's reader skips. A resumed run opens a new file, as TensorBoard expects.
 */
export class SummaryWriter implements ScalarLogger {
  readonly file: string;
  private fd: number | null;

  constructor(readonly logdir: string, private readonly clock: () => number = () => Date.now() / 1000) {
    mkdirSync(logdir, { recursive: true });
    const t = this.clock();
    this.file = join(logdir, `events.out.tfevents.${Math.floor(t)}.${hostname()}.${process.pid}.${fileCounter++}`);
    this.fd = openSync(this.file, 'a');
    this.write(encodeEvent({ wallTime: t, step: 0, fileVersion: 'brain.Event:2' }));
  }

  private write(event: Uint8Array): void {
    if (this.fd === null) throw new Error(`[tensorboard] ${this.file} is closed`);
    writeSync(this.fd, tfRecord(event));
  }

  add(values: readonly SummaryValue[], step: number): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`[tensorboard] step must be a non-negative integer, got ${step}`);
    if (values.length > 0) this.write(encodeEvent({ wallTime: this.clock(), step, values }));
  }

  addScalar(tag: string, value: number, step: number): void { this.add([{ tag, scalar: value }], step); }

  /** Several scalars at one step in one event; undefined values are skipped. */
  addScalars(values: Readonly<Record<string, number | undefined>>, step: number): void {
    this.add(Object.entries(values).filter((e): e is [string, number] => e[1] !== undefined).map(([tag, scalar]) => ({ tag, scalar })), step);
  }

  addImage(tag: string, png: Uint8Array, step: number): void { this.add([{ tag, image: { png, ...pngInfo(png) } }], step); }

  addText(tag: string, text: string, step: number): void { this.add([{ tag, text }], step); }

  /**
   * SessionLog.START at `step`: a resumed run says where it restarted, and TensorBoard's reader drops the events
   * of earlier files with larger steps (written after the checkpoint, before the kill), as it does for TensorFlow.
   */
  addSessionStart(step: number): void { this.write(encodeEvent({ wallTime: this.clock(), step, sessionStart: true })); }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The logger that drops everything (rank != 0, or event files turned off). */
export const NO_SUMMARIES: ScalarLogger = {
  logdir: null, addScalar() {}, addScalars() {}, addImage() {}, addText() {}, addSessionStart() {}, close() {},
};

/** A SummaryWriter on logdir, or NO_SUMMARIES when logdir is null. */
export function summaryWriter(logdir: string | null): ScalarLogger {
  return logdir === null ? NO_SUMMARIES : new SummaryWriter(logdir);
}

/** Text for the text plugin: TensorBoard renders it as Markdown, so JSON goes in a code block. */
export function markdownCode(text: string): string {
  return text.split('\n').map((l) => `    ${l}`).join('\n');
}

// ---- projector -----------------------------------------------------------------------------------------------------

export interface ProjectorEmbedding {
  /** [n, d] row-major */
  tensors: ArrayLike<number>;
  n: number;
  d: number;
  /** column names; with one column TensorBoard wants no header row */
  metadataHeader: readonly string[];
  metadata: readonly (readonly string[])[];
  /** thumbnails in a square grid, row-major, each singleImageDim = [width, height] */
  sprite?: { png: Uint8Array; singleImageDim: readonly [number, number] };
  tag?: string;
  step?: number;
}

function tsvField(s: string): string {
  return s.replace(/[\t\r\n]/g, ' ');
}

/**
 * torch's add_embedding layout: logdir/<step, 5 digits>/<tag>/{tensors.tsv, metadata.tsv, sprite.png}, and an
 * `embeddings { ... }` block in logdir/projector_config.pbtxt (replaced when the same tensor_name is written again).
 */
export function writeProjector(logdir: string, e: ProjectorEmbedding): string[] {
  const tag = e.tag ?? 'default';
  const step = e.step ?? 0;
  if (!/^[\w.-]+$/.test(tag)) throw new Error(`[tensorboard] projector tag '${tag}' must be letters, digits, '_', '.' or '-'`);
  if (e.tensors.length !== e.n * e.d) throw new Error(`[tensorboard] ${e.tensors.length} values for [${e.n}, ${e.d}] embeddings`);
  if (e.metadata.length !== e.n) throw new Error(`[tensorboard] ${e.metadata.length} metadata rows for ${e.n} embeddings`);
  const sub = `${String(step).padStart(5, '0')}/${tag}`;
  const dir = join(logdir, sub);
  mkdirSync(dir, { recursive: true });
  const rows: string[] = [];
  for (let i = 0; i < e.n; i++) {
    const r: string[] = [];
    for (let j = 0; j < e.d; j++) r.push(String(e.tensors[i * e.d + j]!));
    rows.push(r.join('\t'));
  }
  const files = [join(dir, 'tensors.tsv'), join(dir, 'metadata.tsv')];
  writeFileAtomic(files[0]!, `${rows.join('\n')}\n`);
  const meta = e.metadata.map((r) => r.map(tsvField).join('\t'));
  if (e.metadataHeader.length > 1) meta.unshift(e.metadataHeader.map(tsvField).join('\t'));
  writeFileAtomic(files[1]!, `${meta.join('\n')}\n`);
  const block = [
    'embeddings {',
    `  tensor_name: "${tag}:${String(step).padStart(5, '0')}"`,
    `  tensor_path: "${sub}/tensors.tsv"`,
    `  metadata_path: "${sub}/metadata.tsv"`,
  ];
  if (e.sprite !== undefined) {
    files.push(join(dir, 'sprite.png'));
    writeFileAtomic(files[2]!, e.sprite.png);
    block.push('  sprite {', `    image_path: "${sub}/sprite.png"`,
      `    single_image_dim: ${e.sprite.singleImageDim[0]}`, `    single_image_dim: ${e.sprite.singleImageDim[1]}`, '  }');
  }
  block.push('}');
  const configPath = join(logdir, 'projector_config.pbtxt');
  const kept = existsSync(configPath) ? splitProjectorBlocks(readFileSync(configPath, 'utf8')).filter((b) => !b.includes(`tensor_name: "${tag}:${String(step).padStart(5, '0')}"`)) : [];
  writeFileAtomic(configPath, `${[...kept, block.join('\n')].join('\n')}\n`);
  files.push(configPath);
  return files;
}

function splitProjectorBlocks(text: string): string[] {
  const blocks: string[] = [];
  let cur: string[] = [];
  let depth = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '' && depth === 0) continue;
    cur.push(line);
    depth += (line.match(/{/g)?.length ?? 0) - (line.match(/}/g)?.length ?? 0);
    if (depth === 0) { blocks.push(cur.join('\n')); cur = []; }
  }
  return blocks;
}
