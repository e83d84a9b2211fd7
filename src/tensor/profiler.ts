// Per-kernel profiler: SELFSUP_PROFILE=1 (or --profile, or enableProfiler()) times every backend kernel call and
// aggregates them like torch.profiler's key_averages(): forward / backward / optimizer time, calls, GFLOP/s for conv
// and matmul, bytes moved for the memory-bound kernels. Time outside kernels (JS, autograd bookkeeping) is the
// step's wall time minus the kernels' and shows as its own row.
import type { Backend, ConvParams } from '../backend/backend.js';

/** Where a kernel call happens: inside loss.backward(), inside an optimizer step, or anywhere else (forward). */
export type ProfilePhase = 'forward' | 'backward' | 'optimizer';

export interface ProfileRow {
  /** kernel name; elementwise kernels carry their op: `binary.add`, `unary.relu` */
  name: string;
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
  calls: number;
  /** multiply-adds counted as 2 FLOP (conv, matmul); 0 for the others */
  flop: number;
  /** bytes of every buffer the call was handed (inputs and outputs), a lower bound on traffic */
  bytes: number;
}

export interface ProfileReport {
  rows: ProfileRow[];
  /** wall time between start() and stop() */
  wallMs: number;
  /** CPU time (user + system, all threads) between start() and stop() */
  cpuMs: number;
  kernelMs: number;
  flop: number;
  /** wall time per phase; forward is everything outside backward() and optimizer steps */
  phaseMs: Record<ProfilePhase, number>;
  /** kernel time per phase */
  phaseKernelMs: Record<ProfilePhase, number>;
}

let phase: ProfilePhase = 'forward';
/** wall time spent inside each non-forward phase while recording */
const phaseWall: Record<ProfilePhase, number> = { forward: 0, backward: 0, optimizer: 0 };
let recording = false;
const rows = new Map<string, ProfileRow>();
let t0 = 0;
let cpu0 = 0;
const wrapped = new WeakSet<object>();
let installed = false;
const backends: Backend[] = [];

/** Runs fn with kernel calls attributed to `p` (autograd's backward and the optimizers mark themselves). */
export function inPhase<T>(p: ProfilePhase, fn: () => T): T {
  const prev = phase;
  phase = p;
  const s = recording && prev === 'forward' && p !== 'forward' ? performance.now() : -1;
  try {
    return fn();
  } finally {
    phase = prev;
    if (s >= 0 && recording) phaseWall[p] += performance.now() - s;
  }
}

function isConvParams(v: unknown): v is ConvParams {
  return typeof v === 'object' && v !== null && 'KH' in v && 'O' in v && 'groups' in v;
}

function isTyped(v: unknown): v is ArrayBufferView {
  return ArrayBuffer.isView(v);
}

/**
 * FLOP of one call: 2 per multiply-add of conv (any pass), matmul (linearGelu's and linearAdd's too), a Linear's backward products, the bf16
 * MLP's products and the fused attention's products (q k^T and probs v forward; four products of the same size backward); 0 for everything else.
 */
function flopOf(kernel: string, args: readonly unknown[]): number {
  if (kernel === 'matmul') {
    const [batch, M, N, K] = args.slice(4, 8) as number[];
    return 2 * batch! * M! * N! * K!;
  }
  if (kernel === 'linearBackward' || kernel === 'linearBackwardScaled') {
    const [rows, I, O] = args.slice(kernel === 'linearBackward' ? 6 : 7) as number[];
    return 2 * rows! * I! * O! * ((args[0] !== null ? 1 : 0) + (args[1] !== null ? 1 : 0));
  }
  if (kernel === 'linearAdd') {
    const [rows, I, O] = args.slice(5, 8) as number[];
    return 2 * rows! * I! * O!;
  }
  if (kernel === 'linearGelu') {
    const [rows, I, O] = args.slice(5, 8) as number[];
    return 2 * rows! * I! * O!;
  }
  if (kernel === 'mlpForwardBf16') {
    const [rows, I, Hd, O] = args.slice(9, 13) as number[];
    return 2 * rows! * Hd! * (I! + O!);
  }
  if (kernel === 'mlpBackwardBf16') {
    // gpre = (gy w2) * gelu' when any fc1 gradient is wanted, gw2, then fc1's gx and gw1
    const [rows, I, Hd, O] = args.slice(11, 15) as number[];
    const fc1 = args[0] !== null || args[1] !== null || args[2] !== null;
    return 2 * rows! * Hd! * (O! * ((fc1 ? 1 : 0) + (args[3] !== null ? 1 : 0)) + I! * ((args[0] !== null ? 1 : 0) + (args[1] !== null ? 1 : 0)));
  }
  if (kernel === 'attentionForward' || kernel === 'attentionBackward') {
    const [B, N, H, hd] = args.slice(kernel === 'attentionForward' ? 3 : 4) as number[];
    return (kernel === 'attentionForward' ? 4 : 8) * B! * H! * N! * N! * hd!;
  }
  if (kernel.startsWith('conv2d')) {
    const p = args.find(isConvParams);
    if (p === undefined) return 0;
    return 2 * p.N * p.O * p.OH * p.OW * (p.C / p.groups) * p.KH * p.KW;
  }
  return 0;
}

