// Per-shape conv throughput for the ResNet-18 CIFAR convs of the bench:train configs (batch 128, 32x32 input): each
// pass (forward, backward-data, backward-weights) on activations in the layout they have inside the network (oneDNN's
// channel block, as ops.conv2d keeps them), under each conv algorithm (convAlgo: oneDNN's direct kernels, and 'auto':
// convolution_auto, Winograd where oneDNN's heuristic takes it), with the oneDNN implementation each mode runs.
// --precision bf16 also times each pass in a bf16 session: 'bf16' with every pass in bf16 (convBf16Backward 'bf16'),
// 'bf16auto' under the default rule (native/conv.cc pass_precision: some passes in f32, these under the
// f32 algorithm choice), and 'bf16auto_direct', the same with the f32 passes on the direct kernels. Needs a CPU with
// native bf16.
// Prints one JSON object per line.
// Run: npm run bench:conv [-- --batch 128 --iters 3 --repeats 3 --shapes 0,3,7 --warm --precision fp32|bf16]
import { cpus, loadavg } from 'node:os';
import type { ConvParams } from '../src/backend/backend.js';
import { nativeAddon, nativeBackend as nb, type ConvAlgo, type Precision } from '../src/backend/native.js';

const addon = nativeAddon();
function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const batch = Number(arg('batch', '128'));
const iters = Number(arg('iters', '3'));
const repeats = Number(arg('repeats', '3'));

function conv(C: number, HW: number, O: number, k: number, stride: number): ConvParams {
  const pad = k === 3 ? 1 : 0;
  const OHW = Math.floor((HW + 2 * pad - k) / stride) + 1;
  return { N: batch, C, H: HW, W: HW, O, KH: k, KW: k, OH: OHW, OW: OHW, strideH: stride, strideW: stride,
    padH: pad, padW: pad, dilationH: 1, dilationW: 1, groups: 1 };
}
/** ResNet-18 with the CIFAR stem: each distinct conv shape and how many times one forward pass runs it. */
const SHAPES: [ConvParams, number][] = [
  [conv(3, 32, 64, 3, 1), 1], [conv(64, 32, 64, 3, 1), 4],
  [conv(64, 32, 128, 3, 2), 1], [conv(128, 16, 128, 3, 1), 3], [conv(64, 32, 128, 1, 2), 1],
  [conv(128, 16, 256, 3, 2), 1], [conv(256, 8, 256, 3, 1), 3], [conv(128, 16, 256, 1, 2), 1],
  [conv(256, 8, 512, 3, 2), 1], [conv(512, 4, 512, 3, 1), 3], [conv(256, 8, 512, 1, 2), 1],
];
const pick = arg('shapes', '');
const shapes = pick === '' ? SHAPES : pick.split(',').map((i) => SHAPES[Number(i)]!);
// written before every timed call so the call finds its operands in memory, as inside a training step (the other
// layers ran in between), not in the last-level cache
const flush = process.argv.includes('--warm') ? null : nb.alloc('float32', Number(arg('flush-mb', '256')) << 18, false) as Float32Array;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function rand(n: number): Float32Array {
  const a = nb.alloc('float32', n, false) as Float32Array;
  for (let i = 0; i < a.length; i++) a[i] = Math.random() * 2 - 1;
  return a;
}
const name = (p: ConvParams): string => `c${p.C}_o${p.O}_${p.H}x${p.W}_k${p.KH}s${p.strideH}`;
const block = addon.info().preferredBlock;
const blocked = (channels: number): boolean => addon.activationLayout() !== 'plain' && channels % block === 0;
console.log(JSON.stringify({ name: 'info', cpu: cpus()[0]?.model, isa: addon.info().isa, threads: addon.info().threads,
  onednn: addon.info().onednn, activation_layout: addon.activationLayout(), batch, iters, repeats,
  caches: flush === null ? 'warm' : `flushed (${flush.length >> 18} MB written before each call)`, loadavg: loadavg()[0] }));

