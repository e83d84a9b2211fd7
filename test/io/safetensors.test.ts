// safetensors: round trips, the byte layout other tools expect, header validation, atomic writes, loading into modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import {
  composeKeyMaps, loadModule, parseSafetensors, readSafetensors, saveModule, serializeSafetensors, stripPrefix, writeSafetensors,
} from '../../src/io/safetensors.js';
import { mocoKeys } from '../../src/methods/moco.js';
import { simsiamKeys } from '../../src/methods/simsiam.js';
import { maeKeys } from '../../src/methods/mae.js';
import { Linear, Sequential, BatchNorm1d } from '../../src/nn/index.js';
import { resnet18Cifar } from '../../src/models/resnet.js';

const dev = { device: 'reference' } as const;

test('round trip keeps names, order, dtypes, shapes, values and metadata', () => {
  const a = T.tensor([1.5, -2, 3.25, 4, 5, 6], [2, 3], dev);
  const b = T.tensor([1, 2, 3], [3], { ...dev, dtype: 'float64' });
  const c = T.tensor([7, -8], [2], { ...dev, dtype: 'int32' });
  const d = T.tensor([0, 255], [1, 2], { ...dev, dtype: 'uint8' });
  const s = T.tensor([42], [], dev);
  const buf = serializeSafetensors(new Map([['z.a', a], ['b', b], ['c', c], ['d', d], ['s', s]]), { format: 'x', n: '1' });
  assert.equal(Number(buf.readBigUInt64LE(0)) % 8, 0, 'header padded to 8 bytes');
  const r = parseSafetensors(buf);
  assert.deepEqual([...r.tensors.keys()], ['z.a', 'b', 'c', 'd', 's']);
  assert.deepEqual(r.metadata, { format: 'x', n: '1' });
  assert.equal(r.tensors.get('b')!.dtype, 'float64');
  assert.equal(r.tensors.get('c')!.dtype, 'int32');
  assert.equal(r.tensors.get('d')!.dtype, 'uint8');
  assert.deepEqual([...r.tensors.get('z.a')!.shape], [2, 3]);
  assert.deepEqual([...r.tensors.get('s')!.shape], []);
  assert.deepEqual(r.tensors.get('z.a')!.toArray(), [1.5, -2, 3.25, 4, 5, 6]);
  assert.deepEqual(r.tensors.get('c')!.toArray(), [7, -8]);
});

test('header validation: truncated, overlapping and mis-sized entries are rejected with a clear message', () => {
  const t = T.tensor([1, 2, 3, 4], [4], dev);
  const good = serializeSafetensors({ w: t });
  assert.throws(() => parseSafetensors(good.subarray(0, good.byteLength - 4)), /holds|contiguous|needs/);
  assert.throws(() => parseSafetensors(Buffer.from([1, 2, 3])), /too short/);
  const bad = Buffer.from(good);
  bad.writeBigUInt64LE(10n ** 12n, 0);
  assert.throws(() => parseSafetensors(bad), /header length/);
  const json = JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } });
  const hb = Buffer.from(json);
  const mis = Buffer.concat([Buffer.alloc(8), hb, Buffer.alloc(16)]);
  mis.writeBigUInt64LE(BigInt(hb.byteLength), 0);
  assert.throws(() => parseSafetensors(mis), /needs 12/);
});

test('reads PyTorch-written I64 counters and the parity fixtures', () => {
  const f = readSafetensors('test/fixtures/parity/conv_bn_relu.safetensors');
  assert.equal(f.metadata.magic, 'selfsup-parity');
  const nbt = f.tensors.get('state.1.num_batches_tracked')!;
  assert.equal(f.dtypes.get('state.1.num_batches_tracked'), 'I64');
  assert.equal(nbt.dtype, 'int32');
  assert.deepEqual([...nbt.shape], []);
  assert.equal(f.tensors.get('state_after.1.num_batches_tracked')!.item(), 1);
});

test('atomic write leaves no temp files, and other tools (numpy reader) read our files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  const path = join(dir, 'w.safetensors');
  writeSafetensors(path, { 'layer.weight': T.tensor([1, 2, 3, 4, 5, 6], [2, 3], dev), n: T.tensor([3], [], { ...dev, dtype: 'int32' }) }, { k: 'v' });
  assert.deepEqual(readdirSync(dir), ['w.safetensors']);
  writeFileSync(path + '.keep', 'x');
  writeSafetensors(path, { a: T.tensor([9], [1], dev) });
  assert.deepEqual(readSafetensors(path).tensors.get('a')!.toArray(), [9]);
  let py = true;
  try { execFileSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }); } catch { py = false; }
  if (!py) return;
  writeSafetensors(path, { 'layer.weight': T.tensor([1, 2, 3, 4, 5, 6], [2, 3], dev) }, { k: 'v' });
  const out = execFileSync('/usr/bin/python3', ['-c',
    'import sys; sys.path.insert(0, "reference"); import safetensors_io as s; t, m = s.load(sys.argv[1]); '
    + 'print(t["layer.weight"].shape, t["layer.weight"].sum(), m["k"])', path]).toString().trim();
  assert.equal(out, '(2, 3) 21.0 v');
  assert.ok(existsSync(path) && readFileSync(path).byteLength > 8);
});

