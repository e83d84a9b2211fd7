// Kernel throughput of the native backend beside oneDNN's bare primitives (and PyTorch when importable).
// Prints one JSON object per line: {"name", "value", "unit", ...}. Run with `npm run bench:ops`.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { ConvParams } from '../src/backend/backend.js';
import { nativeAddon, nativeBackend as nb } from '../src/backend/native.js';
import { torchEnv } from './configs.js';

const addon = nativeAddon();
const PYTHON = '/usr/bin/python3';  // Debian's python3-torch; the pyenv python3 on PATH has no torch
const THREADS = addon.info().threads;

function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}

/** Best-of-`repeats` mean seconds per call of fn over `iters` calls, after one warm-up call. */
function timeIt(fn: () => void, iters: number, repeats = 3): number {
  fn();
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    best = Math.min(best, (performance.now() - t0) / 1000 / iters);
  }
  return best;
}
function bestOf(fn: () => number, repeats = 3): number {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) best = Math.min(best, fn());
  return best;
}
function randomFill(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = Math.random() * 2 - 1;
  return a;
}
const gflops = (flop: number, seconds: number): number => +(flop / seconds / 1e9).toFixed(1);

// ---- PyTorch, timed in the same run ----

const TORCH_SCRIPT = String.raw`
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
def bench(fn, iters):
    fn()
    best = float('inf')
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(iters): fn()
        best = min(best, (time.perf_counter() - t0) / iters)
    return best
out = {}
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
out['matmul'] = bench(lambda: torch.mm(a, b), 20)
x = torch.randn(64, 64, 32, 32); w = torch.randn(64, 64, 3, 3); gy = torch.randn(64, 64, 32, 32)
conv = lambda: torch.nn.functional.conv2d(x, w, None, 1, 1)
bwd = lambda mask: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
with torch.no_grad():
    out['conv_fwd'] = bench(conv, 5)
    out['conv_bwd_data'] = bench(lambda: bwd([True, False, False]), 5)
    out['conv_bwd_weights'] = bench(lambda: bwd([False, True, False]), 5)
print(json.dumps(out))
`;

