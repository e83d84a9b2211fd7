// `selfsup export --onnx`: a pretraining run's encoder (ResNet without projection heads, or MAE's ViT encoder) as an
// ONNX model, checked before it is written: a random batch through onnxruntime-node when installed (else our ONNX
// interpreter on the float64 reference backend) must match our forward in eval mode within the tolerance.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { decodeOnnx, encodeOnnx } from '../io/onnx.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { OnProgress } from '../io/progress.js';
import { progressBar } from './progress.js';
import { finiteNumber, loadPretrained, positiveInt } from '../eval/pretrained.js';
import { exportEncoder, INPUT_NAME, OUTPUT_NAME } from '../eval/export.js';
import { runOnnxReference } from '../io/onnx-run.js';

/** The slice of onnxruntime-node's API the check uses (typed here: it is an optional dependency). */
export interface OrtRuntime {
  InferenceSession: {
    create(model: Uint8Array): Promise<{
      run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
      release?: () => Promise<void>;
    }>;
  };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => unknown;
}

export interface ExportCommandOptions {
  checkpoint: string;
  onnx: string;
  /** input resolution (default: the run's imgSize) */
  imgSize?: number;
  /** images in the check batch */
  checkBatch: number;
  /** largest max-abs difference to our forward that passes */
  tolerance: number;
  /** the runtime for the check: an onnxruntime module, 'reference' for our interpreter, undefined to try onnxruntime-node */
  runtime?: OrtRuntime | 'reference';
  /** progress of the check under the reference interpreter, node by node */
  onProgress?: OnProgress;
}

export interface ExportCommandResult {
  method: string;
  arch: string;
  epoch: number;
  out: string;
  bytes: number;
  nodes: number;
  numFeatures: number;
  /** 'onnxruntime-node' or 'reference interpreter (float64)' */
  checkedWith: string;
  maxAbsDiff: number;
  /** the largest |feature| of ours, the scale the difference is against */
  maxAbsFeature: number;
  seconds: number;
}

/** onnxruntime-node when it resolves from here, else null (it is not a dependency: its install fetches CUDA from NuGet). */
async function loadOrt(): Promise<OrtRuntime | null> {
  const spec = 'onnxruntime-node'; // a variable, so the type checker does not require the package
  try {
    const mod = (await import(spec)) as { default?: OrtRuntime } & Partial<OrtRuntime>;
    const ort = mod.InferenceSession !== undefined ? (mod as OrtRuntime) : (mod.default ?? null);
    return ort;
  } catch {
    return null;
  }
}

async function runOrt(ort: OrtRuntime, bytes: Uint8Array, x: Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const feeds = { [INPUT_NAME]: new ort.Tensor('float32', Float32Array.from(x.data), x.shape) };
    const out = (await session.run(feeds))[OUTPUT_NAME];
    if (out === undefined || !(out.data instanceof Float32Array)) throw new Error(`[export] onnxruntime returned no float32 '${OUTPUT_NAME}'`);
    return out.data;
  } finally {
    await session.release?.();
  }
}

export async function runExport(o: ExportCommandOptions): Promise<ExportCommandResult> {
  const t0 = performance.now();
  const p = loadPretrained(o.checkpoint, 'export');
  try {
    const ex = exportEncoder(p, o.imgSize !== undefined ? { imgSize: o.imgSize } : {});
    try {
      const bytes = encodeOnnx(ex.onnx);
      const x = T.randn([o.checkBatch, ex.inChans, ex.imgSize, ex.imgSize], { rng: new T.Rng(0) }); // [B, C, H, W]
      const ours = T.noGrad(() => ex.features(x)); // [B, numFeatures]
      let theirs: ArrayLike<number>;
      let checkedWith: string;
      const ort = o.runtime === 'reference' ? null : (o.runtime ?? await loadOrt());
      if (ort !== null) {
        theirs = await runOrt(ort, bytes, x);
        checkedWith = 'onnxruntime-node';
      } else {
        // the file as written, parsed back, so the check covers the encoding too
        const y = runOnnxReference(decodeOnnx(bytes), new Map([[INPUT_NAME, x]]), o.onProgress !== undefined ? { onProgress: o.onProgress } : {}).get(OUTPUT_NAME)!;
        theirs = Float64Array.from(y.data);
        y.dispose();
        checkedWith = 'reference interpreter (float64)';
      }
      const a = ours.data;
      if (theirs.length !== a.length) throw new Error(`[export] the ONNX model gives ${theirs.length} values, ours ${a.length}`);
      let maxAbsDiff = 0;
      let maxAbsFeature = 0;
      for (let i = 0; i < a.length; i++) {
        maxAbsFeature = Math.max(maxAbsFeature, Math.abs(a[i]!));
        const d = Math.abs(a[i]! - theirs[i]!);
        if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d; // a NaN on either side fails the check
      }
      x.dispose();
      ours.dispose();
      if (!(maxAbsDiff <= o.tolerance)) {
        throw new Error(`[export] the ONNX model differs from our forward by ${maxAbsDiff.toExponential(2)} (> ${o.tolerance}) under ${checkedWith}; nothing written`);
      }
      const out = resolve(o.onnx);
      writeFileAtomic(out, bytes);
      return {
        method: p.cfg.method, arch: p.cfg.arch, epoch: p.epoch, out, bytes: bytes.length, nodes: ex.onnx.graph.nodes.length,
        numFeatures: ex.numFeatures, checkedWith, maxAbsDiff, maxAbsFeature, seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      ex.dispose();
    }
  } finally {
    p.model.dispose();
  }
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export the encoder of a checkpoint (no projection heads) as an ONNX model, checked against our forward')
    .requiredOption('--checkpoint <dir>', "run folder written by 'selfsup pretrain' (config.json + checkpoint)")
    .requiredOption('--onnx <file>', 'the ONNX file to write')
    .option('--img-size <n>', "input resolution (default: the run's)", positiveInt('export', 'img-size'))
    .option('--check-batch <n>', 'random images in the check', positiveInt('export', 'check-batch'), 2)
    .option('--tolerance <x>', 'largest max-abs difference to our forward', finiteNumber('export', 'tolerance'), 1e-4)
    .action(async (f: { checkpoint: string; onnx: string; imgSize?: number; checkBatch: number; tolerance: number }) => {
      const bar = progressBar('export');
      const r = await runExport({
        onProgress: bar.update,
        checkpoint: f.checkpoint, onnx: f.onnx, checkBatch: f.checkBatch, tolerance: f.tolerance,
        ...(f.imgSize !== undefined ? { imgSize: f.imgSize } : {}),
      });
      process.stdout.write(`[export] ${r.arch} encoder of ${r.method} (epoch ${r.epoch}) -> ${r.out}: ${r.nodes} nodes, ${r.numFeatures} features, `
        + `${(r.bytes / 1e6).toFixed(2)} MB; max |diff| ${r.maxAbsDiff.toExponential(2)} (max |feature| ${r.maxAbsFeature.toPrecision(3)}) vs ${r.checkedWith} (${r.seconds.toFixed(1)} s)\n`);
    });
}