function tinyNet(seed: number): Sequential {
  const f = { device: 'reference' as const, rng: new T.Rng(seed) };
  return new Sequential(new Linear(3, 4, true, f), new BatchNorm1d(4, {}, f), new Linear(4, 2, true, f));
}

test('saveModule / loadModule round trip; strict loading reports every problem and changes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  const path = join(dir, 'm.safetensors');
  const a = tinyNet(1);
  saveModule(path, a, { arch: 'tiny' });
  const b = tinyNet(2);
  const r = loadModule(path, b);
  assert.equal(r.loaded.length, 9);
  assert.equal(r.metadata.arch, 'tiny');
  for (const [k, t] of a.stateDict()) assert.deepEqual(b.stateDict().get(k)!.toArray(), t.toArray(), k);

  // checkpoint with a wrapper prefix, an extra head and a wrong shape
  const c = tinyNet(3);
  const wrapped = new Map<string, T.Tensor>();
  for (const [k, t] of c.stateDict()) wrapped.set(`module.encoder_q.${k}`, t);
  wrapped.set('module.encoder_q.fc.weight', T.zeros([2, 2], dev));
  wrapped.set('module.encoder_q.2.bias', T.zeros([3], dev));
  writeSafetensors(path, wrapped);
  const before = b.stateDict().get('0.weight')!.toArray();
  assert.throws(() => loadModule(path, b, { keyMap: stripPrefix('module.encoder_q.') }),
    /unexpected keys: fc\.weight; shape mismatches: 2\.bias \(expected \[2\], got \[3\]\)/);
  assert.deepEqual(b.stateDict().get('0.weight')!.toArray(), before, 'strict failure changes nothing');
  const r2 = loadModule(path, b, { keyMap: mocoKeys(), strict: false });
  assert.deepEqual(r2.dropped, ['module.encoder_q.fc.weight']);
  assert.deepEqual(r2.mismatched.map((m) => m.key), ['2.bias']);
  assert.deepEqual(b.stateDict().get('0.weight')!.toArray(), c.stateDict().get('0.weight')!.toArray());
});

test('key maps for official checkpoints', () => {
  const moco = mocoKeys();
  assert.equal(moco('module.encoder_q.layer1.0.conv1.weight'), 'layer1.0.conv1.weight');
  assert.equal(moco('module.encoder_q.fc.0.weight'), null);
  assert.equal(moco('module.encoder_k.conv1.weight'), null);
  assert.equal(moco('module.queue'), null);
  const ss = simsiamKeys();
  assert.equal(ss('module.encoder.bn1.running_mean'), 'bn1.running_mean');
  assert.equal(ss('module.encoder.fc.6.weight'), null);
  assert.equal(ss('module.predictor.0.weight'), null);
  const mae = maeKeys();
  assert.equal(mae('model.blocks.3.attn.qkv.weight'), 'blocks.3.attn.qkv.weight');
  assert.equal(mae('cls_token'), 'cls_token');
  assert.equal(mae('model.decoder_blocks.0.norm1.weight'), null);
  assert.equal(mae('model.mask_token'), null);
  const both = composeKeyMaps(stripPrefix('state_dict.'), simsiamKeys());
  assert.equal(both('state_dict.module.encoder.conv1.weight'), 'conv1.weight');
});

test('readSafetensors gives tensors on the default device: a saved input feeds a model directly', () => {
  const net = resnet18Cifar({ width: 0.125, numClasses: 3 }, { rng: new T.Rng(0) }); // on the default device
  net.eval();
  const dir = mkdtempSync(join(tmpdir(), 'st-dev-'));
  const path = join(dir, 'x.safetensors');
  const x = T.randn([2, 3, 8, 8], { rng: new T.Rng(1), device: 'reference' });
  writeSafetensors(path, { x, y: T.tensor([1, 2], [2], { ...dev, dtype: 'float64' }) });
  const f = readSafetensors(path);
  const xr = f.tensors.get('x')!;
  assert.equal(xr.device, T.getDefaultDevice());
  assert.equal(f.tensors.get('y')!.dtype, 'float64', 'float64 keeps its dtype (on a device that holds it)');
  const out = T.noGrad(() => net.forward(xr));
  const expect = T.noGrad(() => net.forward(T.to(x, T.getDefaultDevice())));
  assert.deepEqual(out.toArray(), expect.toArray());
  assert.equal(readSafetensors(path, { device: 'reference' }).tensors.get('x')!.device, 'reference');
  net.dispose();
});
