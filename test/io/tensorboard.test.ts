// TensorBoard event files: the writer's records read back by a reader written from the spec (test/io/tfevents.ts),
// every CRC checked; tensorboard's own writer's golden file (reference/tensorboard_golden.py) decoded by the same
// reader and re-encoded byte for byte by ours; the projector files.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { crc32c, encodeEvent, maskedCrc32c, pngInfo, SummaryWriter, summaryWriter, tfRecord, writeProjector, type SummaryValue } from '../../src/io/tensorboard.js';
import { decodeEvent, maskedCrc, readEvents, readRecords, scalarsByTag } from './tfevents.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-tb-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const FIXTURES = new URL('../fixtures/io/tensorboard/', import.meta.url);

test('crc32c matches the standard check value and the spec-written bitwise CRC', () => {
  // RFC 3720 B.4 / the CRC catalogue: CRC-32C("123456789") = 0xE3069283
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) % 256);
  for (const n of [0, 1, 7, 8, 999, 1000]) assert.equal(maskedCrc32c(bytes.subarray(0, n)), maskedCrc(bytes.subarray(0, n)), `length ${n}`);
});

test("tensorboard's own writer: the golden file passes the reader and our encoder reproduces its records byte for byte", async () => {
  const golden = new Uint8Array(readFileSync(new URL('golden.tfevents', FIXTURES)));
  const want = JSON.parse(readFileSync(new URL('golden.json', FIXTURES), 'utf8')) as {
    fileVersion: string; scalars: { tag: string; step: number; value: number }[];
    image: { tag: string; step: number; width: number; height: number; colorspace: number; rgb: number[] };
    text: { tag: string; step: number; text: string };
  };
  const { records } = readRecords(golden);
  const events = records.map((r) => decodeEvent(r.data));
  assert.equal(events[0]!.fileVersion, want.fileVersion);
  const scalars = scalarsByTag(events);
  for (const s of want.scalars) {
    const hit = scalars.get(s.tag)?.find(([step]) => step === s.step);
    assert.ok(hit, `scalar ${s.tag} at step ${s.step}`);
    assert.equal(hit[1], Math.fround(s.value));
  }
  const img = events.flatMap((e) => (e.values ?? []).map((v) => ({ e, v }))).find(({ v }) => v.tag === want.image.tag)!;
  assert.equal(img.e.step, want.image.step);
  assert.deepEqual([img.v.image!.width, img.v.image!.height, img.v.image!.colorspace], [want.image.width, want.image.height, want.image.colorspace]);
  const { data, info } = await sharp(img.v.image!.png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [4, 3, 3]);
  assert.deepEqual([...data], want.image.rgb);
  const txt = events.flatMap((e) => (e.values ?? []).map((v) => ({ e, v }))).find(({ v }) => v.tag === want.text.tag)!;
  assert.equal(txt.v.pluginName, 'text');
  assert.deepEqual(txt.v.tensor, { dtype: 7, shape: [1], stringVal: [want.text.text] });
  // every summary record, decoded and re-encoded by src/io/tensorboard.ts, is the same bytes (framing included)
  let reencoded = 0;
  for (const [i, e] of events.entries()) {
    if (e.values === undefined) continue;
    const values: SummaryValue[] = e.values.map((v) => {
      if (v.simpleValue !== undefined) return { tag: v.tag, scalar: v.simpleValue };
      if (v.image !== undefined) return { tag: v.tag, image: v.image };
      return { tag: v.tag, text: v.tensor!.stringVal[0]! };
    });
    const r = records[i]!;
    assert.deepEqual(encodeEvent({ wallTime: e.wallTime, step: e.step, values }), r.data, `record ${i}`);
    assert.deepEqual(tfRecord(r.data), golden.subarray(r.offset, r.offset + r.data.length + 16), `framing of record ${i}`);
    reencoded++;
  }
  assert.equal(reencoded, want.scalars.length + 2);
});

