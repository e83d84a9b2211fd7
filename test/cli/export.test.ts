// `selfsup export --onnx` on tiny runs: the ONNX encoder matches our eval forward within 1e-4 (onnxruntime-node when
// installed, else our interpreter reading the file back), the file parses back, and bad input writes nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.js';
import { BatchNorm2d, LayerNorm } from '../../src/nn/layers.js';
import { runExport } from '../../src/cli/export.js';
import { decodeOnnx, encodeOnnx, type OnnxModel } from '../../src/io/onnx.js';
import { loadPretrained } from '../../src/eval/pretrained.js';
import { runOnnxReference } from '../../src/io/onnx-run.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import type { PretrainConfig } from '../../src/train/config.js';
import { makeFlatFolder, makeTinyRun } from '../eval/tiny-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));
const data = makeFlatFolder(join(tmp, 'data'), 4, 16);

/**
 * A tiny run whose norms hold non-trivial statistics and affine values, and (MAE) a large cls token: an untrained
 * one has mean 0, var 1, gamma 1, beta 0, which would hide a mis-wired BatchNormalization or LayerNormalization input.
 */
function perturbedRun(name: string, patch: (c: PretrainConfig) => PretrainConfig, method: 'simsiam' | 'mae' = 'simsiam'): string {
  const dir = makeTinyRun(method, data, join(tmp, name), patch);
  const p = loadPretrained(dir, 'test');
  const rng = new T.Rng(7);
  const fill = (t: T.Tensor, lo: number, hi: number): void => {
    const d = t.data;
    for (let i = 0; i < d.length; i++) d[i] = rng.uniformRange(lo, hi);
  };
  for (const m of p.model.modules()) {
    if (m instanceof BatchNorm2d) {
      for (const [t, lo, hi] of [[m.runningMean!, -0.5, 0.5], [m.runningVar!, 0.5, 2], [m.weight!, 0.5, 1.5], [m.bias!, -0.3, 0.3]] as const) fill(t, lo, hi);
    } else if (m instanceof LayerNorm) {
      fill(m.weight!, 0.5, 1.5);
      fill(m.bias!, -0.3, 0.3);
    }
  }
  const cls = p.model.stateDict().get('cls_token');
  if (cls !== undefined) fill(cls, -1, 1);
  saveCheckpoint(dir, p.model, null, { epoch: 1, step: 1, rng: new T.Rng(0).getState(), losses: [], knn: [], knnBefore: null }, p.cfg);
  p.model.dispose();
  return dir;
}

const base = { checkBatch: 2, tolerance: 1e-4 };

for (const [arch, extra] of [['resnet18-cifar', {}], ['resnet18', { imgSize: 32 }], ['resnet50-cifar', {}]] as const) {
  test(`export: ${arch} encoder matches our forward within 1e-4 and parses back`, async () => {
    const run = perturbedRun(arch, (c) => ({ ...c, arch, ...extra }));
    const out = join(tmp, `${arch}.onnx`);
    const r = await runExport({ ...base, checkpoint: run, onnx: out });
    assert.ok(r.maxAbsDiff <= 1e-4, `max |diff| ${r.maxAbsDiff} under ${r.checkedWith}`);
    assert.ok(r.maxAbsDiff > 0 || r.checkedWith.startsWith('reference'), 'a float32 runtime differs from our kernels by rounding');
    const m = decodeOnnx(readFileSync(out));
    assert.equal(m.irVersion, 8);
    assert.equal(m.opsetVersion, 17);
    assert.deepEqual(m.graph.inputs, [{ name: 'images', shape: ['N', 3, r.arch === 'resnet18' ? 32 : 16, r.arch === 'resnet18' ? 32 : 16] }]);
    assert.deepEqual(m.graph.outputs, [{ name: 'features', shape: ['N', r.numFeatures] }]);
    assert.equal(r.numFeatures, arch === 'resnet50-cifar' ? 256 : 64); // 512 (x4) at width 1/8
    const ops = new Set(m.graph.nodes.map((n) => n.opType));
    assert.deepEqual([...ops].sort(), ['Add', 'BatchNormalization', 'Conv', 'Flatten', 'GlobalAveragePool', 'Relu', ...(arch === 'resnet18' ? ['MaxPool'] : [])].sort());
    // the backbone's weights, named by their state-dict keys, and no projection head
    const names = m.graph.initializers.map((t) => t.name);
    assert.ok(names.includes('layer4.1.bn2.running_var') || names.includes('layer4.2.bn3.running_var'));
    assert.ok(!names.some((k) => k.startsWith('fc.') || k.startsWith('predictor')), names.filter((k) => k.startsWith('fc')).join(', '));
    // re-encoding the decoded model gives the same bytes: every field written is read back
    assert.deepEqual(Buffer.from(encodeOnnx(m)), readFileSync(out));
  });
}