/** One way to run a pass: the session precision, the f32 algorithm, and which passes may run in bf16. */
interface Mode { precision: Precision; algo: ConvAlgo; bwd: 'auto' | 'bf16' }
const MODES: Record<string, Mode> = {
  direct: { precision: 'fp32', algo: 'direct', bwd: 'auto' },
  auto: { precision: 'fp32', algo: 'auto', bwd: 'auto' },
};
const precisionArg = arg('precision', 'fp32');
if (precisionArg !== 'fp32' && precisionArg !== 'bf16') throw new Error(`[bench:conv] --precision must be fp32 or bf16, got '${precisionArg}'`);
if (precisionArg === 'bf16') {
  if (!addon.info().nativeBf16) throw new Error('[bench:conv] --precision bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX)');
  MODES.bf16 = { precision: 'bf16', algo: 'auto', bwd: 'bf16' };
  MODES.bf16auto = { precision: 'bf16', algo: 'auto', bwd: 'auto' };
  MODES.bf16auto_direct = { precision: 'bf16', algo: 'direct', bwd: 'auto' };
}
const setMode = (m: Mode): void => { addon.precision(m.precision); addon.convAlgo(m.algo); addon.convBf16Backward(m.bwd); };
const PASSES = ['fwd', 'data', 'weights'] as const;
const KIND = { fwd: 'conv_fwd', data: 'conv_bwd_data', weights: 'conv_bwd_weights' } as const;
const saved: Mode = { precision: addon.precision(), algo: addon.convAlgo(), bwd: addon.convBf16Backward() };
const totals: Record<string, number> = {};
for (const [p, count] of shapes) {
  const x = rand(p.N * p.C * p.H * p.W), w = rand(p.O * p.C * p.KH * p.KW), y = rand(p.N * p.O * p.OH * p.OW);
  const gx = rand(x.length), gw = rand(w.length), gy = rand(y.length);
  const xb = blocked(p.C), yb = blocked(p.O);
  const call = { fwd: () => { addon.conv2d(y, x, w, null, p, xb, true); },
    data: () => { addon.conv2dBackwardData(gx, gy, w, p, yb, true); },
    weights: () => { addon.conv2dBackwardWeight(gw, null, gy, x, p, yb, xb); } };
  // the first layer's input needs no gradient: its backward-data never runs in training
  const passes = PASSES.filter((k) => k !== 'data' || p.C > 3);
  const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
  for (const [a, m] of Object.entries(MODES)) { setMode(m); for (const k of passes) { call[k](); wall[`${k}/${a}`] = []; cpu[`${k}/${a}`] = []; } }
  // interleaved: the machine is shared, so each repeat times every pass and algorithm under the same conditions
  for (let r = 0; r < repeats; r++) {
    for (const [a, m] of Object.entries(MODES)) {
      setMode(m);
      for (const k of passes) {
        let sec = 0, cpuSec = 0;
        for (let i = 0; i < iters; i++) {
          if (flush !== null) nb.fill(flush, i);
          const t0 = performance.now(), c0 = process.cpuUsage();
          call[k]();
          const c1 = process.cpuUsage(c0);
          sec += (performance.now() - t0) / 1000;
          cpuSec += (c1.user + c1.system) / 1e6;
        }
        wall[`${k}/${a}`]!.push(sec / iters);
        cpu[`${k}/${a}`]!.push(cpuSec / iters);
      }
    }
  }
  // the oneDNN implementation each mode runs for each pass (a bf16 session's f32 passes included)
  const impl = Object.fromEntries(Object.entries(MODES).filter(([a]) => a !== 'direct').map(([a, m]) => {
    setMode(m);
    return [a, Object.fromEntries(passes.map((k) => [k, addon.convImpl(KIND[k], p)]))];
  }));
  setMode(saved);
  const flop = 2 * p.N * p.O * p.OH * p.OW * p.C * p.KH * p.KW;
  const record: Record<string, unknown> = { name: name(p), count, gflop: +(flop / 1e9).toFixed(2), impl };
  for (const k of passes) {
    for (const a of Object.keys(MODES)) {
      const s = median(wall[`${k}/${a}`]!);
      record[`${k}_${a}_ms`] = +(s * 1000).toFixed(2);
      record[`${k}_${a}_gflops`] = +(flop / s / 1e9).toFixed(1);
      // CPU seconds (all threads) per call: less disturbed than wall time when other processes share the cores
      record[`${k}_${a}_cpu_ms`] = +(median(cpu[`${k}/${a}`]!) * 1000).toFixed(2);
      totals[`${k}_${a}_ms`] = (totals[`${k}_${a}_ms`] ?? 0) + s * 1000 * count;
    }
    record[`${k}_speedup`] = +(median(wall[`${k}/direct`]!) / median(wall[`${k}/auto`]!)).toFixed(3);
  }
  console.log(JSON.stringify(record));
  for (const t of [x, w, y, gx, gw, gy]) nb.free(t);
}
// one forward pass's worth of each conv shape (a SimSiam step runs two views)
console.log(JSON.stringify({ name: 'total_ms_per_view', ...Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, +v.toFixed(1)])),
  loadavg_end: loadavg()[0] }));