function torchTimes(): Record<string, number> | null {
  const { env } = torchEnv(); // OpenBLAS variables unset, and capped alike when oneDNN is capped
  const r = spawnSync(PYTHON, ['-c', TORCH_SCRIPT, String(THREADS)], { encoding: 'utf8', timeout: 300_000, env });
  if (r.status !== 0) {
    emit({ name: 'torch', value: null, unit: null, note: `PyTorch not available: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` });
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
}

// ---- matmul ----

function benchMatmul(torch: Record<string, number> | null): void {
  // peak-ish: the best bare oneDNN f32 matmul over a few large square sizes
  let peak = 0;
  for (const n of [1024, 2048]) {
    const s = bestOf(() => addon.benchPrimitive('matmul', { M: n, N: n, K: n }, n === 1024 ? 20 : 4));
    peak = Math.max(peak, 2 * n ** 3 / s / 1e9);
  }
  emit({ name: 'matmul_peak_onednn_f32', value: +peak.toFixed(1), unit: 'GFLOP/s', threads: THREADS, sizes: [1024, 2048] });

  const n = 1024;
  const flop = 2 * n ** 3;
  const a = randomFill(nb.alloc('float32', n * n, false) as Float32Array);
  const b = randomFill(nb.alloc('float32', n * n, false) as Float32Array);
  const out = nb.alloc('float32', n * n, false) as Float32Array;
  const ours = timeIt(() => nb.matmul(out, a, b, null, 1, n, n, n, false, false, 0, 0), 20);
  const bare = bestOf(() => addon.benchPrimitive('matmul', { M: n, N: n, K: n }, 20));
  const record: Record<string, unknown> = {
    name: 'matmul_1024', value: gflops(flop, ours), unit: 'GFLOP/s', bare_value: gflops(flop, bare),
    overhead_pct: +((ours / bare - 1) * 100).toFixed(2), pct_of_peak: +(flop / ours / 1e9 / peak * 100).toFixed(1),
  };
  if (torch?.matmul) Object.assign(record, { torch_value: gflops(flop, torch.matmul), ratio: +(torch.matmul / ours).toFixed(3) });
  emit(record);
  for (const t of [a, b, out]) nb.free(t);
}

// ---- conv ----

function convParams(N: number, C: number, HW: number, O: number): ConvParams {
  return { N, C, H: HW, W: HW, O, KH: 3, KW: 3, OH: HW, OW: HW, strideH: 1, strideW: 1, padH: 1, padW: 1,
    dilationH: 1, dilationW: 1, groups: 1 };
}

interface ConvBuffers { x: Float32Array; w: Float32Array; y: Float32Array; gx: Float32Array; gw: Float32Array; gy: Float32Array }
function convBuffers(p: ConvParams): ConvBuffers {
  const xs = p.N * p.C * p.H * p.W; const ws = p.O * p.C * p.KH * p.KW; const ys = p.N * p.O * p.OH * p.OW;
  const f = (n: number): Float32Array => randomFill(nb.alloc('float32', n, false) as Float32Array);
  return { x: f(xs), w: f(ws), y: f(ys), gx: f(xs), gw: f(ws), gy: f(ys) };
}
function freeBuffers(b: ConvBuffers): void {
  for (const t of Object.values(b)) nb.free(t);
}

const CONV_KINDS = ['conv_fwd', 'conv_bwd_data', 'conv_bwd_weights'] as const;
/** One conv call on NCHW buffers: what every call costs when activations are not kept blocked. */
function convCall(kind: (typeof CONV_KINDS)[number], b: ConvBuffers, p: ConvParams): () => void {
  if (kind === 'conv_fwd') return () => nb.conv2d(b.y, b.x, b.w, null, p);
  if (kind === 'conv_bwd_data') return () => nb.conv2dBackwardData(b.gx, b.gy, b.w, p);
  return () => nb.conv2dBackwardWeight(b.gw, null, b.gy, b.x, p);
}
/**
 * The same call inside a network, where the previous layer left its activations in the blocked layout oneDNN
 * prefers on this CPU (nChw16c, nChw8c) and the next reads them so (what ops.conv2d does): x, gy blocked in; y, gx
 * blocked out. Only the weights are reordered. With no blocked layout in use, the NCHW call.
 */
function convCallBlocked(kind: (typeof CONV_KINDS)[number], b: ConvBuffers, p: ConvParams): () => void {
  if (addon.activationLayout() === 'plain') return convCall(kind, b, p);
  if (kind === 'conv_fwd') return () => { addon.conv2d(b.y, b.x, b.w, null, p, true, true); };
  if (kind === 'conv_bwd_data') return () => { addon.conv2dBackwardData(b.gx, b.gy, b.w, p, true, true); };
  return () => addon.conv2dBackwardWeight(b.gw, null, b.gy, b.x, p, true, true);
}

function benchConv(torch: Record<string, number> | null): void {
  const p = convParams(64, 64, 32, 64);
  const flop = 2 * p.N * p.O * p.OH * p.OW * p.C * p.KH * p.KW;
  const b = convBuffers(p);
  const layout = addon.convLayout();
  for (const kind of CONV_KINDS) {
    // interleaved, best of 3 each: the machine is shared and noisy
    const bl = { ours: Infinity, nchw: Infinity, bare: Infinity, barePlain: Infinity, bareReorder: Infinity };
    for (let r = 0; r < 3; r++) {
      bl.ours = Math.min(bl.ours, timeIt(convCallBlocked(kind, b, p), 5, 1));
      // bare: the same primitive oneDNN would pick for these shapes, on buffers already in its layout
      bl.bare = Math.min(bl.bare, addon.benchPrimitive(kind, p, 5, 'any'));
      bl.nchw = Math.min(bl.nchw, timeIt(convCall(kind, b, p), 5, 1));
      bl.bareReorder = Math.min(bl.bareReorder, addon.benchPrimitive(kind, p, 5, 'any+reorder'));
      bl.barePlain = Math.min(bl.barePlain, addon.benchPrimitive(kind, p, 5, 'plain'));
    }
    const { ours, nchw, bare, barePlain, bareReorder } = bl;
    const record: Record<string, unknown> = {
      name: `${kind}_3x3_64x64_n64_32x32`, value: gflops(flop, ours), unit: 'GFLOP/s', layout,
      activations: `${addon.activationLayout()} (as between layers of a network)`, isa: addon.info().isa,
      bare_value: gflops(flop, bare),
      overhead_pct: +((ours / bare - 1) * 100).toFixed(2),
      // NCHW in and out: a network's first layer, or any caller that hands us plain buffers
      nchw_value: gflops(flop, nchw), bare_plain_value: gflops(flop, barePlain),
      bare_with_reorders_value: gflops(flop, bareReorder),
      nchw_overhead_pct: +((nchw / bare - 1) * 100).toFixed(2),
      // what our binding, caching and validation add on top of oneDNN doing the same NCHW <-> blocked work
      nchw_overhead_vs_reorders_pct: +((nchw / bareReorder - 1) * 100).toFixed(2),
    };
    if (torch?.[kind]) Object.assign(record, { torch_value: gflops(flop, torch[kind]!), ratio: +(torch[kind]! / ours).toFixed(3) });
    emit(record);
  }
  freeBuffers(b);
}

/** Forward + backward-data + backward-weight of the ResNet-18 CIFAR 3x3 convs, in both layouts: picks the default. */
function benchConvLayouts(): void {
  const shapes = [convParams(64, 64, 32, 64), convParams(64, 128, 16, 128), convParams(64, 256, 8, 256), convParams(64, 512, 4, 512)];
  const saved = addon.convLayout();
  const totals: Record<string, number> = {};
  for (const layout of ['plain', 'blocked'] as const) {
    addon.convLayout(layout);
    let total = 0;
    for (const p of shapes) {
      const b = convBuffers(p);
      const step = (): void => { for (const kind of CONV_KINDS) convCall(kind, b, p)(); };
      const s = timeIt(step, 2);
      total += s;
      emit({ name: `conv_step_resnet18_c${p.C}_${p.H}x${p.W}`, value: +(s * 1000).toFixed(2), unit: 'ms', layout });
      freeBuffers(b);
    }
    totals[layout] = total;
    emit({ name: 'conv_step_resnet18_total', value: +(total * 1000).toFixed(2), unit: 'ms', layout });
  }
  addon.convLayout(saved);
  emit({ name: 'conv_layout_choice', value: totals.plain! < totals.blocked! ? 'plain' : 'blocked', unit: null, default: saved,
    plain_ms: +(totals.plain! * 1000).toFixed(2), blocked_ms: +(totals.blocked! * 1000).toFixed(2) });
}

emit({ name: 'info', value: addon.info().onednn, unit: 'onednn_version', threads: THREADS, conv_layout: addon.convLayout(),
  isa: addon.info().isa, activation_layout: addon.activationLayout(), cpu: cpus()[0]?.model,
  note: 'overhead_pct = ours/bare - 1; ratio = torch seconds / our seconds (>1: we are faster)' });
const torch = torchTimes();
benchMatmul(torch);
benchConv(torch);
benchConvLayouts();
