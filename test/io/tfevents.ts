// A TensorBoard event-file reader written from the specifications, independent of src/io/tensorboard.ts:
//   framing: tensorflow/core/lib/io/record_writer.cc (and tensorboard/summary/writer/record_writer.py lines 31-40):
//     uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data), little-endian;
//   mask: tensorflow/core/lib/hash/crc32c.h Mask(): ((crc >> 15) | (crc << 17)) + 0xa282ead8;
//   CRC32C: Castagnoli polynomial 0x1EDC6F41 (reflected 0x82F63B78), init and final xor 0xFFFFFFFF, computed here bit by
//     bit (no table) so it shares nothing with the writer;
//   messages: tensorboard/compat/proto/event.proto (Event: wall_time = 1 double, step = 2 int64, file_version = 3,
//     summary = 5), summary.proto (Summary.value = 1; Value: tag = 1, simple_value = 2 float, image = 4, tensor = 8,
//     metadata = 9; Image: height = 1, width = 2, colorspace = 3, encoded_image_string = 4; SummaryMetadata.plugin_data
//     = 1 { plugin_name = 1, content = 2 }), tensor.proto (dtype = 1, tensor_shape = 2, string_val = 8),
//     tensor_shape.proto (dim = 2 { size = 1 });
//   wire format: protobuf encoding (varint keys field << 3 | type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).

function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export function maskedCrc(bytes: Uint8Array): number {
  const crc = crc32cBitwise(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export interface TfRecord { offset: number; data: Uint8Array }

/** Splits a file into records, checking both CRCs of each; `allowTruncatedTail` accepts a partial last record. */
export function readRecords(buf: Uint8Array, allowTruncatedTail = false): { records: TfRecord[]; truncatedTail: boolean } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: TfRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) {
      if (allowTruncatedTail) return { records, truncatedTail: true };
      throw new Error(`truncated record header at byte ${off}`);
    }
    const len = Number(view.getBigUint64(off, true));
    const lenCrc = view.getUint32(off + 8, true);
    if (maskedCrc(buf.subarray(off, off + 8)) !== lenCrc) throw new Error(`bad length CRC at byte ${off}`);
    if (off + 12 + len + 4 > buf.length) {
      if (allowTruncatedTail) return { records, truncatedTail: true };
      throw new Error(`truncated record data at byte ${off}`);
    }
    const data = buf.subarray(off + 12, off + 12 + len);
    if (maskedCrc(data) !== view.getUint32(off + 12 + len, true)) throw new Error(`bad data CRC at byte ${off}`);
    records.push({ offset: off, data });
    off += 12 + len + 4;
  }
  return { records, truncatedTail: false };
}

type Field = { wire: 0; value: bigint } | { wire: 1; value: Uint8Array } | { wire: 2; value: Uint8Array } | { wire: 5; value: Uint8Array };

/** All fields of a protobuf message, by field number, in order. */
export function decodeMessage(b: Uint8Array): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  let i = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= b.length) throw new Error('truncated varint');
      const byte = b[i++]!;
      r |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return r;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  };
  while (i < b.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    let f: Field;
    if (wire === 0) f = { wire, value: varint() };
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (i + n > b.length) throw new Error('truncated fixed field');
      f = { wire, value: b.subarray(i, i + n) };
      i += n;
    } else if (wire === 2) {
      const n = Number(varint());
      if (i + n > b.length) throw new Error('truncated length-delimited field');
      f = { wire, value: b.subarray(i, i + n) };
      i += n;
    } else throw new Error(`unsupported wire type ${wire} (field ${field})`);
    const list = fields.get(field) ?? [];
    list.push(f);
    fields.set(field, list);
  }
  return fields;
}

function one(m: Map<number, Field[]>, field: number): Field | undefined {
  const l = m.get(field);
  return l?.[l.length - 1];
}