function rowName(kernel: string, args: readonly unknown[]): string {
  const first = args[0];
  return typeof first === 'string' ? `${kernel}.${first}` : kernel;
}

function wrapObject(obj: Record<string, unknown>, prefix: string): void {
  if (wrapped.has(obj)) return;
  wrapped.add(obj);
  for (const key of Object.keys(obj)) {
    const f = obj[key];
    if (typeof f !== 'function' || key === 'supports' || key === 'enabled' || key === 'bf16Compute') continue;
    const kernel = `${prefix}${key}`;
    const inner = f as (...a: unknown[]) => unknown;
    obj[key] = function profiled(...args: unknown[]): unknown {
      if (!recording) return inner(...args);
      const s = performance.now();
      const r = inner(...args);
      const ms = performance.now() - s;
      const name = rowName(kernel, args);
      let row = rows.get(name);
      if (row === undefined) {
        row = { name, forwardMs: 0, backwardMs: 0, optimizerMs: 0, calls: 0, flop: 0, bytes: 0 };
        rows.set(name, row);
      }
      if (phase === 'forward') row.forwardMs += ms;
      else if (phase === 'backward') row.backwardMs += ms;
      else row.optimizerMs += ms;
      row.calls++;
      row.flop += flopOf(key, args);
      for (const a of args) {
        if (isTyped(a)) row.bytes += a.byteLength;
        else if (Array.isArray(a)) for (const t of a) if (isTyped(t)) row.bytes += t.byteLength; // multi-tensor kernels
      }
      return r;
    };
  }
}

/** Wraps a backend's kernels (in place, once) so calls are timed while the profiler records. */
export function instrumentBackend(b: Backend): Backend {
  if (!installed) return b;
  wrapObject(b as unknown as Record<string, unknown>, '');
  if (b.blocked !== undefined) wrapObject(b.blocked as unknown as Record<string, unknown>, '');
  return b;
}

/** Registers a backend so enableProfiler() instruments it (device.ts calls this on every backend it loads). */
export function onBackendLoaded(b: Backend): Backend {
  backends.push(b);
  return instrumentBackend(b);
}

/** Whether SELFSUP_PROFILE asks for profiling (any value but '' and '0'). */
export function profileRequested(): boolean {
  const v = process.env.SELFSUP_PROFILE;
  return v !== undefined && v !== '' && v !== '0';
}

/** Instruments every loaded backend (and any loaded later). Costs ~0.1 us per kernel call while not recording. */
export function enableProfiler(): void {
  installed = true;
  for (const b of backends) instrumentBackend(b);
}

export function profilerEnabled(): boolean {
  return installed;
}

/** Starts a fresh recording. */
export function startProfile(): void {
  if (!installed) throw new Error('[profiler] not enabled: set SELFSUP_PROFILE=1, pass --profile, or call enableProfiler() first');
  rows.clear();
  phaseWall.backward = 0;
  phaseWall.optimizer = 0;
  recording = true;
  const u = process.resourceUsage();
  cpu0 = (u.userCPUTime + u.systemCPUTime) / 1000;
  t0 = performance.now();
}

/** Stops recording and returns the aggregate since startProfile(). */
export function stopProfile(): ProfileReport {
  const wallMs = performance.now() - t0;
  const u = process.resourceUsage();
  const cpuMs = (u.userCPUTime + u.systemCPUTime) / 1000 - cpu0;
  recording = false;
  const list = [...rows.values()].sort((a, b) => total(b) - total(a));
  const kernelMs = list.reduce((s, r) => s + total(r), 0);
  const flop = list.reduce((s, r) => s + r.flop, 0);
  const phaseMs = { forward: wallMs - phaseWall.backward - phaseWall.optimizer, backward: phaseWall.backward, optimizer: phaseWall.optimizer };
  const phaseKernelMs = {
    forward: list.reduce((s, r) => s + r.forwardMs, 0),
    backward: list.reduce((s, r) => s + r.backwardMs, 0),
    optimizer: list.reduce((s, r) => s + r.optimizerMs, 0),
  };
  return { rows: list, wallMs, cpuMs, kernelMs, flop, phaseMs, phaseKernelMs };
}

/** Profiles one call of fn (a training step). */
export function profile<T>(fn: () => T): { result: T; report: ProfileReport } {
  startProfile();
  try {
    const result = fn();
    return { result, report: stopProfile() };
  } finally {
    recording = false;
  }
}