test('export: MAE\'s ViT encoder (normed cls token) matches our forward within 1e-4 and parses back', async () => {
  const run = perturbedRun('mae-ok', (c) => c, 'mae');
  const out = join(tmp, 'mae.onnx');
  const r = await runExport({ ...base, checkpoint: run, onnx: out });
  assert.ok(r.maxAbsDiff <= 1e-4, `max |diff| ${r.maxAbsDiff} under ${r.checkedWith}`);
  assert.ok(r.maxAbsFeature > 0.5, `features ${r.maxAbsFeature}: the perturbed norms should show`);
  const ref = await runExport({ ...base, checkpoint: run, onnx: out, runtime: 'reference' });
  assert.ok(ref.maxAbsDiff <= 1e-4 && ref.maxAbsDiff > 0, `reference: max |diff| ${ref.maxAbsDiff}`);
  const m = decodeOnnx(readFileSync(out));
  assert.deepEqual(m.graph.inputs, [{ name: 'images', shape: ['N', 3, 16, 16] }]);
  assert.deepEqual(m.graph.outputs, [{ name: 'features', shape: ['N', 16] }]);
  assert.ok(m.graph.nodes.some((n) => n.opType === 'LayerNormalization') && m.graph.nodes.some((n) => n.opType === 'Erf'));
  const names = m.graph.initializers.map((t) => t.name);
  assert.ok(names.includes('blocks.1.attn.qkv.weight') && names.includes('norm.weight'));
  assert.ok(!names.some((k) => k.startsWith('decoder_') || k === 'mask_token'), 'no decoder in the encoder export');
  assert.deepEqual(Buffer.from(encodeOnnx(m)), readFileSync(out));
  // a ViT's position embeddings fix its input size
  await assert.rejects(runExport({ ...base, checkpoint: run, onnx: join(tmp, 'mae32.onnx'), imgSize: 32 }), /\[export\] a ViT takes 16 px images .*--img-size 32/);
  assert.equal(existsSync(join(tmp, 'mae32.onnx')), false);
});

test('export: the reference interpreter agrees too, and a loose-tolerance failure writes nothing', async () => {
  const run = perturbedRun('ref', (c) => c);
  const done: number[] = [];
  const totals = new Set<number>();
  const r = await runExport({ ...base, checkpoint: run, onnx: join(tmp, 'ref.onnx'), runtime: 'reference', imgSize: 24, onProgress: (_, d, total) => { done.push(d); totals.add(total); } });
  assert.equal(r.checkedWith, 'reference interpreter (float64)');
  // the check reports every node of the graph, 0 .. nodes
  assert.deepEqual(done, Array.from({ length: r.nodes + 1 }, (_, i) => i));
  assert.deepEqual([...totals], [r.nodes]);
  assert.ok(r.maxAbsDiff <= 1e-4 && r.maxAbsDiff > 0, `max |diff| ${r.maxAbsDiff}`);
  const out = join(tmp, 'strict.onnx');
  await assert.rejects(runExport({ ...base, checkpoint: run, onnx: out, runtime: 'reference', tolerance: 0 }), /\[export\] the ONNX model differs from our forward by .*nothing written/);
  assert.equal(existsSync(out), false);
});

test('export: the codec round-trips a model; broken files and dangling inputs are errors', () => {
  const m: OnnxModel = { producerName: 'x', irVersion: 8, opsetVersion: 17, graph: { name: 'g', nodes: [{ opType: 'Relu', inputs: ['missing'], outputs: ['features'], name: 'r', attributes: {} }], initializers: [], inputs: [], outputs: [{ name: 'features', shape: ['N'] }] } };
  assert.deepEqual(decodeOnnx(encodeOnnx(m)), m);
  assert.throws(() => decodeOnnx(new Uint8Array([0x0a, 0x05, 0x01])), /\[onnx\]/);
  assert.throws(() => runOnnxReference(m, new Map()), /\[onnx-run\] r: input 0 \('missing'\) is not defined before use/);
});

test('export: wrong method or arch gives a clear error and writes nothing', async () => {
  const out = join(tmp, 'bad.onnx');
  // a SimSiam checkpoint under a config that says MAE
  const mae = makeTinyRun('simsiam', data, join(tmp, 'not-mae'));
  const maeCfg = makeTinyRun('mae', data, join(tmp, 'mae-cfg'));
  writeFileSync(join(mae, 'config.json'), readFileSync(join(maeCfg, 'config.json')));
  await assert.rejects(runExport({ ...base, checkpoint: mae, onnx: out }), /\[export\] the checkpoint in .* does not match its config \(method mae, arch /);
  const wrong = makeTinyRun('simsiam', data, join(tmp, 'wrong'));
  const cfg = JSON.parse(readFileSync(join(wrong, 'config.json'), 'utf8')) as PretrainConfig;
  writeFileSync(join(wrong, 'config.json'), JSON.stringify({ ...cfg, arch: 'resnet50-cifar' }));
  await assert.rejects(runExport({ ...base, checkpoint: wrong, onnx: out }), /\[export\] the checkpoint in .* does not match its config \(method simsiam, arch resnet50-cifar\)/);
  await assert.rejects(runExport({ ...base, checkpoint: data, onnx: out }), /\[export\] .* is not a pretraining run folder/);
  assert.equal(existsSync(out), false);
  assert.throws(() => execFileSync(process.execPath, [BIN, 'export', '--checkpoint', wrong, '--onnx', out, '--img-size', '0'], { stdio: 'pipe' }), /--img-size must be a positive integer/);
  assert.equal(existsSync(out), false);
});

test('export: the CLI prints the check', () => {
  const run = makeTinyRun('moco', data, join(tmp, 'moco'));
  const out = join(tmp, 'moco.onnx');
  const stdout = execFileSync(process.execPath, [BIN, 'export', '--checkpoint', run, '--onnx', out], { encoding: 'utf8' });
  assert.match(stdout, /\[export\] resnet18-cifar encoder of moco \(epoch 1\) -> .*moco\.onnx: \d+ nodes, 64 features, .* max \|diff\| \S+ \(max \|feature\| \S+\) vs /);
  assert.ok(existsSync(out));
});
