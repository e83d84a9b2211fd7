// Builds one batch (decode + augment + write NCHW float32) from a sample source; runs on a worker thread or inline.
// Each sample's randomness comes from (seed, epoch, index) alone, so batches do not depend on which worker made them.
import { loadSampleImage, type SampleSource } from './datasets.js';
import * as F from './functional.js';
import { type RgbImage } from './image.js';
import { hashKeys, Rng } from '../tensor/rng.js';
import { buildTransform, Compose, type Transform, type TransformSpec, type ViewsSpec } from './transforms.js';

export type BadFilePolicy = 'skip' | 'error';

export interface BatchTask {
  batchId: number;
  epoch: number;
  seed: number;
  indices: Int32Array; // dataset indices of the batch, in order
}

export interface BatchResult {
  batchId: number;
  views: Float32Array[]; // one [N, C, H, W] array per view
  shape: [number, number, number, number];
  labels: Int32Array;
  indices: Int32Array; // the samples actually used (a skipped bad file is replaced by the next good one)
  warnings: Array<{ key: string; message: string }>;
}

/** A view compiled for speed: geometric/colour prefix on uint8, then ToTensor+Normalize fused into the batch buffer. */
interface CompiledView {
  prefix: Transform;
  mean: readonly number[] | null;
  std: readonly number[] | null;
  fused: boolean;
  full: Transform;
}

function compileView(spec: TransformSpec): CompiledView {
  const full = buildTransform(spec);
  const list = spec.name === 'Compose' ? [...spec.transforms] : [spec];
  let mean: readonly number[] | null = null;
  let std: readonly number[] | null = null;
  const last = list[list.length - 1];
  if (last?.name === 'Normalize' && list[list.length - 2]?.name === 'ToTensor' && last.mean.length === 3) {
    mean = last.mean;
    std = last.std;
    list.splice(list.length - 2, 2);
  } else if (last?.name === 'ToTensor') {
    list.splice(list.length - 1, 1);
  } else {
    return { prefix: full, mean: null, std: null, fused: false, full };
  }
  return { prefix: new Compose(list.map(buildTransform)), mean, std, fused: true, full };
}

/** The augmentation stream of one view of one sample: shared with MultiView.apply(img, hashKeys(seed, epoch, index)). */
export function viewRng(seed: number, epoch: number, index: number, view: number): Rng {
  return Rng.fromKeys(hashKeys(seed, epoch, index), view);
}

export class BatchBuilder {
  private readonly views: CompiledView[];
  private readonly bad = new Map<number, string>(); // index -> reason, remembered across epochs
  private readonly pool = new Map<number, ArrayBuffer[]>(); // returned batch buffers by byte length, reused as is
  /** how many decodes run ahead of the augmentation loop */
  readonly lookahead = 16;

  constructor(readonly source: SampleSource, viewsSpec: ViewsSpec, readonly badFile: BadFilePolicy) {
    if (viewsSpec.views.length === 0) throw new Error('[DataLoader] the transform has no views');
    this.views = viewsSpec.views.map(compileView);
  }

  /** Take back batch buffers the consumer is done with: fresh memory costs page faults at every batch. */
  recycle(buffers: readonly ArrayBuffer[]): void {
    for (const b of buffers) {
      const list = this.pool.get(b.byteLength) ?? [];
      if (list.length < 8) list.push(b); // bounded: never hoard more than a few batches
      this.pool.set(b.byteLength, list);
    }
  }

  /** A float buffer of n values: every element is overwritten by build(), so a recycled one needs no clearing. */
  private take(n: number): Float32Array {
    const b = this.pool.get(n * 4)?.pop();
    return b ? new Float32Array(b) : new Float32Array(n);
  }

  get length(): number {
    return this.source.labels.length;
  }

  /** Sample `index`, or under 'skip' the next decodable one after it; reports each bad file once per builder. */
  private async load(index: number, warnings: BatchResult['warnings']): Promise<{ img: RgbImage; used: number }> {
    const n = this.length;
    const attempts = Math.min(n, 64);
    for (let k = 0; k < attempts; k++) {
      const i = (index + k) % n;
      if (this.bad.has(i)) continue;
      try {
        return { img: await loadSampleImage(this.source, i), used: i };
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        if (this.badFile === 'error') throw new Error(`[DataLoader] bad input (badFile='error'): ${message}`);
        this.bad.set(i, message);
        warnings.push({ key: this.source.kind === 'files' ? this.source.paths[i]! : String(i), message: `[DataLoader] skipping unreadable image: ${message}` });
      }
    }
    throw new Error(`[DataLoader] no decodable image among ${attempts} samples from index ${index}; last error: ${[...this.bad.values()].pop() ?? 'none'}`);
  }

  async build(task: BatchTask): Promise<BatchResult> {
    const { indices, seed, epoch } = task;
    const nb = indices.length;
    const warnings: BatchResult['warnings'] = [];
    const labels = new Int32Array(nb);
    const used = new Int32Array(nb);
    const outs: Float32Array[] = [];
    let chw: [number, number, number] | null = null;
    const pending: Array<Promise<{ img: RgbImage; used: number }>> = [];
    const start = (k: number): void => {
      if (k < nb) {
        const p = this.load(indices[k]!, warnings);
        p.catch(() => undefined); // awaited below; avoid an unhandled rejection while earlier samples are processed
        pending[k] = p;
      }
    };
    for (let k = 0; k < Math.min(this.lookahead, nb); k++) start(k);
    for (let k = 0; k < nb; k++) {
      const { img, used: u } = await pending[k]!;
      pending[k] = undefined as never;
      start(k + this.lookahead);
      used[k] = u;
      labels[k] = this.source.labels[u]!;
      for (let v = 0; v < this.views.length; v++) {
        const view = this.views[v]!;
        // the stream follows the requested index, so a substitute sample gets the augmentation of the slot it fills
        const rng = viewRng(seed, epoch, indices[k]!, v);
        const out = view.fused ? view.prefix.apply(img, rng) : view.full.apply(img, rng);
        const shape: [number, number, number] = out.kind === 'rgb' ? [3, out.height, out.width] : [out.channels, out.height, out.width];
        if (out.kind === 'rgb' && !view.fused) throw new Error('[DataLoader] each view must end with ToTensor (and optionally Normalize)');
        if (chw === null) {
          chw = shape;
          for (let w = 0; w < this.views.length; w++) outs.push(this.take(nb * shape[0] * shape[1] * shape[2]));
        } else if (shape[0] !== chw[0] || shape[1] !== chw[1] || shape[2] !== chw[2]) {
          throw new Error(`[DataLoader] view ${v} of sample ${u} is [${shape.join(', ')}] but the batch is [${chw.join(', ')}]; add Resize/CenterCrop or RandomResizedCrop so all samples match`);
        }
        const size = chw[0] * chw[1] * chw[2];
        const dst = outs[v]!;
        if (out.kind === 'rgb') F.toTensorNormalizeInto(out, view.mean, view.std, dst, k * size);
        else dst.set(out.data, k * size);
      }
    }
    const [c, h, w] = chw ?? [3, 0, 0];
    return { batchId: task.batchId, views: outs, shape: [nb, c, h, w], labels, indices: used, warnings };
  }
}
