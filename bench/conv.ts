// Per-shape conv throughput for the ResNet-18 CIFAR convs of the bench:train configs (batch 128, 32x32 input), each
// pass on activations in the layout they have inside the network (oneDNN's channel block, as ops.conv2d keeps them),
// and conv backward-weights by both algorithms (oneDNN's direct kernel, im2col + matmul) beside the one 'auto' picks.
// Prints one JSON object per line. Run: npm run bench:conv [-- --batch 128 --iters 3 --repeats 5 --shapes 0,3,7 --warm]
import { cpus, loadavg } from 'node:os';
import type { ConvParams } from '../src/backend/backend.js';
import { nativeAddon, nativeBackend as nb } from '../src/backend/native.js';

const addon = nativeAddon();
function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const batch = Number(arg('batch', '128'));
const iters = Number(arg('iters', '3'));
const repeats = Number(arg('repeats', '5'));

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
// written before every timed call so the call finds its operands in memory, not in the last-level cache
const flush = process.argv.includes('--warm') ? null : nb.alloc('float32', Number(arg('flush-mb', '256')) << 18, false) as Float32Array;
const shapes = pick === '' ? SHAPES : pick.split(',').map((i) => SHAPES[Number(i)]!);

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

const savedAlgo = addon.convWeightsAlgo();
const savedDataAlgo = addon.convDataAlgo();
const totals = { fwd: 0, data: 0, dataAuto: 0, direct: 0, gemm: 0, auto: 0 };
for (const [p, count] of shapes) {
  const x = rand(p.N * p.C * p.H * p.W), w = rand(p.O * p.C * p.KH * p.KW), y = rand(p.N * p.O * p.OH * p.OW);
  const gx = rand(x.length), gw = rand(w.length), gy = rand(y.length);
  const xb = blocked(p.C), yb = blocked(p.O);
  const passes: Record<string, () => void> = {
    fwd: () => { addon.conv2d(y, x, w, null, p, xb, true); },
    data: () => { addon.convDataAlgo('direct'); if (p.C > 3) addon.conv2dBackwardData(gx, gy, w, p, yb, true); },
    dataFwd: () => { addon.convDataAlgo('forward'); if (p.C > 3) addon.conv2dBackwardData(gx, gy, w, p, yb, true); },
    direct: () => { addon.convWeightsAlgo('direct'); addon.conv2dBackwardWeight(gw, null, gy, x, p, yb, xb); },
    gemm: () => { addon.convWeightsAlgo('gemm'); addon.conv2dBackwardWeight(gw, null, gy, x, p, yb, xb); },
  };
  const times: Record<string, number[]> = { fwd: [], data: [], dataFwd: [], direct: [], gemm: [] };
  for (const f of Object.values(passes)) f();  // warm-up: primitives built, scratch grown
  // interleaved: the machine is shared, so each repeat times every pass under the same conditions. Inside a training
  // step a conv's inputs come cold from memory (the other layers ran in between); --warm keeps them in cache.
  for (let r = 0; r < repeats; r++) {
    for (const [k, f] of Object.entries(passes)) {
      let sec = 0;
      for (let i = 0; i < iters; i++) {
        if (flush !== null) nb.fill(flush, i);
        const t0 = performance.now();
        f();
        sec += (performance.now() - t0) / 1000;
      }
      times[k]!.push(sec / iters);
    }
  }
  addon.convWeightsAlgo(savedAlgo);
  addon.convDataAlgo(savedDataAlgo);
  const flop = 2 * p.N * p.O * p.OH * p.OW * p.C * p.KH * p.KW;
  const ms = (k: string): number => median(times[k]!) * 1000;
  const gf = (k: string): number => +(flop / median(times[k]!) / 1e9).toFixed(1);
  const autoGemm = addon.convWeightsUsesGemm(p);
  const autoMs = autoGemm ? ms('gemm') : ms('direct');
  totals.fwd += ms('fwd') * count; totals.data += (p.C > 3 ? ms('data') : 0) * count;
  totals.dataAuto += (p.C > 3 ? (addon.convDataUsesForward(p) ? ms('dataFwd') : ms('data')) : 0) * count;
  totals.direct += ms('direct') * count; totals.gemm += ms('gemm') * count; totals.auto += autoMs * count;
  console.log(JSON.stringify({
    name: name(p), count, gflop: +(flop / 1e9).toFixed(2), fwd_gflops: gf('fwd'), bwd_data_gflops: p.C > 3 ? gf('data') : null,
    bwd_data_forward_gflops: p.C > 3 && p.strideH === 1 ? gf('dataFwd') : null,
    auto_data: addon.convDataUsesForward(p) ? 'forward' : 'direct',
    bwd_weights_direct_gflops: gf('direct'), bwd_weights_gemm_gflops: gf('gemm'), auto: autoGemm ? 'gemm' : 'direct',
    gemm_speedup: +(ms('direct') / ms('gemm')).toFixed(3),
    ms: { fwd: +ms('fwd').toFixed(2), data: +ms('data').toFixed(2), dataFwd: +ms('dataFwd').toFixed(2), direct: +ms('direct').toFixed(2), gemm: +ms('gemm').toFixed(2) },
  }));
  for (const t of [x, w, y, gx, gw, gy]) nb.free(t);
}
// one forward pass's worth of each conv shape (a SimSiam step runs two views)
console.log(JSON.stringify({ name: 'total_ms_per_view', fwd: +totals.fwd.toFixed(1), bwd_data: +totals.data.toFixed(1), bwd_data_auto: +totals.dataAuto.toFixed(1),
  bwd_weights_direct: +totals.direct.toFixed(1), bwd_weights_gemm: +totals.gemm.toFixed(1),
  bwd_weights_auto: +totals.auto.toFixed(1), loadavg_end: loadavg()[0] }));
