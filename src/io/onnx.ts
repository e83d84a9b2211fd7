// A minimal ONNX writer and reader: just the protobuf fields `selfsup export` writes (onnx.proto: ModelProto,
// GraphProto, NodeProto, AttributeProto INT/INTS/FLOAT, TensorProto float32/int64 raw_data, ValueInfoProto).

/** float32 weights or int64 shape constants (Reshape), as ONNX's TensorProto.DataType FLOAT = 1, INT64 = 7 */
export type OnnxDataType = 'float32' | 'int64';

export interface OnnxTensor {
  name: string;
  dims: number[];
  dataType: OnnxDataType;
  /** float32 values, or int64 values as numbers (shapes and axes only, so well within 2^53) */
  data: Float32Array | number[];
}

export type OnnxAttribute = number | number[] | { float: number };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  /** a JS integer is an INT, an array INTS, { float } a FLOAT (so 1.0 stays a float) */
  attributes: Record<string, OnnxAttribute>;
}

export interface OnnxValueInfo {
  name: string;
  /** a string is a symbolic (dynamic) dim such as 'N' */
  shape: Array<number | string>;
}

export interface OnnxModel {
  producerName: string;
  opsetVersion: number;
  irVersion: number;
  graph: {
    name: string;
    nodes: OnnxNode[];
    initializers: OnnxTensor[];
    inputs: OnnxValueInfo[];
    outputs: OnnxValueInfo[];
  };
}

const DATA_TYPE = { float32: 1, int64: 7 } as const;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

// ---- writing ----

/** Protobuf wire encoding into a growable byte list. */
class Writer {
  private chunks: Uint8Array[] = [];
  private cur: number[] = [];
  private flush(): void {
    if (this.cur.length > 0) { this.chunks.push(Uint8Array.from(this.cur)); this.cur = []; }
  }
  /** int64 varint; negatives take ten bytes (two's complement), as protobuf writes them */
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) { this.cur.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    this.cur.push(Number(x));
  }
  private tag(field: number, wire: number): void { this.varint((field << 3) | wire); }
  int(field: number, v: number): void { this.tag(field, 0); this.varint(v); }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.cur.push(...b);
  }
  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.flush();
    this.chunks.push(b);
  }
  string(field: number, s: string): void { this.bytes(field, new TextEncoder().encode(s)); }
  message(field: number, build: (w: Writer) => void): void {
    const w = new Writer();
    build(w);
    this.bytes(field, w.finish());
  }
  finish(): Uint8Array {
    this.flush();
    return Buffer.concat(this.chunks);
  }
}

function writeTensor(w: Writer, t: OnnxTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, DATA_TYPE[t.dataType]);
  w.string(8, t.name);
  let raw: Uint8Array;
  if (t.dataType === 'float32') {
    const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    raw = new Uint8Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength)); // little-endian hosts only (x64, arm64)
  } else {
    const b = new BigInt64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) b[i] = BigInt(t.data[i]!);
    raw = new Uint8Array(b.buffer);
  }
  w.bytes(9, raw);
}

function writeValueInfo(w: Writer, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) => type.message(1, (tensor) => {
    tensor.int(1, DATA_TYPE.float32);
    tensor.message(2, (shape) => {
      for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'string' ? dim.string(2, d) : dim.int(1, d)));
    });
  }));
}

function writeAttribute(w: Writer, name: string, a: OnnxAttribute): void {
  w.string(1, name);
  if (typeof a === 'number') {
    if (!Number.isInteger(a)) throw new Error(`[onnx] attribute ${name}=${a} is not an integer; pass { float: ${a} }`);
    w.int(3, a);
    w.int(20, ATTR_INT);
  } else if (Array.isArray(a)) {
    for (const v of a) w.int(8, v);
    w.int(20, ATTR_INTS);
  } else {
    w.float(2, a.float);
    w.int(20, ATTR_FLOAT);
  }
}

/** The serialised ModelProto. */
export function encodeOnnx(m: OnnxModel): Uint8Array {
  const w = new Writer();
  w.int(1, m.irVersion);
  w.string(2, m.producerName);
  w.message(7, (g) => {
    for (const n of m.graph.nodes) {
      g.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i);
        for (const o of n.outputs) nw.string(2, o);
        nw.string(3, n.name);
        nw.string(4, n.opType);
        for (const [k, a] of Object.entries(n.attributes)) nw.message(5, (aw) => writeAttribute(aw, k, a));
      });
    }
    g.string(2, m.graph.name);
    for (const t of m.graph.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const v of m.graph.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of m.graph.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (o) => { o.string(1, ''); o.int(2, m.opsetVersion); });
  return w.finish();
}

// ---- reading (the same fields; others are skipped) ----

interface Field { field: number; wire: number; int: bigint; bytes: Uint8Array }

function* fields(b: Uint8Array): Generator<Field> {
  let p = 0;
  const varint = (): bigint => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= b.length) throw new Error('[onnx] truncated varint');
      const c = b[p++]!;
      x |= BigInt(c & 0x7f) << shift;
      if ((c & 0x80) === 0) return x;
      shift += 7n;
    }
  };
  const empty = new Uint8Array(0);
  while (p < b.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      yield { field, wire, int: BigInt.asIntN(64, varint()), bytes: empty };
    } else if (wire === 2) {
      const len = Number(varint());
      if (p + len > b.length) throw new Error(`[onnx] field ${field} runs past the end of its message`);
      yield { field, wire, int: 0n, bytes: b.subarray(p, p + len) };
      p += len;
    } else if (wire === 5) {
      if (p + 4 > b.length) throw new Error('[onnx] truncated fixed32');
      yield { field, wire, int: 0n, bytes: b.subarray(p, p + 4) };
      p += 4;
    } else if (wire === 1) {
      p += 8;
    } else {
      throw new Error(`[onnx] unsupported wire type ${wire} in field ${field}`);
    }
  }
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** int64s of a repeated field, packed or not. */
function ints(f: Field, into: number[]): void {
  if (f.wire === 0) { into.push(Number(f.int)); return; }
  for (const g of fields(prefixPacked(f.bytes))) into.push(Number(g.int));
}