function total(r: ProfileRow): number {
  return r.forwardMs + r.backwardMs + r.optimizerMs;
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padEnd(n) : s.padStart(n);
}

/** The report as a fixed-width table (ms, GFLOP/s from the stated FLOP counts, GB/s over the buffers handed in). */
export function formatProfile(rep: ProfileReport, title = 'profile', limit = 30): string {
  const head = ['op', 'fwd ms', 'bwd ms', 'opt ms', 'total ms', '% step', 'calls', 'GFLOP', 'GFLOP/s', 'MB', 'GB/s'];
  const w = [30, 9, 9, 8, 9, 7, 7, 8, 8, 9, 7];
  const line = '-'.repeat(w.reduce((a, b) => a + b + 1, 0));
  const out: string[] = [`${title}: wall ${rep.wallMs.toFixed(1)} ms, cpu ${rep.cpuMs.toFixed(1)} ms, kernels ${rep.kernelMs.toFixed(1)} ms, ${(rep.flop / 1e9).toFixed(2)} GFLOP (conv + matmul + attention, fwd + bwd) = ${(rep.flop / 1e6 / Math.max(rep.wallMs, 1e-9)).toFixed(1)} GFLOP/s over the step`, line,
    head.map((h, i) => pad(h, w[i]!, i === 0)).join(' '), line];
  const fmt = (r: ProfileRow): string => {
    const t = total(r);
    const cells = [r.name, r.forwardMs.toFixed(2), r.backwardMs.toFixed(2), r.optimizerMs.toFixed(2), t.toFixed(2),
      (100 * t / Math.max(rep.wallMs, 1e-9)).toFixed(1), String(r.calls),
      r.flop > 0 ? (r.flop / 1e9).toFixed(2) : '', r.flop > 0 && t > 0 ? (r.flop / 1e6 / t).toFixed(1) : '',
      (r.bytes / 1e6).toFixed(1), t > 0 ? (r.bytes / 1e6 / t).toFixed(1) : ''];
    return cells.map((c, i) => pad(c, w[i]!, i === 0)).join(' ');
  };
  for (const r of rep.rows.slice(0, limit)) out.push(fmt(r));
  const rest = rep.rows.slice(limit);
  if (rest.length > 0) {
    const agg: ProfileRow = { name: `(${rest.length} more kernels)`, forwardMs: 0, backwardMs: 0, optimizerMs: 0, calls: 0, flop: 0, bytes: 0 };
    for (const r of rest) {
      agg.forwardMs += r.forwardMs; agg.backwardMs += r.backwardMs; agg.optimizerMs += r.optimizerMs;
      agg.calls += r.calls; agg.flop += r.flop; agg.bytes += r.bytes;
    }
    out.push(fmt(agg));
  }
  out.push(line);
  const o = (p: ProfilePhase): number => rep.phaseMs[p] - rep.phaseKernelMs[p];
  const other = rep.wallMs - rep.kernelMs;
  out.push([pad('(outside kernels: JS, autograd)', w[0]!, true), o('forward').toFixed(2), o('backward').toFixed(2),
    o('optimizer').toFixed(2), other.toFixed(2), (100 * other / Math.max(rep.wallMs, 1e-9)).toFixed(1)]
    .map((c, i) => pad(c, w[i]!, i === 0)).join(' '));
  out.push([pad('(step: wall per phase)', w[0]!, true), rep.phaseMs.forward.toFixed(2), rep.phaseMs.backward.toFixed(2),
    rep.phaseMs.optimizer.toFixed(2), rep.wallMs.toFixed(2), '100.0'].map((c, i) => pad(c, w[i]!, i === 0)).join(' '));
  return out.join('\n');
}

/** Compact JSON form for benchmark lines: the top rows with times rounded to 0.1 ms. */
export function profileJson(rep: ProfileReport, limit = 15): Record<string, unknown> {
  return {
    wall_ms: +rep.wallMs.toFixed(1), forward_ms: +rep.phaseMs.forward.toFixed(1),
    backward_ms: +rep.phaseMs.backward.toFixed(1), optimizer_ms: +rep.phaseMs.optimizer.toFixed(1), cpu_ms: +rep.cpuMs.toFixed(1), kernel_ms: +rep.kernelMs.toFixed(1),
    gflop: +(rep.flop / 1e9).toFixed(3),
    top: rep.rows.slice(0, limit).map((r) => ({
      op: r.name, fwd_ms: +r.forwardMs.toFixed(1), bwd_ms: +r.backwardMs.toFixed(1), opt_ms: +r.optimizerMs.toFixed(1),
      calls: r.calls, ...(r.flop > 0 ? { gflops: +(r.flop / 1e6 / Math.max(total(r), 1e-9)).toFixed(1) } : {}),
    })),
  };
}

if (profileRequested()) enableProfiler();