function bytesOf(m: Map<number, Field[]>, field: number): Uint8Array | undefined {
  const f = one(m, field);
  if (f === undefined) return undefined;
  if (f.wire !== 2) throw new Error(`field ${field} is not length-delimited`);
  return f.value;
}

function intOf(m: Map<number, Field[]>, field: number): number {
  const f = one(m, field);
  if (f === undefined) return 0;
  if (f.wire !== 0) throw new Error(`field ${field} is not a varint`);
  return Number(BigInt.asIntN(64, f.value));
}

const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder('utf-8', { fatal: true }).decode(b));

export interface DecodedValue {
  tag: string;
  simpleValue?: number;
  image?: { height: number; width: number; colorspace: number; png: Uint8Array };
  tensor?: { dtype: number; shape: number[]; stringVal: string[] };
  pluginName?: string;
}

export interface DecodedEvent { wallTime: number; step: number; fileVersion?: string; values?: DecodedValue[]; sessionStatus?: number }

export function decodeEvent(data: Uint8Array): DecodedEvent {
  const m = decodeMessage(data);
  const wt = one(m, 1);
  if (wt !== undefined && wt.wire !== 1) throw new Error('wall_time is not a double');
  const e: DecodedEvent = { wallTime: wt === undefined ? 0 : new DataView(wt.value.buffer, wt.value.byteOffset, 8).getFloat64(0, true), step: intOf(m, 2) };
  const fv = text(bytesOf(m, 3));
  if (fv !== undefined) e.fileVersion = fv;
  const sessionLog = bytesOf(m, 7); // SessionLog { status = 1 }
  if (sessionLog !== undefined) e.sessionStatus = intOf(decodeMessage(sessionLog), 1);
  const summary = bytesOf(m, 5);
  if (summary !== undefined) {
    e.values = (decodeMessage(summary).get(1) ?? []).map((f) => {
      if (f.wire !== 2) throw new Error('Summary.value is not a message');
      const v = decodeMessage(f.value);
      const out: DecodedValue = { tag: text(bytesOf(v, 1)) ?? '' };
      const sv = one(v, 2);
      if (sv !== undefined) {
        if (sv.wire !== 5) throw new Error('simple_value is not a float');
        out.simpleValue = new DataView(sv.value.buffer, sv.value.byteOffset, 4).getFloat32(0, true);
      }
      const img = bytesOf(v, 4);
      if (img !== undefined) {
        const im = decodeMessage(img);
        out.image = { height: intOf(im, 1), width: intOf(im, 2), colorspace: intOf(im, 3), png: bytesOf(im, 4) ?? new Uint8Array() };
      }
      const tensor = bytesOf(v, 8);
      if (tensor !== undefined) {
        const t = decodeMessage(tensor);
        const shape = decodeMessage(bytesOf(t, 2) ?? new Uint8Array());
        out.tensor = {
          dtype: intOf(t, 1),
          shape: (shape.get(2) ?? []).map((d) => intOf(decodeMessage(d.value as Uint8Array), 1)),
          stringVal: (t.get(8) ?? []).map((s) => text(s.value as Uint8Array)!),
        };
      }
      const meta = bytesOf(v, 9);
      if (meta !== undefined) {
        const pd = bytesOf(decodeMessage(meta), 1);
        const name = pd === undefined ? undefined : text(bytesOf(decodeMessage(pd), 1));
        if (name !== undefined) out.pluginName = name;
      }
      return out;
    });
  }
  return e;
}

/** Every event of a file, CRCs checked. */
export function readEvents(buf: Uint8Array): DecodedEvent[] {
  return readRecords(buf).records.map((r) => decodeEvent(r.data));
}

/** Scalars by tag: [step, value] in file order. */
export function scalarsByTag(events: readonly DecodedEvent[]): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const e of events) {
    for (const v of e.values ?? []) {
      if (v.simpleValue === undefined) continue;
      const l = out.get(v.tag) ?? [];
      l.push([e.step, v.simpleValue]);
      out.set(v.tag, l);
    }
  }
  return out;
}