/** Packed varints re-tagged as field 1 so `fields` can walk them. */
function prefixPacked(b: Uint8Array): Uint8Array {
  const out: number[] = [];
  let p = 0;
  while (p < b.length) {
    out.push(0x08);
    do { out.push(b[p]!); } while ((b[p++]! & 0x80) !== 0 && p < b.length);
  }
  return Uint8Array.from(out);
}

function readTensor(b: Uint8Array): OnnxTensor {
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let raw: Uint8Array = new Uint8Array(0);
  for (const f of fields(b)) {
    if (f.field === 1) ints(f, dims);
    else if (f.field === 2) dataType = Number(f.int);
    else if (f.field === 8) name = text(f.bytes);
    else if (f.field === 9) raw = f.bytes;
  }
  const copy = new Uint8Array(raw); // an aligned copy (a Buffer's slice() would be a view into its pool)
  if (dataType === DATA_TYPE.float32) return { name, dims, dataType: 'float32', data: new Float32Array(copy.buffer, 0, copy.length / 4) };
  if (dataType === DATA_TYPE.int64) return { name, dims, dataType: 'int64', data: Array.from(new BigInt64Array(copy.buffer, 0, copy.length / 8), Number) };
  throw new Error(`[onnx] initializer ${name} has data type ${dataType}; only FLOAT (1) and INT64 (7) are read`);
}

function readValueInfo(b: Uint8Array): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '', shape: [] };
  for (const f of fields(b)) {
    if (f.field === 1) v.name = text(f.bytes);
    else if (f.field === 2) {
      for (const t of fields(f.bytes)) if (t.field === 1) {
        for (const s of fields(t.bytes)) if (s.field === 2) {
          for (const d of fields(s.bytes)) if (d.field === 1) {
            let dim: number | string = '?';
            for (const x of fields(d.bytes)) dim = x.field === 1 ? Number(x.int) : x.field === 2 ? text(x.bytes) : dim;
            v.shape.push(dim);
          }
        }
      }
    }
  }
  return v;
}

function readNode(b: Uint8Array): OnnxNode {
  const n: OnnxNode = { opType: '', inputs: [], outputs: [], name: '', attributes: {} };
  for (const f of fields(b)) {
    if (f.field === 1) n.inputs.push(text(f.bytes));
    else if (f.field === 2) n.outputs.push(text(f.bytes));
    else if (f.field === 3) n.name = text(f.bytes);
    else if (f.field === 4) n.opType = text(f.bytes);
    else if (f.field === 5) {
      let name = '';
      let type = 0;
      let i = 0;
      let fl = 0;
      const is: number[] = [];
      for (const a of fields(f.bytes)) {
        if (a.field === 1) name = text(a.bytes);
        else if (a.field === 2) fl = new DataView(a.bytes.buffer, a.bytes.byteOffset, 4).getFloat32(0, true);
        else if (a.field === 3) i = Number(a.int);
        else if (a.field === 8) ints(a, is);
        else if (a.field === 20) type = Number(a.int);
      }
      if (type === ATTR_INT) n.attributes[name] = i;
      else if (type === ATTR_INTS) n.attributes[name] = is;
      else if (type === ATTR_FLOAT) n.attributes[name] = { float: fl };
      else throw new Error(`[onnx] attribute ${name} of node ${n.name} has type ${type}; only FLOAT, INT, INTS are read`);
    }
  }
  return n;
}

/** Parses a ModelProto written by encodeOnnx (or any model using only these fields). */
export function decodeOnnx(bytes: Uint8Array): OnnxModel {
  const m: OnnxModel = { producerName: '', opsetVersion: 0, irVersion: 0, graph: { name: '', nodes: [], initializers: [], inputs: [], outputs: [] } };
  for (const f of fields(bytes)) {
    if (f.field === 1) m.irVersion = Number(f.int);
    else if (f.field === 2) m.producerName = text(f.bytes);
    else if (f.field === 8) {
      let domain = '';
      let version = 0;
      for (const o of fields(f.bytes)) {
        if (o.field === 1) domain = text(o.bytes);
        else if (o.field === 2) version = Number(o.int);
      }
      if (domain === '' || domain === 'ai.onnx') m.opsetVersion = version;
    } else if (f.field === 7) {
      const g = m.graph;
      for (const x of fields(f.bytes)) {
        if (x.field === 1) g.nodes.push(readNode(x.bytes));
        else if (x.field === 2) g.name = text(x.bytes);
        else if (x.field === 5) g.initializers.push(readTensor(x.bytes));
        else if (x.field === 11) g.inputs.push(readValueInfo(x.bytes));
        else if (x.field === 12) g.outputs.push(readValueInfo(x.bytes));
      }
    }
  }
  if (m.irVersion === 0) throw new Error('[onnx] not an ONNX model (no ir_version)');
  return m;
}