test('SummaryWriter: scalars, a PNG and text read back at their steps; a flipped byte or a cut file is caught', async () => {
  let t = 1_700_000_000;
  const dir = join(tmp, 'tb');
  const w = new SummaryWriter(dir, () => t++);
  const png = new Uint8Array(await sharp(Buffer.from(Uint8Array.from({ length: 5 * 2 * 3 }, (_, i) => i * 8)), { raw: { width: 5, height: 2, channels: 3 } }).png().toBuffer());
  for (let step = 0; step < 4; step++) w.addScalars({ 'train/loss': 1 / (step + 1), 'train/lr': 0.1 * step, skipped: undefined }, step * 10);
  w.addImage('augmentations', png, 0);
  w.addText('config', '    {"lr": 0.1}', 0);
  w.addSessionStart(30);
  assert.throws(() => w.addScalar('x', 1, -1), /\[tensorboard\] step must be a non-negative integer, got -1/);
  w.close();
  assert.throws(() => w.addScalar('x', 1, 1), /\[tensorboard\] .* is closed/);
  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^events\.out\.tfevents\.1700000000\.[^.]+.*\.\d+\.\d+$/);
  const buf = new Uint8Array(readFileSync(join(dir, files[0]!)));
  const events = readEvents(buf);
  assert.equal(events[0]!.fileVersion, 'brain.Event:2');
  assert.equal(events[0]!.wallTime, 1_700_000_000);
  assert.equal(events.length, 1 + 4 + 2 + 1);
  assert.deepEqual([events[7]!.step, events[7]!.sessionStatus, events[7]!.values], [30, 1, undefined]);
  const s = scalarsByTag(events);
  assert.deepEqual([...s.keys()], ['train/loss', 'train/lr']);
  assert.deepEqual(s.get('train/loss'), [0, 10, 20, 30].map((st, i) => [st, Math.fround(1 / (i + 1))]));
  assert.deepEqual(s.get('train/lr')!.map(([st]) => st), [0, 10, 20, 30]);
  const image = events[5]!.values![0]!;
  assert.equal(image.tag, 'augmentations');
  assert.deepEqual([image.image!.width, image.image!.height, image.image!.colorspace], [5, 2, 3]);
  assert.deepEqual(image.image!.png, png);
  assert.deepEqual(events[6]!.values![0]!.tensor, { dtype: 7, shape: [1], stringVal: ['    {"lr": 0.1}'] });
  assert.equal(events[6]!.values![0]!.pluginName, 'text');
  // corruption: a flipped payload byte, a flipped length byte, a cut tail
  const bad = buf.slice();
  bad[buf.length - 6]! ^= 1;
  assert.throws(() => readEvents(bad), /bad data CRC/);
  const badLen = buf.slice();
  badLen[0]! ^= 1;
  assert.throws(() => readEvents(badLen), /bad length CRC/);
  const cut = buf.subarray(0, buf.length - 3);
  assert.throws(() => readEvents(cut), /truncated record data/);
  const tolerant = readRecords(cut, true);
  assert.equal(tolerant.truncatedTail, true);
  assert.equal(tolerant.records.length, events.length - 1);
});

test('pngInfo reads IHDR and rejects what is not a PNG; the disabled writer writes nothing', () => {
  assert.throws(() => pngInfo(new Uint8Array(40)), /\[tensorboard\] not a PNG/);
  const none = summaryWriter(null);
  none.addScalar('x', 1, 0);
  none.close();
  assert.equal(none.logdir, null);
});

test('projector files: tensors.tsv, metadata.tsv with a header, sprite and projector_config.pbtxt', () => {
  const dir = join(tmp, 'proj');
  const png = new Uint8Array(readFileSync(new URL('../fixtures/data/tiny-rgba.png', import.meta.url)));
  writeProjector(dir, { tensors: [1, 2, 3, 4.5, 5, -6], n: 3, d: 2, metadataHeader: ['label', 'class'], metadata: [['0', 'cat'], ['1', 'dog\tx'], ['0', 'cat']], sprite: { png, singleImageDim: [8, 8] } });
  assert.equal(readFileSync(join(dir, '00000/default/tensors.tsv'), 'utf8'), '1\t2\n3\t4.5\n5\t-6\n');
  assert.equal(readFileSync(join(dir, '00000/default/metadata.tsv'), 'utf8'), 'label\tclass\n0\tcat\n1\tdog x\n0\tcat\n');
  const cfg = readFileSync(join(dir, 'projector_config.pbtxt'), 'utf8');
  assert.equal(cfg, 'embeddings {\n  tensor_name: "default:00000"\n  tensor_path: "00000/default/tensors.tsv"\n  metadata_path: "00000/default/metadata.tsv"\n'
    + '  sprite {\n    image_path: "00000/default/sprite.png"\n    single_image_dim: 8\n    single_image_dim: 8\n  }\n}\n');
  // a second tag adds a block, rewriting the same tag replaces its block
  writeProjector(dir, { tensors: [1], n: 1, d: 1, metadataHeader: ['label'], metadata: [['a']], tag: 'train' });
  writeProjector(dir, { tensors: [2], n: 1, d: 1, metadataHeader: ['label'], metadata: [['b']], tag: 'train' });
  const cfg2 = readFileSync(join(dir, 'projector_config.pbtxt'), 'utf8');
  assert.equal(cfg2.match(/embeddings \{/g)!.length, 2);
  assert.equal(readFileSync(join(dir, '00000/train/metadata.tsv'), 'utf8'), 'b\n', 'one column: no header row');
  assert.throws(() => writeProjector(dir, { tensors: [1, 2], n: 1, d: 1, metadataHeader: ['l'], metadata: [['a']] }), /\[tensorboard\] 2 values for \[1, 1\]/);
  assert.throws(() => writeProjector(dir, { tensors: [1], n: 1, d: 1, metadataHeader: ['l'], metadata: [['a']], tag: '../x' }), /projector tag/);
});
